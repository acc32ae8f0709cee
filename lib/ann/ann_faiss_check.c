/* faiss::read_index trusts its stream: it divides by a stored sub-quantizer count (SIGFPE at M = 0),
 * sizes allocations by stored lengths, and hands back ids, offsets and levels that searches follow
 * unchecked. A forged ANN file carries valid CRCs, so before faiss sees the payload this walks it,
 * without faiss, for exactly the three structures lib/ann builds (faiss 1.7.3, impl/index_write.cpp
 * and impl/index_read.cpp), and refuses every field faiss would trust that is not what write_index
 * writes for them, or disagrees with the other fields or with the index. Values are in host byte
 * order, as faiss writes them.
 *
 *   IVF-Flat   "IwFl" header ivf lists                  (codes: d floats a row)
 *   IVF-PQ     "IwPQ" header ivf by_residual code_size pq lists   (codes: M bytes a row)
 *   HNSW-Flat  "IHNf" header graph flat                 (flat: the rows)
 *   header     int d, int64 ntotal, two unused int64, bool is_trained, int metric (0: inner product)
 *   ivf        size_t nlist, nprobe, flat (the coarse quantizer), char direct map type, vector<int64>
 *   flat       "IxFI" header vector<float> (ntotal x d)
 *   pq         size_t d, M, nbits, vector<float> centroids
 *   lists      "ilar" size_t nlist, code_size, "full" vector<size_t> | "sprs" vector<size_t> pairs,
 *              then for each non-empty list its codes and int64 ids
 *   graph      vector<double> assign_probas, vector<int> cum_nneighbor_per_level, vector<int> levels,
 *              vector<size_t> offsets, vector<int> neighbors, int entry_point, max_level,
 *              efConstruction, efSearch, upper_beam
 *   vector<T>  size_t count, then count T */
#include "ann/ann_faiss_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const unsigned char *p, *end;
    const char *where; /* the file */
    const char *what;  /* the structure being read */
    jaclip_status st;
} cursor;

static bool refuse(cursor *c, const char *fmt, ...) JC_PRINTF(2, 3);

/* Records INDEX_FORMAT naming the structure and field; false, so checks read `return refuse(...)`. */
static bool refuse(cursor *c, const char *fmt, ...)
{
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    c->st =
        jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: faiss data: %s %s (forged or damaged file)", c->where, c->what, detail);
    return false;
}

static size_t left(const cursor *c) { return (size_t)(c->end - c->p); }

static bool take(cursor *c, void *out, size_t n, const char *field)
{
    if (n > left(c)) {
        refuse(c, "%s: truncated (%zu bytes needed, %zu left)", field, n, left(c));
        return false; /* spelt out, so that the compiler sees *out set whenever true is returned */
    }
    memcpy(out, c->p, n);
    c->p += n;
    return true;
}
#define TAKE(c, var, field) take(c, &(var), sizeof(var), field)

/* faiss's fourcc(): the four characters, first in the low byte. */
static uint32_t fourcc_of(const char *s)
{
    return (uint32_t)(unsigned char)s[0] | (uint32_t)(unsigned char)s[1] << 8 | (uint32_t)(unsigned char)s[2] << 16 |
           (uint32_t)(unsigned char)s[3] << 24;
}

static bool fourcc(cursor *c, const char *code)
{
    uint32_t h;
    if (!TAKE(c, h, "type code"))
        return false;
    if (h != fourcc_of(code))
        return refuse(c, "type code 0x%08x, expected \"%s\" (a structure this library does not build)", h, code);
    return true;
}

/* READVECTOR: a count, then the items, which must all be there; *items points at them in the data. */
static bool vector(cursor *c, size_t item, size_t *count, const unsigned char **items, const char *field)
{
    size_t n;
    if (!TAKE(c, n, field))
        return false;
    if (n > left(c) / item)
        return refuse(c, "%s: %zu items of %zu bytes announced, %zu bytes left", field, n, item, left(c));
    *count = n;
    *items = c->p;
    c->p += n * item;
    return true;
}

/* Items of a vector, which the data need not align. */
static int32_t i32_at(const unsigned char *p, size_t i)
{
    int32_t v;
    memcpy(&v, p + i * sizeof v, sizeof v);
    return v;
}
static int64_t i64_at(const unsigned char *p, size_t i)
{
    int64_t v;
    memcpy(&v, p + i * sizeof v, sizeof v);
    return v;
}
static size_t size_at(const unsigned char *p, size_t i)
{
    size_t v;
    memcpy(&v, p + i * sizeof v, sizeof v);
    return v;
}

