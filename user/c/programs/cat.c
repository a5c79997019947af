/* `cat FILE...`: copies each file to the console, 100 bytes per write. */
#include "../lib.h"

const char *test_name = "cat";

int main(int argc, char *argv[]) {
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i]);
        if (fd < 2)
            fail("open %s", argv[i]);
        char buf[100];
        int n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            write(STDOUT_FILENO, buf, n);
        close(fd);
    }
    return 0;
}
