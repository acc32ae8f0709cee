/* int8-weight Linear layers (qlinear.h): packing, per-row activation quantization and the product,
 * as an AVX512-VNNI kernel and as portable C giving the same integers and the same floats. */
#include "qlinear/qlinear.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define JC_Q8_X86 1
#endif

/* 1.5 * 2^23: adding and subtracting it rounds a float in [0, 2^22) to the nearest integer, ties to
 * even, without a libm call (vectorisable; the AVX-512 code does the same with the same constant). */
#define ROUND_MAGIC 12582912.0f
static inline float round_even_nonneg(float v) { return (v + ROUND_MAGIC) - ROUND_MAGIC; }

void jc_q8_pack(const float *w, int64_t n, int64_t k, int64_t b0, int64_t b1, int8_t *packed, float *scale,
                int32_t *colsum)
{
    int64_t kp = jc_q8_kpad(k);
    memset(packed + b0 * JC_Q8_BLOCK * kp, 0, (size_t)((b1 - b0) * JC_Q8_BLOCK * kp));
    memset(colsum + b0 * JC_Q8_BLOCK, 0, sizeof(int32_t) * (size_t)((b1 - b0) * JC_Q8_BLOCK));
    int64_t j1 = b1 * JC_Q8_BLOCK < n ? b1 * JC_Q8_BLOCK : n;
    for (int64_t j = b0 * JC_Q8_BLOCK; j < j1; j++) {
        const float *row = w + j * k;
        float amax = 0;
        for (int64_t i = 0; i < k; i++)
            amax = fabsf(row[i]) > amax ? fabsf(row[i]) : amax;
        float s = amax > 0 ? amax / 127.0f : 1.0f, inv = amax > 0 ? 127.0f / amax : 1.0f;
        int32_t sum = 0;
        int8_t *dst = packed + (j / JC_Q8_BLOCK) * JC_Q8_BLOCK * kp + (j % JC_Q8_BLOCK) * 4;
        for (int64_t i = 0; i < k; i++) { /* q = round_even(clamp(w * inv + 127, 0, 254)) - 127: no branch */
            float u = row[i] * inv + 127.0f;
            u = u > 254 ? 254 : u;
            u = u > 0 ? u : 0;
            int8_t q = (int8_t)((int32_t)round_even_nonneg(u) - 127);
            dst[(i / 4) * JC_Q8_BLOCK * 4 + i % 4] = q;
            sum += q;
        }
        scale[j] = s;
        colsum[j] = sum;
    }
}

/* One row's range: lo <= 0 <= hi, and whether a NaN was seen (min/max skip NaN). */
static void row_range_portable(const float *row, int64_t k, float *lo_out, float *hi_out, bool *nan)
{
    float lo = 0, hi = 0;
    bool seen = false;
    for (int64_t i = 0; i < k; i++) {
        lo = row[i] < lo ? row[i] : lo;
        hi = row[i] > hi ? row[i] : hi;
        seen |= row[i] != row[i];
    }
    *lo_out = lo, *hi_out = hi, *nan = seen;
}

/* q = round_even(min(max(x * inv + z, 0), 255)): the definition both versions follow op for op. */
static void row_quantize_portable(const float *row, int64_t k, float inv, float z, uint8_t *q)
{
    for (int64_t i = 0; i < k; i++) {
        float u = row[i] * inv + z;
        u = u > 0 ? u : 0;
        u = u < 255 ? u : 255;
        q[i] = (uint8_t)(int32_t)round_even_nonneg(u);
    }
}

#ifdef JC_Q8_X86
#define AVX512_TARGET __attribute__((target("avx512f,avx512bw")))

/* The lanes of a 16-float vector that hold the first `left` of what remains (all 16 from 16 on). */
static inline __mmask16 lanes(int64_t left) { return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1); }

AVX512_TARGET static void row_range_avx512(const float *row, int64_t k, float *lo_out, float *hi_out, bool *nan)
{
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    __mmask16 seen = 0;
    for (int64_t i = 0; i < k; i += 16) {
        __mmask16 mask = lanes(k - i);
        __m512 v = _mm512_maskz_loadu_ps(mask, row + i); /* zeros past the end change no range */
        lo = _mm512_min_ps(v, lo);                       /* v < lo ? v : lo, as the C loop */
        hi = _mm512_max_ps(v, hi);
        seen |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    }
    *lo_out = _mm512_reduce_min_ps(lo), *hi_out = _mm512_reduce_max_ps(hi), *nan = seen != 0;
}

