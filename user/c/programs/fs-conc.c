/* Concurrent readers and writers in several processes: two children write disjoint halves
 * of one file in small pieces while a third keeps reading all of it; the timer interleaves
 * them. Every byte a reader sees is either still zero or already final (never torn by the
 * file system), and afterwards the parent sees exactly the expected contents. */
#include "../lib.h"

const char *test_name = "fs-conc";

#define SIZE 8192
#define PIECE 64

static char expected(int i) { return (char) ('a' + (i * 7) % 26); }

static void writer(int from, int to) {
    int fd = open("shared");
    if (fd < 2)
        exit(2);
    char piece[PIECE];
    for (int at = from; at < to; at += PIECE) {
        for (int i = 0; i < PIECE; i++)
            piece[i] = expected(at + i);
        seek(fd, at);
        if (write(fd, piece, PIECE) != PIECE)
            exit(3);
    }
    exit(0);
}

static void reader(void) {
    int fd = open("shared");
    if (fd < 2)
        exit(2);
    static char seen[SIZE];
    for (int round = 0; round < 8; round++) {
        seek(fd, 0);
        if (read(fd, seen, SIZE) != SIZE)
            exit(4);
        for (int i = 0; i < SIZE; i++)
            if (seen[i] != 0 && seen[i] != expected(i))
                exit(5);
    }
    exit(0);
}

int main(void) {
    CHECK(create("shared", SIZE), "create shared, %d bytes", SIZE);
    int a = fork("fsc-writer-a");
    if (a == 0)
        writer(0, SIZE / 2);
    int b = fork("fsc-writer-b");
    if (b == 0)
        writer(SIZE / 2, SIZE);
    int r = fork("fsc-reader");
    if (r == 0)
        reader();
    int status_a = wait(a), status_b = wait(b), status_r = wait(r);
    CHECK(status_a == 0 && status_b == 0, "both writers finished");
    CHECK(status_r == 0, "the reader never saw a torn or wrong byte");
    int fd = open("shared");
    static char final[SIZE];
    CHECK(read(fd, final, SIZE) == SIZE, "read the whole file");
    int bad = 0;
    for (int i = 0; i < SIZE; i++)
        bad += final[i] != expected(i);
    CHECK(bad == 0, "every byte is as written");
    return 0;
}
