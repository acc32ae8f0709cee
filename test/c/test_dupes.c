/* Duplicate groups (jaclip_index_duplicates, issue 25) against brute force on generated rows: random
 * unit rows, planted near duplicates (cosine 0.98 .. 0.999 to a base row), planted far pairs (cosine
 * about 0.9, below the threshold) and rows sharing a content hash (some with unrelated embeddings:
 * the hash alone makes them exact duplicates; same hash with another size does not). Brute force here
 * scores all pairs in double. Checks: exact-only groups equal the hash groups; every group lies in
 * one brute-force component and the planted near pairs are found (LSH recall); pages concatenate to
 * the whole; float16 rows give the same groups; bad input is refused. Needs no model. */
#include "jaclip.h"
#include "check.h"

#include <math.h>
#include <stdbool.h>
#include <unistd.h>

enum { ROWS = 1500, DIM = 64, BASES = 60, NEAR_PER_BASE = 3, FAR = 40, HASHED = 30 };
static float rows[ROWS][DIM];
static char labels[ROWS][32];
static jaclip_index_stamp stamps[ROWS];
static size_t bf_parent[ROWS];
static uint64_t rng = 12345;

static double uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }

static void normalize(float *v)
{
    double s = 0;
    for (int d = 0; d < DIM; d++)
        s += (double)v[d] * v[d];
    for (int d = 0; d < DIM; d++)
        v[d] = (float)(v[d] / sqrt(s));
}

static double cosine(const float *a, const float *b)
{
    double s = 0;
    for (int d = 0; d < DIM; d++)
        s += (double)a[d] * b[d];
    return s;
}

/* v = unit(base + eps * noise): cosine to base about 1 / sqrt(1 + eps^2 DIM). */
static void near_copy(float *v, const float *base, double eps)
{
    for (int d = 0; d < DIM; d++)
        v[d] = (float)(base[d] + eps * gauss());
    normalize(v);
}

static size_t bf_find(size_t i)
{
    while (bf_parent[i] != i)
        i = bf_parent[i] = bf_parent[bf_parent[i]];
    return i;
}

static void bf_join(size_t a, size_t b) { bf_parent[bf_find(a)] = bf_find(b); }

/* The groups of d as a row -> group number (+1) map; 0: in no group. */
static void group_map(const jaclip_dupes *d, size_t *map, size_t base)
{
    for (size_t g = 0; g < jaclip_dupes_count(d); g++) {
        size_t prev = 0;
        for (size_t j = 0; j < jaclip_dupes_group_size(d, g); j++) {
            size_t row = SIZE_MAX;
            float score = 0;
            CHECK_OK(jaclip_dupes_member(&row, &score, d, g, j));
            CHECK(row < ROWS && (j == 0 || row > prev));
            prev = row;
            if (row < ROWS)
                map[row] = base + g + 1;
            if (j == 0)
                CHECK(score == 1.0f);
        }
    }
}

static jaclip_dupes *dupes(const jaclip_index *ix, float thr, int exact_only, size_t offset, size_t limit)
{
    jaclip_dupes_options *o = NULL;
    jaclip_dupes *d = NULL;
    CHECK_OK(jaclip_dupes_options_create(&o));
    CHECK_OK(jaclip_dupes_options_set_threshold(o, thr));
    CHECK_OK(jaclip_dupes_options_set_exact_only(o, exact_only));
    CHECK_OK(jaclip_dupes_options_set_page(o, offset, limit));
    CHECK_OK(jaclip_index_duplicates(&d, ix, o));
    jaclip_dupes_options_free(o);
    return d;
}

static jaclip_index *make_index(uint32_t format, const char *name)
{
    jaclip_index *ix = NULL;
    CHECK_OK(jaclip_index_create(&ix, DIM));
    CHECK_OK(jaclip_index_set_row_format(ix, format));
    CHECK_OK(jaclip_index_save(ix, tmp_path(name)));
    jaclip_index_free(ix);
    int64_t shape[2] = {ROWS, DIM};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, rows));
    const char *lp[ROWS];
    for (size_t i = 0; i < ROWS; i++)
        lp[i] = labels[i];
    CHECK_OK(jaclip_index_replace_file(tmp_path(name), NULL, 0, t, lp, stamps, NULL));
    jaclip_tensor_free(t);
    ix = NULL;
    CHECK_OK(jaclip_index_load(&ix, tmp_path(name), 0));
    unlink(tmp_path(name));
    return ix;
}

