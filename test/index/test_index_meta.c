/* Index metadata (format version 3, issue 25): set, saved, read back; a file without metadata stays
 * version 2 (older readers keep reading it); set on a file in one commit, kept by appends, removals,
 * compaction and merge; merge refuses shards with different settings; damaged metadata and bad keys
 * refused with clear statuses. Needs no model. */
#include "jaclip.h"
#include "check.h"

#include <stdint.h>
#include <zlib.h>

static jaclip_tensor *rows(size_t n, size_t dim, uint32_t seed)
{
    float x[64];
    fill(x, n * dim, seed);
    int64_t shape[2] = {(int64_t)n, (int64_t)dim};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, x));
    return t;
}

static uint32_t file_version(const char *path)
{
    size_t size = 0;
    unsigned char *b = read_file(path, &size);
    uint32_t v = b && size >= 12 ? (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24 : 0;
    free(b);
    return v;
}

static void test_in_memory_and_saved(void)
{
    jaclip_index *ix = NULL;
    CHECK_OK(jaclip_index_create(&ix, 4));
    CHECK(jaclip_index_metadata(ix, "root") == NULL && jaclip_index_root(ix) == NULL);
    CHECK(jaclip_index_deleted_rows(ix) == 0 && jaclip_index_deleted_rows(NULL) == 0);
    CHECK(jaclip_index_metadata(NULL, "root") == NULL && jaclip_index_metadata(ix, NULL) == NULL);
    CHECK_OK(jaclip_index_save(ix, tmp_path("plain.jci")));
    CHECK(file_version(tmp_path("plain.jci")) == 2); /* nothing recorded: still version 2 */
    CHECK_OK(jaclip_index_set_metadata(ix, JACLIP_INDEX_META_ROOT, "/写真/家族"));
    CHECK_OK(jaclip_index_set_metadata(ix, JACLIP_INDEX_META_LABELS, "relative"));
    CHECK_OK(jaclip_index_set_metadata(ix, "labels", "relative")); /* same again: one entry */
    CHECK_ERROR(jaclip_index_set_metadata(ix, "Root", "x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_set_metadata(ix, "", "x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_set_metadata(ix, NULL, "x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_set_metadata(NULL, "root", "x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_set_metadata(ix, "root", "\xff\xfe"), JACLIP_ERROR_INVALID_UTF8);
    char *big = malloc(5000);
    memset(big, 'a', 4999);
    big[4999] = 0;
    CHECK_ERROR(jaclip_index_set_metadata(ix, "root", big), JACLIP_ERROR_INVALID_ARGUMENT);
    free(big);
    CHECK(strcmp(jaclip_index_root(ix), "/写真/家族") == 0);
    jaclip_tensor *t = rows(3, 4, 1);
    const char *labels[3] = {"a.jpg", "b/c.jpg", "d.png"};
    CHECK_OK(jaclip_index_add(ix, t, labels));
    CHECK_OK(jaclip_index_save(ix, tmp_path("meta.jci")));
    CHECK(file_version(tmp_path("meta.jci")) == 3);
    jaclip_index_free(ix);

    CHECK_OK(jaclip_index_load(&ix, tmp_path("meta.jci"), JACLIP_INDEX_MMAP));
    CHECK(jaclip_index_size(ix) == 3 && strcmp(jaclip_index_label(ix, 1), "b/c.jpg") == 0);
    CHECK(jaclip_index_root(ix) && strcmp(jaclip_index_root(ix), "/写真/家族") == 0);
    CHECK(jaclip_index_metadata(ix, "labels") && strcmp(jaclip_index_metadata(ix, "labels"), "relative") == 0);
    CHECK(jaclip_index_metadata(ix, "orientation") == NULL);
    jaclip_index_free(ix);
    jaclip_tensor_free(t);
}

static void test_set_on_file_kept_by_writers(void)
{
    jaclip_index *ix = NULL;
    jaclip_tensor *t = rows(2, 4, 2);
    const char *labels[2] = {"x.jpg", "y.jpg"};
    CHECK_OK(jaclip_index_create(&ix, 4));
    CHECK_OK(jaclip_index_add(ix, t, labels));
    CHECK_OK(jaclip_index_save(ix, tmp_path("f.jci")));
    jaclip_index_free(ix);
    CHECK(file_version(tmp_path("f.jci")) == 2);
    CHECK_OK(jaclip_index_set_metadata_file(tmp_path("f.jci"), "orientation", "exif-transpose"));
    CHECK(file_version(tmp_path("f.jci")) == 3);
    size_t before = 0, after = 0;
    free(read_file(tmp_path("f.jci"), &before));
    CHECK_OK(jaclip_index_set_metadata_file(tmp_path("f.jci"), "orientation", "exif-transpose")); /* no change */
    free(read_file(tmp_path("f.jci"), &after));
    CHECK(before == after);
    CHECK_OK(jaclip_index_set_metadata_file(tmp_path("f.jci"), "root", "/photos"));
    CHECK_OK(jaclip_index_set_metadata_file(tmp_path("f.jci"), "root", NULL)); /* removed again */
    CHECK_OK(jaclip_index_set_metadata_file(tmp_path("f.jci"), "labels", "absolute"));
    CHECK_ERROR(jaclip_index_set_metadata_file(tmp_path("f.jci"), "BAD KEY", "x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_set_metadata_file(tmp_path("none.jci"), "root", "x"), JACLIP_ERROR_IO);
    /* appends and removals keep it; so does compaction */
    const char *more[2] = {"z.jpg", "w.jpg"};
    jaclip_tensor *t2 = rows(2, 4, 3);
    CHECK_OK(jaclip_index_append_file(tmp_path("f.jci"), t2, more));
    size_t removed = 0;
    CHECK_OK(jaclip_index_remove_file(tmp_path("f.jci"), labels, 1, &removed));
    CHECK(removed == 1);
    for (int round = 0; round < 2; round++) {
        CHECK_OK(jaclip_index_load(&ix, tmp_path("f.jci"), JACLIP_INDEX_DEFAULT));
        CHECK(jaclip_index_size(ix) == 3);
        const char *o = jaclip_index_metadata(ix, "orientation"), *l = jaclip_index_metadata(ix, "labels");
        CHECK(o && strcmp(o, "exif-transpose") == 0 && l && strcmp(l, "absolute") == 0);
        CHECK(jaclip_index_root(ix) == NULL);
        CHECK(jaclip_index_deleted_rows(ix) == (round == 0 ? 1u : 0u)); /* compaction drops it */
        jaclip_index_free(ix);
        if (round == 0)
            CHECK_OK(jaclip_index_compact_file(tmp_path("f.jci"), NULL));
    }
    /* A version 1 file is upgraded on the way, its rows untouched. */
    size_t v1size = 0;
    void *v1 = read_file("test/fixtures/index-v1.jci", &v1size);
    CHECK(v1 != NULL);
    if (v1) {
        write_file(tmp_path("v1.jci"), v1, v1size);
        jaclip_index *old = NULL;
        CHECK_OK(jaclip_index_load(&old, tmp_path("v1.jci"), JACLIP_INDEX_DEFAULT));
        CHECK(file_version(tmp_path("v1.jci")) == 1);
        CHECK_OK(jaclip_index_set_metadata_file(tmp_path("v1.jci"), "labels", "absolute"));
        CHECK(file_version(tmp_path("v1.jci")) == 3);
        CHECK_OK(jaclip_index_load(&ix, tmp_path("v1.jci"), JACLIP_INDEX_DEFAULT));
        CHECK(jaclip_index_size(ix) == jaclip_index_size(old) && jaclip_index_size(ix) > 0);
        for (size_t i = 0; i < jaclip_index_size(ix) && i < jaclip_index_size(old); i++)
            CHECK(strcmp(jaclip_index_label(ix, i), jaclip_index_label(old, i)) == 0);
        CHECK(strcmp(jaclip_index_metadata(ix, "labels"), "absolute") == 0);
        jaclip_index_free(ix);
        jaclip_index_free(old);
        free(v1);
    }
    jaclip_tensor_free(t);
    jaclip_tensor_free(t2);
}

static void test_merge_carries_and_compares(void)
{
    const char *la[1] = {"a.jpg"}, *lb[1] = {"b.jpg"};
    jaclip_tensor *t = rows(1, 4, 4);
    for (int i = 0; i < 3; i++) {
        jaclip_index *ix = NULL;
        CHECK_OK(jaclip_index_create(&ix, 4));
        CHECK_OK(jaclip_index_add(ix, t, i == 1 ? lb : la));
        CHECK_OK(jaclip_index_set_metadata(ix, "root", i == 2 ? "/elsewhere" : "/photos"));
        CHECK_OK(jaclip_index_save(ix, tmp_path(i == 0 ? "m0.jci" : i == 1 ? "m1.jci" : "m2.jci")));
        jaclip_index_free(ix);
    }
    const char *same[2] = {tmp_path("m0.jci"), tmp_path("m1.jci")};
    CHECK_OK(jaclip_index_merge(tmp_path("merged.jci"), same, 2, 0));
    jaclip_index *m = NULL;
    CHECK_OK(jaclip_index_load(&m, tmp_path("merged.jci"), JACLIP_INDEX_DEFAULT));
    CHECK(jaclip_index_size(m) == 2 && jaclip_index_root(m) && strcmp(jaclip_index_root(m), "/photos") == 0);
    jaclip_index_free(m);
    const char *other[2] = {tmp_path("m0.jci"), tmp_path("m2.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("merged2.jci"), other, 2, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "root") && strstr(jaclip_last_error(), "/elsewhere"));
    const char *plain[2] = {tmp_path("m0.jci"), tmp_path("plain.jci")};
    CHECK_ERROR(jaclip_index_merge(tmp_path("merged2.jci"), plain, 2, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(t);
}

/* Damaged metadata: a metadata segment in a version 2 file, an entry without its value, a bad key. */
static void test_damaged(void)
{
    size_t size = 0;
    unsigned char *b = read_file(tmp_path("meta.jci"), &size);
    CHECK(b && size > 256);
    if (!b || size <= 256)
        return;
    /* The metadata segment is the first one, at 128; its text at 192: "root\0/写真/家族\0labels\0relative\0". */
    CHECK(memcmp(b + 128, "JMET", 4) == 0 && memcmp(b + 192, "root", 5) == 0);
    jaclip_index *ix = NULL;
    unsigned char *c = malloc(size);
    /* version 2 in the header (its CRC fixed): a JMET segment is unknown there, so refused */
    memcpy(c, b, size);
    c[8] = 2;
    uint32_t crc = (uint32_t)crc32(0L, c, 124);
    for (int i = 0; i < 4; i++)
        c[124 + i] = (unsigned char)(crc >> (8 * i));
    write_file(tmp_path("v2meta.jci"), c, size);
    CHECK_ERROR(jaclip_index_load(&ix, tmp_path("v2meta.jci"), JACLIP_INDEX_DEFAULT), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "segment 0") != NULL);
    free(c);
    /* a NUL turned into 'x' inside the text: the segment's CRC fails (and, without checksums, the
     * entry check) */
    memcpy(c = malloc(size), b, size);
    c[192 + 4] = 'x';
    write_file(tmp_path("bad.jci"), c, size);
    CHECK_ERROR(jaclip_index_load(&ix, tmp_path("bad.jci"), JACLIP_INDEX_DEFAULT), JACLIP_ERROR_INDEX_FORMAT);
    CHECK_ERROR(jaclip_index_load(&ix, tmp_path("bad.jci"), JACLIP_INDEX_NO_CHECKSUM), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "metadata") != NULL);
    /* a future version is named as such */
    memcpy(c, b, size);
    c[8] = 9;
    write_file(tmp_path("future.jci"), c, size);
    CHECK_ERROR(jaclip_index_load(&ix, tmp_path("future.jci"), JACLIP_INDEX_DEFAULT), JACLIP_ERROR_INDEX_FORMAT);
    CHECK(strstr(jaclip_last_error(), "version 9") != NULL);
    free(c);
    free(b);
}

int main(void)
{
    if (!check_make_dir("meta"))
        return 1;
    test_in_memory_and_saved();
    test_set_on_file_kept_by_writers();
    test_merge_carries_and_compares();
    test_damaged();
    check_remove_dir();
    return check_summary("test_index_meta");
}