/* Float i of x is infinite or NaN: its exponent is all ones. */
static bool non_finite(const unsigned char *x, size_t i)
{
    uint32_t bits;
    memcpy(&bits, x + i * sizeof bits, sizeof bits);
    return (bits & 0x7f800000u) == 0x7f800000u;
}

/* The rows are finite (docs/reliability.md), so are the centroids trained from them; a NaN here would
 * make every distance compare false and searches return arbitrary candidates. A block at a time
 * without branches, which the compiler can vectorise: this passes over every row of the file. */
static bool finite_floats(cursor *c, const unsigned char *x, size_t n, const char *field)
{
    for (size_t from = 0; from < n; from += 4096) {
        size_t to = n - from < 4096 ? n : from + 4096;
        bool bad = false;
        for (size_t i = from; i < to; i++)
            bad |= non_finite(x, i);
        for (size_t i = from; bad && i < to; i++)
            if (non_finite(x, i))
                return refuse(c, "%s: value %zu is not finite", field, i);
    }
    return true;
}

/* read_index_header. The two unused words are not checked: faiss skips them. */
static bool index_header(cursor *c, size_t dim, uint64_t ntotal)
{
    int32_t d, metric;
    int64_t n, unused[2];
    uint8_t trained;
    if (!TAKE(c, d, "d") || !TAKE(c, n, "ntotal") || !TAKE(c, unused, "unused words") ||
        !TAKE(c, trained, "is_trained") || !TAKE(c, metric, "metric_type"))
        return false;
    if (d <= 0 || (size_t)d != dim)
        return refuse(c, "d = %d, the index is %zu wide", (int)d, dim);
    if (n < 0 || (uint64_t)n != ntotal)
        return refuse(c, "ntotal = %lld, expected %llu", (long long)n, (unsigned long long)ntotal);
    /* 0 would make searches throw; anything else is not a C++ bool. */
    if (trained != 1)
        return refuse(c, "is_trained = %u, expected 1", (unsigned)trained);
    /* Anything else is not inner product (and from 2 on, another field follows). */
    if (metric != 0)
        return refuse(c, "metric_type = %d, expected 0 (inner product)", (int)metric);
    return true;
}

/* An IndexFlatIP of ntotal rows: the IVF coarse quantizer, the HNSW storage. */
static bool flat(cursor *c, const char *what, size_t dim, uint64_t ntotal)
{
    size_t n;
    const unsigned char *x;
    c->what = what;
    if (!fourcc(c, "IxFI") || !index_header(c, dim, ntotal) || !vector(c, sizeof(float), &n, &x, "vectors"))
        return false;
    if (n % dim || n / dim != ntotal)
        return refuse(c, "vectors: %zu floats, expected %llu x %zu", n, (unsigned long long)ntotal, dim);
    return finite_floats(c, x, n, "vectors");
}

/* read_ivf_header (after the type code): the header, nlist, nprobe, quantizer, direct map. */
static bool ivf_header(cursor *c, const jc_ann_faiss_shape *s)
{
    const char *what = c->what;
    size_t nlist, nprobe, map_count;
    char map_type;
    const unsigned char *map;
    if (!index_header(c, s->dim, s->rows) || !TAKE(c, nlist, "nlist") || !TAKE(c, nprobe, "nprobe"))
        return false;
    if (nlist == 0 || nlist != s->nlist)
        return refuse(c, "nlist = %zu, the ANN header says %llu", nlist, (unsigned long long)s->nlist);
    if (nprobe == 0 || nprobe > nlist)
        return refuse(c, "nprobe = %zu, expected 1..%zu", nprobe, nlist);
    if (!flat(c, "IVF coarse quantizer", s->dim, nlist))
        return false;
    c->what = what;
    if (!TAKE(c, map_type, "direct map type") || !vector(c, sizeof(int64_t), &map_count, &map, "direct map"))
        return false;
    /* This library never keeps one; a hash-table type would add a field. */
    if (map_type != 0 || map_count != 0)
        return refuse(c, "direct map of type %d with %zu entries, expected none", (int)map_type, map_count);
    return true;
}

/* The list sizes: "full" has one per list, "sprs" (list, size) pairs for the non-empty lists only. */
typedef struct {
    const unsigned char *v;
    size_t entries;
    bool sparse;
} list_sizes;

static void list_entry(const list_sizes *ls, size_t j, size_t *list, size_t *n)
{
    *list = ls->sparse ? size_at(ls->v, 2 * j) : j;
    *n = ls->sparse ? size_at(ls->v, 2 * j + 1) : size_at(ls->v, j);
}

