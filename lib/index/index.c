/* The embedding index: L2-normalised float32 or float16 rows with UTF-8 labels, exact cosine top-k,
 * deletions, and the appendable on-disk format of docs/index-format.md. Plain C; no libtorch. */
#include "common/internal.h"
#include "index/index_rows.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) /* clang 14 lacks cpu_supports("f16c") */
#include <immintrin.h>
#define JC_HAVE_F16C_PATH 1
#endif

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define JC_INDEX_HOST_LE 0
#else
#define JC_INDEX_HOST_LE 1
#endif

/* On x86-64 the scan is compiled twice and picked at load time: AVX2 where the CPU has it, the
 * baseline elsewhere. Both sum in the same order, so they give bit-identical scores. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__gnu_linux__)
#define JC_SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define JC_SCAN_CLONES
#endif

#define JC_FILE_MAGIC "JACLIPIX"
#define JC_SEGMENT_MAGIC "JSEG"
#define JC_TOMBSTONE_MAGIC "JDEL"
#define JC_FORMAT_VERSION 2u
#define JC_HEADER_SIZE_V1 64u
#define JC_HEADER_SIZE 128u
#define JC_SEGMENT_HEADER_SIZE 64u
#define JC_ALIGN 64u
#define JC_STAMP_BYTES 24u
/* File header flag of version 2: rows are IEEE float16. */
#define JC_FLAG_FLOAT16 1u
/* Room for the fingerprint in the version 2 header, NUL-padded. */
#define JC_FINGERPRINT_FIELD 56u
/* Above this many row-floats a search is split across threads. */
#define JC_PARALLEL_MIN_WORK ((size_t)1 << 20)
#define JC_MAX_THREADS 8
/* Queries scored per pass over the rows: 8 x 512 floats stay in L1 while rows stream past. */
#define JC_QUERY_BLOCK 8
/* float16 rows are widened this many at a time before being scored. */
#define JC_F16_CHUNK 64

/* A run of consecutive live rows that lie together in memory (part of one file segment, or the added
 * rows). */
typedef struct {
    const void *vectors;           /* float or uint16_t [count, dim], per index->row_format */
    const uint64_t *label_offsets; /* into labels; label i ends at its NUL */
    const char *labels;
    const unsigned char *stamps;   /* JC_STAMP_BYTES per row (little-endian), or NULL: none recorded */
    size_t count;
    size_t first;                  /* row id of the run's first row */
    uint64_t file_row;             /* the first row's number among the file's stored rows (tombstones
                                      name these); UINT64_MAX for added rows */
} jc_run;

struct jaclip_index {
    size_t dim;
    size_t count;
    uint32_t row_format;           /* JACLIP_INDEX_ROWS_* */
    char fingerprint[JC_FINGERPRINT_FIELD];
    /* The loaded file: mapped, or read into malloc'd memory. Runs point into it. */
    void *file_data;
    size_t file_size;
    bool file_mapped;
    jc_run *runs;
    size_t nruns;
    size_t file_rows;              /* live rows from the file: rows 0..file_rows-1 */
    /* Rows added in memory, after the file's rows. */
    void *added_vectors;
    uint64_t *added_offsets;
    char *added_labels;
    unsigned char *added_stamps;
    size_t added_count, added_cap, added_label_bytes, added_label_cap;
    /* Open-addressing table of row + 1 (0 = empty slot), one slot per distinct label (its lowest row);
     * capacity a power of two, at most half full. */
    size_t *label_slots;
    size_t label_cap;
};

/* ---- small helpers ---------------------------------------------------------------------------- */

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) { return get_u32(p) | (uint64_t)get_u32(p + 4) << 32; }

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t crc32_of(uint32_t crc, const void *data, size_t size)
{
    return (uint32_t)crc32_z(crc, data, size);
}

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Checked a * b + c in 64 bits. */
static bool mul_add_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out)
{
    if (b != 0 && a > (UINT64_MAX - c) / b)
        return false;
    *out = a * b + c;
    return true;
}

static size_t row_bytes_of(uint32_t row_format) { return row_format == JACLIP_INDEX_ROWS_FLOAT16 ? 2 : 4; }

/* Offset of the first invalid byte, or SIZE_MAX if s[0..n) is valid UTF-8 (no surrogates, no
 * overlongs, nothing above U+10FFFF). */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, c &= 0x07;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return i;
            c = c << 6 | (s[i + j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return i;
        i += len;
    }
    return SIZE_MAX;
}

/* ---- float16 ------------------------------------------------------------------------------------ */

/* IEEE binary16 from binary32, rounding to nearest even (as numpy's float16 and F16C do). */
static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) /* inf, nan: never stored (rows are finite), kept for completeness */
        return (uint16_t)(sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0));
    if (a >= 0x477FF000u) /* rounds to above 65504 */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (a < 0x33000000u)
            return (uint16_t)sign;
        /* |f| = mant * 2^(E-150) and a half subnormal is q * 2^-24, so q = mant >> (126 - E), rounded
         * to nearest even */
        uint32_t mant = (a & 0x7FFFFFu) | 0x800000u, total = 126u - (a >> 23), q = mant >> total, rem = mant & ((1u << total) - 1u), half = 1u << (total - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (a >> 23) - 112u, mant = a & 0x7FFFFFu;
    uint32_t h = (e << 10) | (mant >> 13), rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* may carry into the exponent: still the right value */
    return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            e = 113;
            while (!(m & 0x400u))
                m <<= 1, e--;
            x = sign | (e << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7F800000u | (m << 13);
    } else {
        x = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

#ifdef JC_HAVE_F16C_PATH
__attribute__((target("f16c,avx"))) static void widen_f16c(float *dst, const uint16_t *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = f16_to_f32(src[i]);
}
#endif

/* dst[i] = src[i] widened; exact whichever path runs. */
static void widen_f16(float *dst, const uint16_t *src, size_t n)
{
#ifdef JC_HAVE_F16C_PATH
    static int has_f16c = -1; /* searches run in many threads: read and set atomically */
    int f16c = __atomic_load_n(&has_f16c, __ATOMIC_RELAXED);
    if (f16c < 0) {
        f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
        __atomic_store_n(&has_f16c, f16c, __ATOMIC_RELAXED);
    }
    if (f16c) {
        widen_f16c(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = f16_to_f32(src[i]);
}

/* ---- rows and labels -------------------------------------------------------------------------- */

static jc_run added_run(const jaclip_index *index)
{
    return (jc_run){index->added_vectors, index->added_offsets, index->added_labels, index->added_stamps,
                    index->added_count, index->file_rows, UINT64_MAX};
}

static size_t build_runs(const jaclip_index *index, jc_run *runs)
{
    size_t n = 0;
    for (size_t i = 0; i < index->nruns; i++)
        runs[n++] = index->runs[i];
    if (index->added_count > 0)
        runs[n++] = added_run(index);
    return n;
}

/* The run holding row i (i < count). */
static jc_run run_of(const jaclip_index *index, size_t i)
{
    if (i >= index->file_rows)
        return added_run(index);
    size_t lo = 0, hi = index->nruns;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (index->runs[mid].first <= i)
            lo = mid;
        else
            hi = mid;
    }
    return index->runs[lo];
}

static const char *run_label(const jc_run *run, size_t j) { return run->labels + run->label_offsets[j]; }

static const char *label_at(const jaclip_index *index, size_t i)
{
    jc_run run = run_of(index, i);
    return run_label(&run, i - run.first);
}

/* A per-process random key, so a crafted file cannot line its labels up on one chain. */
static uint64_t hash_key;
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void make_hash_key(void)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    }
    hash_key = k | 1;
}

static uint64_t label_hash(const char *s)
{
    pthread_once(&hash_key_once, make_hash_key);
    uint64_t h = 1469598103934665603ull ^ hash_key; /* FNV-1a from a keyed basis, then a full mix */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h ^= hash_key;
    h ^= h >> 33, h *= 0xFF51AFD7ED558CCDull, h ^= h >> 33, h *= 0xC4CEB9FE1A85EC53ull, h ^= h >> 33;
    return h;
}

/* Records row under label unless an equal label is there already (rows are inserted in increasing
 * order, so the slot keeps the lowest row). Equal labels stop the probe at once: one slot per distinct
 * label keeps a file of one repeated label linear to load. */
static void label_table_insert(const jaclip_index *index, size_t *slots, size_t cap, const char *label, size_t row)
{
    size_t i = (size_t)label_hash(label) & (cap - 1);
    while (slots[i]) {
        if (strcmp(label_at(index, slots[i] - 1), label) == 0)
            return;
        i = (i + 1) & (cap - 1);
    }
    slots[i] = row + 1;
}

static size_t label_table_capacity(size_t rows)
{
    size_t cap = 64;
    while (cap / 2 < rows && cap <= SIZE_MAX / 4 / sizeof(size_t))
        cap *= 2;
    return cap / 2 < rows ? 0 : cap;
}

/* Fills the empty table slots[cap] with every row and makes it the index's. */
static void label_table_adopt(jaclip_index *index, size_t *slots, size_t cap)
{
    for (size_t r = 0; r < index->count; r++)
        label_table_insert(index, slots, cap, label_at(index, r), r);
    free(index->label_slots);
    index->label_slots = slots;
    index->label_cap = cap;
}

/* Keeps the table at most half full for `rows` rows. */
static jaclip_status label_table_reserve(jaclip_index *index, size_t rows)
{
    size_t cap = label_table_capacity(rows);
    if (!cap)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index label table too large");
    if (cap <= index->label_cap)
        return JACLIP_OK;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for the index label table");
    label_table_adopt(index, slots, cap);
    return JACLIP_OK;
}

static jaclip_status grow(void **buf, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap)
        return JACLIP_OK;
    size_t n = *cap ? *cap : 16, bytes;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (!jc_mul_size(n, elem, &bytes))
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index %s too large", what);
    void *p = realloc(*buf, bytes);
    if (!p)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory growing the index %s", what);
    *buf = p;
    *cap = n;
    return JACLIP_OK;
}

