/* A minimal test harness: CHECK records a failure and goes on; main returns check_summary(). */
#ifndef JACLIP_TEST_CHECK_H
#define JACLIP_TEST_CHECK_H

#include "jaclip.h"

#include <stdint.h>
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
#define CHECK_STATUS(expr, expected)                                                                       \
    do {                                                                                                   \
        jaclip_status check_st_ = (expr);                                                                  \
        if (check_st_ == (expected)) {                                                                     \
            check_passed++;                                                                                \
        } else {                                                                                           \
            check_failed++;                                                                                \
            fprintf(stderr, "%s:%d: %s returned %s (%s), expected %s\n", __FILE__, __LINE__, #expr,        \
                    jaclip_status_string(check_st_), jaclip_last_error(), jaclip_status_string(expected)); \
        }                                                                                                  \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS(expr, JACLIP_OK)

/* An error must come with a non-empty message. */
#define CHECK_ERROR(expr, expected)            \
    do {                                       \
        CHECK_STATUS(expr, expected);          \
        CHECK(jaclip_last_error()[0] != '\0'); \
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

/* ---- scratch files and data, for the tests that write files --------------------------------------- */

/* The test's scratch folder, made by check_make_dir. */
static inline char *check_dir(void)
{
    static char dir[256];
    return dir;
}

/* Makes $TMPDIR/jaclip-test-<name>-XXXXXX (default /tmp); false, after saying why, when it cannot. */
static inline int check_make_dir(const char *name)
{
    snprintf(check_dir(), 256, "%s/jaclip-test-%s-XXXXXX", env_or("TMPDIR", "/tmp"), name);
    if (!mkdtemp(check_dir())) {
        perror("mkdtemp");
        return 0;
    }
    return 1;
}

/* Removes the scratch folder and what is in it. */
static inline void check_remove_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", check_dir());
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", check_dir());
}

/* name inside the scratch folder; the last 8 results stay valid. */
static inline const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", check_dir(), name);
    return p;
}

/* Writes size bytes to path, checking that it worked. */
static inline void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK(fwrite(data, 1, size, f) == size);
        fclose(f);
    }
}

/* A rows x cols float32 tensor holding data (zeros if NULL). */
static inline jaclip_tensor *make_f32(size_t rows, size_t cols, const float *data)
{
    int64_t shape[2] = {(int64_t)rows, (int64_t)cols};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, data));
    return t;
}

/* A deterministic pseudo-random fill in [-1, 1). */
static inline void fill(float *x, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) / 8388608.0 - 1.0);
    }
}

static int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
