/* Duplicate groups of an index (jaclip_index_duplicates): rows whose file stamps record the same
 * content hash and size (exact), joined with rows whose cosine reaches a threshold (near). Near pairs
 * are found by blocking, never by scoring all n^2 pairs: sign-random-projection LSH (24 tables of 16
 * bits up to 64 Ki rows, up to 39 of 20 bits from 512 Ki); rows sharing a bucket in any table are scored exactly and joined
 * when the cosine reaches the threshold. Groups are the connected components (union-find), ordered by
 * their lowest row, rows increasing. docs/duplicates.md derives the recall. */
#include "index/index_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A pair at cosine c shares one table's bucket with probability p^B, p = 1 - acos(c)/pi; missed by
 * all L tables with (1 - p^B)^L: 0.8 % at 0.95 for B = 16, L = 24. Keys widen with the rows (B about
 * log2 n, so that few rows share a key by chance) and tables are added to keep that 0.8 % at 0.95. */
#define JC_DUP_MIN_BITS 16
#define JC_DUP_MAX_BITS 20
static const unsigned jc_dup_tables[JC_DUP_MAX_BITS - JC_DUP_MIN_BITS + 1] = {24, 27, 31, 35, 39};
#define JC_DUP_PROJ (20 * 39) /* the most projections: B = 20, L = 39 */
/* Buckets larger than this compare each row with the next JC_DUP_BUCKET_CAP rows of the bucket only,
 * so one crowded bucket cannot make the run quadratic. */
#define JC_DUP_BUCKET_CAP 64
#define JC_DUP_DEFAULT_THRESHOLD 0.95f
#define JC_DUP_MIN_THRESHOLD 0.5f

struct jaclip_dupes_options {
    float threshold;
    bool exact_only;
    size_t offset, limit; /* limit 0: every group from offset */
};

struct jaclip_dupes {
    size_t total, count;
    size_t *starts; /* [count + 1] into rows / scores */
    size_t *rows;
    float *scores;         /* cosine of each row to its group's first row */
    unsigned char *exact;  /* [count]: every row of the group has one recorded content hash */
};

jaclip_status jaclip_dupes_options_create(jaclip_dupes_options **out)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    if (!(*out = calloc(1, sizeof **out)))
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for duplicate options");
    (*out)->threshold = JC_DUP_DEFAULT_THRESHOLD;
    return JACLIP_OK;
}

void jaclip_dupes_options_free(jaclip_dupes_options *options) { free(options); }

jaclip_status jaclip_dupes_options_set_threshold(jaclip_dupes_options *options, float min_cosine)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (!(min_cosine >= JC_DUP_MIN_THRESHOLD && min_cosine <= 1.0f))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "a duplicate threshold is a cosine in [0.5, 1], not %g",
                       (double)min_cosine);
    options->threshold = min_cosine;
    return JACLIP_OK;
}

jaclip_status jaclip_dupes_options_set_exact_only(jaclip_dupes_options *options, int exact_only)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    options->exact_only = exact_only != 0;
    return JACLIP_OK;
}

jaclip_status jaclip_dupes_options_set_page(jaclip_dupes_options *options, size_t offset, size_t limit)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    options->offset = offset;
    options->limit = limit;
    return JACLIP_OK;
}

/* ---- rows ---- */

typedef struct {
    const jaclip_index *index;
    jc_run *runs;
    size_t nruns;
} jc_rows;

/* Row i as floats: a pointer into the index, or widened into scratch (float16 rows). */
static const float *row_at(const jc_rows *r, size_t i, float *scratch)
{
    size_t lo = 0, hi = r->nruns;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (r->runs[mid].first <= i)
            lo = mid;
        else
            hi = mid;
    }
    const jc_run *run = &r->runs[lo];
    size_t dim = r->index->dim;
    if (r->index->row_format == JACLIP_INDEX_ROWS_FLOAT16) {
        jc_index_widen_f16(scratch, (const uint16_t *)run->vectors + (i - run->first) * dim, dim);
        return scratch;
    }
    return (const float *)run->vectors + (i - run->first) * dim;
}

static bool stamp_at(const jc_rows *r, size_t i, jaclip_index_stamp *s)
{
    return jaclip_index_stamp_of(s, r->index, i) == JACLIP_OK && s->content_hash != 0;
}

/* Eight partial sums in a fixed order: the same cosine on every CPU running this build. */
static float dot(const float *a, const float *b, size_t dim)
{
    float s[8] = {0};
    size_t d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int l = 0; l < 8; l++)
            s[l] += a[d + l] * b[d + l];
    float t = 0;
    for (; d < dim; d++)
        t += a[d] * b[d];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
}

