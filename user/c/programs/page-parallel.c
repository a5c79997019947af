/* 4 children touch 1 MiB each at once (the timer switches between them): each rewrites
 * its copy of an array the parent filled (copy-on-write), checks it, and exits with its
 * index; the parent's array stays as it was. The test ignores the children's exit lines,
 * whose order depends on scheduling. */
#include "../lib.h"

const char *test_name = "page-parallel";

#define SIZE (1u << 20)
#define CHILDREN 4
static unsigned char array[SIZE];

static unsigned char pattern(unsigned i, unsigned seed) {
    return (unsigned char) (((i + seed) * 2654435761u) >> 24);
}

static bool holds(unsigned seed) {
    for (unsigned i = 0; i < SIZE; i++)
        if (array[i] != pattern(i, seed))
            return false;
    return true;
}

int main(void) {
    for (unsigned i = 0; i < SIZE; i++)
        array[i] = pattern(i, 0);
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        char name[16];
        snprintf(name, sizeof name, "toucher%d", c);
        pids[c] = fork(name);
        if (pids[c] == 0) {
            bool inherited = holds(0);
            /* Several passes, so the children's writes interleave under preemption. */
            for (unsigned round = 1; round <= 3; round++)
                for (unsigned i = 0; i < SIZE; i++)
                    array[i] = pattern(i, (unsigned) c * 1000 + round);
            exit(inherited && holds((unsigned) c * 1000 + 3) ? 10 + c : 99);
        }
        if (pids[c] < 0)
            fail("fork %d", c);
    }
    /* Wait for all before printing: the children's exit lines come in any order. */
    int status[CHILDREN];
    for (int c = 0; c < CHILDREN; c++)
        status[c] = wait(pids[c]);
    for (int c = 0; c < CHILDREN; c++)
        CHECK(status[c] == 10 + c, "child %d saw its own 1 MiB", c);
    CHECK(holds(0), "the parent's 1 MiB is unchanged");
    return 0;
}
