/* Approximate search over a jaclip_index: faiss structures (through the plugin, faiss_bridge.h) chosen
 * by collection size, their own file beside the index (docs/ann.md), and exact re-scoring of what
 * they find against the index's rows. Only the public index API is used, so the index's storage can
 * change underneath without touching this file. */
#include "ann/ann_faiss_check.h"
#include "common/bytes.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct jaclip_ann {
    jaclip_ann_kind kind;
    const jaclip_index *index;
    size_t rows, dim, nlist;
    uint64_t fingerprint;
    size_t nprobe, ef_search, rerank;
    const jc_faiss_api *faiss;
    jc_faiss_index *structure; /* NULL for EXACT */
};

/* ---- file header (docs/ann.md) ------------------------------------------------------------------ */

#define ANN_MAGIC "JCLIPANN"
#define ANN_VERSION 1u
#define ANN_HEADER_BYTES 64u

typedef struct {
    uint32_t version, header_bytes, kind, dim;
    uint64_t rows, fingerprint, nlist, payload_bytes;
    uint32_t payload_crc, header_crc;
} ann_header;

static void encode_header(unsigned char *h, const ann_header *a)
{
    memset(h, 0, ANN_HEADER_BYTES);
    memcpy(h, ANN_MAGIC, 8);
    jc_put_u32le(h + 8, ANN_VERSION);
    jc_put_u32le(h + 12, ANN_HEADER_BYTES);
    jc_put_u32le(h + 16, a->kind);
    jc_put_u32le(h + 20, a->dim);
    jc_put_u64le(h + 24, a->rows);
    jc_put_u64le(h + 32, a->fingerprint);
    jc_put_u64le(h + 40, a->nlist);
    jc_put_u64le(h + 48, a->payload_bytes);
    jc_put_u32le(h + 56, a->payload_crc);
    jc_put_u32le(h + 60, jc_crc32(0, h, 60));
}

/* Checks everything the header alone can tell; the row checks and the payload CRC come after. */
static jaclip_status decode_header(ann_header *a, const unsigned char *h, size_t available, uint64_t file_size,
                                   const char *where)
{
    if (available < ANN_HEADER_BYTES)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated ANN header (%zu of %u bytes)", where, available,
                       ANN_HEADER_BYTES);
    if (memcmp(h, ANN_MAGIC, 8))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: not a jaclip ANN file (bad magic)", where);
    if (jc_get_u32le(h + 60) != jc_crc32(0, h, 60))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN header checksum mismatch (damaged file)", where);
    a->version = jc_get_u32le(h + 8);
    a->header_bytes = jc_get_u32le(h + 12);
    a->kind = jc_get_u32le(h + 16);
    a->dim = jc_get_u32le(h + 20);
    a->rows = jc_get_u64le(h + 24);
    a->fingerprint = jc_get_u64le(h + 32);
    a->nlist = jc_get_u64le(h + 40);
    a->payload_bytes = jc_get_u64le(h + 48);
    a->payload_crc = jc_get_u32le(h + 56);
    a->header_crc = jc_get_u32le(h + 60);
    if (a->version != ANN_VERSION)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN format version %u; this library reads version %u", where,
                       a->version, ANN_VERSION);
    if (a->header_bytes != ANN_HEADER_BYTES)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN header of %u bytes, expected %u", where, a->header_bytes,
                       ANN_HEADER_BYTES);
    if (a->kind < JACLIP_ANN_EXACT || a->kind > JACLIP_ANN_HNSW)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: unknown ANN kind %u", where, a->kind);
    if (a->dim == 0 || a->dim > JACLIP_INDEX_MAX_DIM)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN width %u out of range", where, a->dim);
    if (a->payload_bytes != file_size - ANN_HEADER_BYTES)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN data of %llu bytes announced, %llu present (%s)", where,
                       (unsigned long long)a->payload_bytes, (unsigned long long)(file_size - ANN_HEADER_BYTES),
                       a->payload_bytes > file_size - ANN_HEADER_BYTES ? "truncated" : "trailing bytes");
    if ((a->kind == JACLIP_ANN_EXACT) != (a->payload_bytes == 0))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN kind %u with %llu data bytes", where, a->kind,
                       (unsigned long long)a->payload_bytes);
    return JACLIP_OK;
}

