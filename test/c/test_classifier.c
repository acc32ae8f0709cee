/* The C classifier API: presets, argument checks, a save / load round trip, refusal of another model's
 * classifier and of damaged files, and classification of features. Weights against numpy are proven in
 * test/python/test_zeroshot.py; this test covers the C contract (statuses, NULLs, ownership). */
#include "jaclip.h"
#include "check.h"

#include <math.h>
#include <unistd.h>

static const char *const LABELS[] = {"犬", "猫", "象"};
static const char *const TEMPLATES[] = {"{}の写真", "{}のイラスト"};

static void test_presets(void)
{
    const char *const *items = NULL;
    size_t n = 0;
    CHECK_OK(jaclip_preset_labels(&items, &n, "imagenet"));
    CHECK(n == 1000 && strcmp(items[1], "金魚") == 0);
    CHECK_OK(jaclip_preset_templates(&items, &n, "imagenet"));
    CHECK(n == 37 && strstr(items[0], "{}") != NULL);
    CHECK_ERROR(jaclip_preset_templates(&items, &n, "cifar"), JACLIP_ERROR_NOT_FOUND);
    CHECK(items == NULL && n == 0);
    CHECK_ERROR(jaclip_preset_labels(NULL, &n, "imagenet"), JACLIP_ERROR_INVALID_ARGUMENT);
}

