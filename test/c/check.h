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

static int check_summary(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