/* ---- the rows an ANN is built from ------------------------------------------------------------- */

#define ANN_CHUNK_ROWS 16384

/* A digest of every row (as stored) and label, in order: what a stale file is told apart by. */
static jaclip_status row_fingerprint(const jaclip_index *index, uint64_t *out)
{
    size_t rows = jaclip_index_size(index);
    uint32_t vec_crc = 0, label_crc = 0;
    for (size_t first = 0; first < rows; first += ANN_CHUNK_ROWS) {
        size_t n = rows - first < ANN_CHUNK_ROWS ? rows - first : ANN_CHUNK_ROWS;
        jaclip_tensor *chunk = NULL;
        jaclip_status st = jaclip_index_embeddings(&chunk, index, first, n);
        if (st)
            return st;
        vec_crc = jc_crc32(vec_crc, jaclip_tensor_data(chunk), jaclip_tensor_nbytes(chunk));
        jaclip_tensor_free(chunk);
        for (size_t i = first; i < first + n; i++) {
            const char *label = jaclip_index_label(index, i);
            label_crc = jc_crc32(label_crc, label, strlen(label) + 1);
        }
    }
    *out = (uint64_t)vec_crc << 32 | label_crc;
    return JACLIP_OK;
}

/* ---- build ------------------------------------------------------------------------------------- */

static size_t round_pow2(double x)
{
    size_t p = 1;
    while ((double)p * 1.5 < x)
        p *= 2;
    return p;
}

/* About sqrt(rows) lists, each trained from at least 39 rows (faiss's own minimum). */
static size_t choose_nlist(size_t rows)
{
    size_t nlist = round_pow2(sqrt((double)rows));
    while (nlist > 1 && rows / nlist < 39)
        nlist /= 2;
    return nlist > 65536 ? 65536 : nlist;
}

/* Sub-quantizers: 16-wide sub-vectors where the width allows (faiss encodes those with BLAS; narrower
 * ones with a scalar loop, minutes per million rows here), else the widest that divides it. The
 * precision lost is won back by re-ranking. */
static size_t choose_pq_m(size_t dim)
{
    for (size_t sub = 16; sub > 1; sub /= 2)
        if (dim % sub == 0)
            return dim / sub;
    return dim;
}

static jaclip_ann_kind auto_kind(size_t rows)
{
    return rows < JACLIP_ANN_EXACT_BELOW ? JACLIP_ANN_EXACT
           : rows < JACLIP_ANN_PQ_FROM   ? JACLIP_ANN_IVF_FLAT
                                         : JACLIP_ANN_IVF_PQ;
}

static size_t min_rows(jaclip_ann_kind kind)
{
    switch (kind) {
    case JACLIP_ANN_IVF_FLAT: return 64;
    case JACLIP_ANN_IVF_PQ: return 10000; /* 256 codes per sub-quantizer, 39 rows each */
    case JACLIP_ANN_HNSW: return 2;
    default: return 0;
    }
}

static jc_faiss_family family_of_kind(jaclip_ann_kind kind)
{
    return kind == JACLIP_ANN_IVF_FLAT ? JC_FAISS_IVF_FLAT
           : kind == JACLIP_ANN_IVF_PQ ? JC_FAISS_IVF_PQ
                                       : JC_FAISS_HNSW_FLAT;
}

static void default_params(jaclip_ann *ann)
{
    ann->nprobe = ann->nlist >= 16 ? ann->nlist / 16 : ann->nlist;
    if (ann->nprobe < 8)
        ann->nprobe = ann->nlist < 8 ? ann->nlist : 8;
    ann->ef_search = 64;
    ann->rerank = 50; /* 1 M rows: recall@10 0.645 at 10, 1.000 at 50 (docs/ann.md) */
}

