/* Opens one file until open fails (or 4096 fds), closes them all, and does it again: the
 * second round must get exactly as many fds as the first, so closing frees everything. */
#include "../lib.h"

const char *test_name = "open-limit";

#define CAP 4096

static int fds[CAP];

static int open_all(void) {
    int n = 0;
    while (n < CAP) {
        int fd = open("of");
        if (fd < 0)
            break;
        if (fd < 2)
            fail("open returned fd %d", fd);
        fds[n++] = fd;
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    return n;
}

int main(void) {
    CHECK(create("of", 1), "create of");
    int first = open_all();
    msg("opened until failure or %d fds", CAP);
    CHECK(first >= 126, "at least 126 fds besides 0 and 1");
    int second = open_all();
    CHECK(second == first, "second round opened as many fds");
    int fd = open("of");
    CHECK(fd > 1, "open after closing everything");
    return 0;
}
