/* The embedding index: L2-normalised float32 rows with UTF-8 labels, exact cosine top-k, and the
 * appendable on-disk format of docs/index-format.md. Plain C; no libtorch. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

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
#define JC_FORMAT_VERSION 1u
#define JC_HEADER_SIZE 64u
#define JC_SEGMENT_HEADER_SIZE 64u
#define JC_ALIGN 64u
/* Above this many row-floats a search is split across threads. */
#define JC_PARALLEL_MIN_WORK ((size_t)1 << 20)
#define JC_MAX_THREADS 8
/* Queries scored per pass over the rows: 8 x 512 floats stay in L1 while rows stream past. */
#define JC_QUERY_BLOCK 8

/* A run of consecutive rows that lie together in memory (one file segment, or the added rows). */
typedef struct {
    const float *vectors;
    const uint64_t *label_offsets; /* into labels; label i ends at its NUL */
    const char *labels;
    size_t count;
    size_t first; /* index of the run's first row */
} jc_run;

struct jaclip_index {
    size_t dim;
    size_t count;
    /* The loaded file: mapped, or read into malloc'd memory. Runs point into it. */
    void *file_data;
    size_t file_size;
    bool file_mapped;
    jc_run *runs;
    size_t nruns;
    size_t file_rows;
    /* Rows added in memory, after the file's rows. */
    float *added_vectors;
    uint64_t *added_offsets;
    char *added_labels;
    size_t added_count, added_cap, added_label_bytes, added_label_cap;
    /* Open-addressing table of row + 1 (0 = empty slot), keyed by label; capacity a power of two. */
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

/* ---- rows and labels -------------------------------------------------------------------------- */

static size_t build_runs(const jaclip_index *index, jc_run *runs)
{
    size_t n = 0;
    for (size_t i = 0; i < index->nruns; i++)
        runs[n++] = index->runs[i];
    if (index->added_count > 0)
        runs[n++] = (jc_run){index->added_vectors, index->added_offsets, index->added_labels, index->added_count,
                             index->file_rows};
    return n;
}

/* The run holding row i (i < count). */
static jc_run run_of(const jaclip_index *index, size_t i)
{
    if (i >= index->file_rows)
        return (jc_run){index->added_vectors, index->added_offsets, index->added_labels, index->added_count,
                        index->file_rows};
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

static const char *label_at(const jaclip_index *index, size_t i)
{
    jc_run run = run_of(index, i);
    return run.labels + run.label_offsets[i - run.first];
}

static uint64_t label_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void label_table_insert(size_t *slots, size_t cap, const char *label, size_t row)
{
    size_t i = (size_t)label_hash(label) & (cap - 1);
    while (slots[i])
        i = (i + 1) & (cap - 1);
    slots[i] = row + 1;
}

/* Keeps the table at most half full for `rows` rows; rebuilt in row order, so the first match along a
 * probe sequence is always the lowest row. */
static jaclip_status label_table_reserve(jaclip_index *index, size_t rows)
{
    size_t cap = index->label_cap ? index->label_cap : 64;
    while (cap / 2 < rows) {
        if (cap > SIZE_MAX / 4 / sizeof(size_t))
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index label table too large");
        cap *= 2;
    }
    if (cap == index->label_cap)
        return JACLIP_OK;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for the index label table");
    for (size_t r = 0; r < index->count; r++)
        label_table_insert(slots, cap, label_at(index, r), r);
    free(index->label_slots);
    index->label_slots = slots;
    index->label_cap = cap;
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

static jaclip_status check_finite(const float *data, size_t rows, size_t dim, const char *name)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < dim; c++)
            if (!isfinite(data[r * dim + c]))
                return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s row %zu column %zu is not finite", name, r, c);
    return JACLIP_OK;
}

/* Checks embeddings and labels as add and append take them; *rows gets N. */
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
    free(index->label_slots);
    free(index);
}

