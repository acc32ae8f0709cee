/* Filter-then-rank (jaclip_search_options, issue 25) against brute force on generated rows: for many
 * combinations of folder, time range, file types, offset and threshold, every result passes the
 * filter, and result i has the score of the (offset + i)-th best passing row, computed here in double
 * from the rows as stored (1e-5 apart at most: the library sums in float). k results come back
 * whenever k rows pass. Bad options are refused. Needs no model. */
#include "jaclip.h"
#include "check.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>

enum { ROWS = 600, DIM = 24, NQ = 3 };
static const char *const exts[] = {"jpg", "png", "JPEG", "webp", "Jpg"};
static char labels[ROWS][64];

typedef struct {
    const char *folder; /* NULL: any */
    int64_t from, to;   /* INT64_MIN, INT64_MAX: any */
    const char *types[3];
    size_t offset, k;
    float threshold;
} filter;

static bool passes(size_t i, const filter *f, bool stamped)
{
    const char *label = labels[i];
    if (f->folder) {
        size_t n = strlen(f->folder);
        while (n > 1 && f->folder[n - 1] == '/')
            n--; /* "a/" is the folder "a" */
        if (strncmp(label, f->folder, n) != 0 || label[n] != '/')
            return false;
    }
    if (f->types[0]) {
        const char *dot = strrchr(label, '.');
        bool any = false;
        for (int t = 0; t < 3 && f->types[t]; t++)
            any |= strcasecmp(dot + 1, f->types[t] + (f->types[t][0] == '.')) == 0; /* ".jpeg" is "jpeg" */
        if (!any)
            return false;
    }
    if (f->from != INT64_MIN || f->to != INT64_MAX) {
        int64_t t = (int64_t)i * 1000000000 + 7;
        if (!stamped || t < f->from || t >= f->to)
            return false;
    }
    return true;
}

static int by_score_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static size_t cut_off; /* results below a threshold seen, so the threshold cases are known to bite */

static void check_filter(const jaclip_index *ix, const float *stored, const float *q, const filter *f, size_t stamped_rows)
{
    jaclip_search_options *o = NULL;
    CHECK_OK(jaclip_search_options_create(&o));
    CHECK_OK(jaclip_search_options_set_folder(o, f->folder));
    CHECK_OK(jaclip_search_options_set_time_range(o, f->from, f->to));
    for (int t = 0; t < 3 && f->types[t]; t++)
        CHECK_OK(jaclip_search_options_add_file_type(o, f->types[t]));
    CHECK_OK(jaclip_search_options_set_offset(o, f->offset));
    CHECK_OK(jaclip_search_options_set_threshold(o, f->threshold));
    int64_t shape[2] = {NQ, DIM};
    jaclip_tensor *qt = NULL, *idx = NULL, *val = NULL;
    CHECK_OK(jaclip_tensor_create(&qt, JACLIP_DTYPE_FLOAT32, 2, shape, q));
    CHECK_OK(jaclip_index_search_with(&idx, &val, ix, qt, f->k, o));
    size_t n = jaclip_index_size(ix), npass = 0;
    for (size_t i = 0; i < n; i++)
        npass += passes(i, f, i < stamped_rows);
    size_t want_k = npass > f->offset ? (npass - f->offset < f->k ? npass - f->offset : f->k) : 0;
    CHECK(idx && (size_t)jaclip_tensor_dim(idx, 1) == want_k && jaclip_tensor_dim(idx, 0) == NQ);
    double *best = malloc((npass + 1) * sizeof *best);
    for (size_t qi = 0; qi < NQ && idx && (size_t)jaclip_tensor_dim(idx, 1) == want_k; qi++) {
        double qn = 0;
        for (size_t d = 0; d < DIM; d++)
            qn += (double)q[qi * DIM + d] * q[qi * DIM + d];
        qn = sqrt(qn);
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (!passes(i, f, i < stamped_rows))
                continue;
            double s = 0;
            for (size_t d = 0; d < DIM; d++)
                s += (double)stored[i * DIM + d] * q[qi * DIM + d] / qn;
            best[m++] = s;
        }
        qsort(best, m, sizeof *best, by_score_desc);
        const int64_t *rows = (const int64_t *)jaclip_tensor_data(idx) + qi * want_k;
        const float *scores = (const float *)jaclip_tensor_data(val) + qi * want_k;
        for (size_t r = 0; r < want_k; r++) {
            double expect = best[f->offset + r];
            if (expect < f->threshold - 1e-5) {
                CHECK(rows[r] == -1 && scores[r] == -INFINITY);
                cut_off++;
                continue;
            }
            if (expect < f->threshold + 1e-5)
                continue; /* at the threshold: either side is right within float rounding */
            CHECK(rows[r] >= 0 && (size_t)rows[r] < n);
            if (rows[r] < 0 || (size_t)rows[r] >= n)
                continue;
            CHECK(passes((size_t)rows[r], f, (size_t)rows[r] < stamped_rows));
            CHECK(fabs(scores[r] - expect) < 1e-5);
        }
    }
    free(best);
    jaclip_tensor_free(qt);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);
    jaclip_search_options_free(o);
}

