/* jaclip_index_merge: rows and labels in shard order, the block loop over a shard larger than one
 * block, bad arguments, damaged and mismatched shards (the output is left as it was and no temporary
 * file remains), duplicate labels. Needs no model. Temporary files go under $TMPDIR (default /tmp). */
#include "jaclip.h"
#include "check.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes an index of rows x dim pseudo-random rows labelled "<prefix><i>"; returns the raw rows
 * (caller frees) so expected values come from this test, not from the library. */
static float *write_shard(const char *path, size_t rows, size_t dim, const char *prefix, uint32_t seed)
{
    float *x = malloc((rows * dim + 1) * sizeof *x);
    char **labels = calloc(rows + 1, sizeof *labels);
    fill(x, rows * dim, seed);
    for (size_t i = 0; i < rows; i++) {
        labels[i] = malloc(64);
        snprintf(labels[i], 64, "%s%zu", prefix, i);
    }
    int64_t shape[2] = {(int64_t)rows, (int64_t)dim};
    jaclip_tensor *t = NULL;
    jaclip_index *index = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, x));
    CHECK_OK(jaclip_index_create(&index, dim));
    CHECK_OK(jaclip_index_add(index, t, (const char *const *)labels));
    CHECK_OK(jaclip_index_save(index, path));
    jaclip_index_free(index);
    jaclip_tensor_free(t);
    for (size_t i = 0; i < rows; i++)
        free(labels[i]);
    free(labels);
    return x;
}

/* max |stored - raw / |raw|| over row `row` of index against raw row r. */
static double row_error(const float *stored, const float *raw, size_t dim)
{
    double norm = 0, worst = 0;
    for (size_t j = 0; j < dim; j++)
        norm += (double)raw[j] * raw[j];
    norm = sqrt(norm);
    for (size_t j = 0; j < dim; j++)
        worst = fmax(worst, fabs(stored[j] - raw[j] / norm));
    return worst;
}