/* 70 000 random rows (over 64 Ki: wider keys, more tables) with 500 planted pairs at cosine >= 0.98:
 * random 64-d rows lie 7 standard deviations below 0.95, so the planted pairs are the only groups. */
static void check_wide_keys(void)
{
    enum { N = 70000, PAIRS = 500 };
    float *v = malloc((size_t)N * DIM * sizeof *v);
    const char **lp = malloc(N * sizeof *lp);
    char (*names)[16] = malloc((size_t)N * sizeof *names);
    for (size_t i = 0; i < N; i++) {
        for (int d = 0; d < DIM; d++)
            v[i * DIM + d] = (float)gauss();
        normalize(v + i * DIM);
        snprintf(names[i], sizeof names[i], "w/%zu", i);
        lp[i] = names[i];
    }
    for (size_t p = 0; p < PAIRS; p++) /* row 140 p + 1 copies row 140 p */
        near_copy(v + (140 * p + 1) * DIM, v + 140 * p * DIM, 0.006 + 0.012 * (double)(p % 2));
    jaclip_index *ix = NULL;
    jaclip_tensor *t = NULL;
    int64_t shape[2] = {N, DIM};
    CHECK_OK(jaclip_index_create(&ix, DIM));
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, v));
    CHECK_OK(jaclip_index_add(ix, t, lp));
    jaclip_dupes *d = NULL;
    CHECK_OK(jaclip_index_duplicates(&d, ix, NULL));
    CHECK(jaclip_dupes_total(d) == PAIRS && jaclip_dupes_count(d) == PAIRS);
    for (size_t g = 0; g < jaclip_dupes_count(d); g++) {
        size_t r0 = SIZE_MAX, r1 = SIZE_MAX;
        CHECK(jaclip_dupes_group_size(d, g) == 2);
        CHECK_OK(jaclip_dupes_member(&r0, NULL, d, g, 0));
        CHECK_OK(jaclip_dupes_member(&r1, NULL, d, g, 1));
        CHECK(r0 == 140 * g && r1 == r0 + 1);
    }
    jaclip_dupes_free(d);
    jaclip_tensor_free(t);
    jaclip_index_free(ix);
    free(v);
    free(lp);
    free(names);
}

