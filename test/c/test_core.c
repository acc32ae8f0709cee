/* The core API: versions, errors, tensors, similarity, model options, loading and encoding, and every
 * error path each documents. Needs JACLIP_TEST_MODEL (make test-models) and the bad models
 * (test/tools/make_bad_models.py) in JACLIP_BAD_MODELS. */
#include "jaclip.h"
#include "core_cases.h"

#include <unistd.h>

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

typedef struct {
    size_t calls, index[8];
    jaclip_status status[8];
    int named; /* messages that name the file */
    const char *const *paths;
} skips_seen;

static void record_skip(void *user, size_t index, jaclip_status status, const char *message)
{
    skips_seen *s = user;
    if (s->calls < 8) {
        s->index[s->calls] = index;
        s->status[s->calls] = status;
    }
    s->calls++;
    s->named += s->paths && strstr(message, s->paths[index]) != NULL;
}

/* The skipping encoders: which images are left out, in which order they are reported, that the rows
 * are the kept images' features, and that a failure of the model fails the whole call. */
static void test_encode_skipping(jaclip_model *m, const char *dog, const char *bad)
{
    enum { N = 40 }; /* more than one chunk of the decode pool (JC_IMAGE_CHUNK = 32) */
    int64_t dim = jaclip_model_embedding_dim(m);
    char cut[64], junk[64];
    snprintf(cut, sizeof cut, "/tmp/jaclip-test-skip-cut-%d.jpg", (int)getpid());
    snprintf(junk, sizeof junk, "/tmp/jaclip-test-skip-junk-%d.png", (int)getpid());
    size_t whole = 0;
    char *bytes = read_file(dog, &whole);
    FILE *f = fopen(cut, "wb");
    if (f && bytes)
        fwrite(bytes, 1, whole / 3, f), fclose(f);
    f = fopen(junk, "wb");
    if (f)
        fputs("not a PNG at all", f), fclose(f);
    const char *paths[N];
    for (size_t i = 0; i < N; i++)
        paths[i] = dog;
    paths[0] = "/nonexistent/a.jpg", paths[5] = cut, paths[33] = junk, paths[39] = cut;

    jaclip_tensor *out = NULL, *kept = NULL, *one = NULL;
    skips_seen seen = {.paths = paths};
    CHECK_OK(jaclip_model_encode_image_files_skipping(&out, &kept, m, paths, N, record_skip, &seen));
    CHECK(seen.calls == 4 && seen.named == 4);
    CHECK(seen.index[0] == 0 && seen.index[1] == 5 && seen.index[2] == 33 && seen.index[3] == 39);
    CHECK(seen.status[0] == JACLIP_ERROR_IO && seen.status[1] == JACLIP_ERROR_IMAGE_DECODE &&
          seen.status[2] == JACLIP_ERROR_IMAGE_DECODE && seen.status[3] == JACLIP_ERROR_IMAGE_DECODE);
    CHECK(out && jaclip_tensor_dim(out, 0) == N - 4 && jaclip_tensor_dim(out, 1) == dim);
    CHECK(kept && jaclip_tensor_ndim(kept) == 1 && jaclip_tensor_dim(kept, 0) == N - 4);
    CHECK_OK(jaclip_model_encode_image_files(&one, m, &dog, 1));
    if (out && kept && one) {
        const int64_t *k = jaclip_tensor_data(kept);
        size_t at = 0;
        for (size_t i = 0; i < N; i++)
            if (i != 0 && i != 5 && i != 33 && i != 39)
                CHECK(k[at++] == (int64_t)i);
        /* Every kept row is the dog: within the batch-composition tolerance of a lone encode. */
        float worst = 0, top = 0;
        for (int64_t r = 0; r < N - 4; r++)
            for (int64_t c = 0; c < dim; c++) {
                float a = ((const float *)jaclip_tensor_data(out))[r * dim + c];
                float b = ((const float *)jaclip_tensor_data(one))[c];
                worst = fabsf(a - b) > worst ? fabsf(a - b) : worst;
                top = fabsf(b) > top ? fabsf(b) : top;
            }
        CHECK(worst <= 1e-5f * (top > 1 ? top : 1));
    }
    jaclip_tensor_free(out);
    jaclip_tensor_free(kept);

    /* Without out_kept and on_skip; nothing left: [0, D]; n = 0: [0, D]. */
    CHECK_OK(jaclip_model_encode_image_files_skipping(&out, NULL, m, paths, 6, NULL, NULL));
    CHECK(out && jaclip_tensor_dim(out, 0) == 4);
    jaclip_tensor_free(out);
    const char *none_readable[2] = {cut, junk};
    CHECK_OK(jaclip_model_encode_image_files_skipping(&out, &kept, m, none_readable, 2, NULL, NULL));
    CHECK(out && jaclip_tensor_dim(out, 0) == 0 && jaclip_tensor_dim(out, 1) == dim);
    CHECK(kept && jaclip_tensor_dim(kept, 0) == 0);
    jaclip_tensor_free(out);
    jaclip_tensor_free(kept);
    CHECK_OK(jaclip_model_encode_image_files_skipping(&out, &kept, m, paths, 0, NULL, NULL));
    CHECK(out && jaclip_tensor_dim(out, 0) == 0);
    jaclip_tensor_free(out);
    jaclip_tensor_free(kept);

    /* Buffers: a junk buffer left out, the photo kept. */
    const void *data[3] = {"junk", bytes, bytes};
    size_t sizes[3] = {4, whole, 0};
    skips_seen seen_buffers = {0};
    CHECK_OK(jaclip_model_encode_image_buffers_skipping(&out, &kept, m, data, sizes, 3, record_skip, &seen_buffers));
    CHECK(seen_buffers.calls == 2 && seen_buffers.index[0] == 0 && seen_buffers.index[1] == 2);
    CHECK(out && jaclip_tensor_dim(out, 0) == 1 && kept && ((const int64_t *)jaclip_tensor_data(kept))[0] == 1);
    jaclip_tensor_free(out);
    jaclip_tensor_free(kept);

    /* Caller errors fail the call and leave both outputs NULL. */
    out = kept = (jaclip_tensor *)1;
    CHECK_ERROR(jaclip_model_encode_image_files_skipping(&out, &kept, NULL, paths, 1, NULL, NULL),
                JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(out == NULL && kept == NULL);
    const char *with_null[2] = {dog, NULL};
    CHECK_ERROR(jaclip_model_encode_image_files_skipping(&out, &kept, m, with_null, 2, NULL, NULL),
                JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_image_files_skipping(&out, &kept, m, NULL, 1, NULL, NULL),
                JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_image_files_skipping(NULL, &kept, m, paths, 1, NULL, NULL),
                JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_encode_image_buffers_skipping(&out, &kept, m, NULL, sizes, 1, NULL, NULL),
                JACLIP_ERROR_INVALID_ARGUMENT);

    /* A model that fails (its encode_image returns the wrong shape) fails the call: not a skip. */
    char wrong[4096];
    jaclip_model *mm = NULL;
    snprintf(wrong, sizeof wrong, "%s/wrong-output.jaclip", bad);
    CHECK_OK(jaclip_model_load(&mm, wrong, NULL));
    if (mm) {
        skips_seen none = {.paths = paths};
        CHECK_ERROR(jaclip_model_encode_image_files_skipping(&out, &kept, mm, paths + 1, 3, record_skip, &none),
                    JACLIP_ERROR_MODEL_FORMAT);
        CHECK(out == NULL && kept == NULL && none.calls == 0);
        jaclip_model_free(mm);
    }
    jaclip_tensor_free(one);
    free(bytes);
    remove(cut);
    remove(junk);
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
    CHECK_OK(jaclip_model_encode_texts(&out2, m, texts, lengths, 2)); /* "犬" is 3 bytes */
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

    test_encode_skipping(m, dog, bad);

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