/* Files in dir whose name starts with prefix. */
static int count_files(const char *prefix)
{
    DIR *d = opendir(check_dir());
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static void test_merge_rows(void)
{
    enum { DIM = 7 };
    float *a = write_shard(tmp_path("a.jci"), 3, DIM, "a/", 1);
    float *b = write_shard(tmp_path("b.jci"), 0, DIM, "b/", 2); /* an empty shard is fine */
    float *c = write_shard(tmp_path("c.jci"), 5, DIM, "写真/", 3);
    const char *shards[3] = {tmp_path("a.jci"), tmp_path("b.jci"), tmp_path("c.jci")};
    CHECK_OK(jaclip_index_merge(tmp_path("merged.jci"), shards, 3, JACLIP_INDEX_MERGE_UNIQUE_LABELS));

    jaclip_index *m = NULL;
    jaclip_tensor *rows = NULL;
    CHECK_OK(jaclip_index_load(&m, tmp_path("merged.jci"), JACLIP_INDEX_DEFAULT));
    CHECK(jaclip_index_size(m) == 8);
    CHECK(jaclip_index_dim(m) == DIM);
    const char *want[8] = {"a/0", "a/1", "a/2", "写真/0", "写真/1", "写真/2", "写真/3", "写真/4"};
    for (size_t i = 0; i < 8 && jaclip_index_size(m) == 8; i++)
        CHECK(jaclip_index_label(m, i) && strcmp(jaclip_index_label(m, i), want[i]) == 0);
    CHECK_OK(jaclip_index_embeddings(&rows, m, 0, jaclip_index_size(m)));
    if (jaclip_tensor_numel(rows) == 8 * DIM) {
        const float *r = jaclip_tensor_data(rows);
        double worst = 0;
        for (size_t i = 0; i < 3; i++)
            worst = fmax(worst, row_error(r + i * DIM, a + i * DIM, DIM));
        for (size_t i = 0; i < 5; i++)
            worst = fmax(worst, row_error(r + (3 + i) * DIM, c + i * DIM, DIM));
        CHECK(worst < 1e-6);
    }
    jaclip_tensor_free(rows);
    jaclip_index_free(m);

    /* The output may be one of the inputs: it is replaced only once complete. */
    const char *again[2] = {tmp_path("merged.jci"), tmp_path("a.jci")};
    CHECK_OK(jaclip_index_merge(tmp_path("merged.jci"), again, 2, JACLIP_INDEX_DEFAULT));
    CHECK_OK(jaclip_index_load(&m, tmp_path("merged.jci"), JACLIP_INDEX_DEFAULT));
    CHECK(jaclip_index_size(m) == 11);
    CHECK(jaclip_index_label(m, 8) && strcmp(jaclip_index_label(m, 8), "a/0") == 0);
    jaclip_index_free(m);
    CHECK(count_files("merged.jci.") == 0);
    free(a);
    free(b);
    free(c);
}

/* A shard of 40000 rows x 512 (78 MiB) spans two 64 MiB blocks. */
static void test_merge_blocks(void)
{
    enum { ROWS = 40000, DIM = 512 };
    float *x = write_shard(tmp_path("big.jci"), ROWS, DIM, "p", 9);
    const char *shards[1] = {tmp_path("big.jci")};
    CHECK_OK(jaclip_index_merge(tmp_path("big-merged.jci"), shards, 1, JACLIP_INDEX_MERGE_UNIQUE_LABELS));
    jaclip_index *m = NULL;
    jaclip_tensor *rows = NULL;
    CHECK_OK(jaclip_index_load(&m, tmp_path("big-merged.jci"), JACLIP_INDEX_MMAP));
    CHECK(jaclip_index_size(m) == ROWS);
    CHECK(jaclip_index_label(m, ROWS - 1) && strcmp(jaclip_index_label(m, ROWS - 1), "p39999") == 0);
    /* rows on both sides of the block boundary (64 MiB / 2048 bytes = row 32768) */
    CHECK_OK(jaclip_index_embeddings(&rows, m, 32767, 2));
    if (jaclip_tensor_numel(rows) == 2 * DIM) {
        const float *r = jaclip_tensor_data(rows);
        CHECK(row_error(r, x + (size_t)32767 * DIM, DIM) < 1e-6);
        CHECK(row_error(r + DIM, x + (size_t)32768 * DIM, DIM) < 1e-6);
    }
    jaclip_tensor_free(rows);
    jaclip_index_free(m);
    unlink(tmp_path("big.jci"));
    unlink(tmp_path("big-merged.jci"));
    free(x);
}

static void test_bad_arguments(void)
{
    free(write_shard(tmp_path("ok.jci"), 2, 4, "ok", 4));
    const char *shards[2] = {tmp_path("ok.jci"), NULL};
    CHECK_ERROR(jaclip_index_merge(NULL, shards, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_merge(tmp_path("out.jci"), NULL, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_merge(tmp_path("out.jci"), shards, 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_merge(tmp_path("out.jci"), shards, 2, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "shard 1") != NULL);
    CHECK_ERROR(jaclip_index_merge(tmp_path("out.jci"), shards, 1, 2u), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_merge(tmp_path("no-such-dir/out.jci"), shards, 1, 0), JACLIP_ERROR_IO);
    CHECK(access(tmp_path("out.jci"), F_OK) != 0);
}

static void test_refused_shards(void)
{
    free(write_shard(tmp_path("s1.jci"), 4, 6, "s1/", 5));
    free(write_shard(tmp_path("s2.jci"), 4, 6, "s2/", 6));
    free(write_shard(tmp_path("wide.jci"), 4, 8, "w/", 7));
    free(write_shard(tmp_path("keep.jci"), 1, 3, "old", 8)); /* the existing output, to be left alone */
    size_t keep_size = 0, size = 0;
    void *keep = read_file(tmp_path("keep.jci"), &keep_size);

    /* One flipped bit in the vector data of s2: refused by its CRC, the message names s2. */
    unsigned char *bytes = read_file(tmp_path("s2.jci"), &size);
    CHECK(bytes && size > 200);
    if (bytes && size > 200) {
        bytes[64 + 64 + 10] ^= 0x10;
        FILE *f = fopen(tmp_path("s2-bad.jci"), "wb");
        CHECK(f && fwrite(bytes, 1, size, f) == size);
        if (f)
            fclose(f);
        /* and truncated */
        f = fopen(tmp_path("s2-short.jci"), "wb");
        CHECK(f && fwrite(bytes, 1, size / 2, f) == size / 2);
        if (f)
            fclose(f);
    }
    free(bytes);
    const char *bad[2] = {tmp_path("s1.jci"), tmp_path("s2-bad.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("keep.jci"), bad, 2, 0), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "s2-bad.jci") != NULL);
    const char *short_[2] = {tmp_path("s1.jci"), tmp_path("s2-short.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("keep.jci"), short_, 2, 0), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "s2-short.jci") != NULL);
    const char *foreign[1] = {tmp_path("keep.jci.none")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("keep.jci"), foreign, 1, 0), JACLIP_ERROR_IO);
    const char *mixed[2] = {tmp_path("s1.jci"), tmp_path("wide.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("keep.jci"), mixed, 2, 0), JACLIP_ERROR_SHAPE);
    CHECK(strstr(jaclip_last_error(), "wide.jci") != NULL);

    /* The same shard twice: allowed by default, refused with UNIQUE_LABELS naming the label. */
    const char *twice[3] = {tmp_path("s1.jci"), tmp_path("s2.jci"), tmp_path("s1.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("keep.jci"), twice, 3, JACLIP_INDEX_MERGE_UNIQUE_LABELS),
                JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "'s1/0'") != NULL);

    size_t after_size = 0;
    void *after = read_file(tmp_path("keep.jci"), &after_size);
    CHECK(after && keep && after_size == keep_size && memcmp(after, keep, keep_size) == 0);
    CHECK(count_files("keep.jci.") == 0); /* no temporary file left behind */
    free(after);
    free(keep);

    CHECK_OK(jaclip_index_merge(tmp_path("twice.jci"), twice, 3, JACLIP_INDEX_DEFAULT));
    jaclip_index *m = NULL;
    CHECK_OK(jaclip_index_load(&m, tmp_path("twice.jci"), JACLIP_INDEX_DEFAULT));
    CHECK(jaclip_index_size(m) == 12);
    jaclip_index_free(m);
}

/* Shards recording a fingerprint, float16 rows and per-row stamps (written with replace_file, as sync
 * writes them): the merged file records all three, row for row. */
static void write_stamped_shard(const char *path, size_t rows, const char *prefix, const char *fp, bool fp16,
                                uint64_t stamp_base)
{
    enum { DIM = 5 };
    jaclip_index *index = NULL;
    CHECK_OK(jaclip_index_create(&index, DIM));
    if (fp)
        CHECK_OK(jaclip_index_set_fingerprint(index, fp));
    if (fp16)
        CHECK_OK(jaclip_index_set_row_format(index, JACLIP_INDEX_ROWS_FLOAT16));
    CHECK_OK(jaclip_index_save(index, path));
    jaclip_index_free(index);
    float x[8 * DIM];
    char names[8][32];
    const char *labels[8];
    jaclip_index_stamp stamps[8];
    fill(x, rows * DIM, (uint32_t)stamp_base);
    for (size_t i = 0; i < rows; i++) {
        snprintf(names[i], sizeof names[i], "%s%zu", prefix, i);
        labels[i] = names[i];
        stamps[i] = (jaclip_index_stamp){stamp_base + i, (int64_t)(stamp_base * 1000 + i), 0x1234 + stamp_base + i};
    }
    int64_t shape[2] = {(int64_t)rows, DIM};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, x));
    CHECK_OK(jaclip_index_replace_file(path, NULL, 0, t, labels, stamps, NULL));
    jaclip_tensor_free(t);
}

static void test_merge_keeps_what_the_index_knows(void)
{
    write_stamped_shard(tmp_path("k1.jci"), 3, "k1/", "cloob-512-00000000000000aa", true, 100);
    write_stamped_shard(tmp_path("k2.jci"), 4, "k2/", "cloob-512-00000000000000aa", true, 200);
    const char *shards[2] = {tmp_path("k1.jci"), tmp_path("k2.jci")};
    CHECK_OK(jaclip_index_merge(tmp_path("known.jci"), shards, 2, JACLIP_INDEX_MERGE_UNIQUE_LABELS));
    jaclip_index *m = NULL;
    CHECK_OK(jaclip_index_load(&m, tmp_path("known.jci"), JACLIP_INDEX_DEFAULT));
    CHECK(jaclip_index_size(m) == 7);
    CHECK(strcmp(jaclip_index_fingerprint(m), "cloob-512-00000000000000aa") == 0);
    CHECK(jaclip_index_row_format(m) == JACLIP_INDEX_ROWS_FLOAT16);
    for (size_t i = 0; i < 7 && jaclip_index_size(m) == 7; i++) {
        uint64_t base = i < 3 ? 100 : 200, j = i < 3 ? i : i - 3;
        jaclip_index_stamp s;
        CHECK_OK(jaclip_index_stamp_of(&s, m, i));
        CHECK(s.size == base + j && s.mtime_ns == (int64_t)(base * 1000 + j) && s.content_hash == 0x1234 + base + j);
    }
    jaclip_index_free(m);

    /* Another model's shard, or one recording none beside one that does: MODEL_MISMATCH naming both,
     * and the output is not written. */
    write_stamped_shard(tmp_path("other.jci"), 2, "o/", "cloob-512-00000000000000bb", true, 300);
    write_stamped_shard(tmp_path("nofp.jci"), 2, "n/", NULL, true, 400);
    const char *mixed[2] = {tmp_path("k1.jci"), tmp_path("other.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("mixed.jci"), mixed, 2, 0), JACLIP_ERROR_MODEL_MISMATCH);
    CHECK(strstr(jaclip_last_error(), "other.jci") && strstr(jaclip_last_error(), "00000000000000bb") &&
          strstr(jaclip_last_error(), "00000000000000aa"));
    const char *unknown[2] = {tmp_path("k1.jci"), tmp_path("nofp.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("mixed.jci"), unknown, 2, 0), JACLIP_ERROR_MODEL_MISMATCH);
    CHECK(strstr(jaclip_last_error(), "(none recorded)") != NULL);
    CHECK(access(tmp_path("mixed.jci"), F_OK) != 0);
    CHECK(count_files("mixed.jci.") == 0);
}

int main(void)
{
    if (!check_make_dir("merge"))
        return 1;
    test_merge_rows();
    test_merge_blocks();
    test_bad_arguments();
    test_refused_shards();
    test_merge_keeps_what_the_index_knows();
    check_remove_dir();
    return check_summary("test_index_merge");
}
