/* Approximate search (jaclip_ann_*): recall against the exact search on generated clustered data, the
 * ANN file refused when damaged, truncated, foreign or stale, argument checks, and a missing faiss
 * plugin reported as BACKEND. Needs no model; a few seconds. Temporary files under $TMPDIR. */
#include "jaclip.h"
#include "ann_files.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t rng_state = 88172645463325252ull;
static double uniform(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static double gaussian(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* rows points around nclusters random centres (unit-variance centres, noise sd spread): embeddings
 * cluster by topic, uniform noise would make every ANN look bad and prove nothing. */
static jaclip_tensor *clustered(size_t rows, size_t dim, size_t nclusters, double spread)
{
    float *centres = malloc(nclusters * dim * sizeof *centres), *x = malloc(rows * dim * sizeof *x);
    for (size_t i = 0; i < nclusters * dim; i++)
        centres[i] = (float)gaussian();
    for (size_t r = 0; r < rows; r++) {
        size_t c = (size_t)(uniform() * nclusters) % nclusters;
        for (size_t j = 0; j < dim; j++)
            x[r * dim + j] = centres[c * dim + j] + (float)(spread * gaussian());
    }
    int64_t shape[2] = {(int64_t)rows, (int64_t)dim};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, x));
    free(centres);
    free(x);
    return t;
}

/* Queries as a user's would be: new points near the collection's own (a random row plus noise). */
static jaclip_tensor *near_rows(const jaclip_tensor *rows, size_t nq, double noise)
{
    size_t n = (size_t)jaclip_tensor_dim(rows, 0), dim = (size_t)jaclip_tensor_dim(rows, 1);
    const float *x = jaclip_tensor_data(rows);
    int64_t shape[2] = {(int64_t)nq, (int64_t)dim};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, NULL));
    float *q = jaclip_tensor_data_mut(t);
    for (size_t i = 0; i < nq; i++) {
        size_t r = (size_t)(uniform() * n) % n;
        for (size_t j = 0; j < dim; j++)
            q[i * dim + j] = x[r * dim + j] + (float)(noise * gaussian());
    }
    return t;
}

/* Mean fraction of the exact top-k found by the ANN's top-k. */
static double recall_at(const jaclip_ann *ann, const jaclip_index *index, const jaclip_tensor *queries, size_t k)
{
    jaclip_tensor *ei = NULL, *es = NULL, *ai = NULL, *as = NULL;
    CHECK_OK(jaclip_index_search(&ei, &es, index, queries, k));
    CHECK_OK(jaclip_ann_search(&ai, &as, ann, queries, k));
    if (!ei || !ai)
        return 0;
    size_t nq = (size_t)jaclip_tensor_dim(queries, 0), kk = (size_t)jaclip_tensor_dim(ei, 1);
    CHECK((size_t)jaclip_tensor_dim(ai, 1) == kk);
    const int64_t *e = jaclip_tensor_data(ei), *a = jaclip_tensor_data(ai);
    const float *escore = jaclip_tensor_data(es), *ascore = jaclip_tensor_data(as);
    size_t hits = 0, score_mismatch = 0;
    for (size_t q = 0; q < nq; q++)
        for (size_t i = 0; i < kk; i++)
            for (size_t j = 0; j < kk; j++)
                if (e[q * kk + i] == a[q * kk + j]) {
                    hits++;
                    /* Re-scored exactly: the same cosine as the exact search, to float rounding. */
                    if (fabsf(escore[q * kk + i] - ascore[q * kk + j]) > 1e-5f)
                        score_mismatch++;
                }
    CHECK(score_mismatch == 0);
    for (size_t q = 0; q < nq; q++)
        for (size_t j = 1; j < kk; j++)
            CHECK(ascore[q * kk + j - 1] >= ascore[q * kk + j]);
    jaclip_tensor_free(ei);
    jaclip_tensor_free(es);
    jaclip_tensor_free(ai);
    jaclip_tensor_free(as);
    return (double)hits / (double)(nq * kk);
}

