/* Running executables are read-only: writing to our own file returns 0; once a child that
 * ran child-simple (--put) has exited, writing to child-simple works again. */
#include "../lib.h"

const char *test_name = "rox";

int main(void) {
    char byte;
    int fd = open("rox");
    CHECK(fd > 1, "open rox");
    CHECK(read(fd, &byte, 1) == 1, "read rox");
    seek(fd, 0);
    CHECK(write(fd, &byte, 1) == 0, "write to own executable returns 0");
    pid_t pid = fork("roxchild");
    if (pid == 0) {
        exec("child-simple");
        fail("exec returned");
    }
    CHECK(wait(pid) == 81, "child-simple ran and exited");
    int cfd = open("child-simple");
    CHECK(cfd > 1, "open child-simple");
    CHECK(read(cfd, &byte, 1) == 1, "read child-simple");
    seek(cfd, 0);
    CHECK(write(cfd, &byte, 1) == 1, "write to child-simple after it exited works");
    seek(fd, 0);
    CHECK(write(fd, &byte, 0) == 0 && write(fd, "\x7f", 1) == 0, "own executable still read-only");
    return 0;
}
