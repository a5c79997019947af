/* A binary tree of processes, 3 levels below the root (14 children in all). Each node
 * forks its two children one at a time, waits for each, and exits with the size of its
 * subtree, so the exit lines come in a fixed post-order and the root sees 15. */
#include "../lib.h"

const char *test_name = "fork-tree";

#define DEPTH 3

static char name[16] = "t";

static int node(int depth) {
    int size = 1;
    if (depth == DEPTH)
        return size;
    size_t len = strlen(name);
    for (int i = 0; i < 2; i++) {
        name[len] = (char) ('0' + i);
        name[len + 1] = '\0';
        pid_t pid = fork(name);
        if (pid == 0)
            exit(node(depth + 1));
        name[len] = '\0';
        if (pid < 0)
            fail("fork failed at depth %d", depth);
        size += wait(pid);
    }
    return size;
}

int main(void) {
    msg("begin");
    int size = node(0);
    CHECK(size == 15, "tree size %d", size);
    return 0;
}
