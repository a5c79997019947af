/* Three kinds of pages under pressure at once, in a 10 MiB guest (a user pool of about
 * 4.3 MiB): 4 MiB of bss (zero-fill, then swap), 1 MiB of initialised data (loaded from the
 * executable, then swap once written) and a 1 MiB file mapped writable (written back to
 * the file). Two rounds touch them interleaved (a data and a mapped page after every
 * fourth bss page), each checking what the round before left and writing new words; then
 * everything is checked backwards, and after munmap the file must hold the last round. */
#include "../lib.h"

const char *test_name = "pressure-mix";

#define WORDS_PER_PAGE (PGSIZE / sizeof(unsigned))
#define BSS_PAGES 1024u
#define DATA_PAGES 256u
#define MAP_PAGES 256u
#define MAP_BYTES (MAP_PAGES * PGSIZE)
/* Bss pages per data (and mapped) page in the interleaving. */
#define RATIO (BSS_PAGES / DATA_PAGES)
#define MAP_ADDR ((void *) 0x10000000)

enum kind { BSS, DATA, MAP };

/* Initial contents of data page k: one word, repeated over the page. */
#define INIT(k) (0x5a5a0001u + (unsigned) (k) * 2654435761u)
#define R1(k) [(k) * 1024 ... (k) * 1024 + 1023] = INIT(k)
#define R4(k) R1(4 * (k)), R1(4 * (k) + 1), R1(4 * (k) + 2), R1(4 * (k) + 3)
#define R16(k) R4(4 * (k)), R4(4 * (k) + 1), R4(4 * (k) + 2), R4(4 * (k) + 3)
#define R64(k) R16(4 * (k)), R16(4 * (k) + 1), R16(4 * (k) + 2), R16(4 * (k) + 3)

static unsigned bss[BSS_PAGES * WORDS_PER_PAGE] __attribute__((aligned(PGSIZE)));
static unsigned data[DATA_PAGES * WORDS_PER_PAGE] __attribute__((aligned(PGSIZE))) = {
    R64(0), R64(1), R64(2), R64(3),
};

/* Word `word` of page `page` of `kind` after round `round` (0: the initial contents; the
 * file is written with round 0's words before it is mapped). */
static unsigned value(enum kind kind, unsigned page, unsigned word, unsigned round) {
    if (round == 0 && kind == BSS)
        return 0;
    if (round == 0 && kind == DATA)
        return INIT(page);
    return (page * 2654435761u) ^ (word * 40503u) ^ (round * 0x9e3779b9u) ^ ((unsigned) kind << 28);
}

/* The words of one page of `kind` that are checked and written: all of a data or mapped
 * page, the first and last of a bss page (plenty to catch a wrong or stale page). */
static unsigned stride(enum kind kind) {
    return kind == BSS ? WORDS_PER_PAGE - 1 : 1;
}

static volatile unsigned *page_of(enum kind kind, unsigned page) {
    unsigned *base = kind == BSS ? bss : kind == DATA ? data : (unsigned *) MAP_ADDR;
    return base + page * WORDS_PER_PAGE;
}

/* Checks that page `page` of `kind` holds round `had`'s words; then, if `round` is not 0,
 * writes round `round`'s words. */
static bool visit(enum kind kind, unsigned page, unsigned had, unsigned round) {
    volatile unsigned *p = page_of(kind, page);
    bool ok = true;
    for (unsigned w = 0; w < WORDS_PER_PAGE; w += stride(kind)) {
        ok = ok && p[w] == value(kind, page, w, had);
        if (round != 0)
            p[w] = value(kind, page, w, round);
    }
    return ok;
}

/* One round over everything, interleaved; checks round - 1 and writes round. */
static bool round_forward(unsigned round) {
    bool ok = true;
    for (unsigned s = 0; s < BSS_PAGES; s++) {
        ok = visit(BSS, s, round - 1, round) && ok;
        if (s % RATIO == 0) {
            ok = visit(DATA, s / RATIO, round - 1, round) && ok;
            ok = visit(MAP, s / RATIO, round - 1, round) && ok;
        }
    }
    return ok;
}

/* Checks everything for round `round`'s words, in reverse order. */
static bool check_backward(unsigned round) {
    bool ok = true;
    for (unsigned s = BSS_PAGES; s-- > 0;) {
        if (s % RATIO == 0) {
            ok = visit(MAP, s / RATIO, round, 0) && ok;
            ok = visit(DATA, s / RATIO, round, 0) && ok;
        }
        ok = visit(BSS, s, round, 0) && ok;
    }
    return ok;
}

int main(void) {
    CHECK(create("mixfile", MAP_BYTES), "create mixfile, %u bytes", MAP_BYTES);
    int fd = open("mixfile");
    unsigned buf[WORDS_PER_PAGE];
    int written = 0;
    for (unsigned page = 0; page < MAP_PAGES; page++) {
        for (unsigned w = 0; w < WORDS_PER_PAGE; w++)
            buf[w] = value(MAP, page, w, 0);
        written += write(fd, buf, PGSIZE);
    }
    CHECK(fd > 1 && written == (int) MAP_BYTES, "write its first words");
    CHECK(mmap(MAP_ADDR, MAP_BYTES, 1, fd, 0) == MAP_ADDR, "mmap it writable");
    CHECK(round_forward(1), "round 1: bss, data and mapped pages held their first words");
    CHECK(round_forward(2), "round 2: they held round 1's");
    CHECK(check_backward(2), "backwards: they hold round 2's");
    munmap(MAP_ADDR);
    bool same = true;
    seek(fd, 0);
    for (unsigned page = 0; page < MAP_PAGES; page++) {
        same = same && read(fd, buf, PGSIZE) == PGSIZE;
        for (unsigned w = 0; w < WORDS_PER_PAGE; w++)
            same = same && buf[w] == value(MAP, page, w, 2);
    }
    CHECK(same, "after munmap, read() shows round 2's words");
    return 0;
}