/* An evenly strided sample of rows to train on (all of them when few). */
static jaclip_status training_sample(jaclip_tensor **out, const jaclip_index *index, size_t want)
{
    size_t rows = jaclip_index_size(index), dim = jaclip_index_dim(index);
    if (want >= rows)
        return jaclip_index_embeddings(out, index, 0, rows);
    jaclip_status st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)want, (int64_t)dim);
    if (st)
        return st;
    float *dst = jaclip_tensor_data_mut(*out);
    for (size_t i = 0; i < want; i++) {
        jaclip_tensor *row = NULL;
        if ((st = jaclip_index_embeddings(&row, index, (size_t)((double)i * rows / want), 1))) {
            jaclip_tensor_free(*out);
            *out = NULL;
            return st;
        }
        memcpy(dst + i * dim, jaclip_tensor_data(row), dim * sizeof(float));
        jaclip_tensor_free(row);
    }
    return JACLIP_OK;
}

static jaclip_status build_structure(jaclip_ann *ann)
{
    jaclip_status st;
    const jc_faiss_api *f = jc_faiss(&st);
    if (!f)
        return st;
    ann->faiss = f;
    jc_faiss_build_args args = {
        family_of_kind(ann->kind), (int64_t)ann->dim, (int64_t)ann->nlist, (int64_t)choose_pq_m(ann->dim), 32, 10};
    if ((st = f->create(&ann->structure, &args)))
        return st;
    if (ann->kind != JACLIP_ANN_HNSW) {
        jaclip_tensor *sample = NULL;
        /* 64 rows per list trains the lists well; PQ codebooks want 39 per code: at least 10k. */
        size_t want = 64 * ann->nlist < 10000 ? 10000 : 64 * ann->nlist;
        if ((st = training_sample(&sample, ann->index, want)))
            return st;
        st = f->train(ann->structure, jaclip_tensor_dim(sample, 0), jaclip_tensor_data(sample));
        jaclip_tensor_free(sample);
        if (st)
            return st;
    }
    for (size_t first = 0; first < ann->rows; first += 4 * ANN_CHUNK_ROWS) {
        size_t n = ann->rows - first < 4 * ANN_CHUNK_ROWS ? ann->rows - first : 4 * ANN_CHUNK_ROWS;
        jaclip_tensor *chunk = NULL;
        if ((st = jaclip_index_embeddings(&chunk, ann->index, first, n)))
            return st;
        st = f->add(ann->structure, (int64_t)n, jaclip_tensor_data(chunk));
        jaclip_tensor_free(chunk);
        if (st)
            return st;
    }
    return JACLIP_OK;
}

jaclip_status jaclip_ann_build(jaclip_ann **out, const jaclip_index *index, jaclip_ann_kind kind, uint32_t flags)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (flags)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown ANN build flags 0x%x", flags);
    if ((unsigned)kind > JACLIP_ANN_HNSW)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown ANN kind %d", (int)kind);
    size_t rows = jaclip_index_size(index);
    if (kind == JACLIP_ANN_AUTO)
        kind = auto_kind(rows);
    if (rows < min_rows(kind))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "%s needs at least %zu rows; the index has %zu (use exact search)", jaclip_ann_kind_name(kind),
                       min_rows(kind), rows);
    jaclip_ann *ann = calloc(1, sizeof *ann);
    if (!ann)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    ann->kind = kind;
    ann->index = index;
    ann->rows = rows;
    ann->dim = jaclip_index_dim(index);
    ann->nlist = kind == JACLIP_ANN_IVF_FLAT || kind == JACLIP_ANN_IVF_PQ ? choose_nlist(rows) : 0;
    default_params(ann);
    jaclip_status st = row_fingerprint(index, &ann->fingerprint);
    if (!st && kind != JACLIP_ANN_EXACT)
        st = build_structure(ann);
    if (st) {
        jaclip_ann_free(ann);
        return st;
    }
    *out = ann;
    return JACLIP_OK;
}

void jaclip_ann_free(jaclip_ann *ann)
{
    if (!ann)
        return;
    if (ann->structure)
        ann->faiss->free_index(ann->structure);
    free(ann);
}

