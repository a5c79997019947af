/* Zero-fill in parallel: the parent execs 4 copies of itself ("zero-parallel C"), which
 * touch 4 MiB of fresh bss each at once (the timer switches between them mid-way): every
 * page reads as zero, then keeps what its child wrote. Each child exits with 10 + C; the
 * parent checks every status once all have ended (their exit lines come in any order).
 * "zero-parallel seq" runs the children one after another instead, so that in a small
 * guest the later ones get frames the earlier ones used: they too must read as zero. */
#include "../lib.h"

const char *test_name = "zero-parallel";

#define CHILDREN 4
#define PAGES 1024
#define PAGE 4096
static unsigned char area[PAGES * PAGE];

static int child(int c) {
    for (unsigned p = 0; p < PAGES; p++) {
        unsigned char *page = area + p * PAGE;
        for (unsigned i = 0; i < PAGE; i++)
            if (page[i] != 0)
                return 1;
        page[0] = (unsigned char) (c + 1);
        page[PAGE - 1] = (unsigned char) p;
    }
    for (unsigned p = 0; p < PAGES; p++) {
        unsigned char *page = area + p * PAGE;
        if (page[0] != (unsigned char) (c + 1) || page[PAGE - 1] != (unsigned char) p)
            return 2;
    }
    return 10 + c;
}

int main(int argc, char *argv[]) {
    if (argc == 2 && strcmp(argv[1], "seq") != 0)
        return child(atoi(argv[1]));
    bool one_by_one = argc == 2;
    pid_t pids[CHILDREN];
    int status[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        char name[16], cmd[32];
        snprintf(name, sizeof name, "zero%d", c);
        pids[c] = fork(name);
        if (pids[c] == 0) {
            snprintf(cmd, sizeof cmd, "zero-parallel %d", c);
            exec(cmd);
            fail("exec %d", c);
        }
        if (pids[c] < 0)
            fail("fork %d", c);
        if (one_by_one)
            status[c] = wait(pids[c]);
    }
    for (int c = 0; c < CHILDREN && !one_by_one; c++)
        status[c] = wait(pids[c]);
    for (int c = 0; c < CHILDREN; c++)
        CHECK(status[c] == 10 + c, "child %d read zeros and kept its own 4 MiB", c);
    return 0;
}
