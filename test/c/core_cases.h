/* The model-free cases of the core API (versions, errors, tensors, similarity, top-k, options), shared by
 * test_core.c and the sanitizer build's test/sanitize/san_core.c. */
#ifndef JACLIP_TEST_CORE_CASES_H
#define JACLIP_TEST_CORE_CASES_H

#include "jaclip.h"
#include "check.h"

#include <math.h>
#include <stdint.h>

/* Max abs difference of the first n floats: batches of different sizes may round differently (the
 * BLAS picks other blockings), so only same-shaped calls are compared bit for bit. */
static inline float max_diff(const jaclip_tensor *a, const jaclip_tensor *b, size_t n)
{
    const float *x = jaclip_tensor_data(a), *y = jaclip_tensor_data(b);
    float worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmaxf(worst, fabsf(x[i] - y[i]));
    return worst;
}

static void test_version_and_errors(void)
{
    CHECK(jaclip_version_number() == JACLIP_VERSION_NUMBER);
    CHECK(strcmp(jaclip_version_string(), JACLIP_VERSION_STRING) == 0);
    CHECK(strstr(jaclip_status_string(JACLIP_OK), "JACLIP_OK") != NULL);
    CHECK(strstr(jaclip_status_string(JACLIP_ERROR_IO), "IO") != NULL);
    CHECK(strstr(jaclip_status_string((jaclip_status)12345), "UNKNOWN") != NULL);
    for (int s = 0; s <= JACLIP_ERROR_INTERNAL; s++)
        CHECK(jaclip_status_string((jaclip_status)s)[0] != '\0');
    /* The detail is per thread and names the problem. */
    CHECK_ERROR(jaclip_tensor_create(NULL, JACLIP_DTYPE_FLOAT32, 1, NULL, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_last_error(), "out") != NULL);
}

