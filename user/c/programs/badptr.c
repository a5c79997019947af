/* `badptr CALL KIND`: passes a bad pointer to one system call. Every case must kill the
 * process with -1 (guest-abi §4), so the expected output is the one line naming the case,
 * then `badptr: exit(-1)`.
 *
 * CALL: fork exec create remove open (string arguments), read write (buffer arguments).
 * KIND: null      address 0 (page 0 is never mapped)
 *       kernel    KERN_BASE, the first kernel address
 *       top       0xffffff8000000000, far into kernel space
 *       unmapped  0x20000000, user space with nothing mapped
 *       cross     a string with no NUL before the end of the last data page / a buffer that
 *                 runs from that page into the unmapped page after it
 *       stacktop  (buffers) a buffer running past the top of the user stack
 *       code      (read) a buffer inside the program's read-only code */
#include "../lib.h"

const char *test_name = "badptr";

extern char _end[];
int main(int argc, char *argv[]);

/* Bytes 1..4 before the end of the page that holds the end of .bss: mapped and writable,
 * and the page after them is not. */
static char *end_of_data(unsigned n) {
    unsigned long page_end = ((unsigned long) _end + PGSIZE - 1) & ~(unsigned long) (PGSIZE - 1);
    char *p = (char *) (page_end - n);
    memset(p, 'a', n);
    return p;
}

static long bad_address(const char *kind, bool is_string) {
    if (strcmp(kind, "null") == 0)
        return 0;
    if (strcmp(kind, "kernel") == 0)
        return (long) KERN_BASE;
    if (strcmp(kind, "top") == 0)
        return (long) 0xffffff8000000000UL;
    if (strcmp(kind, "unmapped") == 0)
        return 0x20000000L;
    if (strcmp(kind, "cross") == 0)
        return (long) end_of_data(is_string ? 4 : 16);
    if (!is_string && strcmp(kind, "stacktop") == 0)
        return (long) (USER_STACK - 16);
    if (!is_string && strcmp(kind, "code") == 0)
        return (long) (void *) main;
    fail("unknown kind %s", kind);
}

static const struct {
    const char *name;
    long nr;
} calls[] = {
    {"fork", 2}, {"exec", 3}, {"create", 5}, {"remove", 6}, {"open", 7}, {"read", 9},
    {"write", 10},
};

int main(int argc, char *argv[]) {
    if (argc != 3)
        fail("usage: badptr CALL KIND");
    const char *call = argv[1], *kind = argv[2];
    long nr = -1;
    for (unsigned i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (strcmp(calls[i].name, call) == 0)
            nr = calls[i].nr;
    if (nr < 0)
        fail("unknown call %s", call);
    bool is_buffer = nr == 9 || nr == 10;
    long addr = bad_address(kind, !is_buffer);
    msg("%s(%s)", call, kind);
    long r;
    if (is_buffer) {
        /* A real file, so only the buffer is wrong. */
        if (!create("victim", 512))
            fail("create victim");
        int fd = open("victim");
        if (fd < 2)
            fail("open victim");
        r = syscall3(nr, fd, addr, 100);
    } else {
        r = syscall3(nr, addr, 64, 0);
    }
    fail("%s(%s) returned %ld instead of killing the process", call, kind, r);
}
