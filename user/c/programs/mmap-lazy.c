/* Mapped file pages are loaded when first touched, not at mmap: `int 0x42` (guest-abi.md
 * §4) reports no frame behind an untouched page and one after the first access, with the
 * file's bytes and zeros past its end. Reads sample.txt (--put). */
#include "../lib.h"

const char *test_name = "mmap-lazy";

static const char sample_start[] = "Lines of a sample";

/* The kernel-virtual address of the frame behind `p`'s page, or 0. */
static unsigned long frame_of(volatile char *p) {
    unsigned long rax = (unsigned long) p;
    __asm__ volatile("int $0x42" : "+a"(rax) : : "memory");
    return rax;
}

int main(void) {
    int fd = open("sample.txt");
    CHECK(fd > 1, "open sample.txt");
    int size = filesize(fd);
    volatile char *map = mmap((void *) 0x10000000, 2 * PGSIZE, 0, fd, 0);
    CHECK(map != MAP_FAILED, "mmap 2 pages of sample.txt");
    CHECK(frame_of(map) == 0 && frame_of(map + PGSIZE) == 0, "no page has a frame yet");
    CHECK(map[0] == sample_start[0] && map[5] == sample_start[5], "the first page holds the file");
    CHECK(frame_of(map) != 0, "and has a frame now");
    CHECK(frame_of(map + PGSIZE) == 0, "the second page still has none");
    CHECK(size < PGSIZE && map[size] == 0 && map[PGSIZE - 1] == 0,
          "the first page is zero past the file's end");
    CHECK(map[PGSIZE] == 0 && frame_of(map + PGSIZE) != 0, "the page past the end reads zero");
    munmap((void *) map);
    CHECK(frame_of(map) == 0, "munmap leaves no frame");
    /* More pages than memory and swap hold: refused at once, not registered one by one. */
    CHECK(mmap((void *) 0x10000000, 1UL << 38, 0, fd, 0) == MAP_FAILED,
          "mmap of 256 GiB fails");
    return 0;
}
