/* One write(1, ...) of 5120 bytes: 64 lines of 80 bytes, all on the console in order. */
#include "../lib.h"

const char *test_name = "write-big";

#define LINES 64
#define LINE_LEN 80

static char text[LINES * LINE_LEN];

int main(void) {
    for (int i = 0; i < LINES; i++) {
        char *line = text + i * LINE_LEN;
        int n = snprintf(line, LINE_LEN, "(write-big) line %02d ", i);
        memset(line + n, 'a' + i % 26, LINE_LEN - 1 - n);
        line[LINE_LEN - 1] = '\n';
    }
    int r = write(STDOUT_FILENO, text, sizeof text);
    CHECK(r == (int) sizeof text, "write returned %d", r);
    return 0;
}