static bool read_list_sizes(cursor *c, size_t nlist, uint64_t rows, list_sizes *ls)
{
    uint32_t type;
    size_t count;
    if (!TAKE(c, type, "list type") || !vector(c, sizeof(size_t), &count, &ls->v, "list sizes"))
        return false;
    ls->sparse = type == fourcc_of("sprs");
    if (!ls->sparse && type != fourcc_of("full"))
        return refuse(c, "list type 0x%08x, expected \"full\" or \"sprs\"", type);
    /* faiss reads a sparse vector in pairs, past its end when the count is odd. */
    if (ls->sparse ? count % 2 != 0 : count != nlist)
        return refuse(c, "list sizes: %zu entries for %zu lists (%s)", count, nlist, ls->sparse ? "sprs" : "full");
    ls->entries = ls->sparse ? count / 2 : count;
    uint64_t total = 0;
    for (size_t j = 0, list, n, previous = 0; j < ls->entries; j++, previous = list) {
        list_entry(ls, j, &list, &n);
        /* In increasing list order, as written, so that lists are read in the order of the sizes. */
        if (ls->sparse && (list >= nlist || (j > 0 && list <= previous) || n == 0))
            return refuse(c, "list sizes: sparse entry %zu (list %zu, %zu ids) out of order or range", j, list, n);
        if (n > rows - total)
            return refuse(c, "list sizes: list %zu holds %zu ids, more than the %llu rows", list, n,
                          (unsigned long long)rows);
        total += n;
    }
    if (total != rows)
        return refuse(c, "list sizes: %llu ids in all, the index has %llu rows", (unsigned long long)total,
                      (unsigned long long)rows);
    return true;
}

/* Each list's codes and ids; ids name rows, each row exactly once, as searches take them for rows. */
static bool list_data(cursor *c, const list_sizes *ls, size_t code_size, uint64_t rows, bool float_codes,
                      unsigned char *seen)
{
    for (size_t j = 0, list, n; j < ls->entries; j++) {
        list_entry(ls, j, &list, &n);
        size_t code_bytes;
        if (!jc_mul_size(n, code_size, &code_bytes) || code_bytes > left(c))
            return refuse(c, "list %zu: codes of %zu rows truncated (%zu bytes left)", list, n, left(c));
        if (float_codes && !finite_floats(c, c->p, code_bytes / sizeof(float), "codes"))
            return false;
        c->p += code_bytes;
        if (n > left(c) / sizeof(int64_t))
            return refuse(c, "list %zu: ids of %zu rows truncated (%zu bytes left)", list, n, left(c));
        for (size_t i = 0; i < n; i++) {
            int64_t id = i64_at(c->p, i);
            if (id < 0 || (uint64_t)id >= rows)
                return refuse(c, "list %zu: id %lld out of range 0..%llu", list, (long long)id,
                              (unsigned long long)rows - 1);
            unsigned char bit = (unsigned char)(1u << (id % 8));
            if (seen[id / 8] & bit)
                return refuse(c, "list %zu: row %lld listed twice", list, (long long)id);
            seen[id / 8] |= bit;
        }
        c->p += n * sizeof(int64_t);
    }
    return true;
}

/* read_InvertedLists: in-memory lists ("ilar") of code_size-byte codes over the index's rows. */
static bool inverted_lists(cursor *c, size_t nlist, size_t code_size, uint64_t rows, bool float_codes)
{
    size_t n_lists, cs;
    list_sizes ls;
    c->what = "inverted lists";
    if (!fourcc(c, "ilar") || !TAKE(c, n_lists, "nlist") || !TAKE(c, cs, "code_size"))
        return false;
    if (n_lists != nlist)
        return refuse(c, "nlist = %zu, the index has %zu", n_lists, nlist);
    if (cs != code_size)
        return refuse(c, "code_size = %zu, expected %zu", cs, code_size);
    if (!read_list_sizes(c, nlist, rows, &ls))
        return false;
    unsigned char *seen = calloc(rows / 8 + 1, 1);
    if (!seen) {
        c->st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "%s: out of memory for a bitmap of %llu rows", c->where,
                        (unsigned long long)rows);
        return false;
    }
    bool ok = list_data(c, &ls, code_size, rows, float_codes, seen);
    free(seen);
    return ok;
}

static bool ivf_flat(cursor *c, const jc_ann_faiss_shape *s)
{
    c->what = "IVF-Flat";
    return fourcc(c, "IwFl") && ivf_header(c, s) && inverted_lists(c, s->nlist, sizeof(float) * s->dim, s->rows, true);
}

