/* lib/qlinear against a naive reference written here from qlinear.h's definitions: packing and row
 * quantization within half a step of the float values, the products equal to the integer sums done
 * plainly in 64 bits and scaled as documented (exactly, bit for bit), every odd shape of the tails,
 * and NaN rows turning into NaN outputs. Run twice by make test-qlinear: as the CPU dispatches
 * (AVX512-VNNI where it has it) and with JACLIP_Q8_PORTABLE=1, so both kernels meet the same bar. */
#include "qlinear/qlinear.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;

#define CHECK(cond, ...)                                        \
    do {                                                        \
        checks++;                                               \
        if (!(cond)) {                                          \
            if (failures++ < 20) {                              \
                fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                   \
                fputc('\n', stderr);                            \
            }                                                   \
        }                                                       \
    } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15u;
static float uniform(float lo, float hi)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 40) / (double)(1u << 24));
}

/* Weight j, column i of the packed layout qlinear.h describes. */
static int8_t packed_at(const int8_t *packed, int64_t kp, int64_t j, int64_t i)
{
    return packed[(j / JC_Q8_BLOCK) * JC_Q8_BLOCK * kp + (i / 4) * JC_Q8_BLOCK * 4 + (j % JC_Q8_BLOCK) * 4 + i % 4];
}

static void check_shape(int64_t m, int64_t k, int64_t n, bool with_bias, float spread)
{
    int64_t kp = jc_q8_kpad(k), nb = jc_q8_blocks(n);
    float *w = malloc(sizeof(float) * (size_t)(n * k)), *x = malloc(sizeof(float) * (size_t)(m * k));
    float *bias = malloc(sizeof(float) * (size_t)n), *y = malloc(sizeof(float) * (size_t)(m * n));
    int8_t *packed = malloc((size_t)(nb * JC_Q8_BLOCK * kp));
    float *ws = malloc(sizeof(float) * (size_t)n), *xs = malloc(sizeof(float) * (size_t)m);
    int32_t *colsum = malloc(sizeof(int32_t) * (size_t)(nb * JC_Q8_BLOCK)), *xz = malloc(sizeof(int32_t) * (size_t)m);
    uint8_t *xq = malloc((size_t)(m * kp));
    for (int64_t i = 0; i < n * k; i++)
        w[i] = uniform(-spread, spread);
    if (n > 1)
        memset(w + k, 0, sizeof(float) * (size_t)k); /* an all-zero channel */
    for (int64_t i = 0; i < m * k; i++)
        x[i] = uniform(-3.0f, 5.0f);
    if (m > 2)
        for (int64_t i = 0; i < k; i++)
            x[2 * k + i] = uniform(0.5f, 2.0f); /* a row without negative values: its range widens to 0 */
    for (int64_t j = 0; j < n; j++)
        bias[j] = uniform(-1, 1);

    /* Packed block by block, as threads split it, into memory that was not zero. */
    memset(packed, 0x5a, (size_t)(nb * JC_Q8_BLOCK * kp));
    memset(colsum, 0x5a, sizeof(int32_t) * (size_t)(nb * JC_Q8_BLOCK));
    for (int64_t b = 0; b < nb; b++)
        jc_q8_pack(w, n, k, b, b + 1, packed, ws, colsum);
    for (int64_t j = 0; j < n; j++) {
        int32_t sum = 0;
        for (int64_t i = 0; i < kp; i++) {
            int8_t q = packed_at(packed, kp, j, i);
            if (i >= k) {
                CHECK(q == 0, "padding weight %lld,%lld is %d", (long long)j, (long long)i, q);
                continue;
            }
            CHECK(q >= -127 && fabsf(w[j * k + i] - q * ws[j]) <= ws[j] * 0.5f * 1.0001f,
                  "weight %lld,%lld: %g packed as %d x %g", (long long)j, (long long)i, w[j * k + i], q, ws[j]);
            sum += q;
        }
        CHECK(sum == colsum[j], "colsum %lld: %d, packed weights sum to %d", (long long)j, colsum[j], sum);
    }
    for (int64_t j = n; j < nb * JC_Q8_BLOCK; j++)
        CHECK(colsum[j] == 0, "padding colsum %lld is %d", (long long)j, colsum[j]);

    jc_q8_quantize_rows(x, m, k, xq, xs, xz);
    for (int64_t r = 0; r < m; r++) {
        CHECK(xz[r] >= 0 && xz[r] <= 255 && xs[r] > 0, "row %lld: scale %g zero %d", (long long)r, xs[r], xz[r]);
        for (int64_t i = 0; i < kp; i++) {
            if (i >= k) {
                CHECK(xq[r * kp + i] == 0, "padding activation %lld,%lld", (long long)r, (long long)i);
                continue;
            }
            float back = xs[r] * (float)((int32_t)xq[r * kp + i] - xz[r]);
            CHECK(fabsf(back - x[r * k + i]) <= xs[r] * 0.5f * 1.001f + 1e-6f, "activation %lld,%lld: %g back as %g",
                  (long long)r, (long long)i, x[r * k + i], back);
        }
    }

    /* Every block range a caller might hand one thread: here all at once, then block by block. */
    for (int split = 0; split < 2; split++) {
        memset(y, 0xff, sizeof(float) * (size_t)(m * n));
        if (split)
            for (int64_t b = 0; b < nb; b++)
                jc_q8_gemm(packed, ws, colsum, with_bias ? bias : NULL, n, k, xq, xs, xz, m, y, b, b + 1);
        else
            jc_q8_gemm(packed, ws, colsum, with_bias ? bias : NULL, n, k, xq, xs, xz, m, y, 0, nb);
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < n; j++) {
                int64_t acc = 0;
                double exact = with_bias ? bias[j] : 0;
                for (int64_t i = 0; i < k; i++) {
                    acc += (int64_t)xq[r * kp + i] * packed_at(packed, kp, j, i);
                    exact += (double)x[r * k + i] * w[j * k + i];
                }
                float want =
                    fmaf((float)(int32_t)(acc - (int64_t)xz[r] * colsum[j]), xs[r] * ws[j], with_bias ? bias[j] : 0.0f);
                float got = y[r * n + j];
                CHECK(memcmp(&got, &want, sizeof got) == 0, "m%lld k%lld n%lld y[%lld][%lld] = %.9g, want %.9g",
                      (long long)m, (long long)k, (long long)n, (long long)r, (long long)j, got, want);
                /* And near the float product: each factor is off by at most half its step. */
                double bound = 0;
                for (int64_t i = 0; i < k; i++)
                    bound += fabs(x[r * k + i]) * ws[j] * 0.5 + fabs(w[j * k + i]) * xs[r] * 0.5 + ws[j] * xs[r] * 0.25;
                CHECK(fabs(got - exact) <= bound * 1.01 + 1e-4, "y[%lld][%lld] = %g, float product %g, bound %g",
                      (long long)r, (long long)j, got, exact, bound);
            }
    }
    free(w), free(x), free(bias), free(y), free(packed), free(ws), free(xs), free(colsum), free(xz), free(xq);
}