static void test_tensors(void)
{
    int64_t shape[3] = {2, 3, 4};
    float values[24];
    jaclip_tensor *t = NULL, *c = NULL;
    for (int i = 0; i < 24; i++)
        values[i] = (float)i;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 3, shape, values));
    CHECK(jaclip_tensor_dtype(t) == JACLIP_DTYPE_FLOAT32);
    CHECK(jaclip_tensor_ndim(t) == 3);
    CHECK(jaclip_tensor_dim(t, 0) == 2 && jaclip_tensor_dim(t, 2) == 4);
    CHECK(jaclip_tensor_dim(t, 3) == -1);
    CHECK(jaclip_tensor_numel(t) == 24 && jaclip_tensor_nbytes(t) == 96);
    CHECK(((const float *)jaclip_tensor_data(t))[23] == 23.0f);
    ((float *)jaclip_tensor_data_mut(t))[0] = 42.0f;
    CHECK_OK(jaclip_tensor_clone(&c, t));
    CHECK(((const float *)jaclip_tensor_data(c))[0] == 42.0f && jaclip_tensor_data(c) != jaclip_tensor_data(t));
    jaclip_tensor_free(c);
    jaclip_tensor_free(t);

    /* data == NULL gives zeros; an empty tensor is allowed. */
    int64_t zero_shape[2] = {0, 5};
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_INT64, 2, zero_shape, NULL));
    CHECK(jaclip_tensor_numel(t) == 0 && jaclip_tensor_data(t) == NULL);
    jaclip_tensor_free(t);

    int64_t bad[2] = {-1, 3}, huge[3] = {INT64_MAX, INT64_MAX, 4};
    t = (jaclip_tensor *)1;
    CHECK_ERROR(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, bad, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(t == NULL);
    CHECK_ERROR(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 3, huge, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 0, shape, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 9, shape, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tensor_create(&t, (jaclip_dtype)7, 1, shape, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 1, NULL, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tensor_clone(&t, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tensor_clone(NULL, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    /* Accessors and free tolerate NULL. */
    jaclip_tensor_free(NULL);
    CHECK(jaclip_tensor_ndim(NULL) == 0 && jaclip_tensor_numel(NULL) == 0 && jaclip_tensor_nbytes(NULL) == 0);
    CHECK(jaclip_tensor_dim(NULL, 0) == -1 && jaclip_tensor_data(NULL) == NULL && jaclip_tensor_data_mut(NULL) == NULL);
    CHECK(jaclip_tensor_dtype(NULL) == JACLIP_DTYPE_FLOAT32);
}

static void test_similarity(void)
{
    const float a_data[] = {3, 4, 0, 0, 0, 0, 1, 0, 0}; /* rows: (3,4,0) (0,0,0) (1,0,0) */
    const float b_data[] = {1, 0, 0, 0, 2, 0};          /* rows: (1,0,0) (0,2,0) */
    jaclip_tensor *a = make_f32(3, 3, a_data), *b = make_f32(2, 3, b_data), *s = NULL, *p = NULL, *n = NULL;
    CHECK_OK(jaclip_similarity(&s, a, b, JACLIP_SIMILARITY_COSINE, 100.0f));
    const float *sv = jaclip_tensor_data(s);
    CHECK(jaclip_tensor_dim(s, 0) == 3 && jaclip_tensor_dim(s, 1) == 2);
    CHECK(fabsf(sv[0] - 60.0f) < 1e-4f && fabsf(sv[1] - 80.0f) < 1e-4f);
    CHECK(sv[2] == 0.0f && sv[3] == 0.0f); /* a zero row has cosine 0 */
    CHECK(fabsf(sv[4] - 100.0f) < 1e-4f && sv[5] == 0.0f);
    jaclip_tensor_free(s);
    CHECK_OK(jaclip_similarity(&s, a, b, JACLIP_SIMILARITY_DOT, 2.0f));
    sv = jaclip_tensor_data(s);
    CHECK(sv[0] == 6.0f && sv[1] == 16.0f && sv[4] == 2.0f);
    jaclip_tensor_free(s);

    CHECK_OK(jaclip_probabilities(&p, a, b, JACLIP_SIMILARITY_COSINE, 10.0f));
    const float *pv = jaclip_tensor_data(p);
    double e0 = exp(6.0), e1 = exp(8.0);
    CHECK(fabs(pv[0] - e0 / (e0 + e1)) < 1e-6 && fabs(pv[0] + pv[1] - 1.0) < 1e-6);
    CHECK(fabs(pv[2] - 0.5) < 1e-6);
    jaclip_tensor_free(p);

    const float big[] = {1000.0f, 0.0f, -1000.0f};
    jaclip_tensor *logits = make_f32(1, 3, big);
    CHECK_OK(jaclip_softmax(&p, logits));
    pv = jaclip_tensor_data(p);
    CHECK(pv[0] == 1.0f && pv[1] == 0.0f && pv[2] == 0.0f && !isnan(pv[0]));
    jaclip_tensor_free(p);
    jaclip_tensor_free(logits);

    CHECK_OK(jaclip_normalize(&n, a));
    const float *nv = jaclip_tensor_data(n);
    CHECK(fabsf(nv[0] - 0.6f) < 1e-6f && fabsf(nv[1] - 0.8f) < 1e-6f && nv[3] == 0.0f);
    jaclip_tensor_free(n);

    /* errors */
    jaclip_tensor *wrong_d = make_f32(2, 4, NULL);
    CHECK_ERROR(jaclip_similarity(&s, a, wrong_d, JACLIP_SIMILARITY_COSINE, 1.0f), JACLIP_ERROR_SHAPE);
    CHECK(s == NULL);
    CHECK_ERROR(jaclip_similarity(&s, a, NULL, JACLIP_SIMILARITY_COSINE, 1.0f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_similarity(&s, a, b, (jaclip_similarity_kind)9, 1.0f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_similarity(&s, a, b, JACLIP_SIMILARITY_DOT, NAN), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_similarity(NULL, a, b, JACLIP_SIMILARITY_DOT, 1.0f), JACLIP_ERROR_INVALID_ARGUMENT);
    int64_t shape1[1] = {3};
    jaclip_tensor *vec = NULL;
    CHECK_OK(jaclip_tensor_create(&vec, JACLIP_DTYPE_FLOAT32, 1, shape1, NULL));
    CHECK_ERROR(jaclip_softmax(&p, vec), JACLIP_ERROR_SHAPE);
    CHECK_ERROR(jaclip_normalize(&n, vec), JACLIP_ERROR_SHAPE);
    CHECK_ERROR(jaclip_probabilities(&p, vec, b, JACLIP_SIMILARITY_DOT, 1.0f), JACLIP_ERROR_SHAPE);
    CHECK_ERROR(jaclip_softmax(NULL, a), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_normalize(NULL, a), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(vec);
    jaclip_tensor_free(wrong_d);
    jaclip_tensor_free(a);
    jaclip_tensor_free(b);
}

static void test_topk(void)
{
    const float scores[] = {0.5f, 2.0f, NAN, 2.0f, -1.0f, 7.0f, 1.0f, 1.0f, 1.0f, 0.0f};
    jaclip_tensor *s = make_f32(2, 5, scores), *idx = NULL, *val = NULL;
    CHECK_OK(jaclip_topk(&idx, &val, s, 3));
    const int64_t *iv = jaclip_tensor_data(idx);
    const float *vv = jaclip_tensor_data(val);
    CHECK(jaclip_tensor_dim(idx, 1) == 3 && jaclip_tensor_dtype(idx) == JACLIP_DTYPE_INT64);
    CHECK(iv[0] == 1 && iv[1] == 3 && iv[2] == 0); /* tie 2.0: lower index first; NaN last */
    CHECK(vv[0] == 2.0f && vv[2] == 0.5f);
    CHECK(iv[3] == 0 && iv[4] == 1 && iv[5] == 2); /* 7, then the 1.0 ties in index order */
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);
    CHECK_OK(jaclip_topk(&idx, NULL, s, 99)); /* k larger than the row: all of it */
    CHECK(jaclip_tensor_dim(idx, 1) == 5 && ((const int64_t *)jaclip_tensor_data(idx))[4] == 2);
    jaclip_tensor_free(idx);
    CHECK_ERROR(jaclip_topk(&idx, &val, s, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_topk(NULL, NULL, s, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_topk(&idx, &val, NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(s);
}

static void test_options(void)
{
    jaclip_model_options *o = NULL;
    CHECK_OK(jaclip_model_options_create(&o));
    CHECK_OK(jaclip_model_options_set_device(o, "cpu"));
    CHECK_OK(jaclip_model_options_set_device(o, "cuda:1"));
    CHECK_ERROR(jaclip_model_options_set_device(o, "gpu"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_device(o, "cuda:"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_device(o, "cuda:x"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_device(o, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_model_options_set_num_threads(o, 0));
    CHECK_OK(jaclip_model_options_set_num_threads(o, 2));
    CHECK_ERROR(jaclip_model_options_set_num_threads(o, -1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_num_threads(o, 5000), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_model_options_set_precision(o, JACLIP_PRECISION_BF16));
    CHECK_OK(jaclip_model_options_set_precision(o, JACLIP_PRECISION_INT8));
    CHECK_OK(jaclip_model_options_set_precision(o, JACLIP_PRECISION_INT8_WEIGHTS));
    CHECK_ERROR(jaclip_model_options_set_precision(o, (jaclip_precision)6), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_model_options_set_max_image_pixels(o, 1000));
    CHECK_OK(jaclip_model_options_set_image_flags(o, JACLIP_IMAGE_EXIF_TRANSPOSE));
    CHECK_ERROR(jaclip_model_options_set_image_flags(o, 0x80), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_num_threads(NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_precision(NULL, JACLIP_PRECISION_FP32), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_max_image_pixels(NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_image_flags(NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_create(NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_model_options_free(o);
    jaclip_model_options_free(NULL);
}

#endif
