/* Running out of memory and swap kills only the process whose fault found none. The
 * parent fills its working set, then forks `hog`, which writes its copy-on-write copy of
 * that working set and then page after page of an array of its own until the kernel kills
 * it ("hog: out of memory", then "hog: exit(-1)"). The parent, waiting meanwhile, gets -1
 * and finds its working set intact (much of it came back from swap).
 *
 * Sizes, for an 8 MiB guest with 1 MiB of swap (a user pool of about 854 frames, 256 swap
 * slots: about 1110 pages in all):
 * - the kernel refuses at exec a program whose registered pages (these arrays, code, data
 *   and the 256-page stack region) exceed frames + slots: 448 + 352 + ~4 + 256 = ~1060;
 * - the hog's copy fits beside the parent's working set (2 * 448 + a few pages), so its
 *   first line is printed; all of it would need 2 * 448 + 352 = 1248 pages, ~140 more than
 *   there are, so it dies in its own array.
 * The parent never touches the hog's array. */
#include "../lib.h"

const char *test_name = "oom-hog";

#define WORKING_PAGES 448u
#define HOG_PAGES 352u
#define WORKING_BYTES (WORKING_PAGES * PGSIZE)

static unsigned char working[WORKING_BYTES] __attribute__((aligned(PGSIZE)));
static unsigned char hog_array[HOG_PAGES * PGSIZE] __attribute__((aligned(PGSIZE)));

/* The parent's byte at `i` of its working set: differs within and between pages. */
static unsigned char pattern(unsigned i) {
    return (unsigned char) ((i * 2654435761u) >> 24);
}

static bool working_set_intact(void) {
    for (unsigned i = 0; i < WORKING_BYTES; i++)
        if (((volatile unsigned char *) working)[i] != pattern(i))
            return false;
    return true;
}

static void hog(void) {
    volatile unsigned char *copy = working;
    bool same = true;
    for (unsigned p = 0; p < WORKING_PAGES; p++) {
        for (unsigned i = p * PGSIZE; i < (p + 1) * PGSIZE; i++)
            same = same && copy[i] == pattern(i);
        copy[p * PGSIZE] = (unsigned char) ~pattern(p * PGSIZE);
    }
    CHECK(same, "hog: its copy holds the parent's bytes");
    volatile unsigned char *own = hog_array;
    for (unsigned p = 0; p < HOG_PAGES; p++)
        own[p * PGSIZE] = 1;
    msg("hog: touched all of its %u KiB, not killed", HOG_PAGES * 4);
    exit(0);
}

int main(void) {
    for (unsigned i = 0; i < WORKING_BYTES; i++)
        working[i] = pattern(i);
    CHECK(working_set_intact(), "the parent's %u KiB hold their pattern", WORKING_PAGES * 4);
    pid_t pid = fork("hog");
    if (pid == 0)
        hog();
    if (pid < 0)
        fail("fork");
    int status = wait(pid);
    CHECK(working_set_intact(), "the parent's %u KiB are intact", WORKING_PAGES * 4);
    CHECK(status == -1, "wait(hog) = -1: it was killed");
    return 0;
}
