/* Program pages are loaded when first touched, not at exec: `int 0x42` (guest-abi.md §4)
 * reports no frame behind an untouched bss or data page, and one after the first access,
 * with the right contents (zeros for bss, the file's bytes for data). */
#include "../lib.h"

const char *test_name = "lazy";

/* Page-aligned and page-sized, so each array owns its pages. */
static char bss[3 * 4096] __attribute__((aligned(4096)));
static char data[2 * 4096] __attribute__((aligned(4096))) = { [0] = 'd', [4096] = 'D' };

/* The kernel-virtual address of the frame behind `p`'s page, or 0. */
static unsigned long frame_of(void *p) {
    unsigned long rax = (unsigned long) p;
    __asm__ volatile("int $0x42" : "+a"(rax) : : "memory");
    return rax;
}

int main(void) {
    CHECK(frame_of(&bss[4096]) == 0, "a bss page has no frame before it is touched");
    CHECK(bss[4096] == 0, "it reads as zero");
    CHECK(frame_of(&bss[4096]) != 0, "and has a frame afterwards");
    CHECK(frame_of(&bss[2 * 4096]) == 0, "the next bss page is still not loaded");
    CHECK(frame_of(&data[4096]) == 0, "a data page has no frame before it is touched");
    CHECK(data[4096] == 'D', "it holds the file's bytes when read");
    CHECK(frame_of(&data[4096]) != 0, "and has a frame afterwards");
    CHECK(frame_of((void *) 0x8004000000) == 0, "kernel addresses have no user frame");
    return 0;
}