int main(void)
{
    const float thr = 0.95f;
    size_t planted[BASES * NEAR_PER_BASE][2], nplanted = 0;
    for (size_t i = 0; i < ROWS; i++) {
        for (int d = 0; d < DIM; d++)
            rows[i][d] = (float)gauss();
        normalize(rows[i]);
        snprintf(labels[i], sizeof labels[i], "p/%04zu.jpg", i);
        stamps[i] = (jaclip_index_stamp){1000 + i, 7, 0x1000 + i};
    }
    /* near duplicates: rows 100 + 4b .. +3 copy base 100 + 4b at cosines 0.98 .. 0.999 */
    for (size_t b = 0; b < BASES; b++) {
        size_t base = 100 + 4 * b;
        for (size_t c = 1; c <= NEAR_PER_BASE; c++) {
            near_copy(rows[base + c], rows[base], 0.006 * c);
            planted[nplanted][0] = base;
            planted[nplanted++][1] = base + c;
        }
    }
    /* far pairs (cosine about 0.90): rows 600 + 2f, 601 + 2f */
    for (size_t f = 0; f < FAR; f++)
        near_copy(rows[601 + 2 * f], rows[600 + 2 * f], 0.06);
    /* exact duplicates by hash: rows 800 + 3h .. +2 share a hash (unrelated embeddings); the third
     * has another size, so it is not one of them; rows 900.. record no stamp */
    for (size_t h = 0; h < HASHED; h++) {
        size_t r = 800 + 3 * h;
        stamps[r + 1] = (jaclip_index_stamp){stamps[r].size, 9, stamps[r].content_hash};
        stamps[r + 2] = (jaclip_index_stamp){stamps[r].size + 1, 9, stamps[r].content_hash};
    }
    for (size_t i = 900; i < 960; i++)
        stamps[i] = (jaclip_index_stamp){0, 0, 0};
    memcpy(rows[901], rows[900], sizeof rows[900]); /* identical rows without a hash: near (cosine 1) */

    /* brute force: hash components, then near components (all pairs, double) */
    for (size_t i = 0; i < ROWS; i++)
        bf_parent[i] = i;
    size_t exact_pairs = 0;
    for (size_t i = 0; i < ROWS; i++)
        for (size_t j = i + 1; j < ROWS; j++)
            if (stamps[i].content_hash && stamps[i].content_hash == stamps[j].content_hash &&
                stamps[i].size == stamps[j].size) {
                bf_join(i, j);
                exact_pairs++;
            }
    CHECK(exact_pairs == HASHED);
    size_t exact_root[ROWS];
    for (size_t i = 0; i < ROWS; i++)
        exact_root[i] = bf_find(i);
    size_t close_calls = 0;
    for (size_t i = 0; i < ROWS; i++)
        for (size_t j = i + 1; j < ROWS; j++) {
            double c = cosine(rows[i], rows[j]);
            close_calls += fabs(c - thr) < 1e-3;
            if (c >= thr)
                bf_join(i, j);
        }
    CHECK(close_calls == 0); /* the data leaves float rounding no say */

    jaclip_index *ix = make_index(JACLIP_INDEX_ROWS_FLOAT32, "f32.jci");
    CHECK(jaclip_index_size(ix) == ROWS);

    /* exact only: exactly the hash groups, each flagged exact */
    jaclip_dupes *d = dupes(ix, thr, 1, 0, 0);
    CHECK(jaclip_dupes_total(d) == HASHED && jaclip_dupes_count(d) == HASHED);
    for (size_t g = 0; g < jaclip_dupes_count(d); g++) {
        size_t r0 = SIZE_MAX, r1 = SIZE_MAX;
        CHECK(jaclip_dupes_group_size(d, g) == 2 && jaclip_dupes_group_exact(d, g) == 1);
        CHECK_OK(jaclip_dupes_member(&r0, NULL, d, g, 0));
        CHECK_OK(jaclip_dupes_member(&r1, NULL, d, g, 1));
        CHECK(r0 == 800 + 3 * g && r1 == r0 + 1 && exact_root[r0] == exact_root[r1]);
    }
    jaclip_dupes_free(d);

    /* exact and near: every group inside one brute-force component; planted pairs found */
    d = dupes(ix, thr, 0, 0, 0);
    size_t map[ROWS] = {0};
    group_map(d, map, 0);
    size_t bad = 0, found = 0, grouped = 0;
    for (size_t i = 0; i < ROWS; i++)
        for (size_t j = i + 1; j < ROWS; j++)
            if (map[i] && map[i] == map[j] && bf_find(i) != bf_find(j))
                bad++;
    for (size_t p = 0; p < nplanted; p++)
        found += map[planted[p][0]] && map[planted[p][0]] == map[planted[p][1]];
    for (size_t i = 0; i < ROWS; i++)
        grouped += map[i] != 0;
    CHECK(bad == 0);
    CHECK(found == nplanted); /* each planted pair misses with probability < 1e-3 (cosine >= 0.98) */
    CHECK(map[900] && map[900] == map[901]);
    for (size_t f = 0; f < FAR; f++)
        CHECK(!map[600 + 2 * f] || map[600 + 2 * f] != map[601 + 2 * f]);
    /* brute-force component count of size >= 2 equals the groups when nothing was missed */
    size_t bf_groups = 0, bf_size[ROWS] = {0};
    for (size_t i = 0; i < ROWS; i++)
        bf_size[bf_find(i)]++;
    for (size_t i = 0; i < ROWS; i++)
        bf_groups += bf_size[i] >= 2;
    CHECK(jaclip_dupes_total(d) == bf_groups);
    for (size_t g = 0; g < jaclip_dupes_count(d); g++) {
        size_t r0 = 0, r = 0;
        float s = 0;
        CHECK_OK(jaclip_dupes_member(&r0, NULL, d, g, 0));
        for (size_t j = 1; j < jaclip_dupes_group_size(d, g); j++) {
            CHECK_OK(jaclip_dupes_member(&r, &s, d, g, j));
            CHECK(fabs(s - cosine(rows[r0], rows[r])) < 1e-5);
        }
        if (g > 0) {
            size_t prev = 0;
            CHECK_OK(jaclip_dupes_member(&prev, NULL, d, g - 1, 0));
            CHECK(prev < r0); /* groups ordered by their first row */
        }
    }

    /* pages of 7 concatenate to the whole */
    size_t paged[ROWS] = {0}, pages = 0;
    for (size_t off = 0;; off += 7, pages++) {
        jaclip_dupes *p = dupes(ix, thr, 0, off, 7);
        CHECK(jaclip_dupes_total(p) == jaclip_dupes_total(d));
        size_t c = jaclip_dupes_count(p);
        group_map(p, paged, off);
        jaclip_dupes_free(p);
        if (c < 7)
            break;
    }
    CHECK(memcmp(paged, map, sizeof map) == 0);
    CHECK(pages == jaclip_dupes_total(d) / 7);
    jaclip_dupes *past = dupes(ix, thr, 0, 100000, 5);
    CHECK(jaclip_dupes_count(past) == 0 && jaclip_dupes_total(past) == jaclip_dupes_total(d));
    jaclip_dupes_free(past);

    /* float16 rows: the same groups (the data keeps 1e-3 from the threshold) */
    jaclip_index *ix16 = make_index(JACLIP_INDEX_ROWS_FLOAT16, "f16.jci");
    jaclip_dupes *d16 = dupes(ix16, thr, 0, 0, 0);
    size_t map16[ROWS] = {0};
    group_map(d16, map16, 0);
    CHECK(memcmp(map16, map, sizeof map) == 0);
    jaclip_dupes_free(d16);
    jaclip_index_free(ix16);

    /* defaults (NULL options) are threshold 0.95, exact and near, all groups */
    jaclip_dupes *dn = NULL;
    CHECK_OK(jaclip_index_duplicates(&dn, ix, NULL));
    CHECK(jaclip_dupes_total(dn) == jaclip_dupes_total(d));
    jaclip_dupes_free(dn);

    /* bad input */
    jaclip_dupes_options *o = NULL;
    CHECK_OK(jaclip_dupes_options_create(&o));
    CHECK_ERROR(jaclip_dupes_options_set_threshold(o, NAN), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_dupes_options_set_threshold(o, 1.5f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_dupes_options_set_threshold(o, 0.2f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_dupes_options_set_threshold(NULL, 0.9f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_duplicates(NULL, ix, o), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_dupes *none = (jaclip_dupes *)1;
    CHECK_ERROR(jaclip_index_duplicates(&none, NULL, o), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(none == NULL);
    CHECK_ERROR(jaclip_dupes_member(NULL, NULL, d, jaclip_dupes_count(d), 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_dupes_member(NULL, NULL, d, 0, 1000), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(jaclip_dupes_group_size(d, jaclip_dupes_count(d)) == 0 && jaclip_dupes_total(NULL) == 0);
    jaclip_dupes_options_free(o);
    jaclip_dupes_options_free(NULL);
    jaclip_dupes_free(NULL);

    /* an empty index and a one-row index have no groups */
    jaclip_index *empty = NULL;
    CHECK_OK(jaclip_index_create(&empty, DIM));
    jaclip_dupes *de = NULL;
    CHECK_OK(jaclip_index_duplicates(&de, empty, NULL));
    CHECK(jaclip_dupes_total(de) == 0 && jaclip_dupes_count(de) == 0);
    jaclip_dupes_free(de);
    jaclip_index_free(empty);

    check_wide_keys();
    printf("dupes: %zu groups, %zu rows grouped, %zu/%zu planted near pairs found\n", jaclip_dupes_total(d), grouped,
           found, nplanted);
    jaclip_dupes_free(d);
    jaclip_index_free(ix);
    return check_summary("test_dupes");
}