jaclip_ann_kind jaclip_ann_kind_of(const jaclip_ann *ann) { return ann ? ann->kind : JACLIP_ANN_EXACT; }

const char *jaclip_ann_kind_name(jaclip_ann_kind kind)
{
    switch (kind) {
    case JACLIP_ANN_AUTO: return "auto";
    case JACLIP_ANN_EXACT: return "exact";
    case JACLIP_ANN_IVF_FLAT: return "ivf-flat";
    case JACLIP_ANN_IVF_PQ: return "ivf-pq";
    case JACLIP_ANN_HNSW: return "hnsw";
    }
    return "unknown";
}

jaclip_status jaclip_ann_set_params(jaclip_ann *ann, size_t nprobe, size_t ef_search, size_t rerank)
{
    if (!ann)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "ann is NULL");
    size_t max_probe = ann->nlist ? ann->nlist : 1;
    if (nprobe > max_probe)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "nprobe %zu out of range 1..%zu", nprobe, max_probe);
    if (ef_search > 65536)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "ef_search %zu out of range 1..65536", ef_search);
    if (rerank > 1024)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "rerank %zu out of range 1..1024", rerank);
    if (nprobe && ann->nlist)
        ann->nprobe = nprobe;
    if (ef_search)
        ann->ef_search = ef_search;
    if (rerank)
        ann->rerank = rerank;
    return JACLIP_OK;
}

/* ---- save / load ------------------------------------------------------------------------------- */

jaclip_status jaclip_ann_save(const jaclip_ann *ann, const char *path)
{
    if (!ann || !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", ann ? "path" : "ann");
    unsigned char *payload = NULL;
    size_t payload_size = 0;
    jaclip_status st;
    if (ann->structure && (st = ann->faiss->serialize(ann->structure, &payload, &payload_size)))
        return st;
    ann_header a = {ANN_VERSION,
                    ANN_HEADER_BYTES,
                    (uint32_t)ann->kind,
                    (uint32_t)ann->dim,
                    ann->rows,
                    ann->fingerprint,
                    ann->nlist,
                    payload_size,
                    jc_crc32(0, payload, payload_size),
                    0};
    unsigned char h[ANN_HEADER_BYTES];
    encode_header(h, &a);

    jc_temp_file t;
    if (!(st = jc_temp_open(&t, path))) {
        st = jc_write_at(t.fd, h, sizeof h, 0, t.tmp);
        if (!st)
            st = jc_write_at(t.fd, payload, payload_size, sizeof h, t.tmp);
        st = jc_temp_commit(&t, st, "ANN file");
    }
    free(payload);
    return st;
}

static jaclip_status read_fully(int fd, void *buf, size_t size, const char *path)
{
    unsigned char *p = buf;
    while (size) {
        ssize_t n = read(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return jc_fail(JACLIP_ERROR_IO, "%s: cannot read: %s", path, strerror(errno));
        if (n == 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: file shrank while being read", path);
        p += n;
        size -= (size_t)n;
    }
    return JACLIP_OK;
}

/* The checks between a header that decoded and a structure handed to the caller. */
static jaclip_status load_checked(jaclip_ann *ann, int fd, uint64_t file_size, const char *path)
{
    unsigned char h[ANN_HEADER_BYTES];
    size_t have = file_size < ANN_HEADER_BYTES ? (size_t)file_size : ANN_HEADER_BYTES;
    jaclip_status st = read_fully(fd, h, have, path);
    ann_header a = {0};
    if (st || (st = decode_header(&a, h, have, file_size, path)))
        return st;
    if (a.dim != ann->dim)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: stale ANN: built for %u-wide rows, the index has %zu", path,
                       a.dim, ann->dim);
    if (a.rows != ann->rows)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: stale ANN: built from %llu rows, the index has %zu (rebuild it)",
                       path, (unsigned long long)a.rows, ann->rows);
    if (a.payload_bytes > SIZE_MAX)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN data too large", path);
    unsigned char *payload = malloc(a.payload_bytes ? (size_t)a.payload_bytes : 1);
    if (!payload)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "%s: out of memory for %llu bytes", path,
                       (unsigned long long)a.payload_bytes);
    if ((st = read_fully(fd, payload, (size_t)a.payload_bytes, path)))
        goto done;
    if (jc_crc32(0, payload, (size_t)a.payload_bytes) != a.payload_crc) {
        st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: ANN data checksum mismatch (damaged file)", path);
        goto done;
    }
    if ((st = row_fingerprint(ann->index, &ann->fingerprint)))
        goto done;
    if (ann->fingerprint != a.fingerprint) {
        st = jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                     "%s: stale ANN: built from other rows than the index holds (rebuild it)", path);
        goto done;
    }
    ann->kind = (jaclip_ann_kind)a.kind;
    ann->nlist = (size_t)a.nlist;
    if (ann->kind != JACLIP_ANN_EXACT) {
        /* faiss trusts its stream (a forged M = 0 divides by zero inside read_index): checked first. */
        jc_ann_faiss_shape shape = {family_of_kind(ann->kind), ann->dim, ann->rows, a.nlist};
        if ((st = jc_ann_check_faiss_stream(payload, (size_t)a.payload_bytes, &shape, path)))
            goto done;
        const jc_faiss_api *f = jc_faiss(&st);
        if (!f)
            goto done;
        ann->faiss = f;
        if ((st = f->deserialize(&ann->structure, payload, (size_t)a.payload_bytes))) {
            jc_fail_prefix(st, "%s: ", path);
            goto done;
        }
        jc_faiss_info info;
        f->info(ann->structure, &info);
        if (info.family != family_of_kind(ann->kind) || info.dim != (int64_t)ann->dim ||
            info.ntotal != (int64_t)ann->rows || info.nlist != (int64_t)ann->nlist || !info.inner_product) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: the faiss structure disagrees with the ANN header", path);
            goto done;
        }
    }
    default_params(ann);
