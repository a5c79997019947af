/* `read-fd FD N`: reads N bytes from FD, which this program never opened: it was inherited
 * across exec (exec-fd), and prints them. */
#include "../lib.h"

const char *test_name = "read-fd";

int main(int argc, char *argv[]) {
    if (argc != 3)
        fail("usage: read-fd FD N");
    int fd = atoi(argv[1]);
    unsigned n = (unsigned) atoi(argv[2]);
    char buf[64];
    if (n >= sizeof buf)
        fail("N too large");
    int r = read(fd, buf, n);
    CHECK(r == (int) n, "read %d bytes from the inherited fd", r);
    buf[n] = '\0';
    msg("they are '%s'", buf);
    return 0;
}
