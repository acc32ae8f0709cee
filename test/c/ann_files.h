/* ANN file helpers shared by test_ann.c and test_ann_forged.c: an index over given rows, the header's
 * CRCs recomputed (docs/ann.md), and a load that must be refused as INDEX_FORMAT. */
#ifndef JACLIP_TEST_ANN_FILES_H
#define JACLIP_TEST_ANN_FILES_H

#include "jaclip.h"
#include "check.h"

#include <stdint.h>

/* An index of rows labelled img-<i>.jpg. */
static inline jaclip_index *make_index(const jaclip_tensor *rows)
{
    size_t n = (size_t)jaclip_tensor_dim(rows, 0);
    char **labels = malloc(n * sizeof *labels);
    for (size_t i = 0; i < n; i++) {
        labels[i] = malloc(32);
        snprintf(labels[i], 32, "img-%zu.jpg", i);
    }
    jaclip_index *index = NULL;
    CHECK_OK(jaclip_index_create(&index, (size_t)jaclip_tensor_dim(rows, 1)));
    CHECK_OK(jaclip_index_add(index, rows, (const char *const *)labels));
    for (size_t i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
    return index;
}

/* zlib's CRC32, written out: the tests link libjaclip only. */
static inline uint32_t crc32_ieee(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int b = 0; b < 8; b++)
            c = c >> 1 ^ (0xedb88320u & -(c & 1));
    }
    return ~c;
}
static inline void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}
static inline void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> 8 * i);
}
/* Recomputes the header CRC (docs/ann.md: bytes 60..63 over 0..59), so a test reaches the next check. */
static inline void reseal_header(unsigned char *h) { put32(h + 60, crc32_ieee(h, 60)); }

/* Loading data must give INDEX_FORMAT, *out NULL and a message; one that contains saying when given. */
static inline void expect_refused_saying(const char *name, const void *data, size_t size, const jaclip_index *index,
                                         const char *why, const char *saying)
{
    const char *path = tmp_path(name);
    write_file(path, data, size);
    jaclip_ann *ann = (jaclip_ann *)1;
    jaclip_status st = jaclip_ann_load(&ann, path, index, 0);
    int said = !saying || strstr(jaclip_last_error(), saying);
    if (st != JACLIP_ERROR_INDEX_FORMAT || !said)
        fprintf(stderr, "%s (%s): got %s: %s\n", name, why, jaclip_status_string(st), jaclip_last_error());
    CHECK(st == JACLIP_ERROR_INDEX_FORMAT);
    CHECK(said);
    CHECK(ann == NULL);
    CHECK(jaclip_last_error()[0] != '\0');
    if (st == JACLIP_OK)
        jaclip_ann_free(ann);
}

static inline void expect_refused(const char *name, const void *data, size_t size, const jaclip_index *index,
                                  const char *why)
{
    expect_refused_saying(name, data, size, index, why, NULL);
}

#endif
