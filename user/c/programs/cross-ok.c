/* Strings and buffers that cross a page boundary into another mapped page are fine: the
 * kernel checks every page of them, and all of these pages are mapped. */
#include "../lib.h"

const char *test_name = "cross-ok";

/* Two pages of writable data, page-aligned, so offset 4096 is a page boundary. */
static char area[8192] __attribute__((aligned(4096)));

static char *straddle(const char *s, int before) {
    char *at = area + 4096 - before;
    strlcpy(at, s, 64);
    return at;
}

int main(void) {
    /* A file name whose first 5 bytes are on one page and the rest on the next. */
    int fd = open(straddle("sample.txt", 5));
    CHECK(fd > 1, "open a name that crosses a page boundary");
    /* A read into a buffer that crosses the boundary. */
    char *buf = area + 4096 - 10;
    CHECK(read(fd, buf, 20) == 20, "read into a buffer that crosses a page boundary");
    close(fd);
    /* A write from a buffer that crosses the boundary. */
    char *line = straddle("(cross-ok) a line written across a page boundary\n", 7);
    CHECK(write(STDOUT_FILENO, line, strlen(line)) == (int) strlen(line), "write it whole");
    CHECK(create(straddle("made-here", 4), 10), "create with a name across the boundary");
    return 0;
}