jaclip_status jaclip_index_add(jaclip_index *index, const jaclip_tensor *embeddings, const char *const *labels)
{
    jaclip_status st;
    size_t rows, label_bytes, floats;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if ((st = check_rows(embeddings, labels, index->dim, &rows, &label_bytes)))
        return st;
    if (rows == 0)
        return JACLIP_OK;
    size_t dim = index->dim, base = index->added_count, need = base + rows;
    if (need < base || !jc_mul_size(need, dim, &floats) || index->added_label_bytes > SIZE_MAX - label_bytes)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index too large");
    /* Grow everything first, so a failure leaves the index as it was. */
    size_t vec_cap = index->added_cap, off_cap = index->added_cap;
    if ((st = grow((void **)&index->added_vectors, &vec_cap, need, dim * sizeof(float), "rows")) ||
        (st = grow((void **)&index->added_offsets, &off_cap, need, sizeof(uint64_t), "labels")) ||
        (st = grow((void **)&index->added_labels, &index->added_label_cap, index->added_label_bytes + label_bytes, 1,
                   "labels")) ||
        (st = label_table_reserve(index, index->count + rows)))
        return st;
    index->added_cap = vec_cap < off_cap ? vec_cap : off_cap;
    const float *src = embeddings->data;
    for (size_t r = 0; r < rows; r++) {
        normalize_row(index->added_vectors + (base + r) * dim, src + r * dim, dim);
        size_t len = strlen(labels[r]) + 1;
        index->added_offsets[base + r] = index->added_label_bytes;
        memcpy(index->added_labels + index->added_label_bytes, labels[r], len);
        index->added_label_bytes += len;
    }
    index->added_count = need;
    for (size_t r = 0; r < rows; r++)
        label_table_insert(index->label_slots, index->label_cap, labels[r], index->count + r);
    index->count += rows;
    return JACLIP_OK;
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
        memcpy(dst, run.vectors + (r - run.first) * index->dim, n * index->dim * sizeof(float));
        dst += n * index->dim;
        r += n;
    }
    return JACLIP_OK;
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
    const float *queries;
    float *scores;
} jc_scan_job;

