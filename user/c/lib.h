/* The C side of the user ABI (guest-abi §4): system call prototypes, a few string and
 * memory functions, a small printf, and Pintos-style test helpers.
 *
 * Every C test program defines `const char *test_name = "NAME";`. msg() prints
 * "(NAME) text", fail() prints "(NAME) text: FAILED" and exits 1, CHECK(cond, ...) evaluates
 * cond, prints like msg(), then fails if cond was false: the same output as ulib's
 * msg!/fail!/check!. (Evaluating first keeps a CHECK around wait() or write() in order.)
 * Each printf/msg call is one write(1, ...) (up to 1024 bytes), so lines are never split. */
#ifndef USER_LIB_H
#define USER_LIB_H

#include <stdarg.h>
#include <stddef.h>

typedef _Bool bool;
#define true 1
#define false 0
typedef int pid_t;
typedef long off_t;

#define STDIN_FILENO 0
#define STDOUT_FILENO 1
#define PID_ERROR ((pid_t) -1)
#define MAP_FAILED ((void *) NULL)

/* Lowest kernel address; user space is [0, KERN_BASE) (guest-abi §2). */
#define KERN_BASE 0x8004000000UL
/* Top of the user stack (guest-abi §2). */
#define USER_STACK 0x47480000UL
#define PGSIZE 4096

/* System calls (guest-abi §4). */
void halt(void) __attribute__((noreturn));
void exit(int status) __attribute__((noreturn));
pid_t fork(const char *thread_name);
int exec(const char *cmd_line);
int wait(pid_t pid);
bool create(const char *file, unsigned initial_size);
bool remove(const char *file);
int open(const char *file);
int filesize(int fd);
int read(int fd, void *buffer, unsigned length);
int write(int fd, const void *buffer, unsigned length);
void seek(int fd, unsigned position);
unsigned tell(int fd);
void close(int fd);
void *mmap(void *addr, size_t length, int writable, int fd, off_t offset);
void munmap(void *addr);
bool chdir(const char *dir);
bool mkdir(const char *dir);
bool readdir(int fd, char name[15]);
bool isdir(int fd);
int inumber(int fd);
int symlink(const char *target, const char *linkpath);
int dup2(int oldfd, int newfd);
int mount(const char *path, int chan_no, int dev_no);
int umount(const char *path);
/* Raw system call: number nr with three arguments; returns rax. */
long syscall3(long nr, long a, long b, long c);

/* Strings and memory. */
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlcpy(char *dst, const char *src, size_t size);
int atoi(const char *s);

/* Formatted output: %d %i %u %x %s %c %p %ld %lu %lx %%, with width and 0 padding. */
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Test helpers. */
extern const char *test_name;
void msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
#define CHECK(SUCCESS, ...)                                                                   \
    do {                                                                                      \
        bool check_ok_ = (SUCCESS);                                                           \
        msg(__VA_ARGS__);                                                                     \
        if (!check_ok_)                                                                       \
            fail(__VA_ARGS__);                                                                \
    } while (0)

#endif
