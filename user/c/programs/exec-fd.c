/* exec keeps the process's name and its open fds, positions included: open sample.txt
 * (--put), read 9 bytes, then exec read-fd (--put) to read the next 8. */
#include "../lib.h"

const char *test_name = "exec-fd";

int main(void) {
    char buf[16], cmd[32];
    int fd = open("sample.txt");
    CHECK(fd > 1, "open sample.txt");
    CHECK(read(fd, buf, 9) == 9, "read 9 bytes");
    snprintf(cmd, sizeof cmd, "read-fd %d 8", fd);
    msg("exec read-fd");
    exec(cmd);
    fail("exec returned");
}
