/* Hostile inputs (docs/reliability.md lists each with its status): damaged model files, images that
 * claim absurd or zero sizes, 10 MB texts, NULL and garbage out-pointers, out-of-range options. Each
 * must give its documented status, never a crash. Also built into the ASan+UBSan build
 * (make test-sanitize, JACLIP_EXPECT_NO_BACKEND=1), where no model can load: the model parts then
 * check for a clean JACLIP_ERROR_BACKEND and the rest runs under the sanitizers. */
#include "jaclip.h"
#include "check.h"

#include <math.h>
#include <stdint.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- images with lying headers ------------------------------------------------------------------ */

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Signature + IHDR (8-bit RGB, w x h, correct CRC) + an empty IDAT + IEND: 57 bytes. */
static size_t make_png(unsigned char *out, uint32_t w, uint32_t h)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(out, sig, 8), n = 8;
    const char *types[3] = {"IHDR", "IDAT", "IEND"};
    for (int c = 0; c < 3; c++) {
        uint32_t len = c == 0 ? 13 : 0;
        put32(out + n, len);
        memcpy(out + n + 4, types[c], 4);
        if (c == 0) {
            put32(out + n + 8, w);
            put32(out + n + 12, h);
            memcpy(out + n + 16, "\x08\x02\x00\x00\x00", 5); /* depth 8, RGB, deflate, no filter, no interlace */
        }
        put32(out + n + 8 + len, crc32_of(out + n + 4, 4 + len));
        n += 12 + len;
    }
    return n;
}

/* The demo photo with its frame header (SOF0..SOF2) rewritten to claim w x h. */
static unsigned char *jpeg_claiming(const unsigned char *jpeg, size_t size, uint16_t w, uint16_t h)
{
    unsigned char *copy = malloc(size);
    if (!copy)
        return NULL;
    memcpy(copy, jpeg, size);
    for (size_t i = 2; i + 9 < size; i++)
        if (copy[i] == 0xff && copy[i + 1] >= 0xc0 && copy[i + 1] <= 0xc2) {
            copy[i + 5] = (unsigned char)(h >> 8), copy[i + 6] = (unsigned char)h;
            copy[i + 7] = (unsigned char)(w >> 8), copy[i + 8] = (unsigned char)w;
            return copy;
        }
    free(copy);
    return NULL;
}

