/* Argument passing: prints argc and every argv entry, and checks the layout guest-abi §3
 * promises (argv 8-byte aligned, argv[argc] == NULL). */
#include "../lib.h"

const char *test_name = "args";

int main(int argc, char *argv[]) {
    msg("begin");
    msg("argc = %d", argc);
    for (int i = 0; i < argc; i++)
        msg("argv[%d] = '%s'", i, argv[i]);
    if ((unsigned long) argv % 8 != 0)
        fail("argv %p is not 8-byte aligned", argv);
    if (argv[argc] != NULL)
        fail("argv[argc] is %p, not NULL", argv[argc]);
    msg("argv[%d] = null", argc);
    msg("end");
    return 0;
}