/* dst = src / |src| (sum in double, as jaclip_normalize does); zero stays zero. */
static void normalize_row(float *dst, const float *src, size_t dim)
{
    double s = 0;
    for (size_t i = 0; i < dim; i++)
        s += (double)src[i] * src[i];
    double n = sqrt(s);
    for (size_t i = 0; i < dim; i++)
        dst[i] = n > 0 ? (float)(src[i] / n) : 0.0f;
}

/* Row r of src normalised and stored in row_format at dst (row r of a [*, dim] array). */
static void store_row(void *dst, size_t r, const float *src, size_t dim, uint32_t row_format, float *scratch)
{
    if (row_format == JACLIP_INDEX_ROWS_FLOAT16) {
        normalize_row(scratch, src, dim);
        uint16_t *h = (uint16_t *)dst + r * dim;
        for (size_t i = 0; i < dim; i++)
            h[i] = f32_to_f16(scratch[i]);
    } else {
        normalize_row((float *)dst + r * dim, src, dim);
    }
}

/* Rows r0..r0+n-1 of a run as float32 into dst. */
static void copy_rows_f32(float *dst, const jc_run *run, size_t r0, size_t n, size_t dim, uint32_t row_format)
{
    if (row_format == JACLIP_INDEX_ROWS_FLOAT16)
        widen_f16(dst, (const uint16_t *)run->vectors + r0 * dim, n * dim);
    else
        memcpy(dst, (const float *)run->vectors + r0 * dim, n * dim * sizeof(float));
}

static jaclip_status check_finite(const float *data, size_t rows, size_t dim, const char *name)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < dim; c++)
            if (!isfinite(data[r * dim + c]))
                return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s row %zu column %zu is not finite", name, r, c);
    return JACLIP_OK;
}

/* Index of the first stored value that no writer produces (not finite, or |v| >= 2 where unit rows
 * have |v| <= 1), or SIZE_MAX: such a row could only make non-finite or meaningless scores. */
static size_t first_bad_value(const void *vectors, size_t n, uint32_t row_format)
{
    if (row_format == JACLIP_INDEX_ROWS_FLOAT16) {
        const uint16_t *h = vectors;
        uint16_t worst = 0;
        for (size_t i = 0; i < n; i++)
            worst |= (uint16_t)((h[i] & 0x7FFFu) >= 0x4000u); /* exponent of 2.0 or above, inf, nan */
        if (!worst)
            return SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            if ((h[i] & 0x7FFFu) >= 0x4000u)
                return i;
    } else {
        const uint32_t *x = vectors;
        uint32_t worst = 0;
        for (size_t i = 0; i < n; i++)
            worst |= (uint32_t)((x[i] & 0x7FFFFFFFu) >= 0x40000000u);
        if (!worst)
            return SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            if ((x[i] & 0x7FFFFFFFu) >= 0x40000000u)
                return i;
    }
    return SIZE_MAX;
}

/* Checks embeddings and labels as add and append take them; *rows gets N. embeddings may be NULL
 * (no rows) when allow_null. */
static jaclip_status check_rows(const jaclip_tensor *embeddings, const char *const *labels, size_t dim,
                                size_t *rows, size_t *label_bytes)
{
    jaclip_status st;
    if ((st = jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings")))
        return st;
    if ((uint64_t)embeddings->shape[1] != dim)
        return jc_fail(JACLIP_ERROR_SHAPE, "embeddings have %lld columns, the index has %zu",
                       (long long)embeddings->shape[1], dim);
    *rows = (size_t)embeddings->shape[0];
    if (*rows > 0 && !labels)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels is NULL");
    if ((st = check_finite(embeddings->data, *rows, dim, "embeddings")))
        return st;
    *label_bytes = 0;
    for (size_t r = 0; r < *rows; r++) {
        if (!labels[r])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels[%zu] is NULL", r);
        size_t len = strlen(labels[r]), bad = utf8_invalid_at((const unsigned char *)labels[r], len);
        if (bad != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INVALID_UTF8, "labels[%zu] is not valid UTF-8 at byte %zu", r, bad);
        if (*label_bytes > SIZE_MAX - len - 1)
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "labels too large");
        *label_bytes += len + 1;
    }
    return JACLIP_OK;
}

static void put_stamp(unsigned char *p, const jaclip_index_stamp *s)
{
    put_u64(p, s ? s->size : 0);
    put_u64(p + 8, s ? (uint64_t)s->mtime_ns : 0);
    put_u64(p + 16, s ? s->content_hash : 0);
}

/* ---- create, add, getters --------------------------------------------------------------------- */

jaclip_status jaclip_index_create(jaclip_index **out, size_t dim)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (dim == 0 || dim > JACLIP_INDEX_MAX_DIM)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index dim must be 1..%d, got %zu", JACLIP_INDEX_MAX_DIM, dim);
    jaclip_index *index = calloc(1, sizeof *index);
    if (!index)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory creating an index");
    index->dim = dim;
    index->row_format = JACLIP_INDEX_ROWS_FLOAT32;
    *out = index;
    return JACLIP_OK;
}

void jaclip_index_free(jaclip_index *index)
{
    if (!index)
        return;
    if (index->file_mapped)
        munmap(index->file_data, index->file_size);
    else
        free(index->file_data);
    free(index->runs);
    free(index->added_vectors);
    free(index->added_offsets);
    free(index->added_labels);
    free(index->added_stamps);
    free(index->label_slots);
    free(index);
}

/* Appends rows (checked) to the in-memory part; stamps may be NULL. */
static jaclip_status add_rows(jaclip_index *index, const jaclip_tensor *embeddings, const char *const *labels,
                              const jaclip_index_stamp *stamps)
{
    jaclip_status st;
    size_t rows, label_bytes, values;
    if ((st = check_rows(embeddings, labels, index->dim, &rows, &label_bytes)))
        return st;
    if (rows == 0)
        return JACLIP_OK;
    size_t dim = index->dim, base = index->added_count, need = base + rows, es = row_bytes_of(index->row_format);
    if (need < base || !jc_mul_size(need, dim, &values) || index->added_label_bytes > SIZE_MAX - label_bytes)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index too large");
    float *scratch = malloc(dim * sizeof *scratch);
    if (!scratch)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory adding rows");
    /* Grow everything first, so a failure leaves the index as it was. */
    size_t vec_cap = index->added_cap, off_cap = index->added_cap, stamp_cap = index->added_cap;
    if ((st = grow(&index->added_vectors, &vec_cap, need, dim * es, "rows")) ||
        (st = grow((void **)&index->added_offsets, &off_cap, need, sizeof(uint64_t), "labels")) ||
        (st = grow((void **)&index->added_stamps, &stamp_cap, need, JC_STAMP_BYTES, "stamps")) ||
        (st = grow((void **)&index->added_labels, &index->added_label_cap, index->added_label_bytes + label_bytes, 1,
                   "labels")) ||
        (st = label_table_reserve(index, index->count + rows))) {
        free(scratch);
        return st;
    }
    index->added_cap = vec_cap < off_cap ? vec_cap : off_cap;
    if (stamp_cap < index->added_cap)
        index->added_cap = stamp_cap;
    const float *src = embeddings->data;
    for (size_t r = 0; r < rows; r++) {
        store_row(index->added_vectors, base + r, src + r * dim, dim, index->row_format, scratch);
        put_stamp(index->added_stamps + (base + r) * JC_STAMP_BYTES, stamps ? &stamps[r] : NULL);
        size_t len = strlen(labels[r]) + 1;
        index->added_offsets[base + r] = index->added_label_bytes;
        memcpy(index->added_labels + index->added_label_bytes, labels[r], len);
        index->added_label_bytes += len;
    }
    free(scratch);
    index->added_count = need;
    for (size_t r = 0; r < rows; r++)
        label_table_insert(index, index->label_slots, index->label_cap, labels[r], index->count + r);
    index->count += rows;
    return JACLIP_OK;
}

jaclip_status jaclip_index_add(jaclip_index *index, const jaclip_tensor *embeddings, const char *const *labels)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    return add_rows(index, embeddings, labels, NULL);
}

size_t jaclip_index_size(const jaclip_index *index) { return index ? index->count : 0; }

size_t jaclip_index_dim(const jaclip_index *index) { return index ? index->dim : 0; }

