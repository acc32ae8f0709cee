/* Exact cosine top-k over an index's rows: queries normalised, scored a block at a time against every
 * row (split between threads above JC_PARALLEL_MIN_WORK), the k best of each kept. Built with -O3
 * (mk/lib.mk) so the scan vectorises. */
#include "index/index_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

/* On x86-64 the scan is compiled twice and picked at load time: AVX2 where the CPU has it, the
 * baseline elsewhere. Both sum in the same order, so they give bit-identical scores. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__gnu_linux__)
#define JC_SCAN_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define JC_SCAN_CLONES
#endif

typedef float jc_v8 __attribute__((vector_size(32)));
/* The same vector read from any float address. */
typedef float jc_v8_unaligned __attribute__((vector_size(32), aligned(4), may_alias));
#define LOAD8(p) (*(const jc_v8_unaligned *)(p))

/* The lanes summed in a fixed order after the scalar tail, so every code path rounds alike. */
#define FINISH(a, b, row, q, from, dim)                                                    \
    __extension__({                                                                        \
        jc_v8 s_ = (a) + (b);                                                              \
        float tail_ = 0;                                                                   \
        for (size_t i_ = (from); i_ < (dim); i_++)                                         \
            tail_ += (row)[i_] * (q)[i_];                                                  \
        ((s_[0] + s_[4]) + (s_[1] + s_[5])) + ((s_[2] + s_[6]) + (s_[3] + s_[7])) + tail_; \
    })

typedef struct {
    const jc_run *runs;
    size_t nruns, dim, begin, end, nq, stride;
    uint32_t row_format;
    const float *queries;
    float *scores;
    float *widened; /* JC_F16_CHUNK rows of scratch for float16 rows */
} jc_scan_job;

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
            jc_index_widen_f16(job->widened, (const uint16_t *)run->vectors + (r - run->first) * dim, n * dim);
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
    size_t n = jc_usable_cores();
    if (n > JC_MAX_THREADS)
        n = JC_MAX_THREADS;
    if (n > work / (JC_PARALLEL_MIN_WORK / 2))
        n = work / (JC_PARALLEL_MIN_WORK / 2);
    return n ? n : 1;
}

/* Scores every row against nq queries, splitting the rows between threads; a thread that cannot be
 * started leaves its share to the calling thread. */
