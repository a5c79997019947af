/* dup2: the copy shares the position with the original, dup2(fd, fd) is a no-op, bad old
 * fds fail, dup2 onto an open fd replaces it, the copy outlives the original, and a copy of
 * fd 1 writes to the console. Reads sample.txt (--put). */
#include "../lib.h"

const char *test_name = "dup2";

static const char sample_start[] = "Lines of a sample";

int main(void) {
    char buf[32];
    int fd = open("sample.txt");
    CHECK(fd > 1, "open sample.txt");
    CHECK(dup2(fd, 50) == 50, "dup2(fd, 50) returns 50");
    CHECK(read(fd, buf, 6) == 6, "read 6 bytes through fd");
    CHECK(tell(50) == 6, "fd 50 is at 6 too");
    CHECK(read(50, buf + 6, 4) == 4, "read 4 bytes through fd 50");
    CHECK(tell(fd) == 10, "fd is at 10 too");
    CHECK(memcmp(buf, sample_start, 10) == 0, "the two reads are consecutive");
    CHECK(dup2(fd, fd) == fd, "dup2(fd, fd) returns fd");
    CHECK(tell(fd) == 10, "fd is still open at 10");
    CHECK(dup2(-1, 7) == -1, "dup2(-1, 7) fails");
    CHECK(dup2(99, 7) == -1, "dup2 of a never-opened fd fails");
    CHECK(read(7, buf, 1) == -1, "fd 7 was not created");
    int other = open("sample.txt");
    CHECK(other > 1 && other != fd, "open sample.txt again");
    CHECK(dup2(50, other) == other, "dup2(50, other) replaces the open fd");
    CHECK(tell(other) == 10, "other now shares fd's position");
    close(fd);
    CHECK(read(50, buf, 7) == 7, "fd 50 works after closing fd");
    CHECK(memcmp(buf, sample_start + 10, 7) == 0, "and continues where fd was");
    CHECK(tell(other) == 17, "other follows fd 50");
    CHECK(dup2(1, 20) == 20, "dup2(1, 20) returns 20");
    const char *line = "(dup2) this line went through fd 20\n";
    CHECK(write(20, line, strlen(line)) == (int) strlen(line), "write through fd 20");
    return 0;
}
