/* The core API: versions, errors, tensors, similarity, model options, loading and encoding, and every
 * error path each documents. Needs JACLIP_TEST_MODEL (make test-models) and the bad models
 * (test/tools/make_bad_models.py) in JACLIP_BAD_MODELS. */
#include "jaclip.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <unistd.h>



/* Max abs difference of the first n floats: batches of different sizes may round differently (the
 * BLAS picks other blockings), so only same-shaped calls are compared bit for bit. */
static float max_diff(const jaclip_tensor *a, const jaclip_tensor *b, size_t n)
{
    const float *x = jaclip_tensor_data(a), *y = jaclip_tensor_data(b);
    float worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmaxf(worst, fabsf(x[i] - y[i]));
    return worst;
}

static jaclip_tensor *make_f32(size_t rows, size_t cols, const float *data)
{
    int64_t shape[2] = {(int64_t)rows, (int64_t)cols};
    jaclip_tensor *t = NULL;
    CHECK_OK(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, data));
    return t;
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
    const float a_data[] = {3, 4, 0, 0, 0, 0, 1, 0, 0};   /* rows: (3,4,0) (0,0,0) (1,0,0) */
    const float b_data[] = {1, 0, 0, 0, 2, 0};            /* rows: (1,0,0) (0,2,0) */
    jaclip_tensor *a = make_f32(3, 3, a_data), *b = make_f32(2, 3, b_data), *s = NULL, *p = NULL, *n = NULL;
    CHECK_OK(jaclip_similarity(&s, a, b, JACLIP_SIMILARITY_COSINE, 100.0f));
    const float *sv = jaclip_tensor_data(s);
    CHECK(jaclip_tensor_dim(s, 0) == 3 && jaclip_tensor_dim(s, 1) == 2);
    CHECK(fabsf(sv[0] - 60.0f) < 1e-4f && fabsf(sv[1] - 80.0f) < 1e-4f);
    CHECK(sv[2] == 0.0f && sv[3] == 0.0f);                 /* a zero row has cosine 0 */
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
    CHECK(iv[0] == 1 && iv[1] == 3 && iv[2] == 0);        /* tie 2.0: lower index first; NaN last */
    CHECK(vv[0] == 2.0f && vv[2] == 0.5f);
    CHECK(iv[3] == 0 && iv[4] == 1 && iv[5] == 2);        /* 7, then the 1.0 ties in index order */
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);
    CHECK_OK(jaclip_topk(&idx, NULL, s, 99));              /* k larger than the row: all of it */
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
    CHECK_ERROR(jaclip_model_options_set_precision(o, (jaclip_precision)4), JACLIP_ERROR_INVALID_ARGUMENT);
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

static void expect_load_error(const char *dir, const char *name, jaclip_status expected, const char *needle)
{
    char path[4096];
    jaclip_model *m = (jaclip_model *)1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_ERROR(jaclip_model_load(&m, path, NULL), expected);
    CHECK(m == NULL);
    if (needle && !strstr(jaclip_last_error(), needle)) {
        fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", name, jaclip_last_error(), needle);
        CHECK(0);
    }
    /* The same bytes from memory give the same status. */
    size_t size = 0;
    char *bytes = read_file(path, &size);
    if (bytes && size > 0) {
        CHECK_STATUS(jaclip_model_load_memory(&m, bytes, size, NULL), expected);
        CHECK(m == NULL);
    }
    free(bytes);
}

