/* exec of a file that is not an ELF executable (notelf, --put): one load line, then the
 * exec'ing process exits with -1; first in a forked child, then in this process. */
#include "../lib.h"

const char *test_name = "exec-bad-elf";

int main(void) {
    msg("begin");
    pid_t pid = fork("badchild");
    if (pid == 0) {
        exec("notelf");
        fail("exec returned in the child");
    }
    CHECK(wait(pid) == -1, "child's failed exec gives -1");
    msg("exec notelf here");
    exec("notelf with args");
    fail("exec returned");
}