const char *jaclip_index_label(const jaclip_index *index, size_t i)
{
    return index && i < index->count ? label_at(index, i) : NULL;
}

jaclip_status jaclip_index_find_label(size_t *out, const jaclip_index *index, const char *label)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = SIZE_MAX;
    if (!index || !label)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "label" : "index");
    if (index->label_cap > 0) {
        size_t i = (size_t)label_hash(label) & (index->label_cap - 1);
        for (; index->label_slots[i]; i = (i + 1) & (index->label_cap - 1)) {
            size_t row = index->label_slots[i] - 1;
            if (strcmp(label_at(index, row), label) == 0) {
                *out = row;
                return JACLIP_OK;
            }
        }
    }
    return jc_fail(JACLIP_ERROR_NOT_FOUND, "no row is labelled \"%.200s\"", label);
}

jaclip_status jaclip_index_embeddings(jaclip_tensor **out, const jaclip_index *index, size_t first, size_t count)
{
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (first > index->count || count > index->count - first)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "rows %zu..+%zu are past the end of an index of %zu rows", first,
                       count, index->count);
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)count, (int64_t)index->dim)))
        return st;
    float *dst = (*out)->data;
    for (size_t r = first; r < first + count;) {
        jc_run run = run_of(index, r);
        size_t n = run.first + run.count - r;
        if (n > first + count - r)
            n = first + count - r;
        copy_rows_f32(dst, &run, r - run.first, n, index->dim, index->row_format);
        dst += n * index->dim;
        r += n;
    }
    return JACLIP_OK;
}

jaclip_status jaclip_index_stamp_of(jaclip_index_stamp *out, const jaclip_index *index, size_t i)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    memset(out, 0, sizeof *out);
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (i >= index->count)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "row %zu is past the end of an index of %zu rows", i,
                       index->count);
    jc_run run = run_of(index, i);
    if (!run.stamps)
        return JACLIP_OK;
    const unsigned char *p = run.stamps + (i - run.first) * JC_STAMP_BYTES;
    out->size = get_u64(p);
    out->mtime_ns = (int64_t)get_u64(p + 8);
    out->content_hash = get_u64(p + 16);
    return JACLIP_OK;
}

uint32_t jaclip_index_row_format(const jaclip_index *index)
{
    return index ? index->row_format : JACLIP_INDEX_ROWS_FLOAT32;
}

jaclip_status jaclip_index_set_row_format(jaclip_index *index, uint32_t row_format)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (row_format != JACLIP_INDEX_ROWS_FLOAT32 && row_format != JACLIP_INDEX_ROWS_FLOAT16)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown row format %u", (unsigned)row_format);
    if (row_format != index->row_format && (index->count > 0 || index->nruns > 0 || index->added_count > 0))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "the row format can only be changed on an empty index (this one has %zu rows)", index->count);
    index->row_format = row_format;
    return JACLIP_OK;
}

/* A fingerprint is 1..JC_FINGERPRINT_FIELD-1 printable ASCII characters without spaces. */
static bool valid_fingerprint(const char *fp, size_t len)
{
    if (len == 0 || len >= JC_FINGERPRINT_FIELD)
        return false;
    for (size_t i = 0; i < len; i++)
        if (fp[i] < 0x21 || fp[i] > 0x7E)
            return false;
    return true;
}

const char *jaclip_index_fingerprint(const jaclip_index *index) { return index ? index->fingerprint : NULL; }

jaclip_status jaclip_index_set_fingerprint(jaclip_index *index, const char *fingerprint)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (!fingerprint || !fingerprint[0]) {
        index->fingerprint[0] = '\0';
        return JACLIP_OK;
    }
    size_t len = strnlen(fingerprint, JC_FINGERPRINT_FIELD);
    if (!valid_fingerprint(fingerprint, len))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "a fingerprint is 1..%u printable ASCII characters without spaces",
                       JC_FINGERPRINT_FIELD - 1);
    memcpy(index->fingerprint, fingerprint, len + 1);
    return JACLIP_OK;
}

jaclip_status jaclip_index_check_fingerprint(const jaclip_index *index, const char *fingerprint, uint32_t flags)
{
    if (!index || !fingerprint)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "fingerprint" : "index");
    if (flags & ~JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown fingerprint check flags 0x%x", (unsigned)flags);
    if (!index->fingerprint[0]) {
        if (flags & JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN)
            return JACLIP_OK;
        return jc_fail(JACLIP_ERROR_MODEL_MISMATCH,
                       "the index does not record which model built it (written before fingerprints, or "
                       "by a program that did not set one); this model is %.60s",
                       fingerprint);
    }
    if (strcmp(index->fingerprint, fingerprint) != 0)
        return jc_fail(JACLIP_ERROR_MODEL_MISMATCH,
                       "the index was built by model %s, this model is %.60s: its scores would be meaningless",
                       index->fingerprint, fingerprint);
    return JACLIP_OK;
}

/* ---- removal ---------------------------------------------------------------------------------- */

/* A set of labels (pointers into the caller's array), for one removal. */
typedef struct {
    const char **slots;
    size_t cap;
} jc_label_set;

static jaclip_status label_set_build(jc_label_set *set, const char *const *labels, size_t n)
{
    set->cap = label_table_capacity(n);
    set->slots = set->cap ? calloc(set->cap, sizeof *set->slots) : NULL;
    if (!set->slots)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for %zu labels", n);
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)label_hash(labels[i]) & (set->cap - 1);
        while (set->slots[s] && strcmp(set->slots[s], labels[i]) != 0)
            s = (s + 1) & (set->cap - 1);
        set->slots[s] = labels[i];
    }
    return JACLIP_OK;
}

static bool label_set_has(const jc_label_set *set, const char *label)
{
    size_t s = (size_t)label_hash(label) & (set->cap - 1);
    for (; set->slots[s]; s = (s + 1) & (set->cap - 1))
        if (strcmp(set->slots[s], label) == 0)
            return true;
    return false;
}