/* ---- union-find, the root always the group's lowest row ---- */

static size_t find(size_t *parent, size_t i)
{
    size_t root = i;
    while (parent[root] != root)
        root = parent[root];
    while (parent[i] != root) {
        size_t next = parent[i];
        parent[i] = root;
        i = next;
    }
    return root;
}

static void join(size_t *parent, size_t a, size_t b)
{
    a = find(parent, a);
    b = find(parent, b);
    if (a < b)
        parent[b] = a;
    else if (b < a)
        parent[a] = b;
}

/* ---- exact: equal (content hash, size) ---- */

typedef struct {
    uint64_t hash, size;
    size_t row;
} jc_hashed;

static int cmp_hashed(const void *pa, const void *pb)
{
    const jc_hashed *a = pa, *b = pb;
    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->size != b->size)
        return a->size < b->size ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

static jaclip_status join_exact(const jc_rows *r, size_t *parent)
{
    size_t n = r->index->count, m = 0;
    jc_hashed *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for %zu content hashes", n);
    for (size_t i = 0; i < n; i++) {
        jaclip_index_stamp s;
        if (stamp_at(r, i, &s))
            h[m++] = (jc_hashed){s.content_hash, s.size, i};
    }
    qsort(h, m, sizeof *h, cmp_hashed);
    for (size_t i = 1; i < m; i++)
        if (h[i].hash == h[i - 1].hash && h[i].size == h[i - 1].size)
            join(parent, h[i - 1].row, h[i].row);
    free(h);
    return JACLIP_OK;
}

/* ---- near: LSH blocking, then exact cosines ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Compares the rows of one bucket (rows increasing) pairwise, or each with the next
 * JC_DUP_BUCKET_CAP when the bucket is larger. */
static void join_bucket(const jc_rows *r, size_t *parent, const uint32_t *rows, size_t s, float threshold,
                        float *sa, float *sb)
{
    size_t dim = r->index->dim;
    for (size_t a = 0; a + 1 < s; a++) {
        const float *va = row_at(r, rows[a], sa);
        size_t end = s - a - 1 > JC_DUP_BUCKET_CAP ? a + 1 + JC_DUP_BUCKET_CAP : s;
        for (size_t b = a + 1; b < end; b++) {
            if (find(parent, rows[a]) == find(parent, rows[b]))
                continue;
            if (dot(va, row_at(r, rows[b], sb), dim) >= threshold)
                join(parent, rows[a], rows[b]);
        }
    }
}

/* On x86-64 compiled for AVX2 and the baseline, picked at load time (as the search scan): each sum is
 * element-wise in the same order, so both give the same bits, hence the same buckets. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__gnu_linux__)
#define JC_DUP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define JC_DUP_CLONES
#endif

/* acc[j] = sum over d of proj[d][j] * v[d]: the row's JC_DUP_PROJ projections (the cost of the run). */
JC_DUP_CLONES static void project(float *restrict acc, const float *restrict proj, const float *restrict v,
                                  size_t dim, size_t nproj)
{
    memset(acc, 0, nproj * sizeof *acc);
    for (size_t d = 0; d < dim; d++) {
        const float *p = proj + d * nproj;
        float x = v[d];
        for (size_t j = 0; j < nproj; j++)
            acc[j] += p[j] * x;
    }
}

typedef struct {
    const jc_rows *r;
    const float *proj;
    uint32_t *keys;
    size_t begin, end, bits, tables;
    bool ok;
} jc_key_job;

/* The bucket keys of rows begin..end-1: one 16-bit key per table. */
static void *key_job(void *arg)
{
    jc_key_job *j = arg;
    size_t dim = j->r->index->dim;
    float acc[JC_DUP_PROJ], *scratch = malloc(dim * sizeof *scratch);
    if (!(j->ok = scratch != NULL))
        return NULL;
    for (size_t i = j->begin; i < j->end; i++) {
        project(acc, j->proj, row_at(j->r, i, scratch), dim, j->bits * j->tables);
        for (size_t t = 0; t < j->tables; t++) {
            uint32_t k = 0;
            for (size_t b = 0; b < j->bits; b++)
                k = k << 1 | (acc[t * j->bits + b] > 0.0f);
            j->keys[i * j->tables + t] = k;
        }
    }
    free(scratch);
    return NULL;
}

/* Keys every row, the rows split between the usable cores (each row's keys do not depend on the
 * split); a thread that cannot be started leaves its share to the calling thread. */