/* Scores rows begin..end-1 (index rows) of every run for the current query block. */
static void *scan_job(void *arg)
{
    const jc_scan_job *job = arg;
    for (size_t i = 0; i < job->nruns; i++) {
        const jc_run *run = &job->runs[i];
        size_t lo = run->first > job->begin ? run->first : job->begin;
        size_t hi = run->first + run->count < job->end ? run->first + run->count : job->end;
        if (lo < hi)
            score_rows(run->vectors + (lo - run->first) * job->dim, hi - lo, job->dim, job->queries, job->nq,
                       job->scores + lo, job->stride);
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
static void scan(const jc_run *runs, size_t nruns, size_t rows, size_t dim, const float *queries, size_t nq,
                 float *scores)
{
    size_t nthreads = scan_threads(rows, dim);
    jc_scan_job jobs[JC_MAX_THREADS];
    pthread_t threads[JC_MAX_THREADS];
    bool started[JC_MAX_THREADS] = {false};
    for (size_t t = 0; t < nthreads; t++)
        jobs[t] = (jc_scan_job){runs, nruns, dim, rows * t / nthreads, rows * (t + 1) / nthreads, nq, rows, queries,
                                scores};
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
        if (!runs || !block || !scores) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory searching %zu rows", rows);
        } else {
            size_t nruns = build_runs(index, runs);
            const float *q = queries->data;
            for (size_t first = 0; first < nq; first += JC_QUERY_BLOCK) {
                size_t n = nq - first < JC_QUERY_BLOCK ? nq - first : JC_QUERY_BLOCK;
                for (size_t j = 0; j < n; j++)
                    normalize_row(block + j * dim, q + (first + j) * dim, dim);
                scan(runs, nruns, rows, dim, block, n, scores);
                for (size_t j = 0; j < n; j++)
                    jc_topk_row(scores + j * rows, (int64_t)rows, kk, (int64_t *)idx->data + (first + j) * kk,
                                (float *)val->data + (first + j) * kk);
            }
        }
        free(runs);
        free(block);
        free(scores);
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
    uint32_t dim;
    uint64_t committed, rows, segments, sequence;
} jc_file_header;

static void encode_file_header(unsigned char *h, const jc_file_header *fh)
{
    memset(h, 0, JC_HEADER_SIZE);
    memcpy(h, JC_FILE_MAGIC, 8);
    put_u32(h + 8, JC_FORMAT_VERSION);
    put_u32(h + 12, JC_HEADER_SIZE);
    put_u32(h + 16, fh->dim);
    put_u32(h + 20, 0);
    put_u64(h + 24, fh->committed);
    put_u64(h + 32, fh->rows);
    put_u64(h + 40, fh->segments);
    put_u64(h + 48, fh->sequence);
    put_u32(h + 60, crc32_of(0, h, 60));
}

/* Checks the 64-byte header of a file of file_size bytes. */
static jaclip_status decode_file_header(jc_file_header *fh, const unsigned char *h, uint64_t file_size,
                                        const char *path)
{
    if (file_size < 8 || memcmp(h, JC_FILE_MAGIC, 8) != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: not a jaclip index (no JACLIPIX signature)", path);
    if (file_size < JC_HEADER_SIZE)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: %llu bytes, shorter than the %u-byte header", path,
                       (unsigned long long)file_size, JC_HEADER_SIZE);
    uint32_t version = get_u32(h + 8);
    if (version != JC_FORMAT_VERSION)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: index format version %u; this library reads version %u",
                       path, version, JC_FORMAT_VERSION);
    if (get_u32(h + 60) != crc32_of(0, h, 60))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: the file header fails its CRC32 check", path);
    fh->dim = get_u32(h + 16);
    fh->committed = get_u64(h + 24);
    fh->rows = get_u64(h + 32);
    fh->segments = get_u64(h + 40);
    fh->sequence = get_u64(h + 48);
    if (get_u32(h + 12) != JC_HEADER_SIZE || get_u32(h + 20) != 0 || get_u32(h + 56) != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: header size, flags or reserved field not as version 1 writes",
                       path);
    if (fh->dim == 0 || fh->dim > JACLIP_INDEX_MAX_DIM)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: dim %u is out of range 1..%d", path, fh->dim,
                       JACLIP_INDEX_MAX_DIM);
    if (fh->committed < JC_HEADER_SIZE || fh->committed % JC_ALIGN != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: committed size %llu is not a valid length", path,
                       (unsigned long long)fh->committed);
    if (fh->committed > file_size)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: the header records %llu bytes, the file has %llu",
                       path, (unsigned long long)fh->committed, (unsigned long long)file_size);
    return JACLIP_OK;
}

/* Layout of a segment's payload: vectors, then label offsets (8-aligned), then labels, padded. */
typedef struct {
    uint64_t vector_bytes, offsets_at, labels_at, payload_bytes;
} jc_segment_layout;

static bool segment_layout(jc_segment_layout *l, uint64_t rows, uint64_t dim, uint64_t label_bytes)
{
    uint64_t v, o;
    if (!mul_add_u64(rows, dim * 4, 0, &v) || v > UINT64_MAX - 8)
        return false;
    l->vector_bytes = v;
    l->offsets_at = align_up(v, 8);
    if (!mul_add_u64(rows, 8, l->offsets_at, &o) || o > UINT64_MAX - label_bytes - JC_ALIGN)
        return false;
    l->labels_at = o;
    l->payload_bytes = align_up(o + label_bytes, JC_ALIGN);
    return true;
}