static jaclip_status check_label_list(const char *const *labels, size_t n)
{
    if (n > 0 && !labels)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels is NULL");
    for (size_t i = 0; i < n; i++)
        if (!labels[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels[%zu] is NULL", i);
    return JACLIP_OK;
}

/* Drops the rows whose dead[] flag is set: file runs are split around them, added rows are moved
 * down, and rows are renumbered in order. Allocates before changing anything. */
static jaclip_status drop_rows(jaclip_index *index, const unsigned char *dead, size_t ndead)
{
    if (ndead == 0)
        return JACLIP_OK;
    size_t max_runs = index->nruns + ndead + 1, cap = label_table_capacity(index->count - ndead);
    jc_run *runs = calloc(max_runs, sizeof *runs);
    size_t *slots = cap ? calloc(cap, sizeof *slots) : NULL;
    if (!runs || !slots) {
        free(runs);
        free(slots);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory removing rows");
    }
    size_t nruns = 0, next = 0;
    for (size_t i = 0; i < index->nruns; i++) {
        const jc_run *run = &index->runs[i];
        size_t j = 0;
        while (j < run->count) {
            while (j < run->count && dead[run->first + j])
                j++;
            size_t start = j;
            while (j < run->count && !dead[run->first + j])
                j++;
            if (j > start) {
                size_t es = row_bytes_of(index->row_format) * index->dim;
                runs[nruns++] = (jc_run){(const unsigned char *)run->vectors + start * es, run->label_offsets + start,
                                         run->labels, run->stamps ? run->stamps + start * JC_STAMP_BYTES : NULL,
                                         j - start, next, run->file_row + start};
                next += j - start;
            }
        }
    }
    size_t file_rows = next;
    /* Added rows: compact in place (labels keep their bytes; only offsets move). */
    size_t kept = 0, es = row_bytes_of(index->row_format) * index->dim;
    for (size_t r = 0; r < index->added_count; r++) {
        if (dead[index->file_rows + r])
            continue;
        if (kept != r) {
            memmove((unsigned char *)index->added_vectors + kept * es, (unsigned char *)index->added_vectors + r * es,
                    es);
            memmove(index->added_stamps + kept * JC_STAMP_BYTES, index->added_stamps + r * JC_STAMP_BYTES,
                    JC_STAMP_BYTES);
            index->added_offsets[kept] = index->added_offsets[r];
        }
        kept++;
    }
    free(index->runs);
    index->runs = runs;
    index->nruns = nruns;
    index->file_rows = file_rows;
    index->added_count = kept;
    index->count = file_rows + kept;
    /* The table holds row numbers, which have moved: refill it. */
    label_table_adopt(index, slots, cap);
    return JACLIP_OK;
}

jaclip_status jaclip_index_remove(jaclip_index *index, const char *const *labels, size_t n, size_t *out_removed)
{
    jaclip_status st;
    if (out_removed)
        *out_removed = 0;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if ((st = check_label_list(labels, n)))
        return st;
    if (n == 0 || index->count == 0)
        return JACLIP_OK;
    jc_label_set set;
    if ((st = label_set_build(&set, labels, n)))
        return st;
    unsigned char *dead = calloc(index->count, 1);
    if (!dead) {
        free(set.slots);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory removing rows");
    }
    size_t ndead = 0;
    for (size_t r = 0; r < index->count; r++)
        if (label_set_has(&set, label_at(index, r)))
            dead[r] = 1, ndead++;
    free(set.slots);
    st = drop_rows(index, dead, ndead);
    free(dead);
    if (!st && out_removed)
        *out_removed = ndead;
    return st;
}

/* ---- rows for other parts of the library (index_rows.h) ----------------------------------------- */

size_t jc_index_span_count(const jaclip_index *index)
{
    return index ? index->nruns + (index->added_count > 0) : 0;
}

bool jc_index_span(const jaclip_index *index, size_t i, jc_index_rows *out)
{
    if (!index || i >= jc_index_span_count(index))
        return false;
    jc_run run = i < index->nruns ? index->runs[i] : added_run(index);
    *out = (jc_index_rows){run.vectors, index->row_format, index->dim, run.first, run.count};
    return true;
}
/* ---- search ----------------------------------------------------------------------------------- */

typedef float jc_v8 __attribute__((vector_size(32)));
/* The same vector read from any float address. */
typedef float jc_v8_unaligned __attribute__((vector_size(32), aligned(4), may_alias));
#define LOAD8(p) (*(const jc_v8_unaligned *)(p))

/* The lanes summed in a fixed order after the scalar tail, so every code path rounds alike. */
#define FINISH(a, b, row, q, from, dim)                                                              \
    __extension__({                                                                                  \
        jc_v8 s_ = (a) + (b);                                                                        \
        float tail_ = 0;                                                                             \
        for (size_t i_ = (from); i_ < (dim); i_++)                                                   \
            tail_ += (row)[i_] * (q)[i_];                                                            \
        ((s_[0] + s_[4]) + (s_[1] + s_[5])) + ((s_[2] + s_[6]) + (s_[3] + s_[7])) + tail_;           \
    })

/* scores[q * stride + r] = rows[r] . queries[q] for r < nrows, q < nq (nq <= JC_QUERY_BLOCK). Each row
 * is read from memory once and dotted with up to four queries while it is in registers and L1. */
JC_SCAN_CLONES
static void score_rows(const float *rows, size_t nrows, size_t dim, const float *queries, size_t nq, float *scores,
                       size_t stride)
{
    size_t body = dim / 16 * 16;
    for (size_t r = 0; r < nrows; r++) {
        const float *row = rows + r * dim;
        size_t q = 0;
        for (; q + 4 <= nq; q += 4) {
            const float *q0 = queries + q * dim, *q1 = q0 + dim, *q2 = q1 + dim, *q3 = q2 + dim;
            jc_v8 a0 = {0}, b0 = {0}, a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0}, a3 = {0}, b3 = {0};
            for (size_t i = 0; i < body; i += 16) {
                jc_v8 x = LOAD8(row + i), y = LOAD8(row + i + 8);
                a0 += x * LOAD8(q0 + i), b0 += y * LOAD8(q0 + i + 8);
                a1 += x * LOAD8(q1 + i), b1 += y * LOAD8(q1 + i + 8);
                a2 += x * LOAD8(q2 + i), b2 += y * LOAD8(q2 + i + 8);
                a3 += x * LOAD8(q3 + i), b3 += y * LOAD8(q3 + i + 8);
            }
            scores[q * stride + r] = FINISH(a0, b0, row, q0, body, dim);
            scores[(q + 1) * stride + r] = FINISH(a1, b1, row, q1, body, dim);
            scores[(q + 2) * stride + r] = FINISH(a2, b2, row, q2, body, dim);
            scores[(q + 3) * stride + r] = FINISH(a3, b3, row, q3, body, dim);
        }
        for (; q < nq; q++) {
            const float *q0 = queries + q * dim;
            jc_v8 a0 = {0}, b0 = {0};
            for (size_t i = 0; i < body; i += 16) {
                a0 += LOAD8(row + i) * LOAD8(q0 + i);
                b0 += LOAD8(row + i + 8) * LOAD8(q0 + i + 8);
            }
            scores[q * stride + r] = FINISH(a0, b0, row, q0, body, dim);
        }
    }
}

typedef struct {
    const jc_run *runs;
    size_t nruns, dim, begin, end, nq, stride;
    uint32_t row_format;
    const float *queries;
    float *scores;
    float *widened; /* JC_F16_CHUNK rows of scratch for float16 rows */
} jc_scan_job;

/* Scores rows begin..end-1 (index rows) of every run for the current query block. float16 rows are
 * widened (exactly) a chunk at a time and scored as float32 rows are. */
static void *scan_job(void *arg)
{
    const jc_scan_job *job = arg;
    size_t dim = job->dim;
    for (size_t i = 0; i < job->nruns; i++) {
        const jc_run *run = &job->runs[i];
        size_t lo = run->first > job->begin ? run->first : job->begin;
        size_t hi = run->first + run->count < job->end ? run->first + run->count : job->end;
        if (lo >= hi)
            continue;
        if (job->row_format != JACLIP_INDEX_ROWS_FLOAT16) {
            score_rows((const float *)run->vectors + (lo - run->first) * dim, hi - lo, dim, job->queries, job->nq,
                       job->scores + lo, job->stride);
            continue;
        }
        for (size_t r = lo; r < hi; r += JC_F16_CHUNK) {
            size_t n = hi - r < JC_F16_CHUNK ? hi - r : JC_F16_CHUNK;
            widen_f16(job->widened, (const uint16_t *)run->vectors + (r - run->first) * dim, n * dim);
            score_rows(job->widened, n, dim, job->queries, job->nq, job->scores + r, job->stride);
        }
    }
    return NULL;
}

static size_t scan_threads(size_t rows, size_t dim)
{
    size_t work = rows * dim;
    if (work < JC_PARALLEL_MIN_WORK)
        return 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    size_t n = cpus > 1 ? (size_t)cpus : 1;
    if (n > JC_MAX_THREADS)
        n = JC_MAX_THREADS;
    if (n > work / (JC_PARALLEL_MIN_WORK / 2))
        n = work / (JC_PARALLEL_MIN_WORK / 2);
    return n ? n : 1;
}

/* Scores every row against nq queries, splitting the rows between threads; a thread that cannot be
 * started leaves its share to the calling thread. */
static void scan(const jc_run *runs, size_t nruns, size_t rows, size_t dim, uint32_t row_format,
                 const float *queries, size_t nq, float *scores, float *widened)
{
    size_t nthreads = scan_threads(rows, dim);
    jc_scan_job jobs[JC_MAX_THREADS];
    pthread_t threads[JC_MAX_THREADS];
    bool started[JC_MAX_THREADS] = {false};
    for (size_t t = 0; t < nthreads; t++)
        jobs[t] = (jc_scan_job){runs,    nruns, dim,     rows * t / nthreads, rows * (t + 1) / nthreads, nq, rows,
                                row_format, queries, scores, widened ? widened + t * JC_F16_CHUNK * dim : NULL};
    for (size_t t = 1; t < nthreads; t++)
        started[t] = pthread_create(&threads[t], NULL, scan_job, &jobs[t]) == 0;
    scan_job(&jobs[0]);
    for (size_t t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(threads[t], NULL);
        else
            scan_job(&jobs[t]);
    }
}

jaclip_status jaclip_index_search(jaclip_tensor **out_indices, jaclip_tensor **out_scores, const jaclip_index *index,
                                  const jaclip_tensor *queries, size_t k)
{
    jaclip_tensor *idx = NULL, *val = NULL;
    jaclip_status st;
    if (out_indices)
        *out_indices = NULL;
    if (out_scores)
        *out_scores = NULL;
    if (!out_indices && !out_scores)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out_indices and out_scores are both NULL");
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (k == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "k must be at least 1");
    if ((st = jc_check_2d(queries, JACLIP_DTYPE_FLOAT32, "queries")))
        return st;
    if ((uint64_t)queries->shape[1] != index->dim)
        return jc_fail(JACLIP_ERROR_SHAPE, "queries have %lld columns, the index has %zu",
                       (long long)queries->shape[1], index->dim);
    size_t nq = (size_t)queries->shape[0], dim = index->dim, rows = index->count;
    if ((st = check_finite(queries->data, nq, dim, "queries")))
        return st;
    size_t kk = k < rows ? k : rows;
    if ((st = jc_tensor_new_2d(&idx, JACLIP_DTYPE_INT64, (int64_t)nq, (int64_t)kk)) ||
        (st = jc_tensor_new_2d(&val, JACLIP_DTYPE_FLOAT32, (int64_t)nq, (int64_t)kk)))
        goto done;
    if (kk > 0 && nq > 0) {
        jc_run *runs = malloc((index->nruns + 1) * sizeof *runs);
        float *block = malloc(JC_QUERY_BLOCK * dim * sizeof *block);
        float *scores = malloc(JC_QUERY_BLOCK * rows * sizeof *scores);
        bool f16 = index->row_format == JACLIP_INDEX_ROWS_FLOAT16;
        float *widened = f16 ? malloc(JC_MAX_THREADS * JC_F16_CHUNK * dim * sizeof *widened) : NULL;
        if (!runs || !block || !scores || (f16 && !widened)) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory searching %zu rows", rows);
        } else {
            size_t nruns = build_runs(index, runs);
            const float *q = queries->data;
            for (size_t first = 0; first < nq; first += JC_QUERY_BLOCK) {
                size_t n = nq - first < JC_QUERY_BLOCK ? nq - first : JC_QUERY_BLOCK;
                for (size_t j = 0; j < n; j++)
                    normalize_row(block + j * dim, q + (first + j) * dim, dim);
                scan(runs, nruns, rows, dim, index->row_format, block, n, scores, widened);
                for (size_t j = 0; j < n; j++)
                    jc_topk_row(scores + j * rows, (int64_t)rows, kk, (int64_t *)idx->data + (first + j) * kk,
                                (float *)val->data + (first + j) * kk);
            }
        }
        free(runs);
        free(block);
        free(scores);
        free(widened);
    }
done:
    if (st) {
        jaclip_tensor_free(idx);
        jaclip_tensor_free(val);
        return st;
    }
    if (out_indices)
        *out_indices = idx;
    else
        jaclip_tensor_free(idx);
    if (out_scores)
        *out_scores = val;
    else
        jaclip_tensor_free(val);
    return JACLIP_OK;
}

