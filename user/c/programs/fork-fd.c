/* fork copies the fd table; each copy has its own position. Reads sample.txt (--put). */
#include "../lib.h"

const char *test_name = "fork-fd";

static const char sample_start[] = "Lines of a sample";

int main(void) {
    char buf[8];
    int fd = open("sample.txt");
    CHECK(fd > 1, "open sample.txt");
    CHECK(read(fd, buf, 5) == 5, "parent reads 5 bytes");
    pid_t pid = fork("ffchild");
    if (pid == 0) {
        CHECK(read(fd, buf, 5) == 5, "child reads 5 bytes");
        CHECK(memcmp(buf, sample_start + 5, 5) == 0, "child's read continues at 5");
        seek(fd, 0);
        CHECK(tell(fd) == 0, "child seeks to 0");
        exit(3);
    }
    if (pid < 0)
        fail("fork");
    CHECK(wait(pid) == 3, "wait returns the child's 3");
    CHECK(tell(fd) == 5, "parent's position is still 5");
    CHECK(read(fd, buf, 5) == 5 && memcmp(buf, sample_start + 5, 5) == 0,
          "parent reads bytes 5..9");
    return 0;
}