/* read_ProductQuantizer. faiss computes d % M and 1 << nbits from these before reading on. */
static bool product_quantizer(cursor *c, size_t dim, size_t *m)
{
    size_t d, nbits, count;
    const unsigned char *centroids;
    c->what = "IVF-PQ product quantizer";
    if (!TAKE(c, d, "d") || !TAKE(c, *m, "M (sub-quantizers)") || !TAKE(c, nbits, "nbits"))
        return false;
    if (d != dim)
        return refuse(c, "d = %zu, the index is %zu wide", d, dim);
    if (*m == 0 || d % *m != 0)
        return refuse(c, "M = %zu sub-quantizers, expected a divisor of d = %zu", *m, d);
    /* What this library builds; searches index 2^nbits-entry tables by each code byte. */
    if (nbits != 8)
        return refuse(c, "nbits = %zu, expected 8", nbits);
    if (!vector(c, sizeof(float), &count, &centroids, "centroids"))
        return false;
    if (count != 256 * d)
        return refuse(c, "centroids: %zu floats, expected 256 x %zu", count, d);
    return finite_floats(c, centroids, count, "centroids");
}

static bool ivf_pq(cursor *c, const jc_ann_faiss_shape *s)
{
    uint8_t by_residual;
    size_t code_size, m;
    c->what = "IVF-PQ";
    if (!fourcc(c, "IwPQ") || !ivf_header(c, s) || !TAKE(c, by_residual, "by_residual") ||
        !TAKE(c, code_size, "code_size"))
        return false;
    if (by_residual != 1)
        return refuse(c, "by_residual = %u, expected 1", (unsigned)by_residual);
    if (!product_quantizer(c, s->dim, &m))
        return false;
    c->what = "IVF-PQ";
    if (code_size != m)
        return refuse(c, "code_size = %zu, expected M = %zu (a byte each)", code_size, m);
    return inverted_lists(c, s->nlist, m, s->rows, false);
}

/* read_HNSW's fields, as they lie in the data. */
typedef struct {
    const unsigned char *probas, *cum, *levels, *offsets, *neighbors;
    size_t nprobas, ncum, nlevels, noffsets, nneighbors;
    int32_t entry, max_level, ef_construction, ef_search, upper_beam;
} hnsw_fields;

static bool hnsw_read(cursor *c, hnsw_fields *h)
{
    return vector(c, sizeof(double), &h->nprobas, &h->probas, "assign_probas") &&
           vector(c, sizeof(int32_t), &h->ncum, &h->cum, "cum_nneighbor_per_level") &&
           vector(c, sizeof(int32_t), &h->nlevels, &h->levels, "levels") &&
           vector(c, sizeof(size_t), &h->noffsets, &h->offsets, "offsets") &&
           vector(c, sizeof(int32_t), &h->nneighbors, &h->neighbors, "neighbors") && TAKE(c, h->entry, "entry_point") &&
           TAKE(c, h->max_level, "max_level") && TAKE(c, h->ef_construction, "efConstruction") &&
           TAKE(c, h->ef_search, "efSearch") && TAKE(c, h->upper_beam, "upper_beam");
}

/* Levels and offsets: node i has levels[i] (1..top) levels, cum[levels[i]] neighbour slots from
 * offsets[i]; the slots of all nodes tile the neighbour array. */
static bool hnsw_levels(cursor *c, const hnsw_fields *h, size_t rows)
{
    for (size_t i = 0; i < h->nprobas; i++) {
        double p;
        memcpy(&p, h->probas + i * sizeof p, sizeof p);
        if (!(p >= 0 && p <= 1))
            return refuse(c, "assign_probas: value %zu = %g, expected 0..1", i, p);
    }
    if (h->ncum < 2 || i32_at(h->cum, 0) != 0)
        return refuse(c, "cum_nneighbor_per_level: %zu entries, expected at least 2 from 0", h->ncum);
    for (size_t i = 1; i < h->ncum; i++)
        if (i32_at(h->cum, i) < i32_at(h->cum, i - 1))
            return refuse(c, "cum_nneighbor_per_level: decreases at level %zu", i);
    int32_t top = (int32_t)(h->ncum - 1 < INT32_MAX ? h->ncum - 1 : INT32_MAX);
    if (h->nlevels != rows || h->noffsets != rows + 1 || size_at(h->offsets, 0) != 0)
        return refuse(c, "levels / offsets: %zu / %zu entries for %zu rows (offsets from 0)", h->nlevels, h->noffsets,
                      rows);
    for (size_t i = 0; i < rows; i++) {
        int32_t level = i32_at(h->levels, i);
        if (level < 1 || level > top)
            return refuse(c, "levels: node %zu at level %d, expected 1..%d", i, (int)level, (int)top);
        size_t from = size_at(h->offsets, i), to = size_at(h->offsets, i + 1);
        if (to < from || to - from != (size_t)i32_at(h->cum, (size_t)level))
            return refuse(c, "offsets: node %zu has %zu neighbour slots, its level needs %d", i,
                          to >= from ? to - from : 0, (int)i32_at(h->cum, (size_t)level));
    }
    if (size_at(h->offsets, rows) != h->nneighbors)
        return refuse(c, "neighbors: %zu entries, the offsets cover %zu", h->nneighbors, size_at(h->offsets, rows));
    return true;
}

