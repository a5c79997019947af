/* Repeated shuffles of a mapped file: `shuf` (128 KiB, the words 0..32767 in order) is
 * mapped writable and shuffled 6 times (Fisher-Yates, LCG-driven). After every shuffle the
 * sum and the sum of squares of the words (which no permutation changes) must hold. After
 * the third, a child `squeezer` writes 4 MiB of its own in an 8 MiB guest (a user pool of
 * about 3.3 MiB), pushing the parent's pages out: the mapped ones, all dirty, back to the
 * file, the rest to swap. At the end the mapping must equal the same 6 shuffles done on an
 * array in memory (same order, same hash), and after munmap so must the file. */
#include "../lib.h"

const char *test_name = "shuffle-map";

#define COUNT (128u * 1024 / 4)
#define FILE_BYTES (COUNT * 4)
#define ROUNDS 6
#define SQUEEZE_PAGES 1024u
#define MAP_ADDR ((void *) 0x10000000)
#define SEED 20240607u

static unsigned reference[COUNT];
static unsigned char squeeze[SQUEEZE_PAGES * PGSIZE];
static unsigned seed;

static unsigned next(void) {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
}

static void shuffle(unsigned *values) {
    for (unsigned i = COUNT - 1; i > 0; i--) {
        unsigned j = next() % (i + 1);
        unsigned t = values[i];
        values[i] = values[j];
        values[j] = t;
    }
}

/* Whether `values` has the sum and the sum of squares of 0..COUNT-1. */
static bool sums_hold(const unsigned *values) {
    unsigned long sum = 0, squares = 0, want_sum = 0, want_squares = 0;
    for (unsigned i = 0; i < COUNT; i++) {
        sum += values[i];
        squares += (unsigned long) values[i] * values[i];
        want_sum += i;
        want_squares += (unsigned long) i * i;
    }
    return sum == want_sum && squares == want_squares;
}

static bool is_permutation(const unsigned *values) {
    static unsigned char seen[COUNT / 8];
    memset(seen, 0, sizeof seen);
    for (unsigned i = 0; i < COUNT; i++) {
        unsigned v = values[i];
        if (v >= COUNT || (seen[v / 8] & (1u << (v % 8))))
            return false;
        seen[v / 8] |= (unsigned char) (1u << (v % 8));
    }
    return true;
}

/* FNV-1a over the words: depends on their order. */
static unsigned long hash(const unsigned *values) {
    unsigned long h = 0xcbf29ce484222325UL;
    for (unsigned i = 0; i < COUNT; i++) {
        h ^= values[i];
        h *= 0x100000001b3UL;
    }
    return h;
}

/* Shuffles `rounds` times; whether the sums held after every shuffle. */
static bool rounds_keep_sums(unsigned *values, int rounds) {
    bool ok = true;
    for (int r = 0; r < rounds; r++) {
        shuffle(values);
        ok = sums_hold(values) && ok;
    }
    return ok;
}

static void squeezer(void) {
    volatile unsigned char *p = squeeze;
    for (unsigned page = 0; page < SQUEEZE_PAGES; page++)
        p[page * PGSIZE] = (unsigned char) (page + 1);
    exit(0);
}

int main(void) {
    /* The reference: the same shuffles on an array in memory. */
    for (unsigned i = 0; i < COUNT; i++)
        reference[i] = i;
    seed = SEED;
    for (int r = 0; r < ROUNDS; r++)
        shuffle(reference);

    CHECK(create("shuf", FILE_BYTES), "create shuf, %u bytes: the words 0..%u in order",
          FILE_BYTES, COUNT - 1);
    int fd = open("shuf");
    unsigned buf[1024];
    int written = 0;
    for (unsigned at = 0; at < COUNT; at += 1024) {
        for (unsigned i = 0; i < 1024; i++)
            buf[i] = at + i;
        written += write(fd, buf, sizeof buf);
    }
    if (fd < 2 || written != (int) FILE_BYTES)
        fail("write shuf");
    unsigned *map = mmap(MAP_ADDR, FILE_BYTES, 1, fd, 0);
    CHECK(map == MAP_ADDR, "mmap it writable");

    seed = SEED;
    CHECK(rounds_keep_sums(map, ROUNDS / 2), "%d shuffles of the mapping keep its sums",
          ROUNDS / 2);
    pid_t pid = fork("squeezer");
    if (pid == 0)
        squeezer();
    if (pid < 0)
        fail("fork");
    CHECK(wait(pid) == 0, "a child wrote %u KiB meanwhile", SQUEEZE_PAGES * 4);
    CHECK(is_permutation(map), "the mapping still holds a permutation");
    CHECK(rounds_keep_sums(map, ROUNDS - ROUNDS / 2), "%d more shuffles keep its sums",
          ROUNDS - ROUNDS / 2);
    CHECK(hash(map) == hash(reference) && memcmp(map, reference, FILE_BYTES) == 0,
          "it matches the same %d shuffles done in memory", ROUNDS);
    munmap(map);
    seek(fd, 0);
    bool same = true;
    for (unsigned at = 0; at < COUNT; at += 1024)
        same = same && read(fd, buf, sizeof buf) == (int) sizeof buf &&
               memcmp(buf, reference + at, sizeof buf) == 0;
    CHECK(same, "after munmap, read() shows the same order");
    return 0;
}
