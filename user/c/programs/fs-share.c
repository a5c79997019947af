/* One process writes a file, another (fs-check, --put) reads it back and checks it. */
#include "../lib.h"

const char *test_name = "fs-share";

#define SIZE 3000
#define SEED 5

int main(void) {
    static char data[SIZE];
    for (int i = 0; i < SIZE; i++)
        data[i] = (char) ((i * 7 + SEED * 13) % 251);
    CHECK(create("shared", SIZE), "create shared");
    int fd = open("shared");
    CHECK(fd > 1, "open shared");
    CHECK(write(fd, data, SIZE) == SIZE, "write %d bytes", SIZE);
    close(fd);
    pid_t pid = fork("reader");
    if (pid == 0) {
        exec("fs-check shared 3000 5");
        fail("exec returned");
    }
    CHECK(wait(pid) == 0, "reader exited with 0");
    return 0;
}
