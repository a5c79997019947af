/* A 5 MiB array (bss, zero-fill on demand) written with a pattern and checked twice, so
 * every page is faulted in once and then found again. */
#include "../lib.h"

const char *test_name = "page-big";

#define SIZE (5u << 20)
static unsigned char big[SIZE];

/* The pattern byte at `i`: not periodic in a page, differs between pages. */
static unsigned char pattern(unsigned i) {
    return (unsigned char) ((i * 2654435761u) >> 24);
}

static bool check(void) {
    for (unsigned i = 0; i < SIZE; i++)
        if (big[i] != pattern(i))
            return false;
    return true;
}

int main(void) {
    bool zero = true;
    for (unsigned i = 0; i < SIZE; i += 4096)
        zero = zero && big[i] == 0;
    CHECK(zero, "5 MiB of bss reads as zero");
    for (unsigned i = 0; i < SIZE; i++)
        big[i] = pattern(i);
    CHECK(check(), "the pattern reads back");
    CHECK(check(), "and again");
    return 0;
}
