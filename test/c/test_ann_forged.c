/* Forged ANN files: header and CRCs valid, faiss data patched one field at a time, each refused as
 * INDEX_FORMAT by the check that walks faiss's stream before faiss reads it (lib/ann/ann_faiss_check.c),
 * its message naming the field. Without that check some of these crash the process (M = 0: SIGFPE
 * inside faiss::read_index) or a later search. The fields are found by walking the stream as faiss
 * 1.7.3's impl/index_read.cpp reads it; faiss writes them in host byte order. Also: the files as
 * written load and search, and every truncation of them is refused. Needs no model; a few seconds. */
#include "jaclip.h"
#include "ann_files.h"
#include "check.h"

#include <math.h>

#define HEADER 64    /* the ANN header (docs/ann.md) */
#define IX_HEADER 33 /* faiss's index header: int d, int64 ntotal, two int64, bool is_trained, int metric */
#define SAYS "(forged or damaged file)"

typedef struct {
    const jaclip_index *index;
    size_t rows;
    unsigned char *file; /* as jaclip_ann_save wrote it */
    size_t size;
} ann_file;

static uint64_t peek64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}
static int32_t peek32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static ann_file build(const jaclip_index *index, jaclip_ann_kind kind, const char *name)
{
    ann_file f = {index, jaclip_index_size(index), NULL, 0};
    jaclip_ann *ann = NULL;
    CHECK_OK(jaclip_ann_build(&ann, index, kind, 0));
    CHECK_OK(jaclip_ann_save(ann, tmp_path(name)));
    jaclip_ann_free(ann);
    f.file = read_file(tmp_path(name), &f.size);
    CHECK(f.file && f.size > HEADER + 100);
    return f;
}

/* The file with payload[0..n) as its faiss data, size and CRCs made to match. */
static unsigned char *sealed(const ann_file *f, const unsigned char *payload, size_t n)
{
    unsigned char *buf = malloc(HEADER + n);
    memcpy(buf, f->file, HEADER);
    memcpy(buf + HEADER, payload, n);
    put64(buf + 48, n);
    put32(buf + 56, crc32_ieee(buf + HEADER, n));
    reseal_header(buf);
    return buf;
}

static void refused(const ann_file *f, const unsigned char *payload, size_t n, const char *why, const char *field)
{
    unsigned char *buf = sealed(f, payload, n);
    expect_refused_saying("forged.ann", buf, HEADER + n, f->index, why, field);
    CHECK(strstr(jaclip_last_error(), SAYS) != NULL);
    free(buf);
}

/* The faiss data with the bytes at off replaced by value: refused, the message naming field. */
static void forge(const ann_file *f, size_t off, const void *value, size_t len, const char *field)
{
    size_t n = f->size - HEADER;
    CHECK(off + len <= n);
    if (off + len > n)
        return;
    unsigned char *payload = malloc(n);
    memcpy(payload, f->file + HEADER, n);
    memcpy(payload + off, value, len);
    refused(f, payload, n, field, field);
    free(payload);
}
static void forge64(const ann_file *f, size_t off, uint64_t v, const char *field) { forge(f, off, &v, 8, field); }
static void forge32(const ann_file *f, size_t off, int32_t v, const char *field) { forge(f, off, &v, 4, field); }
static void forge8(const ann_file *f, size_t off, uint8_t v, const char *field) { forge(f, off, &v, 1, field); }

/* The file as written, resealed by this test: loads and searches (so refusals are the data's doing). */
static void loads(const ann_file *f)
{
    unsigned char *buf = sealed(f, f->file + HEADER, f->size - HEADER);
    CHECK(!memcmp(buf, f->file, f->size));
    write_file(tmp_path("resealed.ann"), buf, f->size);
    free(buf);
    jaclip_ann *ann = NULL;
    jaclip_tensor *rows = NULL, *found = NULL;
    CHECK_OK(jaclip_ann_load(&ann, tmp_path("resealed.ann"), f->index, 0));
    CHECK_OK(jaclip_index_embeddings(&rows, f->index, 0, 3));
    CHECK_OK(jaclip_ann_search(&found, NULL, ann, rows, 5));
    /* Each row is its own best match. */
    const int64_t *top = found ? jaclip_tensor_data(found) : NULL;
    CHECK(top && top[0] == 0 && top[5] == 1 && top[10] == 2);
    jaclip_tensor_free(found);
    jaclip_tensor_free(rows);
    jaclip_ann_free(ann);
}