/* ---- file format ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t version, dim, flags;
    uint64_t committed, rows, segments, sequence, deleted;
    char fingerprint[JC_FINGERPRINT_FIELD];
} jc_file_header;

static uint32_t header_size_of(uint32_t version) { return version == 1 ? JC_HEADER_SIZE_V1 : JC_HEADER_SIZE; }

static void encode_file_header(unsigned char *h, const jc_file_header *fh)
{
    uint32_t hs = header_size_of(fh->version);
    memset(h, 0, hs);
    memcpy(h, JC_FILE_MAGIC, 8);
    put_u32(h + 8, fh->version);
    put_u32(h + 12, hs);
    put_u32(h + 16, fh->dim);
    put_u32(h + 20, fh->version == 1 ? 0 : fh->flags);
    put_u64(h + 24, fh->committed);
    put_u64(h + 32, fh->rows);
    put_u64(h + 40, fh->segments);
    put_u64(h + 48, fh->sequence);
    if (fh->version == 1) {
        put_u32(h + 60, crc32_of(0, h, 60));
        return;
    }
    put_u64(h + 56, fh->deleted);
    memcpy(h + 64, fh->fingerprint, strnlen(fh->fingerprint, JC_FINGERPRINT_FIELD - 1));
    put_u32(h + 124, crc32_of(0, h, 124));
}

/* Checks the header bytes h[0..got) (got: what could be read of the first JC_HEADER_SIZE bytes). The
 * committed size is checked against the file size separately (check_committed), after the header
 * was read: see jaclip_index_load. */
static jaclip_status decode_file_header(jc_file_header *fh, const unsigned char *h, size_t got, const char *path)
{
    memset(fh, 0, sizeof *fh);
    if (got < 8 || memcmp(h, JC_FILE_MAGIC, 8) != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: not a jaclip index (no JACLIPIX signature)", path);
    if (got < 12)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: %zu bytes, shorter than the file header", path, got);
    uint32_t version = get_u32(h + 8);
    if (version != 1 && version != 2)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: index format version %u; this library reads versions 1 and 2",
                       path, version);
    uint32_t hs = header_size_of(version);
    if (got < hs)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: %zu bytes, shorter than the %u-byte header", path,
                       got, hs);
    if (get_u32(h + hs - 4) != crc32_of(0, h, hs - 4))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: the file header fails its CRC32 check", path);
    fh->version = version;
    fh->dim = get_u32(h + 16);
    fh->flags = get_u32(h + 20);
    fh->committed = get_u64(h + 24);
    fh->rows = get_u64(h + 32);
    fh->segments = get_u64(h + 40);
    fh->sequence = get_u64(h + 48);
    if (version == 1) {
        if (get_u32(h + 12) != hs || fh->flags != 0 || get_u32(h + 56) != 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                           "%s: header size, flags or reserved field not as version 1 writes", path);
    } else {
        fh->deleted = get_u64(h + 56);
        if (get_u32(h + 12) != hs || (fh->flags & ~JC_FLAG_FLOAT16) || get_u32(h + 120) != 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                           "%s: header size, flags or reserved field not as version 2 writes", path);
        const char *fp = (const char *)h + 64;
        size_t len = strnlen(fp, JC_FINGERPRINT_FIELD);
        for (size_t i = len; i < JC_FINGERPRINT_FIELD; i++)
            if (fp[i] != 0)
                len = JC_FINGERPRINT_FIELD; /* unterminated or garbage after the NUL */
        if (len != 0 && !valid_fingerprint(fp, len))
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: the model fingerprint field is not valid",
                           path);
        memcpy(fh->fingerprint, fp, len);
        fh->fingerprint[len] = '\0';
        if (fh->deleted > fh->rows)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu rows deleted of %llu", path,
                           (unsigned long long)fh->deleted, (unsigned long long)fh->rows);
    }
    if (fh->dim == 0 || fh->dim > JACLIP_INDEX_MAX_DIM)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: dim %u is out of range 1..%d", path, fh->dim,
                       JACLIP_INDEX_MAX_DIM);
    if (fh->committed < hs || fh->committed % JC_ALIGN != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: committed size %llu is not a valid length", path,
                       (unsigned long long)fh->committed);
    return JACLIP_OK;
}

static jaclip_status check_committed(const jc_file_header *fh, uint64_t file_size, const char *path)
{
    if (fh->committed > file_size)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: the header records %llu bytes, the file has %llu",
                       path, (unsigned long long)fh->committed, (unsigned long long)file_size);
    return JACLIP_OK;
}

static uint32_t row_format_of(const jc_file_header *fh)
{
    return fh->flags & JC_FLAG_FLOAT16 ? JACLIP_INDEX_ROWS_FLOAT16 : JACLIP_INDEX_ROWS_FLOAT32;
}

/* Layout of a row segment's payload: vectors, label offsets (8-aligned), stamps (version 2), labels,
 * padding. */
typedef struct {
    uint64_t vector_bytes, offsets_at, stamps_at, labels_at, payload_bytes;
} jc_segment_layout;

static bool segment_layout(jc_segment_layout *l, uint64_t rows, uint64_t dim, uint64_t value_bytes, bool stamps,
                           uint64_t label_bytes)
{
    uint64_t v, o, s;
    if (!mul_add_u64(rows, dim * value_bytes, 0, &v) || v > UINT64_MAX - 8)
        return false;
    l->vector_bytes = v;
    l->offsets_at = align_up(v, 8);
    if (!mul_add_u64(rows, 8, l->offsets_at, &o) || !mul_add_u64(rows, stamps ? JC_STAMP_BYTES : 0, o, &s) ||
        s > UINT64_MAX - label_bytes - JC_ALIGN)
        return false;
    l->stamps_at = o;
    l->labels_at = s;
    l->payload_bytes = align_up(s + label_bytes, JC_ALIGN);
    return true;
}

static void encode_segment_header(unsigned char *h, const char *magic, uint64_t rows, uint64_t label_bytes,
                                  uint64_t payload_bytes, uint32_t payload_crc)
{
    memset(h, 0, JC_SEGMENT_HEADER_SIZE);
    memcpy(h, magic, 4);
    put_u32(h + 4, JC_SEGMENT_HEADER_SIZE);
    put_u64(h + 8, rows);
    put_u64(h + 16, label_bytes);
    put_u64(h + 24, payload_bytes);
    put_u32(h + 32, payload_crc);
    put_u32(h + 60, crc32_of(0, h, 60));
}

/* Checks the labels of a segment: offsets run from 0 through the blob, each label is UTF-8 ended by
 * its NUL, and the last ends at the end of the blob. */
static jaclip_status check_labels(const uint64_t *offsets, const char *labels, uint64_t rows, uint64_t bytes,
                                  const char *path, size_t segment)
{
    uint64_t at = 0;
    for (uint64_t r = 0; r < rows; r++) {
        if (offsets[r] != at)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu label %llu starts at %llu, not %llu",
                           path, segment, (unsigned long long)r, (unsigned long long)offsets[r],
                           (unsigned long long)at);
        const char *end = at < bytes ? memchr(labels + at, 0, bytes - at) : NULL;
        if (!end)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu label %llu runs past its segment",
                           path, segment, (unsigned long long)r);
        size_t len = (size_t)(end - (labels + at)), bad = utf8_invalid_at((const unsigned char *)labels + at, len);
        if (bad != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu label %llu is not UTF-8 at byte %zu",
                           path, segment, (unsigned long long)r, bad);
        at += len + 1;
    }
    if (at != bytes)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu has %llu label bytes, its labels use %llu",
                       path, segment, (unsigned long long)bytes, (unsigned long long)at);
    return JACLIP_OK;
}

/* Checks a tombstone segment's row numbers (strictly increasing, naming stored rows before it that are
 * not deleted yet) and marks them in dead[]. */
