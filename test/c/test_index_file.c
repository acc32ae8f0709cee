/* Index files: save and load, appends, an append interrupted at every step, and damaged files
 * (truncation, corruption, foreign files, bit flips). Split from test_index.c; needs no model.
 * Temporary files go under $TMPDIR (default /tmp). */
#include "jaclip.h"
#include "check.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 5

/* Two indexes hold the same rows, labels and search results. */
static void check_same_index(const jaclip_index *a, const jaclip_index *b)
{
    CHECK(jaclip_index_size(a) == jaclip_index_size(b));
    CHECK(jaclip_index_dim(a) == jaclip_index_dim(b));
    size_t n = jaclip_index_size(a);
    int differ = 0;
    for (size_t i = 0; i < n && jaclip_index_size(b) == n; i++)
        differ += strcmp(jaclip_index_label(a, i), jaclip_index_label(b, i)) != 0;
    CHECK(differ == 0);
    jaclip_tensor *ea = NULL, *eb = NULL;
    CHECK_OK(jaclip_index_embeddings(&ea, a, 0, n));
    if (jaclip_index_size(b) == n && jaclip_index_dim(b) == jaclip_index_dim(a)) {
        CHECK_OK(jaclip_index_embeddings(&eb, b, 0, n));
        CHECK(jaclip_tensor_nbytes(ea) == jaclip_tensor_nbytes(eb) &&
              (n == 0 || memcmp(jaclip_tensor_data(ea), jaclip_tensor_data(eb), jaclip_tensor_nbytes(ea)) == 0));
    }
    jaclip_tensor_free(ea);
    jaclip_tensor_free(eb);
}

static jaclip_index *make_index(size_t n, uint32_t seed, const char *prefix)
{
    float *x = malloc(sizeof(float) * (n ? n : 1) * DIM);
    char(*names)[32] = malloc((n ? n : 1) * 32);
    const char **labels = malloc((n ? n : 1) * sizeof *labels);
    fill(x, n * DIM, seed);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 32, "%s%zu", prefix, i);
        labels[i] = names[i];
    }
    jaclip_index *index = NULL;
    jaclip_tensor *t = make_f32(n, DIM, x);
    CHECK_OK(jaclip_index_create(&index, DIM));
    CHECK_OK(jaclip_index_add(index, t, labels));
    jaclip_tensor_free(t);
    free(x);
    free(names);
    free(labels);
    return index;
}