static bool key_rows(const jc_rows *r, const float *proj, uint32_t *keys, size_t bits, size_t tables)
{
    size_t n = r->index->count, nthreads = jc_usable_cores();
    if (nthreads > JC_MAX_THREADS)
        nthreads = JC_MAX_THREADS;
    if (nthreads < 1 || n * r->index->dim < JC_PARALLEL_MIN_WORK)
        nthreads = 1;
    jc_key_job jobs[JC_MAX_THREADS];
    pthread_t threads[JC_MAX_THREADS];
    bool started[JC_MAX_THREADS] = {false}, ok = true;
    for (size_t t = 0; t < nthreads; t++)
        jobs[t] = (jc_key_job){r, proj, keys, n * t / nthreads, n * (t + 1) / nthreads, bits, tables, false};
    for (size_t t = 1; t < nthreads; t++)
        started[t] = pthread_create(&threads[t], NULL, key_job, &jobs[t]) == 0;
    key_job(&jobs[0]);
    for (size_t t = 1; t < nthreads; t++) {
        if (started[t])
            pthread_join(threads[t], NULL);
        else
            key_job(&jobs[t]);
    }
    for (size_t t = 0; t < nthreads; t++)
        ok = ok && jobs[t].ok;
    return ok;
}

static jaclip_status join_near(const jc_rows *r, size_t *parent, float threshold)
{
    size_t n = r->index->count, dim = r->index->dim;
    if (n < 2)
        return JACLIP_OK;
    if (n > UINT32_MAX)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "near duplicates handle at most %u rows", UINT32_MAX);
    size_t bits = JC_DUP_MIN_BITS;
    while (bits < JC_DUP_MAX_BITS && ((size_t)1 << bits) < n)
        bits++;
    size_t tables = jc_dup_tables[bits - JC_DUP_MIN_BITS], nproj = bits * tables;
    /* random +-1 hyperplanes, the same on every run: projections [dim][nproj] */
    float *proj = malloc(dim * nproj * sizeof *proj);
    uint32_t *keys = malloc(n * tables * sizeof *keys);
    uint32_t *order = malloc(n * sizeof *order);
    size_t *counts = malloc(((size_t)1 << bits) * sizeof *counts + sizeof *counts);
    float *scratch = malloc(3 * dim * sizeof *scratch);
    jaclip_status st = JACLIP_OK;
    if (!proj || !keys || !order || !counts || !scratch) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for near-duplicate search over %zu rows", n);
        goto done;
    }
    uint64_t seed = 0x6A61636C69704450ull; /* fixed: groups are reproducible */
    for (size_t i = 0; i < dim * nproj; i += 64) {
        uint64_t random = splitmix64(&seed);
        for (size_t j = i; j < i + 64 && j < dim * nproj; j++)
            proj[j] = (random >> (j - i)) & 1 ? 1.0f : -1.0f;
    }
    if (!key_rows(r, proj, keys, bits, tables)) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for near-duplicate search over %zu rows", n);
        goto done;
    }
    size_t nb = (size_t)1 << bits;
    for (size_t t = 0; t < tables; t++) {
        /* counting sort by key: rows stay increasing inside a bucket */
        memset(counts, 0, (nb + 1) * sizeof *counts);
        for (size_t i = 0; i < n; i++)
            counts[keys[i * tables + t] + 1]++;
        for (size_t k = 0; k < nb; k++)
            counts[k + 1] += counts[k];
        for (size_t i = 0; i < n; i++)
            order[counts[keys[i * tables + t]]++] = (uint32_t)i;
        /* counts[k] is now the end of bucket k */
        size_t begin = 0;
        for (size_t k = 0; k < nb; k++) {
            size_t end = counts[k];
            if (end - begin > 1)
                join_bucket(r, parent, order + begin, end - begin, threshold, scratch + dim, scratch + 2 * dim);
            begin = end;
        }
    }
done:
    free(proj);
    free(keys);
    free(order);
    free(counts);
    free(scratch);
    return st;
}

/* ---- the groups ---- */

void jaclip_dupes_free(jaclip_dupes *dupes)
{
    if (!dupes)
        return;
    free(dupes->starts);
    free(dupes->rows);
    free(dupes->scores);
    free(dupes->exact);
    free(dupes);
}