static jaclip_status apply_tombstones(const unsigned char *ids, uint64_t count, uint64_t rows_before,
                                      unsigned char *dead, uint64_t *deleted, const char *path, size_t segment)
{
    uint64_t prev = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t id = get_u64(ids + i * 8);
        if (id >= rows_before || (i > 0 && id <= prev) || dead[id])
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                           "%s: corrupted: deletion segment %zu names row %llu (%s)", path, segment,
                           (unsigned long long)id,
                           id >= rows_before ? "not stored before it" : dead[id] ? "already deleted" : "out of order");
        dead[id] = 1;
        prev = id;
    }
    *deleted += count;
    return JACLIP_OK;
}

/* Walks and checks every segment of the committed part of data, then fills index->runs with the rows
 * no tombstone deletes. */
static jaclip_status parse_segments(jaclip_index *index, const unsigned char *data, const jc_file_header *fh,
                                    uint32_t flags, const char *path)
{
    uint64_t pos = header_size_of(fh->version), rows = 0, deleted = 0;
    size_t seg = 0, nstored = 0;
    size_t value_bytes = row_bytes_of(index->row_format);
    jaclip_status st = JACLIP_OK;
    if (fh->segments > (fh->committed - pos) / (JC_SEGMENT_HEADER_SIZE + JC_ALIGN))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu segments cannot fit in %llu bytes", path,
                       (unsigned long long)fh->segments, (unsigned long long)fh->committed);
    /* Every stored row takes at least a label offset and a NUL. */
    if (fh->rows > fh->committed / 9)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu rows cannot fit in %llu bytes", path,
                       (unsigned long long)fh->rows, (unsigned long long)fh->committed);
    jc_run *stored = calloc(fh->segments ? (size_t)fh->segments : 1, sizeof *stored);
    unsigned char *dead = fh->deleted ? calloc((size_t)fh->rows, 1) : NULL;
    if (!stored || (fh->deleted && !dead)) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory loading %s", path);
        goto done;
    }
    for (; pos < fh->committed; seg++) {
        const unsigned char *h = data + pos;
        if (seg >= fh->segments) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more segments than the %llu the header records",
                         path, (unsigned long long)fh->segments);
            goto done;
        }
        if (fh->committed - pos < JC_SEGMENT_HEADER_SIZE) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu header at byte %llu is cut short",
                         path, seg, (unsigned long long)pos);
            goto done;
        }
        bool is_rows = memcmp(h, JC_SEGMENT_MAGIC, 4) == 0;
        bool is_tomb = fh->version >= 2 && memcmp(h, JC_TOMBSTONE_MAGIC, 4) == 0;
        if ((!is_rows && !is_tomb) || get_u32(h + 60) != crc32_of(0, h, 60)) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu header at byte %llu is damaged", path,
                         seg, (unsigned long long)pos);
            goto done;
        }
        uint64_t count = get_u64(h + 8), label_bytes = get_u64(h + 16), payload_bytes = get_u64(h + 24);
        jc_segment_layout l;
        bool lengths_ok = get_u32(h + 4) == JC_SEGMENT_HEADER_SIZE && count != 0;
        if (lengths_ok && is_rows)
            lengths_ok = segment_layout(&l, count, fh->dim, value_bytes, fh->version >= 2, label_bytes) &&
                         l.payload_bytes == payload_bytes;
        if (lengths_ok && is_tomb)
            lengths_ok = label_bytes == 0 && count <= UINT64_MAX / 16 && payload_bytes == align_up(count * 8, JC_ALIGN);
        if (!lengths_ok || (get_u32(h + 36) | get_u32(h + 40)) != 0) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu has inconsistent lengths", path, seg);
            goto done;
        }
        if (payload_bytes > fh->committed - pos - JC_SEGMENT_HEADER_SIZE) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu (%llu bytes) runs past the end", path,
                         seg, (unsigned long long)payload_bytes);
            goto done;
        }
        const unsigned char *payload = h + JC_SEGMENT_HEADER_SIZE;
        uint32_t crc = get_u32(h + 32);
        /* Without the checksum, the label and row-number checks below still make every pointer safe. */
        if (!(flags & JACLIP_INDEX_NO_CHECKSUM) && crc32_of(0, payload, payload_bytes) != crc) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu data fails its CRC32 check", path, seg);
            goto done;
        }
        if (is_tomb) {
            if (count > fh->deleted - deleted || !dead) {
                st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more deletions than the %llu the header records",
                             path, (unsigned long long)fh->deleted);
                goto done;
            }
            if ((st = apply_tombstones(payload, count, rows, dead, &deleted, path, seg)))
                goto done;
        } else {
            const uint64_t *offsets = (const uint64_t *)(payload + l.offsets_at);
            if ((st = check_labels(offsets, (const char *)payload + l.labels_at, count, label_bytes, path, seg)))
                goto done;
            if (count > fh->rows - rows) {
                st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more rows than the %llu the header records",
                             path, (unsigned long long)fh->rows);
                goto done;
            }
            if (!(flags & JACLIP_INDEX_NO_CHECKSUM)) {
                size_t bad = first_bad_value(payload, (size_t)count * fh->dim, index->row_format);
                if (bad != SIZE_MAX) {
                    st = jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                                 "%s: corrupted: segment %zu row %zu column %zu holds a value no writer stores (not "
                                 "finite, or |v| >= 2 in a unit-length row)",
                                 path, seg, bad / fh->dim, bad % fh->dim);
                    goto done;
                }
            }
            stored[nstored++] = (jc_run){payload, offsets, (const char *)payload + l.labels_at,
                                         fh->version >= 2 ? payload + l.stamps_at : NULL, (size_t)count, 0, rows};
            rows += count;
        }
        pos += JC_SEGMENT_HEADER_SIZE + payload_bytes;
    }
    if (seg != fh->segments || rows != fh->rows || deleted != fh->deleted) {
        st = jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                     "%s: corrupted: the header records %llu rows (%llu deleted) in %llu segments, the file holds "
                     "%llu (%llu deleted) in %zu",
                     path, (unsigned long long)fh->rows, (unsigned long long)fh->deleted,
                     (unsigned long long)fh->segments, (unsigned long long)rows, (unsigned long long)deleted, seg);
        goto done;
    }
    /* The live rows: each stored run split around its deleted rows. */
    index->runs = calloc(nstored + (size_t)deleted + 1, sizeof *index->runs);
    if (!index->runs) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory loading %s", path);
        goto done;
    }
    size_t next = 0, es = value_bytes * fh->dim;
    for (size_t i = 0; i < nstored; i++) {
        const jc_run *run = &stored[i];
        size_t j = 0;
        while (j < run->count) {
            while (dead && j < run->count && dead[run->file_row + j])
                j++;
            size_t start = j;
            while (j < run->count && !(dead && dead[run->file_row + j]))
                j++;
            if (j > start) {
                index->runs[index->nruns++] =
                    (jc_run){(const unsigned char *)run->vectors + start * es, run->label_offsets + start, run->labels,
                             run->stamps ? run->stamps + start * JC_STAMP_BYTES : NULL, j - start, next,
                             run->file_row + start};
                next += j - start;
            }
        }
    }
    index->file_rows = index->count = next;
done:
    free(stored);
    free(dead);
    return st;
}

static jaclip_status io_fail(const char *what, const char *path)
{
    return jc_fail(JACLIP_ERROR_IO, "%s: %s: %s", path, what, strerror(errno));
}

