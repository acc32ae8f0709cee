/* A minimal test harness: CHECK records a failure and goes on; main returns check_summary(). */
#ifndef JACLIP_TEST_CHECK_H
#define JACLIP_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            check_passed++;                                                          \
        } else {                                                                     \
            check_failed++;                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* Checks a status and, on mismatch, prints the library's message. */
#define CHECK_STATUS(expr, expected)                                                      \
    do {                                                                                  \
        jaclip_status check_st_ = (expr);                                                 \
        if (check_st_ == (expected)) {                                                    \
            check_passed++;                                                               \
        } else {                                                                          \
            check_failed++;                                                               \
            fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, \
                    #expr, jaclip_status_string(check_st_), jaclip_last_error(),          \
                    jaclip_status_string(expected));                                      \
        }                                                                                 \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, JACLIP_OK)

/* An error must come with a non-empty message. */
#define CHECK_ERROR(expr, expected)                                  \
    do {                                                             \
        CHECK_STATUS(expr, expected);                                \
        CHECK(jaclip_last_error()[0] != '\0');                       \
    } while (0)

/* An input named by the environment, or the default. */
static inline const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* A whole file in a malloc'd buffer (non-NULL also when empty); NULL if it cannot be read. */
static inline void *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *size = (size_t)n;
    }
    fclose(f);
    return buf;
}

static int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