AVX512_TARGET static void row_quantize_avx512(const float *row, int64_t k, float inv, float z, uint8_t *q)
{
    const __m512 magic = _mm512_set1_ps(ROUND_MAGIC), vinv = _mm512_set1_ps(inv), vz = _mm512_set1_ps(z);
    const __m512 zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
    for (int64_t i = 0; i < k; i += 16) {
        __mmask16 mask = lanes(k - i);
        __m512 u = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mask, row + i), vinv), vz);
        u = _mm512_max_ps(u, zero); /* u > 0 ? u : 0 */
        u = _mm512_min_ps(u, top);  /* u < 255 ? u : 255 */
        u = _mm512_sub_ps(_mm512_add_ps(u, magic), magic);
        _mm512_mask_cvtepi32_storeu_epi8(q + i, mask, _mm512_cvttps_epi32(u));
    }
}
#endif

void jc_q8_quantize_rows(const float *x, int64_t m, int64_t k, uint8_t *xq, float *scale, int32_t *zero)
{
    int64_t kp = jc_q8_kpad(k);
    bool wide = jc_q8_uses_vnni(); /* the AVX-512 code runs exactly where the VNNI kernel does */
    for (int64_t r = 0; r < m; r++) {
        const float *row = x + r * k;
        uint8_t *q = xq + r * kp;
        float lo, hi;
        bool nan;
#ifdef JC_Q8_X86
        if (wide)
            row_range_avx512(row, k, &lo, &hi, &nan);
        else
#endif
            row_range_portable(row, k, &lo, &hi, &nan);
        memset(q + k, 0, (size_t)(kp - k));
        float range = hi - lo;
        if (nan || !isfinite(range)) { /* NaN or infinity in the row: NaN out, not a wrong number */
            memset(q, 0, (size_t)k);
            scale[r] = NAN;
            zero[r] = 0;
            continue;
        }
        float s = range > 0 ? range / 255.0f : 1.0f;
        float z = round_even_nonneg(-lo / s); /* lo <= 0 */
        z = z > 255 ? 255 : z;
#ifdef JC_Q8_X86
        if (wide)
            row_quantize_avx512(row, k, 1.0f / s, z, q);
        else
#endif
            row_quantize_portable(row, k, 1.0f / s, z, q);
        scale[r] = s;
        zero[r] = (int32_t)z;
    }
}

/* The one float step, shared by both kernels: fmaf in C and _mm512_fmadd_ps round alike. */
static inline float finish(int32_t acc, int32_t xzero, int32_t colsum, float xscale, float wscale, float bias)
{
    return fmaf((float)(acc - xzero * colsum), xscale * wscale, bias);
}

static void gemm_portable(const int8_t *packed, const float *wscale, const int32_t *colsum, const float *bias,
                          int64_t n, int64_t k, const uint8_t *xq, const float *xscale, const int32_t *xzero, int64_t m,
                          float *y, int64_t b0, int64_t b1)
{
    int64_t kp = jc_q8_kpad(k);
    for (int64_t b = b0; b < b1; b++) {
        const int8_t *block = packed + b * JC_Q8_BLOCK * kp;
        for (int64_t r = 0; r < m; r++) {
            int32_t acc[JC_Q8_BLOCK] = {0};
            const uint8_t *x = xq + r * kp;
            for (int64_t g = 0; g < kp / 4; g++)
                for (int lane = 0; lane < JC_Q8_BLOCK; lane++)
                    for (int t = 0; t < 4; t++)
                        acc[lane] += (int32_t)x[g * 4 + t] * block[g * JC_Q8_BLOCK * 4 + lane * 4 + t];
            for (int lane = 0; lane < JC_Q8_BLOCK; lane++) {
                int64_t j = b * JC_Q8_BLOCK + lane;
                if (j < n)
                    y[r * n + j] = finish(acc[lane], xzero[r], colsum[j], xscale[r], wscale[j], bias ? bias[j] : 0.0f);
            }
        }
    }
}

#ifdef JC_Q8_X86
#define VNNI_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni,fma")))

/* acc += dot4(x u8, w s8) per 32-bit lane. In asm because gcc 12 copies the accumulator twice around
 * each _mm512_dpbusd_epi32 (it does not tie the operand), a third of the loop's instructions. */
#define DPBUSD(acc, xv, wv) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(xv), "v"(wv))

/* R rows x C blocks of 16 columns over the whole of k, then scaled and stored: the R*C accumulators
 * stay in registers (R, C constant after inlining). Each 64-byte weight load serves R rows; each
 * broadcast of 4 activation bytes serves C blocks. */
