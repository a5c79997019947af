/* A 20 MiB bss array, several times the user pool of a 10 MiB guest (about 4 MiB), so
 * most of its pages must go to swap and come back. Each page gets a page-dependent word at
 * its start and its complement at its end (after both were checked to read as zero), then
 * every page is checked again in reverse order: the most recently written pages, likely
 * still in memory, first, then the ones that had to come back from swap. */
#include "../lib.h"

const char *test_name = "bss-20m";

#define SIZE (20u << 20)
#define PAGES (SIZE / PGSIZE)
#define WORDS_PER_PAGE (PGSIZE / sizeof(unsigned long))

static unsigned long big[SIZE / sizeof(unsigned long)];

/* The word written at the start of page `page`: distinct for every page. */
static unsigned long value(unsigned page) {
    return (page + 1) * 0x9e3779b97f4a7c15UL;
}

/* The first and last word of page `page`, through volatile accesses so every pass really
 * touches memory. */
static volatile unsigned long *first_word(unsigned page) {
    return &big[page * WORDS_PER_PAGE];
}
static volatile unsigned long *last_word(unsigned page) {
    return &big[page * WORDS_PER_PAGE + WORDS_PER_PAGE - 1];
}

int main(void) {
    bool zero = true;
    for (unsigned p = 0; p < PAGES; p++) {
        zero = zero && *first_word(p) == 0 && *last_word(p) == 0;
        *first_word(p) = value(p);
        *last_word(p) = ~value(p);
    }
    CHECK(zero, "%u pages read zero before their first write", PAGES);
    unsigned bad = PAGES;
    for (unsigned p = PAGES; p-- > 0;)
        if (*first_word(p) != value(p) || *last_word(p) != ~value(p))
            bad = p;
    CHECK(bad == PAGES, "every page holds its words, checked backwards");
    return 0;
}
