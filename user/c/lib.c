/* The C runtime library: strings, memory, a small vsnprintf, printf to the console and the
 * Pintos-style test helpers declared in lib.h. No allocation; output is formatted into a
 * stack buffer and written with one write() call. */
#include "lib.h"

/* Largest output of one printf/msg call written with a single write(). */
#define OUT_SIZE 1024

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

int strcmp(const char *a, const char *b) {
    while (*a != '\0' && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char) *a - (unsigned char) *b;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n-- > 0)
        *d++ = (unsigned char) c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n-- > 0)
        *d++ = *s++;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n > 0; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlcpy(char *dst, const char *src, size_t size) {
    size_t len = strlen(src);
    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

int atoi(const char *s) {
    int sign = 1, v = 0;
    if (*s == '-') {
        sign = -1;
        s++;
    }
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return sign * v;
}

/* Output cursor: bytes beyond `size - 1` are counted but dropped. */
struct out {
    char *buf;
    size_t size;
    size_t len;
};

static void put(struct out *o, char c) {
    if (o->len + 1 < o->size)
        o->buf[o->len] = c;
    o->len++;
}

/* Puts `s` (length n) right-aligned in `width`, padded with `pad`; a '-' sign stays in
 * front of zero padding. */
static void put_field(struct out *o, const char *s, size_t n, int width, char pad) {
    if (pad == '0' && n > 0 && s[0] == '-') {
        put(o, '-');
        s++;
        n--;
        width--;
    }
    for (int i = (int) n; i < width; i++)
        put(o, pad);
    for (size_t i = 0; i < n; i++)
        put(o, s[i]);
}

static size_t format_unsigned(char *tmp, unsigned long v, unsigned base) {
    char rev[24];
    size_t n = 0, i = 0;
    do {
        rev[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    while (n > 0)
        tmp[i++] = rev[--n];
    return i;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap) {
    struct out o = {buf, size, 0};
    for (; *fmt != '\0'; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0;
        bool is_long = false;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        if (*fmt == 'l') {
            is_long = true;
            fmt++;
        }
        char tmp[24];
        size_t n;
        switch (*fmt) {
        case 'd':
        case 'i': {
            long v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            unsigned long mag = v < 0 ? -(unsigned long) v : (unsigned long) v;
            n = 0;
            if (v < 0)
                tmp[n++] = '-';
            n += format_unsigned(tmp + n, mag, 10);
            put_field(&o, tmp, n, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long v = is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
            n = format_unsigned(tmp, v, *fmt == 'u' ? 10 : 16);
            put_field(&o, tmp, n, width, pad);
            break;
        }
        case 'p': {
            tmp[0] = '0';
            tmp[1] = 'x';
            n = 2 + format_unsigned(tmp + 2, (unsigned long) va_arg(ap, void *), 16);
            put_field(&o, tmp, n, width, pad);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                s = "(null)";
            put_field(&o, s, strlen(s), width, ' ');
            break;
        }
        case 'c':
            tmp[0] = (char) va_arg(ap, int);
            put_field(&o, tmp, 1, width, ' ');
            break;
        case '%':
            put(&o, '%');
            break;
        case '\0':
            fmt--;
            break;
        default:
            put(&o, '%');
            put(&o, *fmt);
            break;
        }
    }
    if (size > 0)
        buf[o.len < size ? o.len : size - 1] = '\0';
    return (int) o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* Formats prefix + fmt + suffix into one buffer and writes it with one call. */
static void vprint(const char *prefix, const char *fmt, va_list ap, const char *suffix) {
    char buf[OUT_SIZE];
    size_t n = strlcpy(buf, prefix, sizeof buf);
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    int m = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
    n = n + (size_t) m < sizeof buf ? n + (size_t) m : sizeof buf - 1;
    n += strlcpy(buf + n, suffix, sizeof buf - n);
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    write(STDOUT_FILENO, buf, (unsigned) n);
}

int printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char buf[OUT_SIZE];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    write(STDOUT_FILENO, buf, n < (int) sizeof buf ? (unsigned) n : sizeof buf - 1);
    return n;
}

static void vmsg(const char *fmt, va_list ap, const char *suffix) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "(%s) ", test_name);
    vprint(prefix, fmt, ap, suffix);
}

void msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap, "\n");
    va_end(ap);
}

void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap, ": FAILED\n");
    va_end(ap);
    exit(1);
}