/* Cut short at every byte of the first 600, at every field start in marks and the 9 bytes after it,
 * and at 200 places through the rest. The header's size and CRCs follow the cut. */
static void truncations(const ann_file *f, const size_t *marks, size_t nmarks)
{
    size_t n = f->size - HEADER;
    for (size_t cut = 1; cut < n; cut += cut < 600 ? 1 : n / 200 + 1)
        refused(f, f->file + HEADER, cut, "truncated", SAYS);
    for (size_t m = 0; m < nmarks; m++)
        for (size_t cut = marks[m]; cut < marks[m] + 10 && cut < n; cut++)
            refused(f, f->file + HEADER, cut, "truncated at a field", SAYS);
}

/* The common header of every faiss index (d, ntotal, is_trained, metric) at off. */
static void forge_index_header(const ann_file *f, size_t off)
{
    forge32(f, off, 0, "d = 0");
    forge64(f, off + 4, (uint64_t)-1, "ntotal = -1");
    forge64(f, off + 4, f->rows + 1, "ntotal");
    forge8(f, off + 28, 0, "is_trained = 0");
    forge8(f, off + 28, 2, "is_trained = 2");
    forge32(f, off + 29, 1, "metric_type = 1");
}

/* Where an IVF stream's fields lie (its type code at 0). */
typedef struct {
    size_t nlist, quantizer, vectors, direct_map, by_residual, code_size, pq, centroids, lists, sizes, data;
} ivf_layout;

static ivf_layout ivf_walk(const unsigned char *p, int pq)
{
    ivf_layout l = {0};
    l.nlist = 4 + IX_HEADER; /* then nprobe */
    l.quantizer = l.nlist + 16;
    l.vectors = l.quantizer + 4 + IX_HEADER;
    l.direct_map = l.vectors + 8 + 4 * peek64(p + l.vectors);
    size_t next = l.direct_map + 1 + 8 + 8 * peek64(p + l.direct_map + 1);
    if (pq) {
        l.by_residual = next;
        l.code_size = next + 1;
        l.pq = next + 9; /* d, M, nbits */
        l.centroids = l.pq + 24;
        next = l.centroids + 8 + 4 * peek64(p + l.centroids);
    }
    l.lists = next; /* "ilar", nlist, code_size, list type */
    l.sizes = next + 24;
    l.data = l.sizes + 8 + 8 * peek64(p + l.sizes);
    return l;
}

/* The fields every IVF file shares: header, nlist, quantizer, direct map, the lists and their ids. */
static void forge_ivf(const ann_file *f, const ivf_layout *l, size_t code_size)
{
    const unsigned char *p = f->file + HEADER;
    size_t nlist = peek64(p + l->nlist);
    forge_index_header(f, 4);
    forge64(f, l->nlist, 0, "nlist = 0");
    forge64(f, l->nlist, nlist + 1, "nlist");
    forge64(f, l->nlist + 8, 0, "nprobe = 0");
    forge(f, l->quantizer, "IxF2", 4, "type code");
    forge_index_header(f, l->quantizer + 4);
    forge64(f, l->vectors, 1ull << 61, "vectors");
    forge64(f, l->vectors, peek64(p + l->vectors) - 1, "vectors");
    float nan = NAN;
    forge(f, l->vectors + 8, &nan, 4, "not finite");
    forge8(f, l->direct_map, 1, "direct map");
    forge64(f, l->direct_map + 1, 1, "direct map");
    forge(f, l->lists, "ilxx", 4, "type code");
    forge64(f, l->lists + 4, nlist + 1, "nlist");
    forge64(f, l->lists + 12, code_size + 1, "code_size");
    forge32(f, l->lists + 20, 0x41414141, "list type");
    forge64(f, l->sizes, 1ull << 61, "list sizes");
    forge64(f, l->sizes, nlist - 1, "list sizes");
    /* Written "full" when most lists hold rows, as here: a size per list. */
    CHECK(peek32(p + l->lists + 20) == peek32((const unsigned char *)"full"));
    size_t n0 = peek64(p + l->sizes + 8);
    forge64(f, l->sizes + 8, 1ull << 40, "list sizes");
    forge64(f, l->sizes + 8, n0 + 1, "list sizes");
    CHECK(n0 >= 2);
    size_t ids = l->data + n0 * code_size;
    forge64(f, ids, f->rows, "id");
    forge64(f, ids, (uint64_t)-5, "id -5");
    forge64(f, ids, peek64(p + ids + 8), "twice");
    /* One more byte after the lists. */
    unsigned char *longer = malloc(f->size - HEADER + 1);
    memcpy(longer, p, f->size - HEADER);
    longer[f->size - HEADER] = 0;
    refused(f, longer, f->size - HEADER + 1, "trailing byte", "trailing");
    free(longer);
    size_t marks[] = {l->nlist, l->quantizer, l->vectors, l->direct_map, l->lists, l->sizes, l->data, ids};
    truncations(f, marks, sizeof marks / sizeof *marks);
}