/* A search that reaches node v through a level-l link reads v's level-l slots: v must have them. */
static bool hnsw_links(cursor *c, const hnsw_fields *h, size_t rows)
{
    for (size_t u = 0; u < rows; u++) {
        int32_t levels = i32_at(h->levels, u);
        size_t base = size_at(h->offsets, u);
        for (int32_t l = 0; l < levels; l++)
            for (size_t j = base + (size_t)i32_at(h->cum, (size_t)l); j < base + (size_t)i32_at(h->cum, (size_t)l + 1);
                 j++) {
                int32_t v = i32_at(h->neighbors, j);
                if (v != -1 && (v < 0 || (size_t)v >= rows || i32_at(h->levels, (size_t)v) <= l))
                    return refuse(c, "neighbors: node %zu links to %d at level %d, not a node of that level", u, (int)v,
                                  (int)l);
            }
    }
    return true;
}

/* Searches start at the entry point on max_level, which is the highest level of any node. */
static bool hnsw_entry(cursor *c, const hnsw_fields *h, size_t rows)
{
    bool entry_ok =
        rows == 0 ? h->entry == -1 && h->max_level == -1
                  : h->entry >= 0 && (size_t)h->entry < rows && h->max_level == i32_at(h->levels, (size_t)h->entry) - 1;
    if (!entry_ok)
        return refuse(c, "entry_point = %d on max_level = %d, not a node of that level", (int)h->entry,
                      (int)h->max_level);
    for (size_t i = 0; i < rows; i++)
        if (i32_at(h->levels, i) - 1 > h->max_level)
            return refuse(c, "max_level = %d, below node %zu's level", (int)h->max_level, i);
    /* What this library writes; faiss's other upper-level search sizes a heap by it. */
    if (h->ef_construction < 1 || h->ef_search < 1 || h->upper_beam != 1)
        return refuse(c, "efConstruction = %d, efSearch = %d, upper_beam = %d, expected positive, positive, 1",
                      (int)h->ef_construction, (int)h->ef_search, (int)h->upper_beam);
    return true;
}

static bool hnsw(cursor *c, const jc_ann_faiss_shape *s)
{
    hnsw_fields h;
    c->what = "HNSW";
    if (!fourcc(c, "IHNf") || !index_header(c, s->dim, s->rows) || !hnsw_read(c, &h))
        return false;
    /* Its neighbour ids are C ints. */
    if (s->rows > INT32_MAX)
        return refuse(c, "of %llu rows, more than its ids can name", (unsigned long long)s->rows);
    size_t rows = (size_t)s->rows;
    return hnsw_levels(c, &h, rows) && hnsw_links(c, &h, rows) && hnsw_entry(c, &h, rows) &&
           flat(c, "HNSW storage", s->dim, s->rows);
}

jaclip_status jc_ann_check_faiss_stream(const unsigned char *data, size_t size, const jc_ann_faiss_shape *shape,
                                        const char *where)
{
    cursor c = {data, data + size, where, "structure", JACLIP_OK};
    if (shape->dim == 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: faiss data: checked against a width of 0", where);
    bool ok = shape->family == JC_FAISS_IVF_FLAT    ? ivf_flat(&c, shape)
              : shape->family == JC_FAISS_IVF_PQ    ? ivf_pq(&c, shape)
              : shape->family == JC_FAISS_HNSW_FLAT ? hnsw(&c, shape)
                                                    : refuse(&c, "of unknown family %d", (int)shape->family);
    if (ok && left(&c)) {
        c.what = "stream";
        refuse(&c, "has %zu trailing bytes", left(&c));
    }
    return c.st;
}
