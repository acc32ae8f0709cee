/* An index's rows as stored: normalised on the way in, float16 conversion (round to nearest even; the
 * widening exact, by F16C where the CPU has it), and the checks rows pass on the way in and out. */
#include "index/index_internal.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) /* clang 14 lacks cpu_supports("f16c") */
#include <immintrin.h>
#define JC_HAVE_F16C_PATH 1
#endif

/* IEEE binary16 from binary32, rounding to nearest even (as numpy's float16 and F16C do). */
static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) /* inf, nan: never stored (rows are finite), kept for completeness */
        return (uint16_t)(sign | 0x7C00u | (a > 0x7F800000u ? 0x200u : 0));
    if (a >= 0x477FF000u) /* rounds to above 65504 */
        return (uint16_t)(sign | 0x7C00u);
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (a < 0x33000000u)
            return (uint16_t)sign;
        /* |f| = mant * 2^(E-150) and a half subnormal is q * 2^-24, so q = mant >> (126 - E), rounded
         * to nearest even */
        uint32_t mant = (a & 0x7FFFFFu) | 0x800000u, total = 126u - (a >> 23), q = mant >> total,
                 rem = mant & ((1u << total) - 1u), half = 1u << (total - 1u);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t e = (a >> 23) - 112u, mant = a & 0x7FFFFFu;
    uint32_t h = (e << 10) | (mant >> 13), rem = mant & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* may carry into the exponent: still the right value */
    return (uint16_t)(sign | h);
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            e = 113;
            while (!(m & 0x400u))
                m <<= 1, e--;
            x = sign | (e << 23) | ((m & 0x3FFu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7F800000u | (m << 13);
    } else {
        x = sign | ((e + 112u) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

#ifdef JC_HAVE_F16C_PATH
__attribute__((target("f16c,avx"))) static void widen_f16c(float *dst, const uint16_t *src, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++)
        dst[i] = f16_to_f32(src[i]);
}
#endif

/* dst[i] = src[i] widened; exact whichever path runs. */
void jc_index_widen_f16(float *dst, const uint16_t *src, size_t n)
{
#ifdef JC_HAVE_F16C_PATH
    static int has_f16c = -1; /* searches run in many threads: read and set atomically */
    int f16c = __atomic_load_n(&has_f16c, __ATOMIC_RELAXED);
    if (f16c < 0) {
        f16c = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
        __atomic_store_n(&has_f16c, f16c, __ATOMIC_RELAXED);
    }
    if (f16c) {
        widen_f16c(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = f16_to_f32(src[i]);
}

/* Row r of src normalised and stored in row_format at dst (row r of a [*, dim] array). */
void jc_index_store_row(void *dst, size_t r, const float *src, size_t dim, uint32_t row_format, float *scratch)
{
    if (row_format == JACLIP_INDEX_ROWS_FLOAT16) {
        jc_normalize_row(scratch, src, dim);
        uint16_t *h = (uint16_t *)dst + r * dim;
        for (size_t i = 0; i < dim; i++)
            h[i] = f32_to_f16(scratch[i]);
    } else {
        jc_normalize_row((float *)dst + r * dim, src, dim);
    }
}

/* Rows r0..r0+n-1 of a run as float32 into dst. */
void jc_index_copy_rows_f32(float *dst, const jc_run *run, size_t r0, size_t n, size_t dim, uint32_t row_format)
{
    if (row_format == JACLIP_INDEX_ROWS_FLOAT16)
        jc_index_widen_f16(dst, (const uint16_t *)run->vectors + r0 * dim, n * dim);
    else
        memcpy(dst, (const float *)run->vectors + r0 * dim, n * dim * sizeof(float));
}

jaclip_status jc_index_check_finite(const float *data, size_t rows, size_t dim, const char *name)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < dim; c++)
            if (!isfinite(data[r * dim + c]))
                return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s row %zu column %zu is not finite", name, r, c);
    return JACLIP_OK;
}

/* Index of the first stored value that no writer produces (not finite, or |v| >= 2 where unit rows
 * have |v| <= 1), or SIZE_MAX: such a row could only make non-finite or meaningless scores. */
size_t jc_index_first_bad_value(const void *vectors, size_t n, uint32_t row_format)
{
    if (row_format == JACLIP_INDEX_ROWS_FLOAT16) {
        const uint16_t *h = vectors;
        uint16_t worst = 0;
        for (size_t i = 0; i < n; i++)
            worst |= (uint16_t)((h[i] & 0x7FFFu) >= 0x4000u); /* exponent of 2.0 or above, inf, nan */
        if (!worst)
            return SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            if ((h[i] & 0x7FFFu) >= 0x4000u)
                return i;
    } else {
        const uint32_t *x = vectors;
        uint32_t worst = 0;
        for (size_t i = 0; i < n; i++)
            worst |= (uint32_t)((x[i] & 0x7FFFFFFFu) >= 0x40000000u);
        if (!worst)
            return SIZE_MAX;
        for (size_t i = 0; i < n; i++)
            if ((x[i] & 0x7FFFFFFFu) >= 0x40000000u)
                return i;
    }
    return SIZE_MAX;
}

/* Checks embeddings and labels as add and append take them; *rows gets N. embeddings may be NULL
 * (no rows) when allow_null. */
jaclip_status jc_index_check_rows(const jaclip_tensor *embeddings, const char *const *labels, size_t dim, size_t *rows,
                                  size_t *label_bytes)
{
    jaclip_status st;
    if ((st = jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings")))
        return st;
    if ((uint64_t)embeddings->shape[1] != dim)
        return jc_fail(JACLIP_ERROR_SHAPE, "embeddings have %lld columns, the index has %zu",
                       (long long)embeddings->shape[1], dim);
    *rows = (size_t)embeddings->shape[0];
    if (*rows > 0 && !labels)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels is NULL");
    if ((st = jc_index_check_finite(embeddings->data, *rows, dim, "embeddings")))
        return st;
    *label_bytes = 0;
    for (size_t r = 0; r < *rows; r++) {
        if (!labels[r])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels[%zu] is NULL", r);
        size_t len = strlen(labels[r]), bad = jc_utf8_invalid_at((const unsigned char *)labels[r], len);
        if (bad != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INVALID_UTF8, "labels[%zu] is not valid UTF-8 at byte %zu", r, bad);
        if (*label_bytes > SIZE_MAX - len - 1)
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "labels too large");
        *label_bytes += len + 1;
    }
    return JACLIP_OK;
}

void jc_index_put_stamp(unsigned char *p, const jaclip_index_stamp *s)
{
    jc_put_u64le(p, s ? s->size : 0);
    jc_put_u64le(p + 8, s ? (uint64_t)s->mtime_ns : 0);
    jc_put_u64le(p + 16, s ? s->content_hash : 0);
}