static void test_images(void)
{
    unsigned char png[64];
    jaclip_image *img = (jaclip_image *)&img;
    size_t n;

    /* 100000 x 100000 (30 GB of RGB) is refused from the header. The sanitizer build runs this with
     * max_allocation_size_mb=1024, so an allocation before the check would abort the test. */
    n = make_png(png, 100000, 100000);
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 0, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(img == NULL);
    /* Each side fits an int but the product passes the pixel limit. */
    n = make_png(png, 20000, 20000);
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 0, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    /* The largest dimensions a PNG can state. */
    n = make_png(png, 0x7fffffffu, 0x7fffffffu);
    jaclip_status st = jaclip_image_load_memory(&img, png, n, 0, 0);
    CHECK(st == JACLIP_ERROR_IMAGE_TOO_LARGE || st == JACLIP_ERROR_IMAGE_DECODE);
    CHECK(img == NULL);
    /* A caller limit lower than the image. */
    n = make_png(png, 64, 64);
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 4095, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
    /* 64 x 64 within the limit but no pixel data: a decode error, not a crash. */
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    /* 0 x 0, 0 x 5, 5 x 0. */
    n = make_png(png, 0, 0);
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    n = make_png(png, 0, 5);
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    n = make_png(png, 5, 0);
    CHECK_ERROR(jaclip_image_load_memory(&img, png, n, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
    CHECK(img == NULL);

    char dog[4096];
    snprintf(dog, sizeof dog, "%s/dog.jpeg", env_or("JACLIP_PROJECT_DATA", "data"));
    size_t size = 0;
    unsigned char *jpeg = read_file(dog, &size);
    CHECK(jpeg != NULL);
    if (jpeg) {
        /* 65500 is the most libjpeg decodes (larger is IMAGE_DECODE: "Maximum supported image dimension"). */
        unsigned char *huge = jpeg_claiming(jpeg, size, 65500, 65500), *zero = jpeg_claiming(jpeg, size, 0, 0),
                      *thin = jpeg_claiming(jpeg, size, 65500, 1);
        CHECK(huge && zero && thin);
        if (huge && zero && thin) {
            CHECK_ERROR(jaclip_image_load_memory(&img, huge, size, 0, 0), JACLIP_ERROR_IMAGE_TOO_LARGE);
            CHECK_ERROR(jaclip_image_load_memory(&img, zero, size, 0, 0), JACLIP_ERROR_IMAGE_DECODE);
            /* 65500 x 1 is small enough to decode: the data then runs out or is garbage. */
            st = jaclip_image_load_memory(&img, thin, size, 0, 0);
            CHECK(st == JACLIP_OK || st == JACLIP_ERROR_IMAGE_DECODE);
            if (st == JACLIP_OK) {
                /* An extreme aspect ratio still resizes (or is refused as documented). */
                jaclip_tensor *t = NULL;
                st = jaclip_image_resize_crop(&t, img, 224);
                CHECK(st == JACLIP_OK || st == JACLIP_ERROR_IMAGE_TOO_LARGE);
                jaclip_tensor_free(t);
            }
            jaclip_image_free(img);
            img = NULL;
            /* Every prefix length of the real file: truncated data is a decode error or a grey tail. */
            for (size_t cut = 0; cut < size; cut += 997) {
                st = jaclip_image_load_memory(&img, jpeg, cut, 0, 0);
                CHECK(st == JACLIP_OK || st == JACLIP_ERROR_IMAGE_DECODE);
                jaclip_image_free(img);
                img = NULL;
            }
        }
        free(huge);
        free(zero);
        free(thin);
        free(jpeg);
    }

    /* Pixel wrapping and resizing with out-of-range arguments. */
    unsigned char px[4 * 4 * 4] = {0};
    jaclip_tensor *t = (jaclip_tensor *)&t;
    CHECK_ERROR(jaclip_image_from_pixels(&img, px, 0, 0, 0, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_from_pixels(&img, px, 100000, 100000, 0, JACLIP_PIXEL_RGB8), JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK_ERROR(jaclip_image_from_pixels(&img, px, UINT32_MAX, UINT32_MAX, 0, JACLIP_PIXEL_RGBA8),
                JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(img == NULL);
    CHECK_OK(jaclip_image_from_pixels(&img, px, 4, 4, 0, JACLIP_PIXEL_RGBA8));
    CHECK_ERROR(jaclip_image_resize_crop(&t, img, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(t == NULL);
    CHECK_ERROR(jaclip_image_resize_crop(&t, img, 4097), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_resize_crop(&t, img, UINT32_MAX), JACLIP_ERROR_INVALID_ARGUMENT);
    static const float mean[3] = {0.5f, 0.5f, 0.5f}, zero_std[3] = {0, 0, 0};
    const jaclip_image *batch[2] = {img, NULL};
    CHECK_ERROR(jaclip_image_preprocess(&t, batch, 2, 224, mean, mean), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&t, NULL, 1, 224, mean, mean), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_image_preprocess(&t, batch, 1, 224, NULL, mean), JACLIP_ERROR_INVALID_ARGUMENT);
    /* A zero std is the caller's business: it must not crash (inf/NaN out or INVALID_ARGUMENT). */
    st = jaclip_image_preprocess(&t, batch, 1, 8, mean, zero_std);
    CHECK(st == JACLIP_OK || st == JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(t);
    jaclip_image_free(img);
    CHECK(jaclip_image_width(NULL) == 0 && jaclip_image_mode(NULL) == NULL);
    jaclip_image_free(NULL);
}

/* A stride whose rows would lie past the end of the address space: stride * (height - 1) wraps, and
 * the copy reads before the caller's buffer (a stride of SIZE_MAX / 2 reads unmapped memory). Run last:
 * until it is refused, the sanitizer build stops here. */
static void test_overflowing_stride(void)
{
    unsigned char px[4 * 4 * 3] = {0};
    jaclip_image *img = (jaclip_image *)&img;
    CHECK_ERROR(jaclip_image_from_pixels(&img, px, 4, 4, SIZE_MAX, JACLIP_PIXEL_RGB8), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(img == NULL);
    jaclip_image_free(img);
}

/* ---- 10 MB texts -------------------------------------------------------------------------------- */

#define BIG_TEXT (10u << 20)

static char *big_text(void)
{
    static const char phrase[] = "吾輩は猫である。名前はまだ無い。Dog [SEP] ＡＢＣ ";
    char *s = malloc(BIG_TEXT + 1);
    if (!s)
        return NULL;
    size_t n = 0, len = sizeof phrase - 1;
    while (n + len <= BIG_TEXT)
        memcpy(s + n, phrase, len), n += len;
    memset(s + n, 'a', BIG_TEXT - n); /* pad to exactly 10 MB with ASCII */
    s[BIG_TEXT] = '\0';
    return s;
}

static void test_texts(const jaclip_tokenizer *tok)
{
    char *text = big_text();
    CHECK(text != NULL);
    if (!text)
        return;
    const char *texts[2] = {text, "犬"};
    jaclip_tensor *ids = (jaclip_tensor *)&ids, *mask = NULL;
    double t0 = now();
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, tok, texts, NULL, 2, 0));
    CHECK(jaclip_tensor_dim(ids, 0) == 2 && jaclip_tensor_dim(ids, 1) == 77);
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);
    CHECK_OK(jaclip_tokenizer_tokenize(&ids, tok, text, BIG_TEXT));
    CHECK(jaclip_tensor_numel(ids) > 1000000);
    jaclip_tensor_free(ids);
    printf("test_hostile: two passes over a 10 MB text took %.1f s\n", now() - t0);

    /* One bad byte at the very end: INVALID_UTF8, and the message says where. */
    text[BIG_TEXT - 1] = '\xff';
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, tok, texts, NULL, 2, 0), JACLIP_ERROR_INVALID_UTF8);
    CHECK(ids == NULL && strstr(jaclip_last_error(), "10485759") != NULL);
    /* A sequence cut in the middle by an explicit length. */
    size_t cut[2] = {4, JACLIP_NUL_TERMINATED}; /* "吾" is 3 bytes; the 4th starts "輩" */
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, tok, texts, cut, 2, 0), JACLIP_ERROR_INVALID_UTF8);
    free(text);

    /* Out-of-range framing and NULL entries. */
    const char *with_null[2] = {"犬", NULL};
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, tok, with_null, NULL, 2, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, tok, texts + 1, NULL, 1, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, tok, texts + 1, NULL, 1, 4097), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, tok, texts + 1, NULL, 1, SIZE_MAX), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_tokenizer_encode(&ids, NULL, tok, texts + 1, NULL, 1, 2));
    jaclip_tensor_free(ids);
    CHECK_ERROR(jaclip_tokenizer_encode(&ids, NULL, NULL, texts + 1, NULL, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_tokenizer_tokenize(&ids, tok, NULL, 3), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(jaclip_tokenizer_id_to_piece(tok, -1) == NULL);
    CHECK(jaclip_tokenizer_id_to_piece(tok, jaclip_tokenizer_vocab_size(tok)) == NULL);
    CHECK(jaclip_tokenizer_id_to_piece(tok, INT64_MAX) == NULL);
    CHECK(jaclip_tokenizer_id_to_piece(NULL, 0) == NULL && jaclip_tokenizer_vocab_size(NULL) == 0);

    /* Tokenizer files that are not SentencePiece models. */
    jaclip_tokenizer *bad = (jaclip_tokenizer *)&bad;
    CHECK_ERROR(jaclip_tokenizer_load_memory(&bad, "\x0a\xff\xff\xff\xff\x0f", 6), JACLIP_ERROR_TOKENIZER);
    CHECK(bad == NULL);
    CHECK_ERROR(jaclip_tokenizer_load(&bad, "/nonexistent/spiece.model"), JACLIP_ERROR_IO);
    jaclip_tokenizer_free(NULL);
}

/* ---- numbers and options ------------------------------------------------------------------------ */

static void test_options_and_numbers(void)
{
    const float v[4] = {1, 2, 3, 4};
    int64_t shape[2] = {2, 2};
    jaclip_tensor *a = NULL, *out = (jaclip_tensor *)&out, *idx = NULL;
    CHECK_OK(jaclip_tensor_create(&a, JACLIP_DTYPE_FLOAT32, 2, shape, v));
    CHECK_ERROR(jaclip_similarity(&out, a, a, (jaclip_similarity_kind)-1, 1.0f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(out == NULL);
    CHECK_ERROR(jaclip_similarity(&out, a, a, JACLIP_SIMILARITY_DOT, INFINITY), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_topk(&idx, NULL, a, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_topk(&idx, NULL, a, SIZE_MAX));
    CHECK(jaclip_tensor_dim(idx, 1) == 2);
    jaclip_tensor_free(idx);
    CHECK(jaclip_tensor_dim(a, SIZE_MAX) == -1);
    int64_t too_big[2] = {INT64_MAX / 2, 3};
    CHECK_ERROR(jaclip_tensor_create(&out, JACLIP_DTYPE_FLOAT32, 2, too_big, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(jaclip_status_string((jaclip_status)-1), "UNKNOWN") != NULL);

    jaclip_model_options *o = NULL;
    CHECK_OK(jaclip_model_options_create(&o));
    char device[10000];
    memset(device, 'c', sizeof device - 1);
    device[sizeof device - 1] = '\0';
    CHECK_ERROR(jaclip_model_options_set_device(o, device), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_device(o, "cuda:99999"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_device(o, "cpu\n"), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_num_threads(o, INT32_MAX), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_num_threads(o, INT32_MIN), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_precision(o, (jaclip_precision)-1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_options_set_precision(o, (jaclip_precision)6), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_model_options_set_precision(o, JACLIP_PRECISION_AUTO));
    CHECK_ERROR(jaclip_model_options_set_image_flags(o, UINT32_MAX), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_model_options_set_max_image_pixels(o, UINT64_MAX));
    jaclip_model_options_free(o);

    /* The index's own limits. */
    jaclip_index *index = (jaclip_index *)&index;
    CHECK_ERROR(jaclip_index_create(&index, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(index == NULL);
    CHECK_ERROR(jaclip_index_create(&index, JACLIP_INDEX_MAX_DIM + 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_create(&index, SIZE_MAX), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_OK(jaclip_index_create(&index, 2));
    CHECK_ERROR(jaclip_index_search(&idx, NULL, index, a, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_index_embeddings(&out, index, SIZE_MAX, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    const float nan_row[2] = {NAN, 1};
    jaclip_tensor *nan_t = NULL;
    int64_t one[2] = {1, 2};
    CHECK_OK(jaclip_tensor_create(&nan_t, JACLIP_DTYPE_FLOAT32, 2, one, nan_row));
    const char *labels[1] = {"nan"};
    CHECK_ERROR(jaclip_index_add(index, nan_t, labels), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(jaclip_index_size(index) == 0);
    jaclip_tensor_free(nan_t);
    jaclip_index_free(index);
    CHECK_ERROR(jaclip_index_load(&index, "/nonexistent/x.jci", 0x80), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_index_free(NULL);
    jaclip_tensor_free(a);
}

/* ---- damaged model files ------------------------------------------------------------------------ */

static int load_failures, load_successes;

/* Loads bytes that may be damaged: OK (libtorch checks no CRC32, so damage to weights, the debug pickle
 * or a tokenizer piece goes unnoticed), or a documented load error
 * with *out NULL and a message. A model that loads must still encode or fail cleanly. */
static void load_damaged(const unsigned char *bytes, size_t size, const char *what)
{
    jaclip_model *m = (jaclip_model *)&m;
    jaclip_status st = jaclip_model_load_memory(&m, bytes, size, NULL);
    if (st != JACLIP_OK) {
        load_failures++;
        if (!(st == JACLIP_ERROR_MODEL_FORMAT || st == JACLIP_ERROR_TOKENIZER) || m != NULL ||
            !jaclip_last_error()[0]) {
            fprintf(stderr, "%s: %s (%s)\n", what, jaclip_status_string(st), jaclip_last_error());
            CHECK(0);
        }
        return;
    }
    load_successes++;
    const char *texts[1] = {"犬"};
    jaclip_tensor *out = NULL;
    st = jaclip_model_encode_texts(&out, m, texts, NULL, 1);
    CHECK(st == JACLIP_OK || st == JACLIP_ERROR_BACKEND || st == JACLIP_ERROR_MODEL_FORMAT);
    jaclip_tensor_free(out);
    jaclip_model_free(m);
}

/* Offset of a stored zip entry's data, found through the central directory; 0 if absent. */
static size_t entry_data(const unsigned char *z, size_t size, const char *suffix)
{
    size_t slen = strlen(suffix);
    for (size_t i = size >= 46 ? size - 46 : 0; i > 0; i--)
        if (memcmp(z + i, "PK\1\2", 4) == 0) {
            size_t nlen = z[i + 28] | (size_t)z[i + 29] << 8;
            size_t local = z[i + 42] | (size_t)z[i + 43] << 8 | (size_t)z[i + 44] << 16 | (size_t)z[i + 45] << 24;
            if (nlen >= slen && i + 46 + nlen <= size && memcmp(z + i + 46 + nlen - slen, suffix, slen) == 0 &&
                local + 30 < size) {
                size_t lname = z[local + 26] | (size_t)z[local + 27] << 8;
                size_t lextra = z[local + 28] | (size_t)z[local + 29] << 8;
                return local + 30 + lname + lextra;
            }
        }
    return 0;
}

static void test_damaged_models(const char *model_path, int expect_no_backend)
{
    size_t size = 0;
    unsigned char *good = read_file(model_path, &size), *copy = good ? malloc(size) : NULL;
    jaclip_model *m = (jaclip_model *)&m;
    CHECK(good && copy);
    if (!good || !copy) {
        free(good);
        return;
    }
    if (expect_no_backend) {
        /* The sanitizer build has no libtorch plugin: a clean BACKEND error, every time. */
        CHECK_ERROR(jaclip_model_load_memory(&m, good, size, NULL), JACLIP_ERROR_BACKEND);
        CHECK(m == NULL);
        free(good);
        free(copy);
        return;
    }
    char what[128];
    /* Truncations at the zip's landmarks and in between. */
    const size_t cuts[] = {1, 2, 4, 22, 30, 100, 4096, size / 3, size - 4096, size - 100, size - 22, size - 1};
    /* Without its end-of-central-directory record no archive opens: each cut must be refused. */
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        m = (jaclip_model *)&m;
        CHECK_ERROR(jaclip_model_load_memory(&m, good, cuts[i], NULL), JACLIP_ERROR_MODEL_FORMAT);
        CHECK(m == NULL);
        if (m != NULL)
            fprintf(stderr, "truncated to %zu bytes: loaded\n", cuts[i]);
    }
    /* Bytes overwritten in every structure the loader reads: the end-of-central-directory record, the
     * central directory, local headers, the pickled module, the code, the constants, the extra files. */
    size_t eocd = 0;
    for (size_t i = size - 22; i > 0 && !eocd; i--)
        if (memcmp(good + i, "PK\5\6", 4) == 0)
            eocd = i;
    size_t cdir = eocd ? (good[eocd + 16] | (size_t)good[eocd + 17] << 8 | (size_t)good[eocd + 18] << 16 |
                          (size_t)good[eocd + 19] << 24)
                       : 0;
    CHECK(eocd > 0 && cdir > 0 && cdir < eocd);
    size_t targets[16], nt = 0;
    targets[nt++] = 0;         /* first local header's signature */
    targets[nt++] = 26;        /* its name length */
    targets[nt++] = eocd + 10; /* entry count */
    targets[nt++] = eocd + 16; /* central directory offset */
    targets[nt++] = cdir + 28; /* first central name length */
    targets[nt++] = cdir + 42; /* first central local-header offset */
    const char *entries[] = {
        "/data.pkl",           "/constants.pkl", "/jaclip/config.txt", "/jaclip/tokenizer.model", "/cloob.py",
        "/cloob.py.debug_pkl", "/data/0"};
    for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++) {
        size_t at = entry_data(good, size, entries[e]);
        if (at)
            targets[nt++] = at;
    }
    CHECK(nt >= 10);
    const unsigned char patterns[3] = {0xff, 0x00, 0x80};
    for (size_t t = 0; t < nt; t++)
        for (int p = 0; p < 3; p++) {
            memcpy(copy, good, size);
            for (size_t k = 0; k < 4 && targets[t] + k < size; k++)
                copy[targets[t] + k] ^= patterns[p] ? patterns[p] : (unsigned char)(1u << k);
            snprintf(what, sizeof what, "4 bytes flipped at %zu", targets[t]);
            load_damaged(copy, size, what);
        }
    /* Pseudo-random single-bit flips anywhere. */
    uint32_t seed = 2024;
    for (int i = 0; i < 24; i++) {
        memcpy(copy, good, size);
        seed = seed * 1664525u + 1013904223u;
        size_t at = ((size_t)seed << 8 ^ (size_t)(seed >> 7)) % size;
        copy[at] ^= (unsigned char)(1u << (seed >> 29));
        snprintf(what, sizeof what, "bit flipped at %zu", at);
        load_damaged(copy, size, what);
    }
    /* The damage must have been noticed at least where the structure is read. */
    CHECK(load_failures >= 10);
    load_failures += (int)(sizeof cuts / sizeof cuts[0]);
    printf("test_hostile: damaged model files: %d refused, %d loaded (damage libtorch does not notice)\n",
           load_failures, load_successes);
    free(copy);
    free(good);
}

static void test_model_inputs(const char *model_path, int expect_no_backend)
{
    jaclip_model *m = NULL;
    jaclip_status st = jaclip_model_load(&m, model_path, NULL);
    if (expect_no_backend) {
        CHECK_ERROR(st, JACLIP_ERROR_BACKEND);
        return;
    }
    CHECK_OK(st);
    if (!m)
        return;
    jaclip_tensor *out = (jaclip_tensor *)&out;
    unsigned char png[64];
    size_t n = make_png(png, 100000, 100000);
    const void *bufs[1] = {png};
    size_t sizes[1] = {n};
    CHECK_ERROR(jaclip_model_encode_image_buffers(&out, m, bufs, sizes, 1), JACLIP_ERROR_IMAGE_TOO_LARGE);
    CHECK(out == NULL && strstr(jaclip_last_error(), "image buffer 0") != NULL);
    n = make_png(png, 0, 0);
    sizes[0] = n;
    CHECK_ERROR(jaclip_model_encode_image_buffers(&out, m, bufs, sizes, 1), JACLIP_ERROR_IMAGE_DECODE);
    const void *null_buf[1] = {NULL};
    CHECK_ERROR(jaclip_model_encode_image_buffers(&out, m, null_buf, sizes, 1), JACLIP_ERROR_INVALID_ARGUMENT);

    /* A 10 MB text through the model: encoded from its first 76 tokens. */
    char *text = big_text();
    if (text) {
        const char *texts[1] = {text};
        CHECK_OK(jaclip_model_encode_texts(&out, m, texts, NULL, 1));
        CHECK(jaclip_tensor_dim(out, 0) == 1 && jaclip_tensor_dim(out, 1) == jaclip_model_embedding_dim(m));
        jaclip_tensor_free(out);
        free(text);
    }
    const char *with_null[2] = {"猫", NULL};
    CHECK_ERROR(jaclip_model_encode_texts(&out, m, with_null, NULL, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(out == NULL);

    /* Pixel values that are not finite go through (the model's business) without a crash. */
    int64_t s = jaclip_model_image_size(m), shape[4] = {1, 3, s, s};
    jaclip_tensor *px = NULL;
    CHECK_OK(jaclip_tensor_create(&px, JACLIP_DTYPE_FLOAT32, 4, shape, NULL));
    if (px) {
        float *d = jaclip_tensor_data_mut(px);
        d[0] = NAN, d[1] = INFINITY, d[2] = -INFINITY;
        st = jaclip_model_encode_pixel_values(&out, m, px);
        CHECK(st == JACLIP_OK || st == JACLIP_ERROR_BACKEND);
        jaclip_tensor_free(out);
        jaclip_tensor_free(px);
    }
    /* Token ids past the vocabulary or a mask of 2 are refused before libtorch sees them. */
    int64_t ishape[2] = {1, 4}, ids_v[4] = {4, INT64_MAX, 3, 3}, mask_v[4] = {1, 1, 0, 0};
    jaclip_tensor *ids = NULL, *mask = NULL;
    CHECK_OK(jaclip_tensor_create(&ids, JACLIP_DTYPE_INT64, 2, ishape, ids_v));
    CHECK_OK(jaclip_tensor_create(&mask, JACLIP_DTYPE_INT64, 2, ishape, mask_v));
    CHECK_ERROR(jaclip_model_encode_token_ids(&out, m, ids, mask), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);
    jaclip_model_free(m);
}

int main(void)
{
    const char *model = env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip");
    int no_backend = getenv("JACLIP_EXPECT_NO_BACKEND") != NULL;
    char spiece[4096];
    snprintf(spiece, sizeof spiece, "%s/rinna-japanese-spiece.model", env_or("JACLIP_PROJECT_DATA", "data"));

    test_images();
    jaclip_tokenizer *tok = NULL;
    CHECK_OK(jaclip_tokenizer_load(&tok, spiece));
    if (tok)
        test_texts(tok);
    jaclip_tokenizer_free(tok);
    test_options_and_numbers();
    test_damaged_models(model, no_backend);
    test_model_inputs(model, no_backend);
    test_overflowing_stride();
    return check_summary("test_hostile");
}