/* The page [offset, offset + limit) of the groups (roots increasing) into d. */
static jaclip_status collect(jaclip_dupes *d, const jc_rows *r, size_t *parent, size_t offset, size_t limit)
{
    size_t n = r->index->count, dim = r->index->dim;
    size_t *size = calloc(n ? n : 1, sizeof *size), *where = malloc((n ? n : 1) * sizeof *where);
    float *scratch = malloc(2 * (dim ? dim : 1) * sizeof *scratch);
    jaclip_status st = JACLIP_OK;
    if (!size || !where || !scratch) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for duplicate groups");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        size[parent[i] = find(parent, i)]++;
    size_t nrows = 0;
    for (size_t i = 0; i < n; i++) {
        where[i] = SIZE_MAX;
        if (parent[i] != i || size[i] < 2)
            continue;
        if (d->total >= offset && (limit == 0 || d->total - offset < limit)) {
            d->count++;
            nrows += size[i];
        }
        d->total++;
    }
    d->starts = malloc((d->count + 1) * sizeof *d->starts);
    d->rows = malloc((nrows ? nrows : 1) * sizeof *d->rows);
    d->scores = malloc((nrows ? nrows : 1) * sizeof *d->scores);
    d->exact = malloc(d->count ? d->count : 1);
    if (!d->starts || !d->rows || !d->scores || !d->exact) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for duplicate groups");
        goto done;
    }
    size_t g = 0, at = 0, seen = 0;
    d->starts[0] = 0;
    for (size_t i = 0; i < n && g < d->count; i++) {
        if (parent[i] != i || size[i] < 2)
            continue;
        if (seen++ < offset)
            continue;
        where[i] = at;
        at += size[i];
        d->starts[++g] = at;
    }
    for (size_t i = 0; i < n; i++)
        if (where[parent[i]] != SIZE_MAX)
            d->rows[where[parent[i]]++] = i; /* increasing, so the root (lowest row) comes first */
    for (g = 0; g < d->count; g++) {
        size_t b = d->starts[g], e = d->starts[g + 1];
        const float *first = row_at(r, d->rows[b], scratch);
        jaclip_index_stamp s0, s;
        bool exact = stamp_at(r, d->rows[b], &s0);
        for (size_t j = b; j < e; j++) {
            d->scores[j] = j == b ? 1.0f : dot(first, row_at(r, d->rows[j], scratch + dim), dim);
            if (exact && j > b && !(stamp_at(r, d->rows[j], &s) && s.content_hash == s0.content_hash &&
                                    s.size == s0.size))
                exact = false;
        }
        d->exact[g] = exact;
    }
done:
    free(size);
    free(where);
    free(scratch);
    return st;
}

jaclip_status jaclip_index_duplicates(jaclip_dupes **out, const jaclip_index *index, const jaclip_dupes_options *options)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    jaclip_dupes_options defaults = {JC_DUP_DEFAULT_THRESHOLD, false, 0, 0};
    const jaclip_dupes_options *o = options ? options : &defaults;
    size_t n = index->count;
    jc_rows r = {index, malloc((index->nruns + 1) * sizeof(jc_run)), 0};
    size_t *parent = malloc((n ? n : 1) * sizeof *parent);
    jaclip_dupes *d = calloc(1, sizeof *d);
    jaclip_status st = JACLIP_OK;
    if (!r.runs || !parent || !d) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for duplicates of %zu rows", n);
        goto done;
    }
    r.nruns = jc_index_build_runs(index, r.runs);
    for (size_t i = 0; i < n; i++)
        parent[i] = i;
    if ((st = join_exact(&r, parent)))
        goto done;
    if (!o->exact_only && (st = join_near(&r, parent, o->threshold)))
        goto done;
    if ((st = collect(d, &r, parent, o->offset, o->limit)))
        goto done;
    *out = d;
    d = NULL;
done:
    jaclip_dupes_free(d);
    free(r.runs);
    free(parent);
    return st;
}

size_t jaclip_dupes_total(const jaclip_dupes *dupes) { return dupes ? dupes->total : 0; }

size_t jaclip_dupes_count(const jaclip_dupes *dupes) { return dupes ? dupes->count : 0; }

size_t jaclip_dupes_group_size(const jaclip_dupes *dupes, size_t group)
{
    return dupes && group < dupes->count ? dupes->starts[group + 1] - dupes->starts[group] : 0;
}

int jaclip_dupes_group_exact(const jaclip_dupes *dupes, size_t group)
{
    return dupes && group < dupes->count ? dupes->exact[group] : 0;
}

jaclip_status jaclip_dupes_member(size_t *out_row, float *out_score, const jaclip_dupes *dupes, size_t group,
                                  size_t j)
{
    if (!dupes || group >= dupes->count || j >= jaclip_dupes_group_size(dupes, group))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "no member %zu of duplicate group %zu", j, group);
    if (out_row)
        *out_row = dupes->rows[dupes->starts[group] + j];
    if (out_score)
        *out_score = dupes->scores[dupes->starts[group] + j];
    return JACLIP_OK;
}
