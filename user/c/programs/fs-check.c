/* `fs-check FILE SIZE SEED`: checks that FILE has SIZE bytes of the pattern
 * (i * 7 + SEED * 13) % 251 (as written by fs-share), reading 256 bytes at a time. */
#include "../lib.h"

const char *test_name = "fs-check";

int main(int argc, char *argv[]) {
    if (argc != 4)
        fail("usage: fs-check FILE SIZE SEED");
    int size = atoi(argv[2]), seed = atoi(argv[3]);
    int fd = open(argv[1]);
    if (fd < 2)
        fail("open %s", argv[1]);
    if (filesize(fd) != size)
        fail("%s has %d bytes, not %d", argv[1], filesize(fd), size);
    char buf[256];
    int pos = 0, n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (int i = 0; i < n; i++, pos++)
            if ((unsigned char) buf[i] != (pos * 7 + seed * 13) % 251)
                fail("%s: byte %d differs", argv[1], pos);
    }
    if (pos != size)
        fail("%s: read %d bytes, not %d", argv[1], pos, size);
    msg("%s: %d bytes match", argv[1], size);
    return 0;
}