static void encode_segment_header(unsigned char *h, uint64_t rows, uint64_t label_bytes, uint64_t payload_bytes,
                                  uint32_t payload_crc)
{
    memset(h, 0, JC_SEGMENT_HEADER_SIZE);
    memcpy(h, JC_SEGMENT_MAGIC, 4);
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

/* Walks and checks every segment of the committed part of data, filling index->runs. */
static jaclip_status parse_segments(jaclip_index *index, const unsigned char *data, const jc_file_header *fh,
                                    uint32_t flags, const char *path)
{
    uint64_t pos = JC_HEADER_SIZE, rows = 0;
    size_t seg = 0;
    if (fh->segments > (fh->committed - JC_HEADER_SIZE) / (JC_SEGMENT_HEADER_SIZE + JC_ALIGN))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu segments cannot fit in %llu bytes", path,
                       (unsigned long long)fh->segments, (unsigned long long)fh->committed);
    index->runs = calloc(fh->segments ? (size_t)fh->segments : 1, sizeof *index->runs);
    if (!index->runs)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory loading %s", path);
    for (; pos < fh->committed; seg++) {
        const unsigned char *h = data + pos;
        if (seg >= fh->segments)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more segments than the %llu the header records",
                           path, (unsigned long long)fh->segments);
        if (fh->committed - pos < JC_SEGMENT_HEADER_SIZE)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu header at byte %llu is cut short", path,
                           seg, (unsigned long long)pos);
        if (memcmp(h, JC_SEGMENT_MAGIC, 4) != 0 || get_u32(h + 60) != crc32_of(0, h, 60))
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu header at byte %llu is damaged", path,
                           seg, (unsigned long long)pos);
        uint64_t count = get_u64(h + 8), label_bytes = get_u64(h + 16), payload_bytes = get_u64(h + 24);
        jc_segment_layout l;
        if (get_u32(h + 4) != JC_SEGMENT_HEADER_SIZE || count == 0 ||
            !segment_layout(&l, count, fh->dim, label_bytes) || l.payload_bytes != payload_bytes)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu has inconsistent lengths", path, seg);
        if (payload_bytes > fh->committed - pos - JC_SEGMENT_HEADER_SIZE)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu (%llu bytes) runs past the end", path,
                           seg, (unsigned long long)payload_bytes);
        const unsigned char *payload = h + JC_SEGMENT_HEADER_SIZE;
        uint32_t crc = get_u32(h + 32);
        /* Without the checksum, the label checks below still make every pointer safe. */
        if (!(flags & JACLIP_INDEX_NO_CHECKSUM) && crc32_of(0, payload, payload_bytes) != crc)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu data fails its CRC32 check", path, seg);
        const uint64_t *offsets = (const uint64_t *)(payload + l.offsets_at);
        jaclip_status st = check_labels(offsets, (const char *)payload + l.labels_at, count, label_bytes, path, seg);
        if (st)
            return st;
        if (count > SIZE_MAX - rows)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: row count overflows", path);
        index->runs[seg] = (jc_run){(const float *)payload, offsets, (const char *)payload + l.labels_at,
                                    (size_t)count, (size_t)rows};
        rows += count;
        pos += JC_SEGMENT_HEADER_SIZE + payload_bytes;
    }
    if (seg != fh->segments || rows != fh->rows)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                       "%s: corrupted: the header records %llu rows in %llu segments, the file holds %llu in %zu", path,
                       (unsigned long long)fh->rows, (unsigned long long)fh->segments, (unsigned long long)rows, seg);
    index->nruns = seg;
    index->file_rows = index->count = (size_t)rows;
    return JACLIP_OK;
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