/* Runs before anything opens the plugin: a child process that cannot find it. */
static void test_plugin_missing(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        setenv("JACLIP_FAISS_PLUGIN", "/nonexistent/libjaclip-faiss.so.1", 1);
        jaclip_tensor *x = clustered(200, 8, 4, 0.2);
        jaclip_index *index = make_index(x);
        jaclip_ann *ann = NULL;
        jaclip_status st = jaclip_ann_build(&ann, index, JACLIP_ANN_IVF_FLAT, 0);
        int ok = st == JACLIP_ERROR_BACKEND && ann == NULL && strstr(jaclip_last_error(), "faiss plugin") &&
                 strstr(jaclip_last_error(), "JACLIP_FAISS_PLUGIN");
        /* Exact search needs no plugin. */
        ok = ok && jaclip_ann_build(&ann, index, JACLIP_ANN_EXACT, 0) == JACLIP_OK && ann;
        jaclip_ann_free(ann);
        jaclip_index_free(index);
        jaclip_tensor_free(x);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_arguments(const jaclip_index *index)
{
    jaclip_ann *ann = (jaclip_ann *)1;
    CHECK_ERROR(jaclip_ann_build(NULL, index, JACLIP_ANN_AUTO, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_build(&ann, NULL, JACLIP_ANN_AUTO, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(ann == NULL);
    CHECK_ERROR(jaclip_ann_build(&ann, index, (jaclip_ann_kind)99, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_build(&ann, index, (jaclip_ann_kind)-1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_build(&ann, index, JACLIP_ANN_AUTO, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_load(NULL, "x", index, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_load(&ann, NULL, index, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_load(&ann, "x", NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_load(&ann, "x", index, 4), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_load(&ann, tmp_path("missing.ann"), index, 0), JACLIP_ERROR_IO);
    CHECK_ERROR(jaclip_ann_load(&ann, check_dir(), index, 0), JACLIP_ERROR_IO);
    CHECK_ERROR(jaclip_ann_save(NULL, "x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_set_params(NULL, 1, 1, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor *i = (jaclip_tensor *)1, *s = (jaclip_tensor *)1;
    CHECK_ERROR(jaclip_ann_search(&i, &s, NULL, NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(i == NULL && s == NULL);
    CHECK(jaclip_ann_kind_of(NULL) == JACLIP_ANN_EXACT);
    CHECK(!strcmp(jaclip_ann_kind_name(JACLIP_ANN_IVF_PQ), "ivf-pq"));
    CHECK(!strcmp(jaclip_ann_kind_name((jaclip_ann_kind)77), "unknown"));
    jaclip_ann_free(NULL);

    /* Too few rows for the structure asked for. */
    jaclip_tensor *few = clustered(50, 8, 2, 0.1);
    jaclip_index *small = make_index(few);
    CHECK_ERROR(jaclip_ann_build(&ann, small, JACLIP_ANN_IVF_FLAT, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_build(&ann, small, JACLIP_ANN_IVF_PQ, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    /* AUTO on a small index is exact: the same answer as jaclip_index_search. */
    CHECK_OK(jaclip_ann_build(&ann, small, JACLIP_ANN_AUTO, 0));
    CHECK(jaclip_ann_kind_of(ann) == JACLIP_ANN_EXACT);
    jaclip_tensor *ai = NULL, *ei = NULL;
    CHECK_OK(jaclip_ann_search(&ai, NULL, ann, few, 5));
    CHECK_OK(jaclip_index_search(&ei, NULL, small, few, 5));
    CHECK(ai && ei && !memcmp(jaclip_tensor_data(ai), jaclip_tensor_data(ei), jaclip_tensor_nbytes(ei)));
    CHECK_OK(jaclip_ann_save(ann, tmp_path("exact.ann")));
    jaclip_ann *back = NULL;
    CHECK_OK(jaclip_ann_load(&back, tmp_path("exact.ann"), small, 0));
    CHECK(jaclip_ann_kind_of(back) == JACLIP_ANN_EXACT);
    jaclip_ann_free(back);
    jaclip_ann_free(ann);
    jaclip_tensor_free(ai);
    jaclip_tensor_free(ei);
    jaclip_index_free(small);
    jaclip_tensor_free(few);
}

static void test_search_arguments(jaclip_ann *ann, size_t dim)
{
    jaclip_tensor *i = NULL, *s = NULL;
    jaclip_tensor *q = clustered(2, dim, 1, 0.1), *wide = clustered(1, dim + 1, 1, 0.1);
    CHECK_ERROR(jaclip_ann_search(&i, &s, ann, NULL, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_search(&i, &s, ann, q, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_search(NULL, NULL, ann, q, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_search(&i, &s, ann, wide, 3), JACLIP_ERROR_SHAPE);
    ((float *)jaclip_tensor_data_mut(q))[dim + 1] = NAN;
    CHECK_ERROR(jaclip_ann_search(&i, &s, ann, q, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(i == NULL && s == NULL);
    CHECK_ERROR(jaclip_ann_set_params(ann, 1u << 20, 0, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_set_params(ann, 0, 70000, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_ann_set_params(ann, 0, 0, 2000), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(q);
    jaclip_tensor_free(wide);
}

/* The damaged, foreign and stale variants of one good file. */
static void test_hostile_files(const char *good_path, const jaclip_index *index, const jaclip_tensor *rows)
{
    size_t size = 0;
    unsigned char *good = read_file(good_path, &size);
    CHECK(good && size > 200);
    if (!good)
        return;
    unsigned char *bad = malloc(size + 1);
    size_t cuts[] = {0, 7, 63, 64, 65, size / 2, size - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++)
        expect_refused("cut.ann", good, cuts[c], index, "truncated");
    memcpy(bad, good, size);
    bad[size] = 0;
    expect_refused("trailing.ann", bad, size + 1, index, "trailing byte");
    memcpy(bad, good, size);
    bad[0] ^= 1;
    expect_refused("magic.ann", bad, size, index, "magic");
    /* A flipped bit anywhere in the header, and here and there in the faiss data. */
    for (size_t pos = 8; pos < 64; pos += 5) {
        memcpy(bad, good, size);
        bad[pos] ^= 0x10;
        expect_refused("header-bit.ann", bad, size, index, "header bit");
    }
    for (size_t pos = 64; pos < size; pos += size / 13) {
        memcpy(bad, good, size);
        bad[pos] ^= 0x01;
        expect_refused("data-bit.ann", bad, size, index, "data bit");
    }
    /* Resealed headers reach the later checks: a future version, an unknown kind, a kind that the
     * faiss data is not, and faiss data that is garbage with a correct checksum. */
    memcpy(bad, good, size);
    put32(bad + 8, 2);
    reseal_header(bad);
    expect_refused("version.ann", bad, size, index, "version");
    memcpy(bad, good, size);
    put32(bad + 16, 9);
    reseal_header(bad);
    expect_refused("kind.ann", bad, size, index, "kind");
    memcpy(bad, good, size);
    put32(bad + 16, JACLIP_ANN_HNSW);
    reseal_header(bad);
    expect_refused("wrong-kind.ann", bad, size, index, "kind mismatch");
    memcpy(bad, good, size);
    for (size_t i = 64; i < size; i++)
        bad[i] = (unsigned char)(i * 131);
    put32(bad + 56, crc32_ieee(bad + 64, size - 64));
    reseal_header(bad);
    expect_refused("garbage.ann", bad, size, index, "garbage faiss data");
    memcpy(bad, good, size);
    memcpy(bad + 64, "IxF2", 4); /* a faiss index type this library never builds */
    put32(bad + 56, crc32_ieee(bad + 64, size - 64));
    reseal_header(bad);
    expect_refused("foreign.ann", bad, size, index, "foreign faiss type");

    /* Stale: the index has grown, or holds other rows of the same count, or is another width. */
    jaclip_index *grown = make_index(rows);
    jaclip_tensor *one = clustered(1, (size_t)jaclip_tensor_dim(rows, 1), 1, 0.1);
    const char *label = "new.jpg";
    CHECK_OK(jaclip_index_add(grown, one, &label));
    expect_refused("stale1.ann", good, size, grown, "grown index");
    jaclip_tensor *copy = NULL;
    CHECK_OK(jaclip_tensor_clone(&copy, rows));
    ((float *)jaclip_tensor_data_mut(copy))[123] += 0.5f;
    jaclip_index *changed = make_index(copy);
    expect_refused("stale2.ann", good, size, changed, "changed row");
    jaclip_index *other_width = NULL;
    CHECK_OK(jaclip_index_create(&other_width, 3));
    expect_refused("stale3.ann", good, size, other_width, "other width");
    jaclip_index_free(grown);
    jaclip_index_free(changed);
    jaclip_index_free(other_width);
    jaclip_tensor_free(one);
    jaclip_tensor_free(copy);
    free(bad);
    free(good);
}

/* Each structure finds most of the exact top-10 on clustered data with overlapping clusters (measured
 * at the defaults: ivf-flat 0.95, ivf-pq 0.95; the bounds leave room for BLAS and thread differences
 * in training, yet a broken structure or re-ranking, far below, fails them). */
static void test_recall(void)
{
    const size_t dim = 64, rows = 30000;
    jaclip_tensor *x = clustered(rows, dim, 300, 1.0);
    jaclip_tensor *queries = near_rows(x, 100, 0.5);
    jaclip_index *index = make_index(x);

    jaclip_ann *ann = NULL;
    CHECK_OK(jaclip_ann_build(&ann, index, JACLIP_ANN_AUTO, 0));
    CHECK(jaclip_ann_kind_of(ann) == JACLIP_ANN_IVF_FLAT);
    double r = recall_at(ann, index, queries, 10);
    printf("  ivf-flat recall@10 %.3f\n", r);
    CHECK(r >= 0.9);
    test_search_arguments(ann, dim);
    /* More lists visited, better (or equal) recall; all lists: exact. */
    CHECK_OK(jaclip_ann_set_params(ann, 1, 0, 0));
    double r1 = recall_at(ann, index, queries, 10);
    CHECK_OK(jaclip_ann_set_params(ann, 128, 0, 0));
    double rall = recall_at(ann, index, queries, 10);
    printf("  ivf-flat nprobe 1: %.3f, all: %.3f\n", r1, rall);
    CHECK(r1 < r && rall >= 0.999);
    CHECK_OK(jaclip_ann_set_params(ann, 0, 0, 0));

    /* Saved and loaded: the same answers. */
    const char *path = tmp_path("ivf.ann");
    CHECK_OK(jaclip_ann_save(ann, path));
    jaclip_ann *back = NULL;
    CHECK_OK(jaclip_ann_load(&back, path, index, 0));
    CHECK(jaclip_ann_kind_of(back) == JACLIP_ANN_IVF_FLAT);
    CHECK_OK(jaclip_ann_set_params(ann, 16, 0, 0));
    CHECK_OK(jaclip_ann_set_params(back, 16, 0, 0));
    jaclip_tensor *a1 = NULL, *a2 = NULL;
    CHECK_OK(jaclip_ann_search(&a1, NULL, ann, queries, 10));
    CHECK_OK(jaclip_ann_search(&a2, NULL, back, queries, 10));
    CHECK(a1 && a2 && !memcmp(jaclip_tensor_data(a1), jaclip_tensor_data(a2), jaclip_tensor_nbytes(a1)));
    jaclip_tensor_free(a1);
    jaclip_tensor_free(a2);
    jaclip_ann_free(back);
    test_hostile_files(path, index, x);

    jaclip_ann *pq = NULL;
    CHECK_OK(jaclip_ann_build(&pq, index, JACLIP_ANN_IVF_PQ, 0));
    r = recall_at(pq, index, queries, 10);
    printf("  ivf-pq recall@10 %.3f\n", r);
    CHECK(r >= 0.9);
    CHECK_OK(jaclip_ann_save(pq, tmp_path("pq.ann")));
    CHECK_OK(jaclip_ann_load(&back, tmp_path("pq.ann"), index, 0));
    CHECK(jaclip_ann_kind_of(back) == JACLIP_ANN_IVF_PQ);
    jaclip_ann_free(back);
    jaclip_ann_free(pq);

    /* k past the row count gives every row. */
    jaclip_tensor *few = NULL;
    CHECK_OK(jaclip_index_embeddings(&few, index, 0, 100));
    jaclip_index *small = make_index(few);
    jaclip_ann *hnsw = NULL;
    CHECK_OK(jaclip_ann_build(&hnsw, small, JACLIP_ANN_HNSW, 0));
    jaclip_tensor *all = NULL;
    CHECK_OK(jaclip_ann_search(&all, NULL, hnsw, queries, 500));
    CHECK(jaclip_tensor_dim(all, 1) == 100);
    jaclip_tensor_free(all);
    CHECK_OK(jaclip_ann_save(hnsw, tmp_path("hnsw.ann")));
    CHECK_OK(jaclip_ann_load(&back, tmp_path("hnsw.ann"), small, 0));
    CHECK(jaclip_ann_kind_of(back) == JACLIP_ANN_HNSW);
    r = recall_at(back, small, queries, 10);
    printf("  hnsw (100 rows) recall@10 %.3f\n", r);
    CHECK(r >= 0.95);
    jaclip_ann_free(back);
    jaclip_ann_free(hnsw);
    jaclip_index_free(small);
    jaclip_tensor_free(few);

    /* The index changed after the build: refused, not answered from stale rows. */
    const char *label = "late.jpg";
    jaclip_tensor *one = clustered(1, dim, 1, 0.1), *i = NULL;
    CHECK_OK(jaclip_index_add(index, one, &label));
    CHECK_ERROR(jaclip_ann_search(&i, NULL, ann, queries, 10), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(one);

    jaclip_ann_free(ann);
    jaclip_index_free(index);
    jaclip_tensor_free(x);
    jaclip_tensor_free(queries);
}

int main(void)
{
    if (!check_make_dir("ann"))
        return 1;
    /* Before the plugin loads OpenMP: waiting workers sleep instead of spinning on the shared cores
     * (docs/ann.md). */
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    test_plugin_missing();
    jaclip_tensor *x = clustered(300, 8, 4, 0.2);
    jaclip_index *index = make_index(x);
    test_arguments(index);
    jaclip_index_free(index);
    jaclip_tensor_free(x);
    test_recall();
    check_remove_dir();
    return check_summary("test_ann");
}