static void test_model_load_errors(const char *bad)
{
    jaclip_model *m = NULL;
    CHECK_ERROR(jaclip_model_load(NULL, "x", NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_load(&m, NULL, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_load(&m, "/nonexistent/model.jaclip", NULL), JACLIP_ERROR_IO);
    CHECK(strstr(jaclip_last_error(), "/nonexistent/model.jaclip") != NULL);
    CHECK_ERROR(jaclip_model_load_memory(&m, NULL, 10, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_load_memory(&m, "x", 0, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_load_memory(NULL, "x", 1, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    expect_load_error(bad, "not-a-model.jaclip", JACLIP_ERROR_MODEL_FORMAT, NULL);
    expect_load_error(bad, "empty.jaclip", JACLIP_ERROR_MODEL_FORMAT, NULL);
    expect_load_error(bad, "truncated.jaclip", JACLIP_ERROR_MODEL_FORMAT, NULL);
    expect_load_error(bad, "wrong-version.jaclip", JACLIP_ERROR_MODEL_FORMAT, "version 99");
    expect_load_error(bad, "no-config.jaclip", JACLIP_ERROR_MODEL_FORMAT, "not a jaclip model");
    expect_load_error(bad, "no-tokenizer.jaclip", JACLIP_ERROR_MODEL_FORMAT, "tokenizer");
    expect_load_error(bad, "bad-tokenizer.jaclip", JACLIP_ERROR_TOKENIZER, "stored tokenizer");
    expect_load_error(bad, "bad-config-value.jaclip", JACLIP_ERROR_MODEL_FORMAT, "image_size");
    expect_load_error(bad, "wrong-signature.jaclip", JACLIP_ERROR_MODEL_FORMAT, "encode_image");
}

static void test_cuda_unavailable(const char *model_path)
{
    jaclip_model_options *o = NULL;
    jaclip_model *m = NULL;
    CHECK_OK(jaclip_model_options_create(&o));
    CHECK_OK(jaclip_model_options_set_device(o, "cuda"));
    jaclip_status st = jaclip_model_load(&m, model_path, o);
    if (st == JACLIP_OK) {
        printf("test_core: this libtorch has a usable GPU; CUDA-unavailable path not exercised\n");
        CHECK(strncmp(jaclip_model_device(m), "cuda", 4) == 0);
        jaclip_model_free(m);
    } else {
        CHECK_ERROR(st, JACLIP_ERROR_DEVICE_UNAVAILABLE);
        CHECK(strstr(jaclip_last_error(), "cuda") != NULL);
        CHECK(m == NULL);
    }
    jaclip_model_options_free(o);
}

static void test_model(const char *model_path, const char *bf16_path, const char *bad)
{
    jaclip_model *m = NULL, *mm = NULL;
    jaclip_tensor *out = NULL, *out2 = NULL;
    CHECK_OK(jaclip_model_load(&m, model_path, NULL));
    if (!m)
        return;
    int64_t dim = jaclip_model_embedding_dim(m), size = jaclip_model_image_size(m);
    CHECK(dim == 32 && size == 224 && jaclip_model_max_text_length(m) == 77);
    CHECK(strcmp(jaclip_model_device(m), "cpu") == 0);
    CHECK(jaclip_model_precision(m) == JACLIP_PRECISION_FP32);
    CHECK(fabsf(jaclip_model_image_mean(m)[0] - 0.48145466f) == 0.0f);
    CHECK(fabsf(jaclip_model_image_std(m)[2] - 0.27577711f) == 0.0f);
    CHECK(jaclip_model_tokenizer(m) != NULL);
    CHECK(jaclip_model_embedding_dim(NULL) == 0 && jaclip_model_image_size(NULL) == 0);
    CHECK(jaclip_model_max_text_length(NULL) == 0 && jaclip_model_device(NULL) == NULL);
    CHECK(jaclip_model_tokenizer(NULL) == NULL && jaclip_model_image_mean(NULL) == NULL);
    CHECK(jaclip_model_image_std(NULL) == NULL);
    CHECK(jaclip_model_precision(NULL) == JACLIP_PRECISION_DEFAULT);
    /* "cloob-32-" and 16 hex digits */
    const char *fp = jaclip_model_fingerprint(m);
    CHECK(fp && strncmp(fp, "cloob-32-", 9) == 0 && strlen(fp) == 25 && strspn(fp + 9, "0123456789abcdef") == 16);
    CHECK(jaclip_model_fingerprint(NULL) == NULL);
    char fingerprint[64];
    snprintf(fingerprint, sizeof fingerprint, "%s", fp ? fp : "");

    /* pixel values: good, wrong shapes, wrong dtype, empty batch */
    int64_t px_shape[4] = {2, 3, size, size};
    jaclip_tensor *px = NULL;
    CHECK_OK(jaclip_tensor_create(&px, JACLIP_DTYPE_FLOAT32, 4, px_shape, NULL));
    float *pxd = jaclip_tensor_data_mut(px);
    for (size_t i = 0; i < jaclip_tensor_numel(px); i++)
        pxd[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    CHECK_OK(jaclip_model_encode_pixel_values(&out, m, px));
    CHECK(jaclip_tensor_dim(out, 0) == 2 && jaclip_tensor_dim(out, 1) == dim);
    int64_t bad_shape[4] = {1, 3, size, size - 1}, three[3] = {3, size, size};
    jaclip_tensor *bad_px = NULL;
    CHECK_OK(jaclip_tensor_create(&bad_px, JACLIP_DTYPE_FLOAT32, 4, bad_shape, NULL));
    CHECK_ERROR(jaclip_model_encode_pixel_values(&out2, m, bad_px), JACLIP_ERROR_SHAPE);
    CHECK(out2 == NULL);
    jaclip_tensor_free(bad_px);
    CHECK_OK(jaclip_tensor_create(&bad_px, JACLIP_DTYPE_FLOAT32, 3, three, NULL));
    CHECK_ERROR(jaclip_model_encode_pixel_values(&out2, m, bad_px), JACLIP_ERROR_SHAPE);
    jaclip_tensor_free(bad_px);
    CHECK_OK(jaclip_tensor_create(&bad_px, JACLIP_DTYPE_UINT8, 4, px_shape, NULL));
    CHECK_ERROR(jaclip_model_encode_pixel_values(&out2, m, bad_px), JACLIP_ERROR_SHAPE);
    jaclip_tensor_free(bad_px);
    int64_t empty_shape[4] = {0, 3, size, size};
    CHECK_OK(jaclip_tensor_create(&bad_px, JACLIP_DTYPE_FLOAT32, 4, empty_shape, NULL));
    CHECK_OK(jaclip_model_encode_pixel_values(&out2, m, bad_px));
    CHECK(jaclip_tensor_dim(out2, 0) == 0 && jaclip_tensor_dim(out2, 1) == dim);
    jaclip_tensor_free(out2);
    jaclip_tensor_free(bad_px);
    CHECK_ERROR(jaclip_model_encode_pixel_values(&out2, NULL, px), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_pixel_values(&out2, m, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_pixel_values(NULL, m, px), JACLIP_ERROR_INVALID_ARGUMENT);

    /* Loading from memory gives the same model. */
    size_t bytes_size = 0;
    char *bytes = read_file(model_path, &bytes_size);
    CHECK(bytes != NULL);
    CHECK_OK(jaclip_model_load_memory(&mm, bytes, bytes_size, NULL));
    free(bytes);
    if (mm) {
        CHECK(strcmp(jaclip_model_fingerprint(mm), jaclip_model_fingerprint(m)) == 0);
        CHECK_OK(jaclip_model_encode_pixel_values(&out2, mm, px));
        CHECK(out2 && memcmp(jaclip_tensor_data(out), jaclip_tensor_data(out2), jaclip_tensor_nbytes(out)) == 0);
        jaclip_tensor_free(out2);
        jaclip_model_free(mm);
    }
    jaclip_tensor_free(out);

    /* token ids */
    const char *texts[] = {"犬", "猫が座っている", ""};
    jaclip_tensor *ids = NULL, *mask = NULL;
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, jaclip_model_tokenizer(m), texts, NULL, 3, 0));
    CHECK_OK(jaclip_model_encode_token_ids(&out, m, ids, mask));
    CHECK(jaclip_tensor_dim(out, 0) == 3 && jaclip_tensor_dim(out, 1) == dim);
    CHECK_OK(jaclip_model_encode_texts(&out2, m, texts, NULL, 3));
    /* Trimming to the longest text is invisible to within float rounding. */
    if (out && out2)
        CHECK(max_diff(out, out2, jaclip_tensor_numel(out)) <= 1e-5f);
    jaclip_tensor_free(out2);
    size_t lengths[2] = {3, JACLIP_NUL_TERMINATED};
    CHECK_OK(jaclip_model_encode_texts(&out2, m, texts, lengths, 2));  /* "犬" is 3 bytes */
    if (out && out2)
        CHECK(max_diff(out, out2, 2 * (size_t)dim) <= 1e-5f);
    jaclip_tensor_free(out2);
    jaclip_tensor_free(out);
    CHECK_OK(jaclip_model_encode_texts(&out, m, NULL, NULL, 0));
    CHECK(jaclip_tensor_dim(out, 0) == 0);
    jaclip_tensor_free(out);
    CHECK_ERROR(jaclip_model_encode_texts(&out, m, NULL, NULL, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    const char *bad_utf8[] = {"ok", "\xff\xfe"};
    CHECK_ERROR(jaclip_model_encode_texts(&out, m, bad_utf8, NULL, 2), JACLIP_ERROR_INVALID_UTF8);
    CHECK(out == NULL);

    int64_t *idd = jaclip_tensor_data_mut(ids);
    idd[1] = 32000;
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, ids, mask), JACLIP_ERROR_INVALID_ARGUMENT);
    idd[1] = -1;
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, ids, mask), JACLIP_ERROR_INVALID_ARGUMENT);
    idd[1] = 9;
    ((int64_t *)jaclip_tensor_data_mut(mask))[1] = 2;
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, ids, mask), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, ids, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, mask, px), JACLIP_ERROR_SHAPE);
    jaclip_tensor *short_ids = NULL, *short_mask = NULL;
    int64_t s1[2] = {1, 1}, s2[2] = {2, 77}, s3[2] = {1, 513};
    CHECK_OK(jaclip_tensor_create(&short_ids, JACLIP_DTYPE_INT64, 2, s1, NULL));
    CHECK_OK(jaclip_tensor_create(&short_mask, JACLIP_DTYPE_INT64, 2, s1, NULL));
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, short_ids, short_mask), JACLIP_ERROR_SHAPE);
    jaclip_tensor_free(short_mask);
    CHECK_OK(jaclip_tensor_create(&short_mask, JACLIP_DTYPE_INT64, 2, s2, NULL));
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, ids, short_mask), JACLIP_ERROR_SHAPE);
    jaclip_tensor_free(short_ids);
    jaclip_tensor_free(short_mask);
    CHECK_OK(jaclip_tensor_create(&short_ids, JACLIP_DTYPE_INT64, 2, s3, NULL));
    CHECK_OK(jaclip_tensor_create(&short_mask, JACLIP_DTYPE_INT64, 2, s3, NULL));
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, short_ids, short_mask), JACLIP_ERROR_SHAPE);
    jaclip_tensor_free(short_ids);
    jaclip_tensor_free(short_mask);
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    /* image entry points */
    const char *data_dir = env_or("JACLIP_PROJECT_DATA", "data");
    char dog[4096];
    snprintf(dog, sizeof dog, "%s/dog.jpeg", data_dir);
    const char *paths[2] = {dog, dog};
    CHECK_OK(jaclip_model_encode_image_files(&out, m, paths, 2));
    size_t dog_size = 0;
    char *dog_bytes = read_file(dog, &dog_size);
    const void *bufs[1] = {dog_bytes};
    size_t sizes[1] = {dog_size};
    /* The same photo twice in one batch: identical rows. */
    if (out)
        CHECK(memcmp(jaclip_tensor_data(out), (const float *)jaclip_tensor_data(out) + dim, (size_t)dim * 4) == 0);
    CHECK_OK(jaclip_model_encode_image_buffers(&out2, m, bufs, sizes, 1));
    if (out && out2)
        CHECK(max_diff(out, out2, (size_t)dim) <= 1e-5f);
    jaclip_image *img = NULL;
    jaclip_tensor *same = NULL;
    CHECK_OK(jaclip_image_load(&img, dog, 0, 0));
    const jaclip_image *imgs[1] = {img};
    /* Every entry point at batch 1 gives the same bytes. */
    CHECK_OK(jaclip_model_encode_images(&same, m, imgs, 1));
    if (same && out2)
        CHECK(memcmp(jaclip_tensor_data(same), jaclip_tensor_data(out2), (size_t)dim * 4) == 0);
    jaclip_tensor_free(same);
    CHECK_OK(jaclip_model_preprocess_images(&same, m, imgs, 1));
    CHECK(jaclip_tensor_ndim(same) == 4 && jaclip_tensor_dim(same, 3) == size);
    jaclip_tensor *feat = NULL;
    CHECK_OK(jaclip_model_encode_pixel_values(&feat, m, same));
    if (out2 && feat)
        CHECK(memcmp(jaclip_tensor_data(out2), jaclip_tensor_data(feat), (size_t)dim * 4) == 0);
    jaclip_tensor_free(feat);
    jaclip_tensor_free(same);
    jaclip_tensor_free(out2);
    jaclip_image_free(img);
    jaclip_tensor_free(out);
    free(dog_bytes);

    const char *missing[2] = {dog, "/nonexistent/cat.jpg"};
    CHECK_ERROR(jaclip_model_encode_image_files(&out, m, missing, 2), JACLIP_ERROR_IO);
    CHECK(out == NULL && strstr(jaclip_last_error(), "/nonexistent/cat.jpg") != NULL);
    /* A corrupt file in a batch: its status, and its path named once. */
    char cut[64];
    snprintf(cut, sizeof cut, "/tmp/jaclip-test-cut-%d.jpg", (int)getpid());
    FILE *cf = fopen(cut, "wb");
    size_t whole = 0;
    char *whole_bytes = read_file(dog, &whole);
    if (cf && whole_bytes) {
        fwrite(whole_bytes, 1, whole / 3, cf);
        fclose(cf);
        const char *with_cut[3] = {dog, cut, dog};
        CHECK_ERROR(jaclip_model_encode_image_files(&out, m, with_cut, 3), JACLIP_ERROR_IMAGE_DECODE);
        const char *first = strstr(jaclip_last_error(), cut);
        CHECK(first != NULL && strstr(first + strlen(cut), cut) == NULL);
        remove(cut);
    }
    free(whole_bytes);
    const char *with_null[1] = {NULL};
    CHECK_ERROR(jaclip_model_encode_image_files(&out, m, with_null, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_image_files(&out, m, NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    const void *junk[1] = {"not an image"};
    size_t junk_size[1] = {12};
    CHECK_ERROR(jaclip_model_encode_image_buffers(&out, m, junk, junk_size, 1), JACLIP_ERROR_IMAGE_DECODE);
    CHECK_ERROR(jaclip_model_encode_image_buffers(&out, m, NULL, junk_size, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    const jaclip_image *null_img[1] = {NULL};
    CHECK_ERROR(jaclip_model_encode_images(&out, m, null_img, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_images(&out, m, NULL, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_preprocess_images(&out, NULL, imgs, 1), JACLIP_ERROR_INVALID_ARGUMENT);

    /* A pixel limit set on the model applies to images it decodes itself. */
    jaclip_model_options *o = NULL;
    jaclip_model *small = NULL;
    CHECK_OK(jaclip_model_options_create(&o));
    CHECK_OK(jaclip_model_options_set_max_image_pixels(o, 1000));
    CHECK_OK(jaclip_model_options_set_num_threads(o, 1));
    CHECK_OK(jaclip_model_load(&small, model_path, o));
    CHECK_ERROR(jaclip_model_encode_image_files(&out, small, paths, 1), JACLIP_ERROR_IMAGE_TOO_LARGE);
    jaclip_model_free(small);
    jaclip_model_options_free(o);
    jaclip_tensor_free(px);

    /* A model whose method returns the wrong shape: an error at encode time, not a crash. */
    char wrong[4096];
    snprintf(wrong, sizeof wrong, "%s/wrong-output.jaclip", bad);
    CHECK_OK(jaclip_model_load(&mm, wrong, NULL));
    if (mm) {
        CHECK_OK(jaclip_tensor_create(&px, JACLIP_DTYPE_FLOAT32, 4, px_shape, NULL));
        CHECK_ERROR(jaclip_model_encode_pixel_values(&out, mm, px), JACLIP_ERROR_MODEL_FORMAT);
        jaclip_tensor_free(px);
        jaclip_model_free(mm);
    }
    jaclip_model_free(m);
    jaclip_model_free(NULL);

    /* bf16 file at the default: bf16 where bf16 is native, else widened to fp32, and the reason says
     * which (test_precision.py checks the choice against /proc/cpuinfo). */
    CHECK_OK(jaclip_model_load(&m, bf16_path, NULL));
    if (m) {
        jaclip_precision p = jaclip_model_precision(m);
        const char *why = jaclip_model_precision_reason(m);
        CHECK((p == JACLIP_PRECISION_BF16 && strncmp(why, "bf16: as stored", 15) == 0) ||
              (p == JACLIP_PRECISION_FP32 && strncmp(why, "fp32: the file stores bf16", 26) == 0));
    }
    CHECK(jaclip_model_precision_reason(NULL) == NULL);
    /* another file of the same weights is another model file */
    CHECK(m && strcmp(jaclip_model_fingerprint(m), fingerprint) != 0);
    jaclip_model_free(m);
    CHECK_OK(jaclip_model_options_create(&o));
    CHECK_OK(jaclip_model_options_set_precision(o, JACLIP_PRECISION_BF16));
    CHECK_OK(jaclip_model_load(&m, model_path, o));
    CHECK(jaclip_model_precision(m) == JACLIP_PRECISION_BF16);
    /* the same file at another precision is the same model */
    CHECK(m && strcmp(jaclip_model_fingerprint(m), fingerprint) == 0);
    jaclip_model_free(m);
    jaclip_model_options_free(o);
}

int main(void)
{
    const char *model = env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip");
    const char *bf16 = env_or("JACLIP_TEST_MODEL_BF16", "build/models/tiny-bf16.jaclip");
    const char *bad = env_or("JACLIP_BAD_MODELS", "build/models/bad");
    test_version_and_errors();
    test_tensors();
    test_similarity();
    test_topk();
    test_options();
    test_model_load_errors(bad);
    test_cuda_unavailable(model);
    test_model(model, bf16, bad);
    return check_summary("test_core");
}
