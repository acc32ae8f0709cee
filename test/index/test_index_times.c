/* Capture times (issue 25): jaclip_image_capture_time on EXIF blocks built here (both byte orders,
 * with and without OffsetTimeOriginal; expected values from libc's timegm, not from the library), on
 * hostile EXIF (every truncation, offsets and counts out of range, impossible dates, random byte
 * flips: no date, never a crash), and per-row times in index files (format version 4): row_time and
 * its source, the date filter against brute force over the recorded times, and the times kept by
 * reload, removal, compaction and merge. Needs no model. */
#include "jaclip.h"
#include "check.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <zlib.h>

/* ---- EXIF blocks ---- */

typedef struct {
    unsigned char b[512];
    size_t n;
    bool little;
} blob;

static void put16(blob *x, size_t at, uint32_t v)
{
    x->b[at + (x->little ? 0 : 1)] = (unsigned char)v;
    x->b[at + (x->little ? 1 : 0)] = (unsigned char)(v >> 8);
}

static void put32(blob *x, size_t at, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        x->b[at + (x->little ? i : 3 - i)] = (unsigned char)(v >> (8 * i));
}

static void entry(blob *x, size_t at, uint32_t tag, uint32_t type, uint32_t count, uint32_t value)
{
    put16(x, at, tag);
    put16(x, at + 2, type);
    put32(x, at + 4, count);
    put32(x, at + 8, value);
}

/* A TIFF block: IFD0 at 8 with the Exif pointer, the Exif IFD at 26 with DateTimeOriginal (text at 64)
 * and, when zone is non-NULL, OffsetTimeOriginal (text at 96). */
static blob tiff_block(bool little, const char *date, const char *zone)
{
    blob x = {{0}, 128, little};
    memcpy(x.b, little ? "II" : "MM", 2);
    put16(&x, 2, 42);
    put32(&x, 4, 8);
    put16(&x, 8, 1);
    entry(&x, 10, 0x8769, 4, 1, 26);
    put16(&x, 26, zone ? 2 : 1);
    entry(&x, 28, 0x9003, 2, 20, 64);
    if (zone)
        entry(&x, 40, 0x9011, 2, 7, 96);
    memcpy(x.b + 64, date, strlen(date));
    if (zone)
        memcpy(x.b + 96, zone, strlen(zone));
    return x;
}

/* The block as a JPEG: SOI, APP1 "Exif\0\0" block, EOI. */
static blob as_jpeg(const blob *t)
{
    blob j = {{0xFF, 0xD8, 0xFF, 0xE1}, 0, false};
    size_t len = t->n + 8;
    j.b[4] = (unsigned char)(len >> 8), j.b[5] = (unsigned char)len;
    memcpy(j.b + 6, "Exif\0\0", 6);
    memcpy(j.b + 12, t->b, t->n);
    j.n = 12 + t->n;
    j.b[j.n++] = 0xFF, j.b[j.n++] = 0xD9;
    return j;
}

static int64_t capture(const void *data, size_t n)
{
    int64_t t = 0;
    CHECK_OK(jaclip_image_capture_time(&t, data, n));
    return t;
}

/* timegm of the date, in ns, less offset seconds. */
static int64_t utc_ns(int y, int mo, int d, int h, int mi, int s, int64_t offset)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return ((int64_t)timegm(&tm) - offset) * 1000000000;
}

