/* The embedding index in memory: every function, its error paths and search against brute force (files:
 * test_index_file.c). Needs no model. Temporary files go under $TMPDIR (default /tmp). */
#include "jaclip.h"
#include "check.h"

#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 5

/* Cosine computed here in double, independently of the library. */
static double cosine(const float *a, const float *b, size_t d)
{
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < d; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

static void test_create_and_getters(void)
{
    jaclip_index *index = (jaclip_index *)0x1;
    CHECK_ERROR(jaclip_index_create(NULL, DIM), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_create(&index, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(index == NULL);
    CHECK_ERROR(jaclip_index_create(&index, JACLIP_INDEX_MAX_DIM + 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_index_create(&index, DIM));
    CHECK(jaclip_index_size(index) == 0);
    CHECK(jaclip_index_dim(index) == DIM);
    CHECK(jaclip_index_label(index, 0) == NULL);
    size_t row = 0;
    CHECK_ERROR(jaclip_index_find_label(&row, index, "a"), JACLIP_ERROR_NOT_FOUND);
    CHECK(row == SIZE_MAX);
    jaclip_index_free(index);
    jaclip_index_free(NULL);
    CHECK(jaclip_index_size(NULL) == 0);
    CHECK(jaclip_index_dim(NULL) == 0);
    CHECK(jaclip_index_label(NULL, 0) == NULL);
}

static void test_add(void)
{
    jaclip_index *index = NULL;
    float x[3 * DIM] = {3, 4, 0, 0, 0, /* norm 5 */ 0, 0, 0, 0, 0, /* zero row */ 1, 1, 1, 1, 1};
    const char *labels[3] = {"a.jpg", "写真/猫.png", "c"};
    jaclip_tensor *t = make_f32(3, DIM, x), *wide = make_f32(3, DIM + 1, NULL), *out = NULL;
    CHECK_OK(jaclip_index_create(&index, DIM));

    CHECK_ERROR(jaclip_index_add(NULL, t, labels), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_add(index, NULL, labels), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_add(index, t, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_add(index, wide, labels), JACLIP_ERROR_SHAPE);
    const char *with_null[3] = {"a", NULL, "c"};
    CHECK_ERROR(jaclip_index_add(index, t, with_null), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "labels[1]") != NULL);
    const char *bad_utf8[3] = {"a", "b\xff", "c"};
    CHECK_ERROR(jaclip_index_add(index, t, bad_utf8), JACLIP_ERROR_INVALID_UTF8);
    const char *surrogate[3] = {"a", "\xed\xa0\x80", "c"};
    CHECK_ERROR(jaclip_index_add(index, t, surrogate), JACLIP_ERROR_INVALID_UTF8);
    float nan_rows[3 * DIM];
    memcpy(nan_rows, x, sizeof x);
    nan_rows[2 * DIM + 3] = NAN;
    jaclip_tensor *tn = make_f32(3, DIM, nan_rows);
    CHECK_ERROR(jaclip_index_add(index, tn, labels), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "row 2") != NULL);
    int64_t shape3[3] = {1, 3, DIM};
    jaclip_tensor *t3 = NULL;
    CHECK_OK(jaclip_tensor_create(&t3, JACLIP_DTYPE_FLOAT32, 3, shape3, NULL));
    CHECK_ERROR(jaclip_index_add(index, t3, labels), JACLIP_ERROR_SHAPE);
    CHECK(jaclip_index_size(index) == 0); /* nothing added by a failing call */

    jaclip_tensor *empty = make_f32(0, DIM, NULL);
    CHECK_OK(jaclip_index_add(index, empty, NULL));
    CHECK(jaclip_index_size(index) == 0);

    CHECK_OK(jaclip_index_add(index, t, labels));
    CHECK(jaclip_index_size(index) == 3);
    CHECK(strcmp(jaclip_index_label(index, 1), "写真/猫.png") == 0);
    CHECK(jaclip_index_label(index, 3) == NULL);
    CHECK_OK(jaclip_index_embeddings(&out, index, 0, 3));
    const float *e = jaclip_tensor_data(out);
    CHECK(fabsf(e[0] - 0.6f) < 1e-7f && fabsf(e[1] - 0.8f) < 1e-7f && e[2] == 0);
    for (int i = 0; i < DIM; i++)
        CHECK(e[DIM + i] == 0.0f); /* a zero row stays zero */
    CHECK(fabsf(e[2 * DIM] - (float)(1 / sqrt(5.0))) < 1e-7f);
    jaclip_tensor_free(out);
    CHECK_OK(jaclip_index_embeddings(&out, index, 1, 0));
    CHECK(jaclip_tensor_dim(out, 0) == 0 && jaclip_tensor_dim(out, 1) == DIM);
    jaclip_tensor_free(out);
    CHECK_ERROR(jaclip_index_embeddings(&out, index, 2, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(out == NULL);
    CHECK_ERROR(jaclip_index_embeddings(&out, index, SIZE_MAX, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_embeddings(NULL, index, 0, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_embeddings(&out, NULL, 0, 1), JACLIP_ERROR_INVALID_ARGUMENT);

    /* Duplicates are kept; find_label returns the lowest row. */
    CHECK_OK(jaclip_index_add(index, t, labels));
    size_t row = 99;
    CHECK_OK(jaclip_index_find_label(&row, index, "写真/猫.png"));
    CHECK(row == 1);
    CHECK_OK(jaclip_index_find_label(&row, index, "c"));
    CHECK(row == 2);
    CHECK_ERROR(jaclip_index_find_label(&row, index, "写真"), JACLIP_ERROR_NOT_FOUND);
    CHECK_ERROR(jaclip_index_find_label(NULL, index, "c"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_find_label(&row, NULL, "c"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_find_label(&row, index, NULL), JACLIP_ERROR_INVALID_ARGUMENT);

    jaclip_tensor_free(t);
    jaclip_tensor_free(tn);
    jaclip_tensor_free(t3);
    jaclip_tensor_free(wide);
    jaclip_tensor_free(empty);
    jaclip_index_free(index);
}

/* Many rows across growth and the label table's rehashing: every label is found at its row. */
static void test_many_labels(void)
{
    enum { N = 5000 };
    jaclip_index *index = NULL;
    static float x[100 * DIM];
    char names[100][32];
    const char *labels[100];
    CHECK_OK(jaclip_index_create(&index, DIM));
    for (int b = 0; b < N / 100; b++) {
        fill(x, 100 * DIM, (uint32_t)b + 7);
        for (int i = 0; i < 100; i++) {
            snprintf(names[i], sizeof names[i], "photo-%05d.jpg", b * 100 + i);
            labels[i] = names[i];
        }
        jaclip_tensor *t = make_f32(100, DIM, x);
        CHECK_OK(jaclip_index_add(index, t, labels));
        jaclip_tensor_free(t);
    }
    CHECK(jaclip_index_size(index) == N);
    int misplaced = 0;
    for (int i = 0; i < N; i++) {
        char name[32];
        size_t row;
        snprintf(name, sizeof name, "photo-%05d.jpg", i);
        if (jaclip_index_find_label(&row, index, name) != JACLIP_OK || row != (size_t)i)
            misplaced++;
    }
    CHECK(misplaced == 0);
    jaclip_index_free(index);
}

/* Brute force in double over the raw rows: the best k, ties to the lower row. */
static void brute_topk(const float *rows, size_t n, const float *q, size_t k, size_t *best)
{
    double *s = malloc(n * sizeof *s);
    bool *taken = calloc(n, 1);
    for (size_t i = 0; i < n; i++)
        s[i] = cosine(rows + i * DIM, q, DIM);
    for (size_t j = 0; j < k; j++) {
        size_t arg = SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            if (!taken[i] && (arg == SIZE_MAX || s[i] > s[arg]))
                arg = i;
        best[j] = arg;
        taken[arg] = true;
    }
    free(s);
    free(taken);
}

static void check_search_against_brute_force(const jaclip_index *index, const float *rows, size_t n,
                                             const float *queries, size_t nq, size_t k)
{
    jaclip_tensor *qt = make_f32(nq, DIM, queries), *idx = NULL, *val = NULL;
    CHECK_OK(jaclip_index_search(&idx, &val, index, qt, k));
    size_t kk = k < n ? k : n;
    CHECK(jaclip_tensor_dim(idx, 0) == (int64_t)nq && jaclip_tensor_dim(idx, 1) == (int64_t)kk);
    CHECK(jaclip_tensor_dtype(idx) == JACLIP_DTYPE_INT64 && jaclip_tensor_dtype(val) == JACLIP_DTYPE_FLOAT32);
    const int64_t *ip = jaclip_tensor_data(idx);
    const float *vp = jaclip_tensor_data(val);
    size_t *best = malloc((kk ? kk : 1) * sizeof *best);
    int wrong = 0;
    for (size_t q = 0; q < nq && ip; q++) {
        brute_topk(rows, n, queries + q * DIM, kk, best);
        for (size_t j = 0; j < kk; j++) {
            double want = cosine(rows + best[j] * DIM, queries + q * DIM, DIM);
            if ((size_t)ip[q * kk + j] != best[j] || fabs(vp[q * kk + j] - want) > 1e-5)
                wrong++;
        }
    }
    CHECK(wrong == 0);
    free(best);
    jaclip_tensor_free(qt);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);
}

static void test_search(void)
{
    enum { N = 300, Q = 11 };
    static float rows[N * DIM], queries[Q * DIM];
    static char names[N][16];
    const char *labels[N];
    fill(rows, N * DIM, 1);
    fill(queries, Q * DIM, 2);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "r%d", i);
        labels[i] = names[i];
    }
    jaclip_index *index = NULL;
    jaclip_tensor *t = make_f32(N, DIM, rows), *idx = NULL, *val = NULL;
    CHECK_OK(jaclip_index_create(&index, DIM));

    /* An empty index gives [Q, 0]. */
    jaclip_tensor *qt = make_f32(Q, DIM, queries);
    CHECK_OK(jaclip_index_search(&idx, &val, index, qt, 5));
    CHECK(jaclip_tensor_dim(idx, 0) == Q && jaclip_tensor_dim(idx, 1) == 0);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);

    CHECK_OK(jaclip_index_add(index, t, labels));
    check_search_against_brute_force(index, rows, N, queries, Q, 1);
    check_search_against_brute_force(index, rows, N, queries, Q, 10);
    check_search_against_brute_force(index, rows, N, queries, 3, N + 50); /* k over size: every row */

    /* A row equal to the query (up to scale) scores 1 and comes first. */
    float scaled[DIM];
    for (int i = 0; i < DIM; i++)
        scaled[i] = rows[42 * DIM + i] * 7.5f;
    jaclip_tensor *q1 = make_f32(1, DIM, scaled);
    CHECK_OK(jaclip_index_search(&idx, NULL, index, q1, 1));
    CHECK(((const int64_t *)jaclip_tensor_data(idx))[0] == 42);
    jaclip_tensor_free(idx);
    CHECK_OK(jaclip_index_search(NULL, &val, index, q1, 1));
    CHECK(fabsf(((const float *)jaclip_tensor_data(val))[0] - 1.0f) < 1e-6f);
    jaclip_tensor_free(val);

    /* Equal scores: the lower row first. */
    jaclip_index *ties = NULL;
    float same[4 * DIM];
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < DIM; i++)
            same[r * DIM + i] = r == 1 ? -1.0f : 1.0f;
    const char *tl[4] = {"0", "1", "2", "3"};
    jaclip_tensor *ts = make_f32(4, DIM, same);
    CHECK_OK(jaclip_index_create(&ties, DIM));
    CHECK_OK(jaclip_index_add(ties, ts, tl));
    jaclip_tensor *qs = make_f32(1, DIM, same);
    CHECK_OK(jaclip_index_search(&idx, NULL, ties, qs, 4));
    const int64_t *ti = jaclip_tensor_data(idx);
    CHECK(ti[0] == 0 && ti[1] == 2 && ti[2] == 3 && ti[3] == 1);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(ts);
    jaclip_tensor_free(qs);
    jaclip_index_free(ties);

    /* A zero query scores 0 everywhere. */
    jaclip_tensor *zero = make_f32(1, DIM, NULL);
    CHECK_OK(jaclip_index_search(&idx, &val, index, zero, 3));
    CHECK(((const float *)jaclip_tensor_data(val))[0] == 0.0f);
    CHECK(((const int64_t *)jaclip_tensor_data(idx))[0] == 0);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);

    /* Errors. */
    idx = val = (jaclip_tensor *)0x1;
    CHECK_ERROR(jaclip_index_search(&idx, &val, index, qt, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(idx == NULL && val == NULL);
    CHECK_ERROR(jaclip_index_search(NULL, NULL, index, qt, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_search(&idx, &val, NULL, qt, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_search(&idx, &val, index, NULL, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor *wide = make_f32(1, DIM + 1, NULL);
    CHECK_ERROR(jaclip_index_search(&idx, &val, index, wide, 3), JACLIP_ERROR_SHAPE);
    float inf_q[DIM] = {1, INFINITY, 0, 0, 0};
    jaclip_tensor *qi = make_f32(1, DIM, inf_q);
    CHECK_ERROR(jaclip_index_search(&idx, &val, index, qi, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    int64_t shape1[1] = {DIM};
    jaclip_tensor *flat = NULL;
    CHECK_OK(jaclip_tensor_create(&flat, JACLIP_DTYPE_FLOAT32, 1, shape1, NULL));
    CHECK_ERROR(jaclip_index_search(&idx, &val, index, flat, 3), JACLIP_ERROR_SHAPE);

    jaclip_tensor_free(flat);
    jaclip_tensor_free(qi);
    jaclip_tensor_free(wide);
    jaclip_tensor_free(zero);
    jaclip_tensor_free(q1);
    jaclip_tensor_free(qt);
    jaclip_tensor_free(t);
    jaclip_index_free(index);
}

/* Large enough for the scan to run on several threads, with a width that is not a multiple of 16:
 * scores agree with double-precision brute force. */
static void test_search_large(void)
{
    enum { N = 9000, D = 131, Q = 10 };
    float *rows = malloc(sizeof(float) * N * D), *queries = malloc(sizeof(float) * Q * D);
    char(*names)[16] = malloc(N * 16);
    const char **labels = malloc(N * sizeof *labels);
    fill(rows, (size_t)N * D, 3);
    fill(queries, (size_t)Q * D, 4);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 16, "%d", i);
        labels[i] = names[i];
    }
    jaclip_index *index = NULL;
    jaclip_tensor *t = make_f32(N, D, rows), *qt = make_f32(Q, D, queries), *idx = NULL, *val = NULL;
    CHECK_OK(jaclip_index_create(&index, D));
    CHECK_OK(jaclip_index_add(index, t, labels));
    CHECK_OK(jaclip_index_search(&idx, &val, index, qt, 5));
    const int64_t *ip = jaclip_tensor_data(idx);
    const float *vp = jaclip_tensor_data(val);
    int wrong = 0;
    for (int q = 0; q < Q; q++) {
        double best = -2;
        size_t arg = 0;
        for (size_t r = 0; r < N; r++) {
            double c = cosine(rows + r * D, queries + q * D, D);
            if (c > best)
                best = c, arg = r;
        }
        if ((size_t)ip[q * 5] != arg || fabs(vp[q * 5] - best) > 1e-5)
            wrong++;
        for (int j = 1; j < 5; j++)
            if (vp[q * 5 + j] > vp[q * 5 + j - 1])
                wrong++;
    }
    CHECK(wrong == 0);
    /* One query at a time gives bit-identical scores to the batch. */
    jaclip_tensor *one = make_f32(1, D, queries + 7 * D), *idx1 = NULL, *val1 = NULL;
    CHECK_OK(jaclip_index_search(&idx1, &val1, index, one, 5));
    CHECK(memcmp(jaclip_tensor_data(val1), vp + 7 * 5, 5 * sizeof(float)) == 0);
    CHECK(memcmp(jaclip_tensor_data(idx1), ip + 7 * 5, 5 * sizeof(int64_t)) == 0);
    jaclip_tensor_free(one);
    jaclip_tensor_free(idx1);
    jaclip_tensor_free(val1);
    jaclip_tensor_free(t);
    jaclip_tensor_free(qt);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);
    jaclip_index_free(index);
    free(rows);
    free(queries);
    free(names);
    free(labels);
}

int main(void)
{
    if (!check_make_dir("index"))
        return 1;
    test_create_and_getters();
    test_add();
    test_many_labels();
    test_search();
    test_search_large();
    check_remove_dir();
    return check_summary("test_index");
}