static jaclip_status read_all(int fd, void *buf, size_t size, uint64_t offset, const char *path)
{
    unsigned char *p = buf;
    while (size > 0) {
        ssize_t n = pread(fd, p, size, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_fail("cannot read", path);
        if (n == 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated while reading", path);
        p += n, size -= (size_t)n, offset += (uint64_t)n;
    }
    return JACLIP_OK;
}

/* Up to size bytes from offset 0; *got says how many there were. */
static jaclip_status read_some(int fd, void *buf, size_t size, size_t *got, const char *path)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < size) {
        ssize_t n = pread(fd, p + *got, size - *got, (off_t)*got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_fail("cannot read", path);
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return JACLIP_OK;
}

static jaclip_status write_all(int fd, const void *buf, size_t size, uint64_t offset, const char *path)
{
    const unsigned char *p = buf;
    while (size > 0) {
        ssize_t n = pwrite(fd, p, size, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return io_fail("cannot write", path);
        p += n, size -= (size_t)n, offset += (uint64_t)n;
    }
    return JACLIP_OK;
}

/* Reads and checks the header of an open index file, then its size. The header comes first: an
 * appender grows the file before it commits, so the size seen after the header is at least what the
 * header records (stat-ing first could see the file before an append and its header after). */
static jaclip_status read_header(int fd, jc_file_header *fh, const char *path)
{
    unsigned char h[JC_HEADER_SIZE];
    struct stat sb;
    size_t got;
    jaclip_status st;
    if (fstat(fd, &sb) != 0)
        return io_fail("cannot stat", path);
    if (!S_ISREG(sb.st_mode))
        return jc_fail(JACLIP_ERROR_IO, "%s: not a regular file", path);
    if ((st = read_some(fd, h, sizeof h, &got, path)) || (st = decode_file_header(fh, h, got, path)))
        return st;
    if (fstat(fd, &sb) != 0)
        return io_fail("cannot stat", path);
    return check_committed(fh, (uint64_t)sb.st_size, path);
}

static jaclip_status load_fd(jaclip_index **out, int fd, const char *path, uint32_t flags, jc_file_header *fh)
{
    jaclip_status st;
    *out = NULL;
    if ((st = read_header(fd, fh, path)))
        return st;
    if (fh->committed > SIZE_MAX)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "%s: too large for this address space", path);
    jaclip_index *index = NULL;
    if ((st = jaclip_index_create(&index, fh->dim)))
        return st;
    index->row_format = row_format_of(fh);
    memcpy(index->fingerprint, fh->fingerprint, sizeof index->fingerprint);
    /* Only the committed part is used: bytes past it are an unfinished append. */
    index->file_size = (size_t)fh->committed;
    if (flags & JACLIP_INDEX_MMAP) {
        void *map = mmap(NULL, index->file_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            st = io_fail("cannot map", path);
            goto fail;
        }
        index->file_data = map;
        index->file_mapped = true;
    } else {
        index->file_data = malloc(index->file_size);
        if (!index->file_data) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading %s (%zu bytes)", path, index->file_size);
            goto fail;
        }
        if ((st = read_all(fd, index->file_data, index->file_size, 0, path)))
            goto fail;
    }
    /* The header read first stays authoritative: an appender may commit more meanwhile, but never
     * changes the bytes it already committed. */
    if ((st = parse_segments(index, index->file_data, fh, flags, path)) ||
        (st = label_table_reserve(index, index->count)))
        goto fail;
    *out = index;
    return JACLIP_OK;
fail:
    jaclip_index_free(index);
    return st;
}

jaclip_status jaclip_index_load(jaclip_index **out, const char *path, uint32_t flags)
{
    jc_file_header fh;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if (flags & ~(JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown index flags 0x%x", (unsigned)flags);
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are read on little-endian hosts only");
    /* O_NONBLOCK: a FIFO or device under the name must not block the open; it is refused as not a
     * regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return io_fail("cannot open", path);
    jaclip_status st = load_fd(out, fd, path, flags, &fh);
    close(fd);
    return st;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* Streams a segment payload to fd at offset, keeping its CRC32. */
typedef struct {
    int fd;
    uint64_t offset;
    uint32_t crc;
    const char *path;
    unsigned char buf[1 << 16];
    size_t used;
} jc_writer;

static jaclip_status writer_flush(jc_writer *w)
{
    jaclip_status st = write_all(w->fd, w->buf, w->used, w->offset, w->path);
    w->offset += w->used;
    w->used = 0;
    return st;
}

static jaclip_status writer_put(jc_writer *w, const void *data, size_t size)
{
    const unsigned char *p = data;
    w->crc = crc32_of(w->crc, data, size);
    while (size > 0) {
        size_t n = sizeof w->buf - w->used < size ? sizeof w->buf - w->used : size;
        memcpy(w->buf + w->used, p, n);
        w->used += n, p += n, size -= n;
        if (w->used == sizeof w->buf) {
            jaclip_status st = writer_flush(w);
            if (st)
                return st;
        }
    }
    return JACLIP_OK;
}

static jaclip_status writer_zeros(jc_writer *w, size_t n)
{
    static const unsigned char zeros[JC_ALIGN];
    return writer_put(w, zeros, n);
}

static jc_writer *writer_new(int fd, uint64_t payload_offset, const char *path)
{
    jc_writer *w = malloc(sizeof *w);
    if (w)
        w->fd = fd, w->offset = payload_offset, w->crc = 0, w->path = path, w->used = 0;
    return w;
}

/* Writes one row segment of the rows of runs (labels re-based into one blob) at offset. */
static jaclip_status write_segment(int fd, uint64_t offset, const jc_run *runs, size_t nruns, size_t rows,
                                   const jc_file_header *fh, uint64_t label_bytes, const char *path,
                                   uint64_t *segment_bytes)
{
    jc_segment_layout l;
    jaclip_status st = JACLIP_OK;
    size_t dim = fh->dim, es = row_bytes_of(row_format_of(fh));
    bool stamps = fh->version >= 2;
    if (!segment_layout(&l, rows, dim, es, stamps, label_bytes))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index too large to write");
    jc_writer *w = writer_new(fd, offset + JC_SEGMENT_HEADER_SIZE, path);
    if (!w)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    for (size_t i = 0; i < nruns && !st; i++)
        st = writer_put(w, runs[i].vectors, runs[i].count * dim * es);
    if (!st)
        st = writer_zeros(w, (size_t)(l.offsets_at - l.vector_bytes));
    uint64_t base = 0;
    for (size_t i = 0; i < nruns && !st; i++) {
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            unsigned char le[8];
            put_u64(le, base);
            st = writer_put(w, le, 8);
            base += strlen(run_label(&runs[i], r)) + 1;
        }
    }
    for (size_t i = 0; i < nruns && stamps && !st; i++) {
        if (runs[i].stamps) {
            st = writer_put(w, runs[i].stamps, runs[i].count * JC_STAMP_BYTES);
        } else {
            for (size_t r = 0; r < runs[i].count && !st; r++)
                st = writer_zeros(w, JC_STAMP_BYTES);
        }
    }
    for (size_t i = 0; i < nruns && !st; i++)
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            const char *s = run_label(&runs[i], r);
            st = writer_put(w, s, strlen(s) + 1);
        }
    if (!st)
        st = writer_zeros(w, (size_t)(l.payload_bytes - l.labels_at - label_bytes));
    if (!st)
        st = writer_flush(w);
    if (!st) {
        unsigned char h[JC_SEGMENT_HEADER_SIZE];
        encode_segment_header(h, JC_SEGMENT_MAGIC, rows, label_bytes, l.payload_bytes, w->crc);
        st = write_all(fd, h, sizeof h, offset, path);
    }
    free(w);
    *segment_bytes = JC_SEGMENT_HEADER_SIZE + l.payload_bytes;
    return st;
}

/* Writes a tombstone segment deleting the stored rows ids[0..n) (increasing) at offset. */
static jaclip_status write_tombstones(int fd, uint64_t offset, const uint64_t *ids, size_t n, const char *path,
                                      uint64_t *segment_bytes)
{
    jaclip_status st = JACLIP_OK;
    uint64_t payload = align_up((uint64_t)n * 8, JC_ALIGN);
    jc_writer *w = writer_new(fd, offset + JC_SEGMENT_HEADER_SIZE, path);
    if (!w)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    for (size_t i = 0; i < n && !st; i++) {
        unsigned char le[8];
        put_u64(le, ids[i]);
        st = writer_put(w, le, 8);
    }
    if (!st)
        st = writer_zeros(w, (size_t)(payload - (uint64_t)n * 8));
    if (!st)
        st = writer_flush(w);
    if (!st) {
        unsigned char h[JC_SEGMENT_HEADER_SIZE];
        encode_segment_header(h, JC_TOMBSTONE_MAGIC, n, 0, payload, w->crc);
        st = write_all(fd, h, sizeof h, offset, path);
    }
    free(w);
    *segment_bytes = JC_SEGMENT_HEADER_SIZE + payload;
    return st;
}

static uint64_t run_label_bytes(const jc_run *runs, size_t nruns)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < nruns; i++)
        for (size_t r = 0; r < runs[i].count; r++)
            bytes += strlen(run_label(&runs[i], r)) + 1;
    return bytes;
}

static jaclip_status sync_fd(int fd, const char *path)
{
    return fdatasync(fd) == 0 ? JACLIP_OK : io_fail("cannot sync", path);
}

/* Makes a rename durable by syncing the directory that holds path. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* A new temporary file beside path, created with mode 0666 less the umask (as any new file), or with
 * the mode of the file it will replace, so an existing 0600 index is never widened. */
static int create_temp_beside(const char *path, char *tmp, size_t tmp_size)
{
    static unsigned counter;
    struct stat sb;
    bool keep_mode = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 2654435761u;
        snprintf(tmp, tmp_size, "%s.tmp-%d-%08x", path, (int)getpid(), r);
        int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd >= 0 && keep_mode && fchmod(fd, sb.st_mode & 07777) != 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        return fd;
    }
    errno = EEXIST;
    return -1;
}

