/* stress ROUNDS: three processes page hard at once, with a checksum on every page they
 * read back. The parent makes a 256 KiB file and forks three children; each child, for
 * ROUNDS rounds, checks and rewrites every page of its own 4 MiB of bss (each page
 * filled with words derived from the child, the round and the page, so a page swapped
 * out and back, dropped, or mixed up with another shows) and maps the file writable to
 * check and rewrite its third of the file's pages. In an 8 MiB guest (a user pool of
 * about 3.3 MiB) the bss goes to swap and back each round and the mapped pages go back
 * to the file. The parent checks each child's status and then every byte of the file.
 * Prints nothing but the kernel's exit lines unless a check fails. */
#include "../lib.h"

const char *test_name = "stress";

#define CHILDREN 3
#define PAGES 1024u
#define WORDS (PGSIZE / sizeof(unsigned))
#define FILE_PAGES 64u
#define MAP_ADDR ((void *) 0x10000000)

static unsigned bss[PAGES * WORDS] __attribute__((aligned(PGSIZE)));

/* Word w of page p of child k in round r (round 0: the state before the first round). */
static unsigned word(unsigned k, unsigned r, unsigned p, unsigned w) {
    unsigned x = (k + 1) * 0x9e3779b9u ^ (r + 1) * 0x85ebca6bu ^ (p + 1) * 0xc2b2ae35u;
    x ^= w * 0x27d4eb2fu;
    return x ^ (x >> 15);
}

/* Whether `page` holds page p of child k in round r; then fills it for round r + 1. */
static bool check_and_refill(unsigned *page, unsigned k, unsigned r, unsigned p, bool fresh) {
    bool ok = true;
    for (unsigned w = 0; w < WORDS; w++) {
        unsigned want = fresh ? 0 : word(k, r, p, w);
        ok &= page[w] == want;
        page[w] = word(k, r + 1, p, w);
    }
    return ok;
}

static int child(unsigned k, unsigned rounds, int fd) {
    for (unsigned r = 0; r < rounds; r++) {
        for (unsigned p = 0; p < PAGES; p++)
            if (!check_and_refill(&bss[p * WORDS], k, r, p, r == 0))
                fail("child %u, round %u: bss page %u does not hold what was written", k, r, p);
        unsigned *map = mmap(MAP_ADDR, FILE_PAGES * PGSIZE, 1, fd, 0);
        if (map == MAP_FAILED)
            fail("child %u, round %u: mmap failed", k, r);
        /* File pages k, k + 3, ... are this child's; the parent wrote round 0's. */
        for (unsigned p = k; p < FILE_PAGES; p += CHILDREN)
            if (!check_and_refill(&map[p * WORDS], CHILDREN + k, r, p, false))
                fail("child %u, round %u: file page %u does not hold what was written", k, r, p);
        munmap(map);
    }
    return 0;
}

int main(int argc, char *argv[]) {
    unsigned rounds = argc > 1 ? (unsigned) atoi(argv[1]) : 3;
    if (!create("stress-map", FILE_PAGES * PGSIZE))
        fail("create stress-map");
    int fd = open("stress-map");
    if (fd < 2)
        fail("open stress-map");
    static unsigned page[WORDS];
    for (unsigned p = 0; p < FILE_PAGES; p++) {
        unsigned owner = p % CHILDREN;
        for (unsigned w = 0; w < WORDS; w++)
            page[w] = word(CHILDREN + owner, 0, p, w);
        if (write(fd, page, PGSIZE) != PGSIZE)
            fail("write file page %u", p);
    }
    pid_t pids[CHILDREN];
    for (unsigned k = 0; k < CHILDREN; k++) {
        char name[16];
        snprintf(name, sizeof name, "stress%u", k);
        pids[k] = fork(name);
        if (pids[k] == 0)
            exit(child(k, rounds, fd));
        if (pids[k] < 0)
            fail("fork %u", k);
    }
    for (unsigned k = 0; k < CHILDREN; k++) {
        int status = wait(pids[k]);
        if (status != 0)
            fail("child %u exited with %d", k, status);
    }
    seek(fd, 0);
    for (unsigned p = 0; p < FILE_PAGES; p++) {
        if (read(fd, page, PGSIZE) != PGSIZE)
            fail("read file page %u", p);
        for (unsigned w = 0; w < WORDS; w++)
            if (page[w] != word(CHILDREN + p % CHILDREN, rounds, p, w))
                fail("file page %u word %u: not the last round's", p, w);
    }
    return 0;
}