static void test_exif_dates(void)
{
    for (int little = 0; little < 2; little++) {
        blob t = tiff_block(little, "2021:03:04 05:06:07", "+09:00"), j = as_jpeg(&t);
        CHECK(capture(j.b, j.n) == utc_ns(2021, 3, 4, 5, 6, 7, 9 * 3600));
        CHECK(capture(t.b, t.n) == utc_ns(2021, 3, 4, 5, 6, 7, 9 * 3600)); /* a TIFF file is the block */
        t = tiff_block(little, "1999:12:31 23:59:59", "-05:30"), j = as_jpeg(&t);
        CHECK(capture(j.b, j.n) == utc_ns(1999, 12, 31, 23, 59, 59, -(5 * 3600 + 30 * 60)));
        /* No zone: the wall clock in TZ (JST-9 here, which has no daylight saving). */
        t = tiff_block(little, "2024:02:29 12:00:00", NULL), j = as_jpeg(&t);
        CHECK(capture(j.b, j.n) == utc_ns(2024, 2, 29, 12, 0, 0, 9 * 3600));
        /* A malformed zone is no zone. */
        t = tiff_block(little, "2024:02:29 12:00:00", "+25:00"), j = as_jpeg(&t);
        CHECK(capture(j.b, j.n) == utc_ns(2024, 2, 29, 12, 0, 0, 9 * 3600));
    }
    static const char *const bad[] = {"0000:00:00 00:00:00", "    :  :     :  :  ", "2021:02:29 00:00:00",
                                      "2021:13:01 00:00:00", "2021:04:31 00:00:00", "2021:01:01 24:00:00",
                                      "2021:01:01 00:60:00", "1799:12:31 23:59:59", "2201:01:01 00:00:00",
                                      "2021-01-01 00:00:00", "2021:01:01T00:00:00", "２０２１:01:01 0"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        blob t = tiff_block(true, bad[i], "+00:00"), j = as_jpeg(&t);
        CHECK(capture(j.b, j.n) == JACLIP_TIME_NONE);
    }
    /* Other containers and no container. */
    int64_t t = 0;
    CHECK_OK(jaclip_image_capture_time(&t, NULL, 0));
    CHECK(t == JACLIP_TIME_NONE);
    CHECK_ERROR(jaclip_image_capture_time(NULL, "x", 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_capture_time(&t, NULL, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(capture("GIF89a", 6) == JACLIP_TIME_NONE);
}

static void test_exif_hostile(void)
{
    blob good = tiff_block(true, "2021:03:04 05:06:07", "+09:00"), j = as_jpeg(&good);
    int64_t want = utc_ns(2021, 3, 4, 5, 6, 7, 9 * 3600);
    /* Every truncation of the file and of the block: the date or none. */
    size_t wrong = 0;
    for (size_t n = 0; n <= j.n; n++) {
        int64_t a = capture(j.b, n), b = n <= good.n ? capture(good.b, n) : want;
        wrong += (a != want && a != JACLIP_TIME_NONE) + (b != want && b != JACLIP_TIME_NONE);
    }
    CHECK(wrong == 0);
    struct {
        size_t at;
        uint32_t value;
        bool is16;
    } edits[] = {
        {4, 0xFFFFFFF0u, false},  /* IFD0 past the end */
        {10, 0x8768, true},       /* no Exif pointer */
        {18, 0xFFFFFFF0u, false}, /* Exif IFD past the end */
        {18, 127, false},         /* Exif IFD at the last byte */
        {14, 2, false},           /* Exif pointer count 2 */
        {12, 7, true},            /* Exif pointer of type UNDEFINED */
        {36, 0xFFFFFFF0u, false}, /* date text past the end */
        {36, 120, false},         /* date text running past the end */
        {32, 5, false},           /* date count too short */
        {30, 7, true},            /* date of type UNDEFINED */
        {2, 43, true},            /* BigTIFF */
    };
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        blob t = good;
        if (edits[i].is16)
            put16(&t, edits[i].at, edits[i].value);
        else
            put32(&t, edits[i].at, edits[i].value);
        blob jj = as_jpeg(&t);
        CHECK(capture(t.b, t.n) == JACLIP_TIME_NONE);
        CHECK(capture(jj.b, jj.n) == JACLIP_TIME_NONE);
    }
    /* IFD0 claiming 65535 entries: its first one is still read, the rest are never reached. */
    blob big = good;
    put16(&big, 8, 0xFFFF);
    CHECK(capture(big.b, big.n) == want);
    put16(&big, 10, 0x8768); /* then the walk runs off the end looking for the pointer */
    CHECK(capture(big.b, big.n) == JACLIP_TIME_NONE);
    /* The zone's text out of range: the date stays, read without a zone. */
    blob t = good;
    put32(&t, 48, 0xFFFFFF00u);
    CHECK(capture(t.b, t.n) == utc_ns(2021, 3, 4, 5, 6, 7, 9 * 3600));
    /* A JPEG segment length past the end, and a zero one. */
    blob jj = j;
    jj.b[4] = 0xFF;
    CHECK(capture(jj.b, jj.n) == JACLIP_TIME_NONE);
    jj.b[4] = 0, jj.b[5] = 0;
    CHECK(capture(jj.b, jj.n) == JACLIP_TIME_NONE);
    /* Random byte flips: the date, none, or another valid date; never a crash (ASan/valgrind runs). */
    uint32_t seed = 12345;
    for (int round = 0; round < 20000; round++) {
        blob f = j;
        for (int k = 0; k < 3; k++) {
            seed = seed * 1664525u + 1013904223u;
            f.b[(seed >> 8) % f.n] ^= (unsigned char)(1u << (seed % 8));
        }
        (void)capture(f.b, f.n);
    }
}

/* ---- index rows ---- */

enum { ROWS = 90, DIM = 8 };

/* Row r: a capture time for r % 3 == 0, a stamp only for r % 3 == 1, nothing for r % 3 == 2. */
static int64_t capture_of(size_t r) { return r % 3 == 0 ? (int64_t)(ROWS - r) * 86400 * 1000000000 + 5 : JACLIP_TIME_NONE; }
static int64_t mtime_of(size_t r) { return (int64_t)r * 3600 * 1000000000 + 1; }

static void write_rows(const char *path, size_t first, size_t n)
{
    float *v = malloc(n * DIM * sizeof *v);
    char (*names)[32] = malloc(n * sizeof *names);
    const char **labels = malloc(n * sizeof *labels);
    jaclip_index_stamp *stamps = calloc(n, sizeof *stamps);
    int64_t *times = malloc(n * sizeof *times);
    fill(v, n * DIM, (uint32_t)first + 1);
    for (size_t i = 0; i < n; i++) {
        size_t r = first + i;
        snprintf(names[i], sizeof names[i], "p/%03zu.jpg", r);
        labels[i] = names[i];
        if (r % 3 != 2)
            stamps[i] = (jaclip_index_stamp){100 + r, mtime_of(r), 1000 + r};
        times[i] = capture_of(r);
    }
    jaclip_tensor *t = make_f32(n, DIM, v);
    CHECK_OK(jaclip_index_replace_file_timed(path, NULL, 0, t, labels, stamps, times, NULL));
    jaclip_tensor_free(t);
    free(v), free(names), free(labels), free(stamps), free(times);
}

/* Every row's time and source as written, by label. */
static void check_rows(const char *path, size_t expect_rows)
{
    jaclip_index *ix = NULL;
    CHECK_OK(jaclip_index_load(&ix, path, JACLIP_INDEX_MMAP));
    CHECK(jaclip_index_size(ix) == expect_rows);
    size_t wrong = 0;
    for (size_t i = 0; ix && i < jaclip_index_size(ix); i++) {
        size_t r = (size_t)atoi(jaclip_index_label(ix, i) + 2);
        int64_t t = 0;
        int source = -1;
        CHECK_OK(jaclip_index_row_time(&t, &source, ix, i));
        int64_t want = r % 3 == 0 ? capture_of(r) : r % 3 == 1 ? mtime_of(r) : JACLIP_TIME_NONE;
        int want_source = r % 3 == 0 ? JACLIP_ROW_TIME_EXIF : r % 3 == 1 ? JACLIP_ROW_TIME_MTIME : JACLIP_ROW_TIME_NONE;
        wrong += t != want || source != want_source;
    }
    CHECK(wrong == 0);
    /* The date filter against brute force over the times above. */
    static const int64_t bounds[][2] = {{INT64_MIN, 40LL * 86400 * 1000000000}, {10LL * 3600 * 1000000000, INT64_MAX},
                                        {0, 50LL * 86400 * 1000000000}, {INT64_MIN + 1, INT64_MAX}};
    float q[DIM];
    fill(q, DIM, 99);
    jaclip_tensor *qt = make_f32(1, DIM, q);
    for (size_t b = 0; ix && b < sizeof bounds / sizeof *bounds; b++) {
        jaclip_search_options *o = NULL;
        jaclip_tensor *idx = NULL;
        CHECK_OK(jaclip_search_options_create(&o));
        CHECK_OK(jaclip_search_options_set_time_range(o, bounds[b][0], bounds[b][1]));
        CHECK_OK(jaclip_index_search_with(&idx, NULL, ix, qt, ROWS, o));
        bool *want = calloc(jaclip_index_size(ix), 1);
        size_t npass = 0, bad = 0;
        for (size_t i = 0; i < jaclip_index_size(ix); i++) {
            size_t r = (size_t)atoi(jaclip_index_label(ix, i) + 2);
            int64_t t = r % 3 == 0 ? capture_of(r) : mtime_of(r);
            want[i] = r % 3 != 2 && t >= bounds[b][0] && t < bounds[b][1];
            npass += want[i];
        }
        CHECK(idx && (size_t)jaclip_tensor_dim(idx, 1) == npass);
        for (size_t k = 0; idx && k < (size_t)jaclip_tensor_dim(idx, 1); k++)
            bad += !want[((const int64_t *)jaclip_tensor_data(idx))[k]];
        CHECK(bad == 0);
        free(want);
        jaclip_tensor_free(idx);
        jaclip_search_options_free(o);
    }
    jaclip_tensor_free(qt);
    jaclip_index_free(ix);
}

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t file_version(const char *path)
{
    size_t n = 0;
    unsigned char *b = read_file(path, &n);
    uint32_t v = b && n >= 12 ? (uint32_t)b[8] | (uint32_t)b[9] << 8 : 0;
    free(b);
    return v;
}

static void test_index_times(void)
{
    const char *a = tmp_path("times-a.jci"), *b = tmp_path("times-b.jci"), *m = tmp_path("times-m.jci");
    jaclip_index *empty = NULL;
    CHECK_OK(jaclip_index_create(&empty, DIM));
    CHECK_OK(jaclip_index_save(empty, a));
    CHECK_OK(jaclip_index_save(empty, b));
    CHECK_OK(jaclip_index_set_metadata(empty, "labels", "relative"));
    jaclip_index_free(empty);
    /* Rows without any capture time leave the file at version 2. */
    float v[DIM];
    fill(v, DIM, 5);
    jaclip_tensor *one = make_f32(1, DIM, v);
    const char *lab[1] = {"p/998.jpg"};
    int64_t none = JACLIP_TIME_NONE;
    CHECK_OK(jaclip_index_replace_file_timed(a, NULL, 0, one, lab, NULL, &none, NULL));
    CHECK(file_version(a) == 2);
    CHECK_OK(jaclip_index_remove_file(a, lab, 1, NULL));
    jaclip_tensor_free(one);

    write_rows(a, 0, 45);
    CHECK(file_version(a) == 4);
    write_rows(a, 45, 45);
    check_rows(a, ROWS);
    /* Removal (tombstones) renumbers rows; each keeps its own time. */
    const char *gone[3] = {"p/000.jpg", "p/031.jpg", "p/047.jpg"};
    size_t removed = 0;
    CHECK_OK(jaclip_index_remove_file(a, gone, 3, &removed));
    CHECK(removed == 3);
    check_rows(a, ROWS - 3);
    CHECK_OK(jaclip_index_set_metadata_file(a, "orientation", "as-stored"));
    CHECK(file_version(a) == 4); /* metadata does not lower it */
    CHECK_OK(jaclip_index_compact_file(a, NULL));
    CHECK(file_version(a) == 4);
    check_rows(a, ROWS - 3);
    /* Merge: shard b holds rows without capture times only after its first block. */
    write_rows(b, 200, 3);
    const char *shards[2] = {a, b};
    CHECK_OK(jaclip_index_set_metadata_file(b, "orientation", "as-stored"));
    CHECK_OK(jaclip_index_merge(m, shards, 2, 0));
    check_rows(m, ROWS);

    /* A capture-time segment in a file of an older version, or an unknown segment flag, is refused
     * (CRCs made good again, so the check itself is what refuses). */
    size_t n = 0;
    unsigned char *bytes = read_file(a, &n);
    size_t seg = 128;
    while (bytes && seg + 64 <= n && memcmp(bytes + seg, "JSEG", 4) != 0)
        seg += 64 + (size_t)le64(bytes + seg + 24);
    CHECK(bytes && seg + 64 <= n);
    if (bytes && seg + 64 <= n) {
        unsigned char *copy = malloc(n);
        jaclip_index *ix = NULL;
        memcpy(copy, bytes, n);
        copy[8] = 3;
        put_le32(copy + 124, (uint32_t)crc32(0, copy, 124));
        write_file(tmp_path("times-v3.jci"), copy, n);
        CHECK_ERROR(jaclip_index_load(&ix, tmp_path("times-v3.jci"), 0), JACLIP_ERROR_INDEX_FORMAT);
        memcpy(copy, bytes, n);
        copy[seg + 36] = 3;
        put_le32(copy + seg + 60, (uint32_t)crc32(0, copy + seg, 60));
        write_file(tmp_path("times-flag.jci"), copy, n);
        CHECK_ERROR(jaclip_index_load(&ix, tmp_path("times-flag.jci"), 0), JACLIP_ERROR_INDEX_FORMAT);
        CHECK(strstr(jaclip_last_error(), "inconsistent") != NULL);
        free(copy);
    }
    free(bytes);
    int64_t t;
    int source;
    CHECK_ERROR(jaclip_index_row_time(NULL, &source, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_row_time(&t, &source, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(t == JACLIP_TIME_NONE && source == JACLIP_ROW_TIME_NONE);
}

int main(void)
{
    setenv("TZ", "JST-9", 1);
    tzset();
    if (!check_make_dir("index-times"))
        return 1;
    test_exif_dates();
    test_exif_hostile();
    test_index_times();
    check_remove_dir();
    return check_summary("test_index_times");
}