static void test_against_brute_force(void)
{
    float *x = malloc(ROWS * DIM * sizeof *x), q[NQ * DIM];
    fill(x, ROWS * DIM, 11);
    fill(q, NQ * DIM, 12);
    const char *lp[ROWS];
    jaclip_index_stamp stamps[ROWS];
    for (size_t i = 0; i < ROWS; i++) {
        snprintf(labels[i], sizeof labels[i], "%s/sub%zu/img%zu.%s", i % 4 == 0 ? "家族" : i % 4 == 1 ? "家族旅行" : "trip",
                 i % 3, i, exts[i % 5]);
        lp[i] = labels[i];
        stamps[i] = (jaclip_index_stamp){100 + i, (int64_t)i * 1000000000 + 7, 1 + i};
    }
    /* rows 0..ROWS-51 in a file with stamps, the last 50 added in memory without */
    jaclip_index *ix = NULL;
    CHECK_OK(jaclip_index_create(&ix, DIM));
    CHECK_OK(jaclip_index_save(ix, tmp_path("f.jci")));
    jaclip_index_free(ix);
    int64_t shape[2] = {ROWS - 50, DIM};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, x));
    CHECK_OK(jaclip_index_replace_file(tmp_path("f.jci"), NULL, 0, t, lp, stamps, NULL));
    jaclip_tensor_free(t);
    CHECK_OK(jaclip_index_load(&ix, tmp_path("f.jci"), JACLIP_INDEX_MMAP));
    int64_t shape2[2] = {50, DIM};
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape2, x + (ROWS - 50) * DIM));
    CHECK_OK(jaclip_index_add(ix, t, lp + ROWS - 50));
    jaclip_tensor_free(t);
    jaclip_tensor *st = NULL;
    CHECK_OK(jaclip_index_embeddings(&st, ix, 0, ROWS));
    const float *stored = jaclip_tensor_data(st);

    const int64_t s = 1000000000;
    const filter cases[] = {
        {NULL, INT64_MIN, INT64_MAX, {NULL}, 0, 10, -INFINITY},          /* no filter: jaclip_index_search */
        {"家族", INT64_MIN, INT64_MAX, {NULL}, 0, 10, -INFINITY},        /* not 家族旅行 */
        {"家族/", INT64_MIN, INT64_MAX, {NULL}, 0, 1000, -INFINITY},     /* all of them, k > passing */
        {"trip/sub1", INT64_MIN, INT64_MAX, {NULL}, 5, 7, -INFINITY},   /* page 2 */
        {NULL, 100 * s, 200 * s, {NULL}, 0, 20, -INFINITY},             /* a time range */
        {NULL, 520 * s, INT64_MAX, {NULL}, 0, 100, -INFINITY},          /* unstamped rows never pass */
        {NULL, INT64_MIN, INT64_MAX, {"jpg", NULL}, 0, 30, -INFINITY},  /* jpg and Jpg, not JPEG */
        {NULL, INT64_MIN, INT64_MAX, {".jpeg", "webp", NULL}, 3, 30, -INFINITY},
        {"trip", 50 * s, 400 * s, {"png", "jpg", NULL}, 2, 15, -INFINITY},
        {NULL, INT64_MIN, INT64_MAX, {NULL}, 0, 300, 0.2f},             /* threshold: about 100 above it */
        {"家族旅行", INT64_MIN, INT64_MAX, {NULL}, 0, 140, 0.0f},
        {NULL, INT64_MIN, INT64_MAX, {NULL}, ROWS + 5, 10, -INFINITY},  /* past the end: k' = 0 */
        {"nowhere", INT64_MIN, INT64_MAX, {NULL}, 0, 10, -INFINITY},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int failed = check_failed;
        check_filter(ix, stored, q, &cases[c], ROWS - 50);
        if (check_failed != failed)
            fprintf(stderr, "  in filter case %zu\n", c);
    }

    CHECK(cut_off > 100);
    /* NULL options: the same as jaclip_index_search */
    int64_t qs[2] = {NQ, DIM};
    jaclip_tensor *qt = NULL, *a = NULL, *b = NULL;
    CHECK_OK(jaclip_tensor_create(&qt, JACLIP_DTYPE_FLOAT32, 2, qs, q));
    CHECK_OK(jaclip_index_search_with(&a, NULL, ix, qt, 12, NULL));
    CHECK_OK(jaclip_index_search(&b, NULL, ix, qt, 12));
    CHECK(a && b && memcmp(jaclip_tensor_data(a), jaclip_tensor_data(b), jaclip_tensor_nbytes(a)) == 0);
    jaclip_tensor_free(a);
    jaclip_tensor_free(b);
    jaclip_tensor_free(qt);
    jaclip_tensor_free(st);
    jaclip_index_free(ix);
    free(x);
}

static void test_bad_options(void)
{
    jaclip_search_options *o = NULL;
    CHECK_ERROR(jaclip_search_options_create(NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_search_options_create(&o));
    CHECK_ERROR(jaclip_search_options_set_threshold(o, NAN), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_set_threshold(o, 1.5f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_set_time_range(o, 5, 5), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_add_file_type(o, ""), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_add_file_type(o, "."), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_add_file_type(o, "averyveryverylongext"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_add_file_type(o, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_search_options_set_folder(o, "\xff"), JACLIP_ERROR_INVALID_UTF8);
    CHECK_ERROR(jaclip_search_options_set_offset(NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    for (int i = 0; i < 32; i++)
        CHECK_OK(jaclip_search_options_add_file_type(o, "jpg"));
    CHECK_ERROR(jaclip_search_options_add_file_type(o, "jpg"), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_search_options_free(o);
    jaclip_search_options_free(NULL);
}

int main(void)
{
    if (!check_make_dir("filter"))
        return 1;
    test_against_brute_force();
    test_bad_options();
    check_remove_dir();
    return check_summary("test_index_filter");
}
