/* Similarity, softmax, normalisation and top-k over host tensors. Sums run in double: these are small
 * matrices next to the model, and users compare them with numpy. */
#include "common/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double row_norm(const float *row, int64_t d)
{
    double s = 0;
    for (int64_t i = 0; i < d; i++)
        s += (double)row[i] * row[i];
    return sqrt(s);
}

void jc_normalize_row(float *dst, const float *src, size_t d)
{
    double n = row_norm(src, (int64_t)d);
    for (size_t i = 0; i < d; i++)
        dst[i] = n > 0 ? (float)(src[i] / n) : src[i];
}

jaclip_status jaclip_normalize(jaclip_tensor **out, const jaclip_tensor *x)
{
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if ((st = jc_check_2d(x, JACLIP_DTYPE_FLOAT32, "x")) || (st = jaclip_tensor_clone(out, x)))
        return st;
    int64_t rows = x->shape[0], d = x->shape[1];
    float *data = (*out)->data;
    for (int64_t r = 0; r < rows; r++)
        jc_normalize_row(data + r * d, data + r * d, (size_t)d);
    return JACLIP_OK;
}

jaclip_status jaclip_similarity(jaclip_tensor **out, const jaclip_tensor *a, const jaclip_tensor *b,
                                jaclip_similarity_kind kind, float scale)
{
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if ((st = jc_check_2d(a, JACLIP_DTYPE_FLOAT32, "a")) || (st = jc_check_2d(b, JACLIP_DTYPE_FLOAT32, "b")))
        return st;
    if (kind != JACLIP_SIMILARITY_COSINE && kind != JACLIP_SIMILARITY_DOT)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown similarity kind %d", (int)kind);
    if (!isfinite(scale))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "scale must be finite");
    if (a->shape[1] != b->shape[1])
        return jc_fail(JACLIP_ERROR_SHAPE, "a has %lld columns, b has %lld", (long long)a->shape[1],
                       (long long)b->shape[1]);
    int64_t na = a->shape[0], nb = b->shape[0], d = a->shape[1];
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, na, nb)))
        return st;
    const float *pa = a->data, *pb = b->data;
    float *po = (*out)->data;
    double *norm_b = NULL;
    if (kind == JACLIP_SIMILARITY_COSINE && nb > 0) {
        norm_b = malloc(sizeof *norm_b * (size_t)nb);
        if (!norm_b) {
            jaclip_tensor_free(*out);
            *out = NULL;
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
        }
        for (int64_t j = 0; j < nb; j++)
            norm_b[j] = row_norm(pb + j * d, d);
    }
    for (int64_t i = 0; i < na; i++) {
        double norm_a = kind == JACLIP_SIMILARITY_COSINE ? row_norm(pa + i * d, d) : 1.0;
        for (int64_t j = 0; j < nb; j++) {
            double dot = 0;
            for (int64_t k = 0; k < d; k++)
                dot += (double)pa[i * d + k] * pb[j * d + k];
            if (kind == JACLIP_SIMILARITY_COSINE) {
                double denom = norm_a * norm_b[j];
                dot = denom > 0 ? dot / denom : 0.0;
            }
            po[i * nb + j] = (float)(scale * dot);
        }
    }
    free(norm_b);
    return JACLIP_OK;
}

jaclip_status jaclip_softmax(jaclip_tensor **out, const jaclip_tensor *logits)
{
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if ((st = jc_check_2d(logits, JACLIP_DTYPE_FLOAT32, "logits")) || (st = jaclip_tensor_clone(out, logits)))
        return st;
    int64_t rows = logits->shape[0], cols = logits->shape[1];
    float *p = (*out)->data;
    for (int64_t r = 0; r < rows; r++) {
        float *row = p + r * cols;
        double max = -INFINITY, sum = 0;
        for (int64_t c = 0; c < cols; c++)
            if (row[c] > max)
                max = row[c];
        for (int64_t c = 0; c < cols; c++)
            sum += exp((double)row[c] - max);
        for (int64_t c = 0; c < cols; c++)
            row[c] = (float)(exp((double)row[c] - max) / sum);
    }
    return JACLIP_OK;
}

