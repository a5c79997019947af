/* Repeated shuffles of a 128 KiB array in a forked child and in the parent: the multiset
 * of values survives every shuffle (sorting restores the original), in both processes. */
#include "../lib.h"

const char *test_name = "page-shuffle";

#define COUNT (128u * 1024 / sizeof(unsigned))
static unsigned values[COUNT];
static unsigned seed = 12345;

static unsigned next(void) {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
}

static void shuffle(void) {
    for (unsigned i = COUNT - 1; i > 0; i--) {
        unsigned j = next() % (i + 1);
        unsigned t = values[i];
        values[i] = values[j];
        values[j] = t;
    }
}

/* Counting sort back to 0..COUNT-1 would hide duplicates; check a permutation instead. */
static bool is_permutation(void) {
    static unsigned char seen[COUNT];
    memset(seen, 0, sizeof seen);
    for (unsigned i = 0; i < COUNT; i++) {
        if (values[i] >= COUNT || seen[values[i]])
            return false;
        seen[values[i]] = 1;
    }
    return true;
}

static bool run(int rounds) {
    for (int r = 0; r < rounds; r++) {
        shuffle();
        if (!is_permutation())
            return false;
    }
    return true;
}

int main(void) {
    for (unsigned i = 0; i < COUNT; i++)
        values[i] = i;
    CHECK(run(5), "5 shuffles keep a permutation");
    unsigned first = values[0];
    pid_t pid = fork("shuffler");
    if (pid == 0)
        exit(run(10) && values[0] != first ? 0 : 1);
    CHECK(wait(pid) == 0, "a child's 10 shuffles keep its permutation");
    CHECK(values[0] == first && is_permutation(), "the parent's array is as it left it");
    CHECK(run(5), "5 more shuffles in the parent");
    return 0;
}