static void test_save_load(void)
{
    const char *path = tmp_path("a.jci");
    jaclip_index *index = make_index(37, 5, "写真/"), *loaded = NULL;
    CHECK_ERROR(jaclip_index_save(NULL, path), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_save(index, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_save(index, tmp_path("no-such-dir/a.jci")), JACLIP_ERROR_IO);
    CHECK(strstr(jaclip_last_error(), "no-such-dir") != NULL);
    CHECK_OK(jaclip_index_save(index, path));
    for (uint32_t flags = 0; flags < 4; flags++) {
        CHECK_OK(jaclip_index_load(&loaded, path, flags));
        check_same_index(index, loaded);
        size_t row = 0;
        CHECK_OK(jaclip_index_find_label(&row, loaded, "写真/36"));
        CHECK(row == 36);
        jaclip_index_free(loaded);
        loaded = NULL;
    }
    /* No temporary file is left beside it. */
    CHECK(access(tmp_path("a.jci.tmp"), F_OK) != 0);

    /* A loaded (mapped) index takes more rows, and saving it over its own file is safe. */
    CHECK_OK(jaclip_index_load(&loaded, path, JACLIP_INDEX_MMAP));
    jaclip_index *more = make_index(4, 6, "more-");
    jaclip_tensor *e = NULL;
    CHECK_OK(jaclip_index_embeddings(&e, more, 0, 4));
    const char *ml[4] = {"m0", "m1", "m2", "m3"};
    CHECK_OK(jaclip_index_add(loaded, e, ml));
    CHECK_OK(jaclip_index_add(index, e, ml));
    CHECK(jaclip_index_size(loaded) == 41);
    CHECK(strcmp(jaclip_index_label(loaded, 38), "m1") == 0);
    CHECK_OK(jaclip_index_save(loaded, path));
    jaclip_index *again = NULL;
    CHECK_OK(jaclip_index_load(&again, path, JACLIP_INDEX_DEFAULT));
    check_same_index(index, again);
    check_same_index(loaded, again);
    jaclip_index_free(again);
    jaclip_index_free(loaded);
    jaclip_tensor_free(e);
    jaclip_index_free(more);

    /* An empty index round-trips. */
    jaclip_index *empty = NULL;
    CHECK_OK(jaclip_index_create(&empty, 3));
    CHECK_OK(jaclip_index_save(empty, tmp_path("empty.jci")));
    CHECK_OK(jaclip_index_load(&loaded, tmp_path("empty.jci"), JACLIP_INDEX_MMAP));
    CHECK(jaclip_index_size(loaded) == 0 && jaclip_index_dim(loaded) == 3);
    jaclip_index_free(loaded);
    jaclip_index_free(empty);

    loaded = (jaclip_index *)0x1;
    CHECK_ERROR(jaclip_index_load(&loaded, tmp_path("missing.jci"), 0), JACLIP_ERROR_IO);
    CHECK(loaded == NULL);
    CHECK(strstr(jaclip_last_error(), "missing.jci") != NULL);
    CHECK_ERROR(jaclip_index_load(NULL, path, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_load(&loaded, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_load(&loaded, path, 0x80), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_load(&loaded, check_dir(), 0), JACLIP_ERROR_IO); /* a directory */
    jaclip_index_free(index);
}

static void test_append(void)
{
    const char *path = tmp_path("append.jci");
    jaclip_index *whole = make_index(0, 0, ""), *loaded = NULL;
    CHECK_OK(jaclip_index_save(whole, path));
    /* Three appends of different sizes equal one index with every row. */
    for (int part = 0; part < 3; part++) {
        jaclip_index *p = make_index((size_t)(part * 3 + 1), (uint32_t)part + 20, part == 1 ? "b" : "a");
        jaclip_tensor *e = NULL;
        size_t n = jaclip_index_size(p);
        const char **labels = malloc(n * sizeof *labels);
        for (size_t i = 0; i < n; i++)
            labels[i] = jaclip_index_label(p, i);
        CHECK_OK(jaclip_index_embeddings(&e, p, 0, n));
        CHECK_OK(jaclip_index_append_file(path, e, labels));
        CHECK_OK(jaclip_index_add(whole, e, labels));
        jaclip_tensor_free(e);
        free(labels);
        jaclip_index_free(p);
    }
    CHECK_OK(jaclip_index_load(&loaded, path, JACLIP_INDEX_MMAP));
    check_same_index(whole, loaded);
    CHECK(jaclip_index_size(loaded) == 12);
    size_t row;
    CHECK_OK(jaclip_index_find_label(&row, loaded, "a6")); /* the third append's row 6 */
    CHECK(row == 1 + 4 + 6);
    jaclip_index_free(loaded);

    /* Appending raw rows normalises them as add does. */
    float raw[DIM] = {0, 0, 2, 0, 0};
    const char *one[1] = {"raw"};
    jaclip_tensor *t = make_f32(1, DIM, raw), *e = NULL;
    CHECK_OK(jaclip_index_append_file(path, t, one));
    CHECK_OK(jaclip_index_load(&loaded, path, 0));
    CHECK_OK(jaclip_index_embeddings(&e, loaded, 12, 1));
    CHECK(((const float *)jaclip_tensor_data(e))[2] == 1.0f);
    jaclip_tensor_free(e);
    jaclip_index_free(loaded);

    /* Errors: width mismatch, bad labels, missing or foreign file; none changes the file. */
    size_t before_size = 0;
    free(read_file(path, &before_size));
    jaclip_tensor *wide = make_f32(1, DIM + 2, NULL);
    CHECK_ERROR(jaclip_index_append_file(path, wide, one), JACLIP_ERROR_SHAPE);
    CHECK_ERROR(jaclip_index_append_file(path, t, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    const char *bad[1] = {"\xc3"};
    CHECK_ERROR(jaclip_index_append_file(path, t, bad), JACLIP_ERROR_INVALID_UTF8);
    CHECK_ERROR(jaclip_index_append_file(NULL, t, one), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_append_file(path, NULL, one), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_append_file(tmp_path("nothing.jci"), t, one), JACLIP_ERROR_IO);
    char foreign[100];
    memset(foreign, '.', sizeof foreign);
    memcpy(foreign, "PK\3\4 not an index", 18);
    write_file(tmp_path("foreign.bin"), foreign, sizeof foreign);
    CHECK_ERROR(jaclip_index_append_file(tmp_path("foreign.bin"), t, one), JACLIP_ERROR_INDEX_FORMAT);
    jaclip_tensor *none = make_f32(0, DIM, NULL);
    CHECK_OK(jaclip_index_append_file(path, none, NULL));
    size_t after_size = 0;
    free(read_file(path, &after_size));
    CHECK(after_size == before_size);
    jaclip_tensor_free(none);
    jaclip_tensor_free(wide);
    jaclip_tensor_free(t);
    jaclip_index_free(whole);
}

/* The first keep bytes of an appended file under the header from before the append (128 bytes,
 * version 2): the file as a crash before the header commit leaves it. */
static void write_uncommitted(const char *path, const unsigned char *old_bytes, const unsigned char *new_bytes,
                              size_t keep)
{
    unsigned char *mix = malloc(keep);
    memcpy(mix, new_bytes, keep);
    memcpy(mix, old_bytes, 128);
    write_file(path, mix, keep);
    free(mix);
}

/* An append cut off at any byte (as by a crash or power loss before the header commit) leaves the
 * earlier rows loadable, and the next append replaces the leftovers. */
static void test_interrupted_append(void)
{
    const char *path = tmp_path("cut.jci"), *cut = tmp_path("cut-copy.jci");
    jaclip_index *base = make_index(3, 30, "base"), *extra = make_index(2, 31, "extra"), *loaded = NULL;
    CHECK_OK(jaclip_index_save(base, path));
    size_t old_size = 0, new_size = 0;
    unsigned char *old_bytes = read_file(path, &old_size);
    jaclip_tensor *e = NULL;
    const char *labels[2] = {"extra0", "extra1"};
    CHECK_OK(jaclip_index_embeddings(&e, extra, 0, 2));
    CHECK_OK(jaclip_index_append_file(path, e, labels));
    unsigned char *new_bytes = read_file(path, &new_size);
    CHECK(new_size > old_size);
    /* The state before the header commit: the old header followed by part of the new segment. */
    int failures = 0;
    for (size_t keep = old_size; keep <= new_size; keep += 7) {
        write_uncommitted(cut, old_bytes, new_bytes, keep);
        if (jaclip_index_load(&loaded, cut, 0) != JACLIP_OK || jaclip_index_size(loaded) != 3)
            failures++;
        jaclip_index_free(loaded);
        loaded = NULL;
    }
    CHECK(failures == 0);
    /* Appending to such a file drops the leftovers. */
    write_uncommitted(cut, old_bytes, new_bytes, new_size - 5);
    CHECK_OK(jaclip_index_append_file(cut, e, labels));
    CHECK_OK(jaclip_index_load(&loaded, cut, JACLIP_INDEX_MMAP));
    CHECK(jaclip_index_size(loaded) == 5);
    CHECK(loaded && strcmp(jaclip_index_label(loaded, 4), "extra1") == 0);
    jaclip_index_free(loaded);
    size_t cut_size = 0;
    free(read_file(cut, &cut_size));
    CHECK(cut_size == new_size);
    jaclip_tensor_free(e);
    free(old_bytes);
    free(new_bytes);
    jaclip_index_free(base);
    jaclip_index_free(extra);
}

static jaclip_status load_bytes(const unsigned char *data, size_t size, uint32_t flags)
{
    const char *path = tmp_path("damaged.jci");
    write_file(path, data, size);
    jaclip_index *loaded = NULL;
    jaclip_status st = jaclip_index_load(&loaded, path, flags);
    CHECK((st == JACLIP_OK) == (loaded != NULL));
    jaclip_index_free(loaded);
    return st;
}

static void test_damaged_files(void)
{
    const char *path = tmp_path("good.jci");
    jaclip_index *index = make_index(6, 40, "ラベル");
    CHECK_OK(jaclip_index_save(index, path));
    jaclip_tensor *e = NULL;
    const char *labels[2] = {"x", "y"};
    CHECK_OK(jaclip_index_embeddings(&e, index, 0, 2));
    CHECK_OK(jaclip_index_append_file(path, e, labels)); /* two segments */
    jaclip_tensor_free(e);
    size_t size = 0;
    unsigned char *good = read_file(path, &size);
    CHECK(good != NULL && size > 64);
    CHECK_OK(load_bytes(good, size, 0));

    /* Foreign files. */
    CHECK_ERROR(load_bytes((const unsigned char *)"", 0, 0), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "not a jaclip index") != NULL);
    CHECK_ERROR(load_bytes((const unsigned char *)"\x89PNG\r\n\x1a\n0000000000000000", 24, 0),
                JACLIP_ERROR_INDEX_FORMAT);
    CHECK_ERROR(load_bytes((const unsigned char *)"JACLIPI", 7, 0), JACLIP_ERROR_INDEX_FORMAT);

    /* Every truncation is refused, with either flag. */
    int accepted = 0, unclear = 0;
    for (size_t n = 0; n < size; n++) {
        jaclip_status st = load_bytes(good, n, n % 2 ? JACLIP_INDEX_MMAP : 0);
        accepted += st != JACLIP_ERROR_INDEX_FORMAT;
        unclear += st == JACLIP_ERROR_INDEX_FORMAT && n >= 64 && !strstr(jaclip_last_error(), "truncated");
    }
    CHECK(accepted == 0);
    CHECK(unclear == 0);

    /* Every single-bit flip in the committed bytes is caught (CRC32 catches all of them). */
    unsigned char *copy = malloc(size);
    accepted = 0;
    for (size_t byte = 0; byte < size; byte++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(copy, good, size);
            copy[byte] ^= (unsigned char)(1u << bit);
            accepted += load_bytes(copy, size, byte % 2 ? JACLIP_INDEX_MMAP : 0) != JACLIP_ERROR_INDEX_FORMAT;
        }
    }
    CHECK(accepted == 0);

    /* Without checksums a flipped vector bit loads (a wrong score, never a crash), but a flipped label or
     * length byte is still refused. */
    memcpy(copy, good, size);
    copy[128 + 64 + 1] ^= 0x10; /* inside segment 0's first vector (after the 128-byte header) */
    CHECK_OK(load_bytes(copy, size, JACLIP_INDEX_NO_CHECKSUM));
    CHECK_ERROR(load_bytes(copy, size, 0), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "CRC32") != NULL);

    /* A newer format version is named as such. */
    memcpy(copy, good, size);
    copy[8] = 5; /* 3 is the metadata version, 4 the capture-time one (test/index/test_index_times.c) */
    CHECK_ERROR(load_bytes(copy, size, 0), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "version 5") != NULL);

    /* Trailing bytes past the committed size are an unfinished append: ignored. */
    unsigned char *longer = malloc(size + 100);
    memcpy(longer, good, size);
    memset(longer + size, 0xAB, 100);
    jaclip_index *loaded = NULL;
    write_file(tmp_path("longer.jci"), longer, size + 100);
    CHECK_OK(jaclip_index_load(&loaded, tmp_path("longer.jci"), JACLIP_INDEX_MMAP));
    CHECK(jaclip_index_size(loaded) == 8);
    jaclip_index_free(loaded);

    /* Random garbage behind a valid signature never crashes. */
    uint32_t seed = 99;
    int crashes_would_show = 0;
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 64 + (size_t)trial * 3 % (size + 100 - 64);
        for (size_t i = 8; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            longer[i] = (unsigned char)(seed >> 24);
        }
        crashes_would_show += load_bytes(longer, n, 0) == JACLIP_OK;
    }
    CHECK(crashes_would_show == 0);
    free(longer);
    free(copy);
    free(good);
    jaclip_index_free(index);
}

int main(void)
{
    if (!check_make_dir("index-file"))
        return 1;
    test_save_load();
    test_append();
    test_interrupted_append();
    test_damaged_files();
    check_remove_dir();
    return check_summary("test_index_file");
}