jaclip_status jaclip_probabilities(jaclip_tensor **out, const jaclip_tensor *a, const jaclip_tensor *b,
                                   jaclip_similarity_kind kind, float scale)
{
    jaclip_tensor *logits = NULL;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if ((st = jaclip_similarity(&logits, a, b, kind, scale)))
        return st;
    st = jaclip_softmax(out, logits);
    jaclip_tensor_free(logits);
    return st;
}

/* Order of the top-k: larger value first, then lower index; NaN ranks below every number. */
static bool ranks_before(float va, int64_t ia, float vb, int64_t ib)
{
    if (isnan(va) || isnan(vb))
        return isnan(vb) && (!isnan(va) || ia < ib);
    return va > vb || (va == vb && ia < ib);
}

/* A min-heap (by rank) of the best k seen so far; the root is the weakest kept entry. */
static void sift_down(float *val, int64_t *idx, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && ranks_before(val[worst], idx[worst], val[l], idx[l]))
            worst = l;
        if (r < n && ranks_before(val[worst], idx[worst], val[r], idx[r]))
            worst = r;
        if (worst == i)
            return;
        float tv = val[i];
        int64_t ti = idx[i];
        val[i] = val[worst], idx[i] = idx[worst];
        val[worst] = tv, idx[worst] = ti;
        i = worst;
    }
}

void jc_topk_row(const float *row, int64_t cols, size_t k, int64_t *out_idx, float *out_val)
{
    size_t n = 0;
    for (int64_t c = 0; c < cols; c++) {
        if (n < k) {
            out_val[n] = row[c], out_idx[n] = c;
            n++;
            if (n == k)
                for (size_t i = k / 2 + 1; i-- > 0;)
                    sift_down(out_val, out_idx, n, i);
        } else if (ranks_before(row[c], c, out_val[0], out_idx[0])) {
            out_val[0] = row[c], out_idx[0] = c;
            sift_down(out_val, out_idx, n, 0);
        }
    }
    if (n < k)
        for (size_t i = n / 2 + 1; i-- > 0;)
            sift_down(out_val, out_idx, n, i);
    /* Pop the weakest to the back: the array ends sorted best first. */
    for (size_t end = n; end > 1; end--) {
        float tv = out_val[0];
        int64_t ti = out_idx[0];
        out_val[0] = out_val[end - 1], out_idx[0] = out_idx[end - 1];
        out_val[end - 1] = tv, out_idx[end - 1] = ti;
        sift_down(out_val, out_idx, end - 1, 0);
    }
}

jaclip_status jaclip_topk(jaclip_tensor **out_indices, jaclip_tensor **out_values, const jaclip_tensor *scores,
                          size_t k)
{
    jaclip_tensor *idx = NULL, *val = NULL;
    jaclip_status st;
    if ((st = jc_outputs_begin(out_indices, out_values, "out_indices and out_values")))
        return st;
    if (k == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "k must be at least 1");
    if ((st = jc_check_2d(scores, JACLIP_DTYPE_FLOAT32, "scores")))
        return st;
    int64_t rows = scores->shape[0], cols = scores->shape[1];
    size_t kk = (uint64_t)k < (uint64_t)cols ? k : (size_t)cols;
    if ((st = jc_tensor_new_2d(&idx, JACLIP_DTYPE_INT64, rows, (int64_t)kk)) ||
        (st = jc_tensor_new_2d(&val, JACLIP_DTYPE_FLOAT32, rows, (int64_t)kk))) {
        jaclip_tensor_free(idx);
        return st;
    }
    for (int64_t r = 0; r < rows && kk > 0; r++)
        jc_topk_row((const float *)scores->data + r * cols, cols, kk, (int64_t *)idx->data + r * (int64_t)kk,
                    (float *)val->data + r * (int64_t)kk);
    jc_outputs_give(out_indices, idx, out_values, val);
    return JACLIP_OK;
}