jaclip_status jaclip_index_load(jaclip_index **out, const char *path, uint32_t flags)
{
    jaclip_status st;
    unsigned char h[JC_HEADER_SIZE];
    struct stat sb;
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return io_fail("cannot open", path);
    if (fstat(fd, &sb) != 0) {
        st = io_fail("cannot stat", path);
        goto done_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = jc_fail(JACLIP_ERROR_IO, "%s: not a regular file", path);
        goto done_fd;
    }
    uint64_t size = (uint64_t)sb.st_size;
    memset(h, 0, sizeof h);
    if ((st = read_all(fd, h, size < JC_HEADER_SIZE ? (size_t)size : JC_HEADER_SIZE, 0, path)) ||
        (st = decode_file_header(&fh, h, size, path)))
        goto done_fd;
    if (fh.committed > SIZE_MAX) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "%s: too large for this address space", path);
        goto done_fd;
    }
    jaclip_index *index = NULL;
    if ((st = jaclip_index_create(&index, fh.dim)))
        goto done_fd;
    /* Only the committed part is used: bytes past it are an unfinished append. */
    index->file_size = (size_t)fh.committed;
    if (flags & JACLIP_INDEX_MMAP) {
        void *map = mmap(NULL, index->file_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            st = io_fail("cannot map", path);
            goto done_index;
        }
        index->file_data = map;
        index->file_mapped = true;
    } else {
        index->file_data = malloc(index->file_size);
        if (!index->file_data) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading %s (%zu bytes)", path, index->file_size);
            goto done_index;
        }
        if ((st = read_all(fd, index->file_data, index->file_size, 0, path)))
            goto done_index;
    }
    /* The header read first stays authoritative: an appender may commit more meanwhile, but never
     * changes the bytes it already committed. */
    if ((st = parse_segments(index, index->file_data, &fh, flags, path)) ||
        (st = label_table_reserve(index, index->count)))
        goto done_index;
    *out = index;
    close(fd);
    return JACLIP_OK;
done_index:
    jaclip_index_free(index);
done_fd:
    close(fd);
    return st;
}

/* Streams the payload of one segment holding every row to fd at offset, returning its CRC32. */
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

/* Writes one segment of rows taken from runs (labels re-based into one blob) at offset. */
static jaclip_status write_segment(int fd, uint64_t offset, const jc_run *runs, size_t nruns, size_t rows, size_t dim,
                                   uint64_t label_bytes, const char *path, uint64_t *segment_bytes)
{
    jc_segment_layout l;
    jaclip_status st = JACLIP_OK;
    if (!segment_layout(&l, rows, dim, label_bytes))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index too large to write");
    jc_writer *w = malloc(sizeof *w);
    if (!w)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    w->fd = fd, w->offset = offset + JC_SEGMENT_HEADER_SIZE, w->crc = 0, w->path = path, w->used = 0;
    for (size_t i = 0; i < nruns && !st; i++)
        st = writer_put(w, runs[i].vectors, runs[i].count * dim * sizeof(float));
    if (!st)
        st = writer_zeros(w, (size_t)(l.offsets_at - l.vector_bytes));
    uint64_t base = 0;
    for (size_t i = 0; i < nruns && !st; i++) {
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            unsigned char le[8];
            put_u64(le, base);
            st = writer_put(w, le, 8);
            base += strlen(runs[i].labels + runs[i].label_offsets[r]) + 1;
        }
    }
    for (size_t i = 0; i < nruns && !st; i++)
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            const char *s = runs[i].labels + runs[i].label_offsets[r];
            st = writer_put(w, s, strlen(s) + 1);
        }
    if (!st)
        st = writer_zeros(w, (size_t)(l.payload_bytes - l.labels_at - label_bytes));
    if (!st)
        st = writer_flush(w);
    if (!st) {
        unsigned char h[JC_SEGMENT_HEADER_SIZE];
        encode_segment_header(h, rows, label_bytes, l.payload_bytes, w->crc);
        st = write_all(fd, h, sizeof h, offset, path);
    }
    free(w);
    *segment_bytes = JC_SEGMENT_HEADER_SIZE + l.payload_bytes;
    return st;
}

static uint64_t run_label_bytes(const jc_run *runs, size_t nruns)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < nruns; i++)
        for (size_t r = 0; r < runs[i].count; r++)
            bytes += strlen(runs[i].labels + runs[i].label_offsets[r]) + 1;
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