VNNI_TARGET static inline __attribute__((always_inline)) void
tile(const int R, const int C, const int8_t *w, int64_t wstride, const uint8_t *x, int64_t kp, int64_t b,
     const float *wscale, const int32_t *colsum, const float *bias, int64_t n, int64_t r, const float *xscale,
     const int32_t *xzero, float *y)
{
    __m512i acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < R * C; i++)
        acc[i] = _mm512_setzero_si512();
    const uint8_t *xe = x + kp;
    for (; x < xe; x += 4, w += 64) {
        __m512i w0 = _mm512_loadu_si512((const void *)w);
        __m512i w1 = C > 1 ? _mm512_loadu_si512((const void *)(w + wstride)) : w0;
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            int32_t four;
            memcpy(&four, x + i * kp, 4);
            __m512i xv = _mm512_set1_epi32(four);
            DPBUSD(acc[i * C], xv, w0);
            if (C > 1)
                DPBUSD(acc[i * C + 1], xv, w1);
        }
    }
#pragma GCC unroll 2
    for (int c = 0; c < C; c++) {
        int64_t j0 = (b + c) * JC_Q8_BLOCK;
        __mmask16 mask = lanes(n - j0);
        __m512 ws = _mm512_maskz_loadu_ps(mask, wscale + j0);
        __m512 bs = bias ? _mm512_maskz_loadu_ps(mask, bias + j0) : _mm512_setzero_ps();
        __m512i cs = _mm512_loadu_si512((const void *)(colsum + j0)); /* padded to whole blocks */
#pragma GCC unroll 8
        for (int i = 0; i < R; i++) {
            __m512i t = _mm512_sub_epi32(acc[i * C + c], _mm512_mullo_epi32(_mm512_set1_epi32(xzero[r + i]), cs));
            __m512 s = _mm512_mul_ps(_mm512_set1_ps(xscale[r + i]), ws);
            __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), s, bs);
            _mm512_mask_storeu_ps(y + (r + i) * n + j0, mask, v);
        }
    }
}

/* One constant-shaped tile for each row count 1..8 (R rows left) at C blocks. */
// clang-format off
#define TILE_CASE(R, C) \
    case R: tile(R, C, w, wstride, x, kp, b, wscale, colsum, bias, n, r, xscale, xzero, y); break;
#define TILE_SWITCH(C) \
    switch (R) { \
        TILE_CASE(1, C) TILE_CASE(2, C) TILE_CASE(3, C) TILE_CASE(4, C) \
        TILE_CASE(5, C) TILE_CASE(6, C) TILE_CASE(7, C) TILE_CASE(8, C) \
    }
// clang-format on

VNNI_TARGET static void gemm_vnni(const int8_t *packed, const float *wscale, const int32_t *colsum, const float *bias,
                                  int64_t n, int64_t k, const uint8_t *xq, const float *xscale, const int32_t *xzero,
                                  int64_t m, float *y, int64_t b0, int64_t b1)
{
    int64_t kp = jc_q8_kpad(k), wstride = JC_Q8_BLOCK * kp;
    /* Rows in chunks whose activations stay in L2 (~256 KB) while every block of the range passes. */
    int64_t chunk = (256 * 1024 / kp) / 8 * 8;
    chunk = chunk < 8 ? 8 : chunk;
    for (int64_t r0 = 0; r0 < m; r0 += chunk) {
        int64_t r1 = r0 + chunk < m ? r0 + chunk : m;
        for (int64_t b = b0; b < b1; b += 2) {
            const int8_t *w = packed + b * wstride;
            int C = b + 1 < b1 ? 2 : 1;
            for (int64_t r = r0; r < r1; r += 8) {
                const uint8_t *x = xq + r * kp;
                int R = r1 - r < 8 ? (int)(r1 - r) : 8;
                if (C == 2)
                    TILE_SWITCH(2)
                else
                    TILE_SWITCH(1)
            }
        }
    }
}
#endif

static bool detect_vnni(void)
{
    const char *env = getenv("JACLIP_Q8_PORTABLE");
    if (env && env[0] == '1')
        return false;
#ifdef JC_Q8_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
#else
    return false;
#endif
}

bool jc_q8_uses_vnni(void)
{
    /* Racing first calls compute the same answer: a benign, idempotent store. */
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        v = detect_vnni() ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v == 1;
}

void jc_q8_gemm(const int8_t *packed, const float *wscale, const int32_t *colsum, const float *bias, int64_t n,
                int64_t k, const uint8_t *xq, const float *xscale, const int32_t *xzero, int64_t m, float *y,
                int64_t b0, int64_t b1)
{
#ifdef JC_Q8_X86
    if (jc_q8_uses_vnni()) {
        gemm_vnni(packed, wscale, colsum, bias, n, k, xq, xscale, xzero, m, y, b0, b1);
        return;
    }
#endif
    gemm_portable(packed, wscale, colsum, bias, n, k, xq, xscale, xzero, m, y, b0, b1);
}
