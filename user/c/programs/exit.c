/* `exit STATUS`: exits with STATUS through the exit system call (not main's return). */
#include "../lib.h"

const char *test_name = "exit";

int main(int argc, char *argv[]) {
    int status = argc > 1 ? atoi(argv[1]) : 0;
    msg("exit(%d)", status);
    exit(status);
}
