/* fork + exec + wait: the child execs child-simple (--put), keeps the name given to fork,
 * and its exit status reaches the parent once; a second wait fails. */
#include "../lib.h"

const char *test_name = "exec-wait";

int main(void) {
    msg("begin");
    pid_t pid = fork("execchild");
    if (pid == 0) {
        exec("child-simple");
        fail("exec returned");
    }
    CHECK(wait(pid) == 81, "wait(child) = 81");
    CHECK(wait(pid) == -1, "wait(child) again = -1");
    msg("end");
    return 0;
}