static void scan(const jc_run *runs, size_t nruns, size_t rows, size_t dim, uint32_t row_format, const float *queries,
                 size_t nq, float *scores, float *widened)
{
    size_t nthreads = scan_threads(rows, dim);
    jc_scan_job jobs[JC_MAX_THREADS];
    pthread_t threads[JC_MAX_THREADS];
    bool started[JC_MAX_THREADS] = {false};
    for (size_t t = 0; t < nthreads; t++)
        jobs[t] = (jc_scan_job){.runs = runs,
                                .nruns = nruns,
                                .dim = dim,
                                .begin = rows * t / nthreads,
                                .end = rows * (t + 1) / nthreads,
                                .nq = nq,
                                .stride = rows,
                                .row_format = row_format,
                                .queries = queries,
                                .scores = scores,
                                .widened = widened ? widened + t * JC_F16_CHUNK * dim : NULL};
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

/* The ranks offset..offset+kk-1 of one query's scores over rows (all rows, or the passing ones:
 * pass[0..npass)), below-threshold ones as -1 / -INFINITY. top and topv hold offset + kk entries. */
static void rank_query(const float *scores, const size_t *pass, size_t npass, float *gathered, size_t offset,
                       size_t kk, float threshold, int64_t *top, float *topv, int64_t *out_idx, float *out_val)
{
    const float *from = scores;
    if (pass) {
        for (size_t i = 0; i < npass; i++)
            gathered[i] = scores[pass[i]];
        from = gathered;
    }
    jc_topk_row(from, (int64_t)npass, offset + kk, top, topv);
    for (size_t i = 0; i < kk; i++) {
        int64_t row = top[offset + i];
        float v = topv[offset + i];
        bool keep = v >= threshold;
        out_idx[i] = keep ? (pass ? (int64_t)pass[row] : row) : -1;
        out_val[i] = keep ? v : -INFINITY;
    }
}

jaclip_status jaclip_index_search_with(jaclip_tensor **out_indices, jaclip_tensor **out_scores,
                                       const jaclip_index *index, const jaclip_tensor *queries, size_t k,
                                       const jaclip_search_options *options)
{
    jaclip_tensor *idx = NULL, *val = NULL;
    jaclip_status st;
    size_t *pass = NULL, npass = 0;
    if ((st = jc_outputs_begin(out_indices, out_scores, "out_indices and out_scores")))
        return st;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (k == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "k must be at least 1");
    if ((st = jc_check_2d(queries, JACLIP_DTYPE_FLOAT32, "queries")))
        return st;
    if ((uint64_t)queries->shape[1] != index->dim)
        return jc_fail(JACLIP_ERROR_SHAPE, "queries have %lld columns, the index has %zu", (long long)queries->shape[1],
                       index->dim);
    size_t nq = (size_t)queries->shape[0], dim = index->dim, rows = index->count;
    if ((st = jc_index_check_finite(queries->data, nq, dim, "queries")))
        return st;
    /* Filters first: k results whenever k rows pass. */
    npass = rows;
    if (jc_search_filters(options) && (st = jc_search_passing_rows(index, options, &pass, &npass)))
        return st;
    size_t offset = jc_search_offset(options), left = npass > offset ? npass - offset : 0;
    size_t kk = k < left ? k : left;
    if ((st = jc_tensor_new_2d(&idx, JACLIP_DTYPE_INT64, (int64_t)nq, (int64_t)kk)) ||
        (st = jc_tensor_new_2d(&val, JACLIP_DTYPE_FLOAT32, (int64_t)nq, (int64_t)kk)))
        goto done;
    if (kk > 0 && nq > 0) {
        jc_run *runs = malloc((index->nruns + 1) * sizeof *runs);
        float *block = malloc(JC_QUERY_BLOCK * dim * sizeof *block);
        float *scores = malloc(JC_QUERY_BLOCK * rows * sizeof *scores);
        float *gathered = pass ? malloc(npass * sizeof *gathered) : NULL;
        int64_t *top = malloc((offset + kk) * sizeof *top);
        float *topv = malloc((offset + kk) * sizeof *topv);
        bool f16 = index->row_format == JACLIP_INDEX_ROWS_FLOAT16;
        float *widened = f16 ? malloc(JC_MAX_THREADS * JC_F16_CHUNK * dim * sizeof *widened) : NULL;
        if (!runs || !block || !scores || (pass && !gathered) || !top || !topv || (f16 && !widened)) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory searching %zu rows", rows);
        } else {
            size_t nruns = jc_index_build_runs(index, runs);
            const float *q = queries->data;
            float threshold = jc_search_threshold(options);
            for (size_t first = 0; first < nq; first += JC_QUERY_BLOCK) {
                size_t n = nq - first < JC_QUERY_BLOCK ? nq - first : JC_QUERY_BLOCK;
                for (size_t j = 0; j < n; j++)
                    jc_normalize_row(block + j * dim, q + (first + j) * dim, dim);
                scan(runs, nruns, rows, dim, index->row_format, block, n, scores, widened);
                for (size_t j = 0; j < n; j++)
                    rank_query(scores + j * rows, pass, npass, gathered, offset, kk, threshold, top, topv,
                               (int64_t *)idx->data + (first + j) * kk, (float *)val->data + (first + j) * kk);
            }
        }
        free(runs);
        free(block);
        free(scores);
        free(gathered);
        free(top);
        free(topv);
        free(widened);
    }
done:
    free(pass);
    if (st) {
        jaclip_tensor_free(idx);
        jaclip_tensor_free(val);
        return st;
    }
    jc_outputs_give(out_indices, idx, out_scores, val);
    return JACLIP_OK;
}

jaclip_status jaclip_index_search(jaclip_tensor **out_indices, jaclip_tensor **out_scores, const jaclip_index *index,
                                  const jaclip_tensor *queries, size_t k)
{
    return jaclip_index_search_with(out_indices, out_scores, index, queries, k, NULL);
}
