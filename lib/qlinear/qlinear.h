/* Linear layers with int8 weights (JACLIP_PRECISION_INT8_WEIGHTS): y = x W^T + b with W quantized per
 * output channel and x quantized per row, multiplied in exact int32 arithmetic.
 *
 * Why libjaclip's own kernel: Debian's libtorch has no FBGEMM, and its oneDNN dynamic int8 re-creates
 * its primitives for every new activation scale (4.5x on a new query). Here activations are quantized
 * per row, so a row's result never depends on the other rows of a batch, there is nothing to re-create,
 * and the integer sums are the same on every CPU and thread count: only the final scaling is float.
 *
 * Plain C, no libtorch: the torch plugin links it (torch_bridge.cpp calls it from its custom op) and
 * test_qlinear.c checks it against a naive reference. Threads: every function is reentrant; callers
 * split the output blocks of jc_q8_gemm between threads. */
#ifndef JACLIP_QLINEAR_H
#define JACLIP_QLINEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Output columns per packed block. */
#define JC_Q8_BLOCK 16

/* k rounded up to a multiple of 4 (the int8 dot products take 4 at a time) and n to blocks of 16. */
static inline int64_t jc_q8_kpad(int64_t k) { return (k + 3) / 4 * 4; }
static inline int64_t jc_q8_blocks(int64_t n) { return (n + JC_Q8_BLOCK - 1) / JC_Q8_BLOCK; }

/* Packs a row-major float weight [n][k] (finite values) into packed[blocks(n)][kpad(k)/4][16][4]
 * (zero-padded), scale[n] = max|w| / 127 per output channel (symmetric, zero point 0; an all-zero
 * channel gets scale 1; q = w * (127 / max|w|) rounded to even, via + 127) and colsum[blocks(n) * 16] = the sum of
 * each channel's int8 weights; for the output blocks [b0, b1) only (threads split the blocks). */
void jc_q8_pack(const float *w, int64_t n, int64_t k, int64_t b0, int64_t b1, int8_t *packed, float *scale,
                int32_t *colsum);

/* Quantizes m rows of x (row stride k) to unsigned 8 bits, each row with its own range (widened to
 * hold 0): xq[m][kpad(k)] (zero-padded), scale[m] and zero[m] with x ~ scale * (xq - zero). A row
 * holding NaN or infinity gets scale NaN, so its outputs are NaN rather than a silent wrong number. */
void jc_q8_quantize_rows(const float *x, int64_t m, int64_t k, uint8_t *xq, float *scale, int32_t *zero);

/* y[m][n] (row stride n) = xscale[i] * wscale[j] * (sum_k xq[i][k] * w[j][k] - zero[i] * colsum[j])
 * + bias[j] (bias may be NULL), for the output blocks [b0, b1) only, every row. */
void jc_q8_gemm(const int8_t *packed, const float *wscale, const int32_t *colsum, const float *bias, int64_t n,
                int64_t k, const uint8_t *xq, const float *xscale, const int32_t *xzero, int64_t m, float *y,
                int64_t b0, int64_t b1);

/* Whether jc_q8_gemm runs its AVX512-VNNI kernel here (else portable C, same results). The
 * environment variable JACLIP_Q8_PORTABLE=1, read once, forces the portable code (for tests). */
bool jc_q8_uses_vnni(void);

#ifdef __cplusplus
}
#endif

#endif