jaclip_status jaclip_index_save(const jaclip_index *index, const char *path)
{
    jaclip_status st = JACLIP_OK;
    if (!index || !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "path" : "index");
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    jc_run *runs = malloc((index->nruns + 1) * sizeof *runs);
    if (!tmp || !runs) {
        free(tmp);
        free(runs);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory saving %s", path);
    }
    snprintf(tmp, plen + 32, "%s.tmp-XXXXXX", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        st = io_fail("cannot create a temporary file beside", path);
        goto done;
    }
    fchmod(fd, 0644);
    size_t nruns = build_runs(index, runs);
    jc_file_header fh = {(uint32_t)index->dim, JC_HEADER_SIZE, index->count, 0, 1};
    if (index->count > 0) {
        uint64_t seg_bytes = 0;
        st = write_segment(fd, JC_HEADER_SIZE, runs, nruns, index->count, index->dim, run_label_bytes(runs, nruns), tmp,
                           &seg_bytes);
        fh.committed += seg_bytes;
        fh.segments = 1;
    }
    unsigned char h[JC_HEADER_SIZE];
    encode_file_header(h, &fh);
    if (!st)
        st = write_all(fd, h, sizeof h, 0, tmp);
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

jaclip_status jaclip_index_append_file(const char *path, const jaclip_tensor *embeddings, const char *const *labels)
{
    jaclip_status st;
    size_t rows, label_bytes, dim;
    unsigned char h[JC_HEADER_SIZE];
    struct stat sb;
    jc_file_header fh;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if ((st = jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings")))
        return st;
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return io_fail("cannot open", path);
    /* Appenders queue on the lock; readers need none (they only use the committed part). */
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            st = io_fail("cannot lock", path);
            goto done;
        }
    }
    if (fstat(fd, &sb) != 0) {
        st = io_fail("cannot stat", path);
        goto done;
    }
    memset(h, 0, sizeof h);
    uint64_t size = (uint64_t)sb.st_size;
    if ((st = read_all(fd, h, size < JC_HEADER_SIZE ? (size_t)size : JC_HEADER_SIZE, 0, path)) ||
        (st = decode_file_header(&fh, h, size, path)))
        goto done;
    dim = fh.dim;
    if ((st = check_rows(embeddings, labels, dim, &rows, &label_bytes)))
        goto done;
    if (rows == 0)
        goto done;
    /* The rows go in normalised, as add stores them. */
    jc_run run = {NULL, NULL, NULL, rows, 0};
    float *vectors = malloc(rows * dim * sizeof *vectors);
    uint64_t *offsets = malloc(rows * sizeof *offsets);
    char *blob = malloc(label_bytes);
    if (!vectors || !offsets || !blob) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory appending to %s", path);
    } else {
        size_t at = 0;
        for (size_t r = 0; r < rows; r++) {
            normalize_row(vectors + r * dim, (const float *)embeddings->data + r * dim, dim);
            size_t len = strlen(labels[r]) + 1;
            offsets[r] = at;
            memcpy(blob + at, labels[r], len);
            at += len;
        }
        run.vectors = vectors, run.label_offsets = offsets, run.labels = blob;
        uint64_t seg_bytes = 0;
        /* Drop what an interrupted append left past the committed end, write and sync the segment, and
         * only then commit it by rewriting the header (one 64-byte write in the first sector). */
        if (ftruncate(fd, (off_t)fh.committed) != 0)
            st = io_fail("cannot truncate the unfinished tail of", path);
        if (!st)
            st = write_segment(fd, fh.committed, &run, 1, rows, dim, label_bytes, path, &seg_bytes);
        if (!st)
            st = sync_fd(fd, path);
        if (!st) {
            fh.committed += seg_bytes;
            fh.rows += rows;
            fh.segments += 1;
            fh.sequence += 1;
            encode_file_header(h, &fh);
            st = write_all(fd, h, sizeof h, 0, path);
        }
        if (!st)
            st = sync_fd(fd, path);
    }
    free(vectors);
    free(offsets);
    free(blob);
done:
    close(fd);
    return st;
}