static void test_ivf_flat(const jaclip_index *index)
{
    ann_file f = build(index, JACLIP_ANN_IVF_FLAT, "flat.ann");
    if (!f.file)
        return;
    loads(&f);
    ivf_layout l = ivf_walk(f.file + HEADER, 0);
    size_t dim = jaclip_index_dim(index);
    forge_ivf(&f, &l, 4 * dim);
    float nan = NAN;
    forge(&f, l.data, &nan, 4, "codes: value 0 is not finite");
    free(f.file);
}

static void test_ivf_pq(const jaclip_index *index)
{
    ann_file f = build(index, JACLIP_ANN_IVF_PQ, "pq.ann");
    if (!f.file)
        return;
    loads(&f);
    ivf_layout l = ivf_walk(f.file + HEADER, 1);
    const unsigned char *p = f.file + HEADER;
    size_t m = peek64(p + l.pq + 8);
    CHECK(m == 2); /* 32 wide, 16-wide sub-vectors */
    forge_ivf(&f, &l, m);
    forge8(&f, l.by_residual, 2, "by_residual = 2");
    forge64(&f, l.code_size, m + 1, "code_size");
    forge64(&f, l.pq, 31, "d = 31");
    forge64(&f, l.pq + 8, 0, "M = 0");
    forge64(&f, l.pq + 8, 3, "M = 3");
    forge64(&f, l.pq + 8, 4, "code_size = 2, expected M = 4");
    forge64(&f, l.pq + 16, 0, "nbits = 0");
    forge64(&f, l.pq + 16, 9, "nbits = 9");
    forge64(&f, l.pq + 16, 64, "nbits = 64");
    forge64(&f, l.centroids, 1ull << 62, "centroids");
    forge64(&f, l.centroids, peek64(p + l.centroids) - 1, "centroids");
    float inf = INFINITY;
    forge(&f, l.centroids + 8 + 4 * 100, &inf, 4, "centroids: value 100 is not finite");
    size_t marks[] = {l.by_residual, l.code_size, l.pq, l.centroids};
    truncations(&f, marks, sizeof marks / sizeof *marks);
    free(f.file);
}

/* Where an HNSW stream's fields lie (its type code at 0). */
typedef struct {
    size_t probas, cum, levels, offsets, neighbors, entry, storage;
} hnsw_layout;

static hnsw_layout hnsw_walk(const unsigned char *p)
{
    hnsw_layout l;
    l.probas = 4 + IX_HEADER;
    l.cum = l.probas + 8 + 8 * peek64(p + l.probas);
    l.levels = l.cum + 8 + 4 * peek64(p + l.cum);
    l.offsets = l.levels + 8 + 4 * peek64(p + l.levels);
    l.neighbors = l.offsets + 8 + 8 * peek64(p + l.offsets);
    l.entry = l.neighbors + 8 + 4 * peek64(p + l.neighbors); /* then max_level, efConstruction, efSearch, upper_beam */
    l.storage = l.entry + 20;
    return l;
}

