/* File calls on fds that are not open files: negative, huge, never opened, closed, and
 * the console fds 0 and 1 for file-only calls. Each must fail (-1, or 0 where the call
 * returns a count or position) without killing the process (guest-abi §4, "ours"). */
#include "../lib.h"

const char *test_name = "bad-fd";

static char buf[64];

static void check_fd(int fd, const char *what) {
    int r = read(fd, buf, sizeof buf);
    CHECK(r == -1, "read(%s) returns -1", what);
    r = write(fd, buf, sizeof buf);
    CHECK(r == -1 || r == 0, "write(%s) fails", what);
    r = filesize(fd);
    CHECK(r == -1 || r == 0, "filesize(%s) fails", what);
    unsigned t = tell(fd);
    CHECK(t == (unsigned) -1 || t == 0, "tell(%s) fails", what);
    seek(fd, 10);
    close(fd);
    msg("seek(%s) and close(%s) return", what, what);
}

int main(void) {
    check_fd(-1, "-1");
    check_fd(-1000000, "-1000000");
    check_fd(0x7fffffff, "0x7fffffff");
    check_fd(77, "never opened");
    CHECK(create("file", 10), "create file");
    int fd = open("file");
    CHECK(fd > 1, "open file");
    close(fd);
    check_fd(fd, "closed");

    int r = filesize(0);
    CHECK(r == -1 || r == 0, "filesize(0) fails");
    r = filesize(1);
    CHECK(r == -1 || r == 0, "filesize(1) fails");
    unsigned t = tell(1);
    CHECK(t == (unsigned) -1 || t == 0, "tell(1) fails");
    seek(1, 5);
    r = read(1, buf, 4);
    CHECK(r == -1, "read(1) returns -1");
    r = write(0, "x", 1);
    CHECK(r == -1 || r == 0, "write(0) fails");
    msg("end");
    return 0;
}
