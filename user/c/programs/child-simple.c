/* A child for exec tests: prints one line and exits with 81. */
#include "../lib.h"

const char *test_name = "child-simple";

int main(void) {
    msg("run");
    return 81;
}