static void test_hnsw(const jaclip_index *index)
{
    ann_file f = build(index, JACLIP_ANN_HNSW, "hnsw.ann");
    if (!f.file)
        return;
    loads(&f);
    const unsigned char *p = f.file + HEADER;
    hnsw_layout l = hnsw_walk(p);
    forge_index_header(&f, 4);
    double two = 2;
    forge(&f, l.probas + 8, &two, 8, "assign_probas");
    forge64(&f, l.cum, 1ull << 60, "cum_nneighbor_per_level");
    forge32(&f, l.cum + 8, 1, "cum_nneighbor_per_level");
    forge32(&f, l.cum + 12, -1, "cum_nneighbor_per_level");
    forge64(&f, l.levels, f.rows - 1, SAYS); /* one level short: what follows is misread */
    forge32(&f, l.levels + 8, 0, "levels: node 0 at level 0");
    forge32(&f, l.levels + 8, 1000, "levels: node 0 at level 1000");
    forge64(&f, l.offsets + 16, peek64(p + l.offsets + 16) + 1, "offsets: node 0");
    forge64(&f, l.neighbors, 1ull << 60, "neighbors");
    /* Node 0's first level-0 link: past the last row, below -1. */
    forge32(&f, l.neighbors + 8, (int32_t)f.rows, "neighbors: node 0 links to");
    forge32(&f, l.neighbors + 8, -7, "neighbors: node 0 links to -7");
    /* A level-1 link of the entry point to a node that has level 0 only: a search would read that
     * node's level-1 slots, which are another node's (or past the array's end). */
    int32_t entry = peek32(p + l.entry), low = -1;
    int32_t entry_levels = peek32(p + l.levels + 8 + 4 * (size_t)entry);
    for (size_t i = 0; i < f.rows && low < 0; i++)
        if (peek32(p + l.levels + 8 + 4 * i) == 1)
            low = (int32_t)i;
    CHECK(entry_levels >= 2 && low >= 0);
    size_t slot = peek64(p + l.offsets + 8 + 8 * (size_t)entry) + (size_t)peek32(p + l.cum + 8 + 4);
    if (entry_levels >= 2 && low >= 0)
        forge32(&f, l.neighbors + 8 + 4 * slot, low, "not a node of that level");
    forge32(&f, l.entry, (int32_t)f.rows, "entry_point");
    forge32(&f, l.entry, -1, "entry_point = -1");
    if (low >= 0)
        forge32(&f, l.entry, low, "entry_point");
    forge32(&f, l.entry + 4, peek32(p + l.entry + 4) + 1, "max_level");
    forge32(&f, l.entry + 12, 0, "efSearch = 0");
    forge32(&f, l.entry + 16, 0, "upper_beam = 0");
    forge32(&f, l.entry + 16, 2, "upper_beam = 2");
    forge(&f, l.storage, "IxF2", 4, "type code");
    forge_index_header(&f, l.storage + 4);
    size_t marks[] = {l.probas, l.cum, l.levels, l.offsets, l.neighbors, l.entry, l.storage};
    truncations(&f, marks, sizeof marks / sizeof *marks);
    free(f.file);
}

static jaclip_index *random_index(size_t rows, size_t dim, uint32_t seed)
{
    float *x = malloc(rows * dim * sizeof *x);
    fill(x, rows * dim, seed);
    jaclip_tensor *t = make_f32(rows, dim, x);
    jaclip_index *index = make_index(t);
    jaclip_tensor_free(t);
    free(x);
    return index;
}

int main(void)
{
    if (!check_make_dir("ann-forged"))
        return 1;
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0); /* before the plugin loads OpenMP (docs/ann.md) */
    jaclip_index *small = random_index(300, 8, 7), *large = random_index(10000, 32, 11);
    test_ivf_flat(small);
    test_hnsw(small);
    test_ivf_pq(large);
    jaclip_index_free(small);
    jaclip_index_free(large);
    check_remove_dir();
    return check_summary("test_ann_forged");
}
