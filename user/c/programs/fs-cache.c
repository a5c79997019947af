/* The kernel's block cache of the file-system disk, seen from a program.
 *
 *   fs-cache write NAME BYTES END  creates NAME, BYTES long, and fills it with the
 *       complement of a pattern in 509-byte writes (pieces across block edges; more blocks
 *       than the cache holds), reads it back in 1021-byte reads checking every byte,
 *       writes the pattern itself over it the same way, then ends as END says:
 *       "close" closes it and exits 0; "halt" powers the machine off with the file open;
 *       "kill" makes a bad access with the file open, so the kernel kills the process.
 *       The test gets the file back and checks every byte: nothing the program wrote may
 *       be lost, whichever way it ended.
 *   fs-cache read NAME [PIECE]  reads NAME in PIECE-byte read()s (default 1) to its end
 *       and prints the count and the sum of the bytes.
 *   fs-cache open NAME  opens NAME and exits: the baseline of `read`'s counters. */
#include "../lib.h"

const char *test_name = "fs-cache";

#define WRITE_PIECE 509
#define READ_PIECE 1021

/* Byte i of the pattern. */
static unsigned char pattern(unsigned i) {
    return (unsigned char) ((i * 2654435761u) >> 24);
}

static unsigned char piece[READ_PIECE];

/* Writes BYTES of the pattern, each byte XORed with `flip`, in WRITE_PIECE-byte writes. */
static void fill(int fd, unsigned bytes, unsigned char flip) {
    seek(fd, 0);
    for (unsigned at = 0; at < bytes; at += WRITE_PIECE) {
        unsigned n = bytes - at < WRITE_PIECE ? bytes - at : WRITE_PIECE;
        for (unsigned k = 0; k < n; k++)
            piece[k] = pattern(at + k) ^ flip;
        int wrote = write(fd, piece, n);
        if (wrote != (int) n)
            fail("write of %u bytes at %u returned %d", n, at, wrote);
    }
}

static int write_file(const char *name, unsigned bytes, const char *end) {
    CHECK(create(name, bytes), "create %s, %u bytes", name, bytes);
    int fd = open(name);
    CHECK(fd > 1, "open %s", name);
    fill(fd, bytes, 0xff);
    msg("wrote %u bytes in pieces of %d", bytes, WRITE_PIECE);
    seek(fd, 0);
    for (unsigned at = 0; at < bytes; at += READ_PIECE) {
        unsigned n = bytes - at < READ_PIECE ? bytes - at : READ_PIECE;
        int got = read(fd, piece, n);
        if (got != (int) n)
            fail("read of %u bytes at %u returned %d", n, at, got);
        for (unsigned k = 0; k < n; k++)
            if (piece[k] != (pattern(at + k) ^ 0xff))
                fail("byte %u reads %u, not %u", at + k, piece[k], pattern(at + k) ^ 0xff);
    }
    msg("read back %u bytes in pieces of %d", bytes, READ_PIECE);
    /* The last blocks of this pass are still in the cache, dirty, when the program ends. */
    fill(fd, bytes, 0);
    msg("wrote every byte again, changed");
    if (strcmp(end, "halt") == 0) {
        msg("halting with the file open");
        halt();
    }
    if (strcmp(end, "kill") == 0) {
        msg("a bad access with the file open");
        volatile int *bad = (volatile int *) KERN_BASE;
        return *bad;
    }
    close(fd);
    return 0;
}

static int read_pieces(const char *name, unsigned size) {
    int fd = open(name);
    CHECK(fd > 1, "open %s", name);
    unsigned count = 0, sum = 0;
    int got;
    while ((got = read(fd, piece, size)) > 0) {
        count += got;
        for (int k = 0; k < got; k++)
            sum += piece[k];
    }
    msg("read %u bytes in pieces of %u, sum %u", count, size, sum);
    return 0;
}

int main(int argc, char *argv[]) {
    if (argc == 5 && strcmp(argv[1], "write") == 0)
        return write_file(argv[2], (unsigned) atoi(argv[3]), argv[4]);
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "read") == 0) {
        int size = argc == 4 ? atoi(argv[3]) : 1;
        if (size < 1 || size > READ_PIECE)
            fail("a piece is 1 to %d bytes", READ_PIECE);
        return read_pieces(argv[2], (unsigned) size);
    }
    if (argc == 3 && strcmp(argv[1], "open") == 0) {
        CHECK(open(argv[2]) > 1, "open %s", argv[2]);
        return 0;
    }
    fail("usage: fs-cache write NAME BYTES close|halt|kill | read NAME [PIECE] | open NAME");
}
