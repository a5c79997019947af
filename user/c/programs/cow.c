/* fork shares pages copy-on-write: the child sees the parent's frame (int 0x42, guest-abi.md
 * §4) until it writes the page, by a store or through a system call, and then has a copy of
 * its own; the parent's bytes never change. Once the child is gone the parent's next write
 * needs no copy. Reads sample.txt (--put). */
#include "../lib.h"

const char *test_name = "cow";

static const char sample_start[] = "Lines of a sample";

/* Page-aligned and page-sized, so each array owns its page. */
static char data[4096] __attribute__((aligned(4096))) = { [0] = 'p' };
static char buf[4096] __attribute__((aligned(4096))) = { [0] = 'b' };

/* The kernel-virtual address of the frame behind `p`'s page, or 0. */
static unsigned long frame_of(void *p) {
    unsigned long rax = (unsigned long) p;
    __asm__ volatile("int $0x42" : "+a"(rax) : : "memory");
    return rax;
}

int main(void) {
    /* Load both pages (writes make them the process's own, writable). */
    data[1] = 'q';
    buf[1] = 'c';
    unsigned long data_frame = frame_of(data);
    unsigned long buf_frame = frame_of(buf);
    int fd = open("sample.txt");
    CHECK(fd > 1, "open sample.txt");
    pid_t pid = fork("cowchild");
    if (pid == 0) {
        CHECK(frame_of(data) == data_frame, "child shares the parent's data frame");
        CHECK(data[0] == 'p' && data[1] == 'q', "and reads the parent's bytes");
        data[0] = 'C';
        CHECK(frame_of(data) != data_frame, "a store gives it a frame of its own");
        CHECK(data[0] == 'C' && data[1] == 'q', "holding the stored byte and the rest");
        CHECK(read(fd, buf, 5) == 5, "child reads 5 bytes into a shared page");
        CHECK(frame_of(buf) != buf_frame, "the read gave that page a frame of its own");
        CHECK(memcmp(buf, sample_start, 5) == 0, "holding the file's bytes");
        exit(5);
    }
    if (pid < 0)
        fail("fork");
    CHECK(wait(pid) == 5, "wait returns the child's 5");
    CHECK(data[0] == 'p' && buf[0] == 'b', "the parent's bytes are unchanged");
    CHECK(frame_of(data) == data_frame && frame_of(buf) == buf_frame,
          "in the parent's frames");
    data[0] = 'P';
    CHECK(frame_of(data) == data_frame, "with the child gone, a store needs no copy");
    CHECK(data[0] == 'P' && data[1] == 'q', "and lands in place");
    return 0;
}