done:
    free(payload);
    return st;
}

jaclip_status jaclip_ann_load(jaclip_ann **out, const char *path, const jaclip_index *index, uint32_t flags)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path || !index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", path ? "index" : "path");
    if (flags)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown ANN load flags 0x%x", flags);
    int fd;
    uint64_t file_size;
    jaclip_status st = jc_open_regular(path, "ANN file", &fd, &file_size);  /* a FIFO: IO, not a hang */
    if (st)
        return st;
    jaclip_ann *ann = calloc(1, sizeof *ann);
    if (!ann)
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    else {
        ann->index = index;
        ann->rows = jaclip_index_size(index);
        ann->dim = jaclip_index_dim(index);
        st = load_checked(ann, fd, file_size, path);
    }
    close(fd);
    if (st) {
        jaclip_ann_free(ann);
        return st;
    }
    *out = ann;
    return JACLIP_OK;
}

/* ---- search ------------------------------------------------------------------------------------ */

typedef struct {
    float score;
    int64_t row;
} scored_row;

/* Best first; ties to the lower row, as the exact search orders them. */
static int by_score_then_row(const void *a, const void *b)
{
    const scored_row *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static float dot(const float *a, const float *b, size_t n)
{
    float s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* Exact scores of the candidates of one query, then its best k into the outputs. */
static jaclip_status rescore(const jaclip_ann *ann, const float *query, const int64_t *cand, size_t ncand, size_t k,
                             scored_row *work, int64_t *out_rows, float *out_scores)
{
    size_t found = 0;
    for (size_t c = 0; c < ncand; c++) {
        if (cand[c] < 0 || (size_t)cand[c] >= ann->rows)
            continue;
        jaclip_tensor *row = NULL;
        jaclip_status st = jaclip_index_embeddings(&row, ann->index, (size_t)cand[c], 1);
        if (st)
            return st;
        work[found++] = (scored_row){dot(query, jaclip_tensor_data(row), ann->dim), cand[c]};
        jaclip_tensor_free(row);
    }
    qsort(work, found, sizeof *work, by_score_then_row);
    for (size_t j = 0; j < k; j++) {
        out_rows[j] = j < found ? work[j].row : -1;
        out_scores[j] = j < found ? work[j].score : -INFINITY;
    }
    return JACLIP_OK;
}

jaclip_status jaclip_ann_search(jaclip_tensor **out_indices, jaclip_tensor **out_scores, const jaclip_ann *ann,
                                const jaclip_tensor *queries, size_t k)
{
    if (out_indices)
        *out_indices = NULL;
    if (out_scores)
        *out_scores = NULL;
    if (!ann)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "ann is NULL");
    if (jaclip_index_size(ann->index) != ann->rows)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "the index has %zu rows, the ANN was built from %zu: rebuild it after changing the index",
                       jaclip_index_size(ann->index), ann->rows);
    if (ann->kind == JACLIP_ANN_EXACT)
        return jaclip_index_search(out_indices, out_scores, ann->index, queries, k);
    if (!out_indices && !out_scores)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "both outputs are NULL");
    if (!queries)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "queries is NULL");
    if (k == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "k must be at least 1");
    jaclip_status st = jc_check_2d(queries, JACLIP_DTYPE_FLOAT32, "queries");
    if (st)
        return st;
    size_t nq = (size_t)jaclip_tensor_dim(queries, 0), dim = ann->dim;
    if ((size_t)jaclip_tensor_dim(queries, 1) != dim)
        return jc_fail(JACLIP_ERROR_SHAPE, "queries are %lld wide, the index %zu",
                       (long long)jaclip_tensor_dim(queries, 1), dim);
    const float *q = jaclip_tensor_data(queries);
    for (size_t i = 0; i < nq * dim; i++)
        if (!isfinite(q[i]))
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "query %zu has a non-finite value", i / dim);
    size_t kk = k < ann->rows ? k : ann->rows;
    size_t ncand = kk;
    if (ann->kind == JACLIP_ANN_IVF_PQ)
        ncand = kk * ann->rerank < ann->rows ? kk * ann->rerank : ann->rows;

    jaclip_tensor *normed = NULL, *rows_t = NULL, *scores_t = NULL;
    float *cand_scores = NULL;
    int64_t *cand = NULL;
    scored_row *work = NULL;
    if ((st = jaclip_normalize(&normed, queries)) ||
        (st = jc_tensor_new_2d(&rows_t, JACLIP_DTYPE_INT64, (int64_t)nq, (int64_t)kk)) ||
        (st = jc_tensor_new_2d(&scores_t, JACLIP_DTYPE_FLOAT32, (int64_t)nq, (int64_t)kk)))
        goto done;
    size_t total;
    if (!jc_mul_size(nq, ncand, &total) || !(cand_scores = malloc((total ? total : 1) * sizeof *cand_scores)) ||
        !(cand = malloc((total ? total : 1) * sizeof *cand)) || !(work = malloc(ncand * sizeof *work))) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for %zu x %zu candidates", nq, ncand);
        goto done;
    }
    const float *nqd = jaclip_tensor_data(normed);
    if (nq && (st = ann->faiss->search(ann->structure, (int64_t)nq, nqd, (int64_t)ncand, (int64_t)ann->nprobe,
                                       (int64_t)ann->ef_search, cand_scores, cand)))
        goto done;
    int64_t *out_r = jaclip_tensor_data_mut(rows_t);
    float *out_s = jaclip_tensor_data_mut(scores_t);
    for (size_t i = 0; i < nq && !st; i++)
        st = rescore(ann, nqd + i * dim, cand + i * ncand, ncand, kk, work, out_r + i * kk, out_s + i * kk);
    if (st)
        goto done;
    if (out_indices) {
        *out_indices = rows_t;
        rows_t = NULL;
    }
    if (out_scores) {
        *out_scores = scores_t;
        scores_t = NULL;
    }
done:
    jaclip_tensor_free(normed);
    jaclip_tensor_free(rows_t);
    jaclip_tensor_free(scores_t);
    free(cand_scores);
    free(cand);
    free(work);
    return st;
}