static void test_arguments(const jaclip_model *model)
{
    jaclip_classifier *c = (jaclip_classifier *)1;
    const char *const two_marks[] = {"{}と{}"}, *const empty[] = {""};
    CHECK_ERROR(jaclip_classifier_create(&c, model, LABELS, 0, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(c == NULL);
    CHECK_ERROR(jaclip_classifier_create(&c, NULL, LABELS, 3, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_classifier_create(&c, model, LABELS, 3, two_marks, 1), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_classifier_create(&c, model, empty, 1, NULL, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_classifier_create(&c, model, LABELS, 3, NULL, 2), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(jaclip_classifier_size(NULL) == 0 && jaclip_classifier_label(NULL, 0) == NULL);
    CHECK(jaclip_classifier_default_scale(NULL) == 0.0f && jaclip_classifier_fingerprint(NULL) == NULL);
    jaclip_classifier_free(NULL);
}

static void test_round_trip(const jaclip_model *model, const char *bf16_path)
{
    jaclip_classifier *c = NULL, *again = NULL;
    jaclip_tensor *w = NULL, *w2 = NULL, *probs = NULL, *scores = NULL;
    CHECK_OK(jaclip_classifier_create(&c, model, LABELS, 3, TEMPLATES, 2));
    CHECK(jaclip_classifier_size(c) == 3 && jaclip_classifier_template_count(c) == 2);
    CHECK(jaclip_classifier_dim(c) == (size_t)jaclip_model_embedding_dim(model));
    CHECK(strcmp(jaclip_classifier_label(c, 1), "猫") == 0 && jaclip_classifier_label(c, 3) == NULL);
    CHECK(strcmp(jaclip_classifier_template(c, 1), TEMPLATES[1]) == 0);
    CHECK(jaclip_classifier_default_scale(c) == 100.0f);
    CHECK(strcmp(jaclip_classifier_fingerprint(c), jaclip_model_fingerprint(model)) == 0);
    CHECK(strcmp(jaclip_model_family(model), "cloob") == 0);
    CHECK_OK(jaclip_classifier_weights(&w, c));
    const float *rows = jaclip_tensor_data(w);
    for (size_t r = 0; r < 3; r++) {
        double s = 0;
        for (size_t k = 0; k < jaclip_classifier_dim(c); k++)
            s += (double)rows[r * jaclip_classifier_dim(c) + k] * rows[r * jaclip_classifier_dim(c) + k];
        CHECK(fabs(sqrt(s) - 1.0) < 1e-6);
    }

    char path[] = "/tmp/jaclip-test-classifier-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(jaclip_classifier_save(c, path));
    CHECK_OK(jaclip_classifier_load(&again, path, model));
    CHECK_OK(jaclip_classifier_weights(&w2, again));
    CHECK(memcmp(jaclip_tensor_data(w), jaclip_tensor_data(w2), jaclip_tensor_nbytes(w)) == 0);

    jaclip_model *other = NULL;
    jaclip_classifier *refused = (jaclip_classifier *)1;
    CHECK_OK(jaclip_model_load(&other, bf16_path, NULL));
    CHECK_ERROR(jaclip_classifier_load(&refused, path, other), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(refused == NULL && strstr(jaclip_last_error(), "built with model") != NULL);
    const char *files[] = {env_or("JACLIP_PROJECT_DATA", "data")};
    char dog[512];
    snprintf(dog, sizeof dog, "%s/dog.jpeg", files[0]);
    const char *dogs[] = {dog};
    CHECK_ERROR(jaclip_classifier_classify_image_files(&probs, c, other, dogs, 1, 0), JACLIP_ERROR_INVALID_ARGUMENT);
    jaclip_model_free(other);

    /* Damage: one flipped byte, a truncation. */
    size_t size = 0;
    unsigned char *bytes = read_file(path, &size);
    CHECK(bytes != NULL && size > 64);
    FILE *f = fopen(path, "wb");
    bytes[size / 2] ^= 0x10;
    fwrite(bytes, 1, size, f);
    fclose(f);
    CHECK_ERROR(jaclip_classifier_load(&refused, path, model), JACLIP_ERROR_INDEX_FORMAT);
    f = fopen(path, "wb");
    bytes[size / 2] ^= 0x10;
    fwrite(bytes, 1, size - 3, f);
    fclose(f);
    CHECK_ERROR(jaclip_classifier_load(&refused, path, model), JACLIP_ERROR_INDEX_FORMAT);
    free(bytes);
    unlink(path);
    CHECK_ERROR(jaclip_classifier_load(&refused, path, model), JACLIP_ERROR_IO);

    /* Classification: probabilities sum to 1, scale 0 is the default. */
    CHECK_OK(jaclip_classifier_classify_image_files(&probs, c, model, dogs, 1, 0));
    const float *p = jaclip_tensor_data(probs);
    CHECK(fabs((double)p[0] + p[1] + p[2] - 1.0) < 1e-5);
    CHECK_OK(jaclip_classifier_scores(&scores, c, w)); /* a weight row scores 1 against itself */
    CHECK(fabs(((const float *)jaclip_tensor_data(scores))[0] - 1.0f) < 1e-6);
    jaclip_tensor *bad = NULL;
    CHECK_ERROR(jaclip_classifier_classify_features(&bad, c, w, -1.0f), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_classifier_classify_features(&bad, c, w, NAN), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK(bad == NULL);

    jaclip_tensor_free(scores);
    jaclip_tensor_free(probs);
    jaclip_tensor_free(w2);
    jaclip_tensor_free(w);
    jaclip_classifier_free(again);
    jaclip_classifier_free(c);
}

/* ---- forged files: valid CRC, hostile contents (issue 24 item 10) ---------------------------------- */

static uint32_t crc32_bitwise(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
}

static uint32_t get32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Writes bytes[0..size) to path with the CRC32 of the rest in its last 4 bytes. */
static void write_forged(const char *path, unsigned char *bytes, size_t size)
{
    put32(bytes + size - 4, crc32_bitwise(bytes, size - 4));
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(bytes, 1, size, f);
        fclose(f);
    }
}

static void expect_refused(const char *path, const jaclip_model *model, const char *what, const char *needle)
{
    jaclip_classifier *c = (jaclip_classifier *)1;
    jaclip_status st = jaclip_classifier_load(&c, path, model);
    if (st != JACLIP_ERROR_INDEX_FORMAT || !strstr(jaclip_last_error(), needle))
        fprintf(stderr, "forged classifier (%s): status %d, \"%s\"\n", what, (int)st, jaclip_last_error());
    CHECK(st == JACLIP_ERROR_INDEX_FORMAT && c == NULL && strstr(jaclip_last_error(), needle) != NULL);
}

static void test_forged_files(const jaclip_model *model)
{
    jaclip_classifier *c = NULL;
    CHECK_OK(jaclip_classifier_create(&c, model, LABELS, 3, TEMPLATES, 2));
    char path[] = "/tmp/jaclip-test-forged-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK_OK(jaclip_classifier_save(c, path));
    jaclip_classifier_free(c);
    size_t size = 0;
    unsigned char *good = read_file(path, &size), *b = malloc(size);
    if (!good || !b || size < 64) {
        CHECK(0);
        return;
    }
    size_t fp = get32(good + 32), strings = get32(good + 36), weights = 40 + fp + strings;
    float nan_value = NAN, inf_value = INFINITY, half = 0.5f;
    uint32_t bits;
    /* (the bytes of labels start at 40 + fp: "犬" is E7 8A AC) */
    struct {
        const char *what, *needle;
        size_t at;
        int kind; /* 0: float at, 1: byte at, 2: u32 at, 3: the first '{' (labels have none) */
        uint32_t value;
    } cases[] = {
        {"NaN weight", "not finite", weights + 4 * 5, 0, 0},
        {"inf weight", "not finite", weights, 0, 1},
        {"row scaled by 0.5", "unit length", weights, 0, 2},
        {"label byte 0xFF", "not valid UTF-8", 40 + fp + 1, 1, 0xFF},
        {"templates 2^32-1", "do not add up", 24, 2, 0xFFFFFFFFu},
        {"labels 2^32", "do not add up", 20, 2, 1},
        {"template without {}", "exactly one {}", 0, 3, 'x'},
        {"a label's NUL removed", "strings are malformed", 40 + fp + 3, 1, 'x'},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memcpy(b, good, size);
        if (cases[i].kind == 0) {
            float v = cases[i].value == 0 ? nan_value : cases[i].value == 1 ? inf_value : 0;
            if (cases[i].value == 2) {
                memcpy(&v, b + cases[i].at, 4); /* the file is little-endian, like this machine */
                v *= half;
            }
            memcpy(&bits, &v, 4);
            put32(b + cases[i].at, bits);
            if (cases[i].value == 2) /* the whole first row */
                for (size_t k = 1; k < (size_t)jaclip_model_embedding_dim(model); k++) {
                    memcpy(&v, b + cases[i].at + 4 * k, 4);
                    v *= half;
                    memcpy(b + cases[i].at + 4 * k, &v, 4);
                }
        } else if (cases[i].kind == 1) {
            b[cases[i].at] = (unsigned char)cases[i].value;
        } else if (cases[i].kind == 3) {
            unsigned char *brace = memchr(b + 40 + fp, '{', strings);
            CHECK(brace != NULL);
            if (brace)
                *brace = (unsigned char)cases[i].value;
        } else {
            put32(b + cases[i].at, cases[i].value);
        }
        write_forged(path, b, size);
        expect_refused(path, model, cases[i].what, cases[i].needle);
    }
    /* An all-zero row (features that cancelled: create leaves it so) still loads. */
    memcpy(b, good, size);
    memset(b + weights, 0, 4 * (size_t)jaclip_model_embedding_dim(model));
    write_forged(path, b, size);
    jaclip_classifier *zero = NULL;
    CHECK_OK(jaclip_classifier_load(&zero, path, model));
    jaclip_classifier_free(zero);
    /* 100 bytes whose lengths add up (dim 1, 1 label, 1-byte fingerprint, 51 bytes of strings) but
     * claiming 2^32-1 templates: refused from the header, not a 32 GiB calloc. */
    memset(b, 0, 100);
    memcpy(b, good, 40);
    put32(b + 12, 1);
    put32(b + 16, 1);
    put32(b + 20, 0);
    put32(b + 24, 0xFFFFFFFFu);
    put32(b + 32, 1);
    put32(b + 36, 51);
    memcpy(b + 40, "xa\0{}", 5);
    float one = 1.0f;
    memcpy(&bits, &one, 4);
    put32(b + 92, bits);
    write_forged(path, b, 100);
    expect_refused(path, model, "100 bytes, 2^32-1 templates", "do not add up");
    free(b);
    free(good);
    unlink(path);
}

int main(void)
{
    jaclip_model *model = NULL;
    test_presets();
    CHECK_OK(jaclip_model_load(&model, env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip"), NULL));
    if (model) {
        test_arguments(model);
        test_round_trip(model, env_or("JACLIP_TEST_MODEL_BF16", "build/models/tiny-bf16.jaclip"));
        test_forged_files(model);
    }
    jaclip_model_free(model);
    return check_summary("test_classifier");
}