jaclip_status jaclip_index_save(const jaclip_index *index, const char *path)
{
    jaclip_status st = JACLIP_OK;
    if (!index || !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "path" : "index");
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 40);
    jc_run *runs = malloc((index->nruns + 1) * sizeof *runs);
    if (!tmp || !runs) {
        free(tmp);
        free(runs);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory saving %s", path);
    }
    int fd = create_temp_beside(path, tmp, plen + 40);
    if (fd < 0) {
        st = io_fail("cannot create a temporary file beside", path);
        goto done;
    }
    size_t nruns = build_runs(index, runs);
    jc_file_header fh = {0};
    fh.version = JC_FORMAT_VERSION;
    fh.dim = (uint32_t)index->dim;
    fh.flags = index->row_format == JACLIP_INDEX_ROWS_FLOAT16 ? JC_FLAG_FLOAT16 : 0;
    fh.committed = JC_HEADER_SIZE;
    fh.rows = index->count;
    fh.sequence = 1;
    memcpy(fh.fingerprint, index->fingerprint, sizeof fh.fingerprint);
    if (index->count > 0) {
        uint64_t seg_bytes = 0;
        st = write_segment(fd, JC_HEADER_SIZE, runs, nruns, index->count, &fh, run_label_bytes(runs, nruns), tmp,
                           &seg_bytes);
        fh.committed += seg_bytes;
        fh.segments = 1;
    }
    unsigned char h[JC_HEADER_SIZE];
    encode_file_header(h, &fh);
    if (!st)
        st = write_all(fd, h, JC_HEADER_SIZE, 0, tmp);
    if (!st)
        st = sync_fd(fd, tmp);
    if (close(fd) != 0 && !st)
        st = io_fail("cannot close", tmp);
    if (!st && rename(tmp, path) != 0)
        st = io_fail("cannot rename the new index over it", path);
    if (st)
        unlink(tmp);
    else
        sync_parent_dir(path);
done:
    free(tmp);
    free(runs);
    return st;
}

/* Opens path read-write holding its exclusive flock. A writer that waited for the lock while another
 * replaced the file by rename (compaction) would hold the lock of a file no longer under that name:
 * then it opens the new one. */
static jaclip_status open_locked(const char *path, int *out_fd)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return io_fail("cannot open", path);
        struct stat a, b;
        if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode)) {
            jaclip_status st = S_ISREG(a.st_mode) ? io_fail("cannot stat", path)
                                                  : jc_fail(JACLIP_ERROR_IO, "%s: not a regular file", path);
            close(fd);
            return st;
        }
        while (flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                jaclip_status st = io_fail("cannot lock", path);
                close(fd);
                return st;
            }
        }
        if (stat(path, &b) == 0 && fstat(fd, &a) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            *out_fd = fd;
            return JACLIP_OK;
        }
        close(fd);
    }
    return jc_fail(JACLIP_ERROR_IO, "%s: replaced too often while waiting for its lock", path);
}

/* Rewrites the open, locked file at path with only its live rows, as version 2 (fingerprint NULL keeps
 * the file's). The caller closes fd afterwards, which lets waiting writers see the new file. */
static jaclip_status compact_locked(int fd, const char *path, const char *fingerprint)
{
    jc_file_header fh;
    jaclip_index *index = NULL;
    jaclip_status st = load_fd(&index, fd, path, JACLIP_INDEX_DEFAULT, &fh);
    if (!st && fingerprint)
        st = jaclip_index_set_fingerprint(index, fingerprint);
    if (!st)
        st = jaclip_index_save(index, path);
    jaclip_index_free(index);
    return st;
}

jaclip_status jaclip_index_compact_file(const char *path, const char *fingerprint)
{
    int fd;
    jaclip_status st;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if (fingerprint && fingerprint[0] && !valid_fingerprint(fingerprint, strnlen(fingerprint, JC_FINGERPRINT_FIELD)))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "a fingerprint is 1..%u printable ASCII characters without spaces", JC_FINGERPRINT_FIELD - 1);
    if ((st = open_locked(path, &fd)))
        return st;
    st = compact_locked(fd, path, fingerprint);
    close(fd);
    return st;
}

/* The stored-row numbers (increasing) of the live rows of the locked file whose label is in set. */
static jaclip_status find_doomed(int fd, const char *path, const jc_label_set *set, uint64_t **out_ids, size_t *out_n)
{
    jc_file_header fh;
    jaclip_index *index = NULL;
    *out_ids = NULL;
    *out_n = 0;
    /* Labels are checked in full; vectors are not needed. */
    jaclip_status st = load_fd(&index, fd, path, JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM, &fh);
    if (st)
        return st;
    uint64_t *ids = malloc((index->count ? index->count : 1) * sizeof *ids);
    size_t n = 0;
    if (!ids) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory removing rows from %s", path);
    } else {
        for (size_t i = 0; i < index->nruns; i++)
            for (size_t j = 0; j < index->runs[i].count; j++)
                if (label_set_has(set, run_label(&index->runs[i], j)))
                    ids[n++] = index->runs[i].file_row + j;
    }
    jaclip_index_free(index);
    *out_ids = ids;
    *out_n = n;
    return st;
}

jaclip_status jaclip_index_replace_file(const char *path, const char *const *remove_labels, size_t nremove,
                                        const jaclip_tensor *embeddings, const char *const *labels,
                                        const jaclip_index_stamp *stamps, size_t *out_removed)
{
    jaclip_status st;
    size_t rows = 0, label_bytes = 0;
    int fd = -1;
    jc_file_header fh;
    jc_label_set set = {NULL, 0};
    uint64_t *ids = NULL;
    size_t nids = 0;
    void *vectors = NULL;
    uint64_t *offsets = NULL;
    char *blob = NULL;
    unsigned char *stamp_bytes = NULL;
    float *scratch = NULL;
    if (out_removed)
        *out_removed = 0;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if ((st = check_label_list(remove_labels, nremove)))
        return st;
    if (embeddings && (st = jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings")))
        return st;
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    for (;;) {
        /* Appenders queue on the lock; readers need none (they only use the committed part). */
        if ((st = open_locked(path, &fd)) || (st = read_header(fd, &fh, path)))
            goto done;
        if (fh.version >= 2 || (nremove == 0 && !stamps))
            break;
        /* Deletions and stamps need version 2: upgrade the file in place (atomically), then retry. */
        st = compact_locked(fd, path, NULL);
        close(fd);
        fd = -1;
        if (st)
            goto done;
    }
    size_t dim = fh.dim;
    if (embeddings && (st = check_rows(embeddings, labels, dim, &rows, &label_bytes)))
        goto done;
    if (nremove > 0) {
        if ((st = label_set_build(&set, remove_labels, nremove)) || (st = find_doomed(fd, path, &set, &ids, &nids)))
            goto done;
    }
    if (rows == 0 && nids == 0)
        goto done;
    uint32_t row_format = row_format_of(&fh);
    jc_run run = {NULL, NULL, NULL, NULL, rows, 0, 0};
    if (rows > 0) {
        /* The rows go in normalised (and rounded to the file's row format), as add stores them. */
        vectors = malloc(rows * dim * row_bytes_of(row_format));
        offsets = malloc(rows * sizeof *offsets);
        blob = malloc(label_bytes);
        stamp_bytes = malloc(rows * JC_STAMP_BYTES);
        scratch = malloc(dim * sizeof *scratch);
        if (!vectors || !offsets || !blob || !stamp_bytes || !scratch) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory appending to %s", path);
            goto done;
        }
        size_t at = 0;
        for (size_t r = 0; r < rows; r++) {
            store_row(vectors, r, (const float *)embeddings->data + r * dim, dim, row_format, scratch);
            put_stamp(stamp_bytes + r * JC_STAMP_BYTES, stamps ? &stamps[r] : NULL);
            size_t len = strlen(labels[r]) + 1;
            offsets[r] = at;
            memcpy(blob + at, labels[r], len);
            at += len;
        }
        run.vectors = vectors, run.label_offsets = offsets, run.labels = blob, run.stamps = stamp_bytes;
    }
    /* Drop what an interrupted append left past the committed end, write and sync the new segments,
     * and only then commit them by rewriting the header (one write in the first sector). */
    uint64_t pos = fh.committed, seg_bytes = 0;
    if (ftruncate(fd, (off_t)fh.committed) != 0) {
        st = io_fail("cannot truncate the unfinished tail of", path);
        goto done;
    }
    if (nids > 0) {
        if ((st = write_tombstones(fd, pos, ids, nids, path, &seg_bytes)))
            goto done;
        pos += seg_bytes;
        fh.segments += 1;
        fh.deleted += nids;
    }
    if (rows > 0) {
        if ((st = write_segment(fd, pos, &run, 1, rows, &fh, label_bytes, path, &seg_bytes)))
            goto done;
        pos += seg_bytes;
        fh.segments += 1;
        fh.rows += rows;
    }
    if ((st = sync_fd(fd, path)))
        goto done;
    fh.committed = pos;
    fh.sequence += 1;
    unsigned char h[JC_HEADER_SIZE];
    encode_file_header(h, &fh);
    if ((st = write_all(fd, h, header_size_of(fh.version), 0, path)) || (st = sync_fd(fd, path)))
        goto done;
    if (out_removed)
        *out_removed = nids;
done:
    if (fd >= 0)
        close(fd);
    free(set.slots);
    free(ids);
    free(vectors);
    free(offsets);
    free(blob);
    free(stamp_bytes);
    free(scratch);
    return st;
}

jaclip_status jaclip_index_append_file(const char *path, const jaclip_tensor *embeddings, const char *const *labels)
{
    if (path && !embeddings)
        return jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings");
    return jaclip_index_replace_file(path, NULL, 0, embeddings, labels, NULL, NULL);
}

jaclip_status jaclip_index_remove_file(const char *path, const char *const *labels, size_t n, size_t *out_removed)
{
    return jaclip_index_replace_file(path, labels, n, NULL, NULL, NULL, out_removed);
}