static void check_nan_rows(void)
{
    const int64_t m = 3, k = 20, n = 17;
    float w[17 * 20], x[3 * 20], y[3 * 17], ws[17], xs[3];
    int8_t packed[32 * 20];
    int32_t colsum[32], xz[3];
    uint8_t xq[3 * 20];
    for (int i = 0; i < n * k; i++)
        w[i] = uniform(-1, 1);
    for (int i = 0; i < m * k; i++)
        x[i] = uniform(-1, 1);
    x[0 * k + 5] = NAN;
    x[2 * k + 7] = INFINITY;
    jc_q8_pack(w, n, k, 0, jc_q8_blocks(n), packed, ws, colsum);
    jc_q8_quantize_rows(x, m, k, xq, xs, xz);
    jc_q8_gemm(packed, ws, colsum, NULL, n, k, xq, xs, xz, m, y, 0, jc_q8_blocks(n));
    for (int j = 0; j < n; j++) {
        CHECK(isnan(y[0 * n + j]), "a row holding NaN gave %g", y[j]);
        CHECK(isfinite(y[1 * n + j]), "a finite row gave %g", y[n + j]);
        CHECK(isnan(y[2 * n + j]), "a row holding infinity gave %g", y[2 * n + j]);
    }
}

int main(void)
{
    printf("test_qlinear: %s kernel\n", jc_q8_uses_vnni() ? "AVX512-VNNI" : "portable");
    static const int64_t ms[] = {1, 2, 3, 7, 8, 9, 16, 17, 40};
    static const int64_t ks[] = {1, 3, 4, 5, 31, 64, 67};
    static const int64_t ns[] = {1, 15, 16, 17, 33, 48, 70};
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
        for (size_t b = 0; b < sizeof ks / sizeof *ks; b++)
            for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
                check_shape(ms[a], ks[b], ns[c], (a + b + c) % 2 == 0, c % 2 ? 0.05f : 3.0f);
    /* A model's widths: rows in chunks (the kernel walks rows by L2-sized chunks) and K = 3072. */
    check_shape(100, 3072, 40, true, 0.02f);
    check_shape(9, 768, 96, false, 0.05f);
    check_nan_rows();
    printf("test_qlinear: %d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
