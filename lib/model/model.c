/* The model handle: options, the configuration record of the model file, input validation, batching
 * and the text trimming lever; the tensors themselves go through torch_bridge. */
#include "backend/torch/torch_bridge.h"
#include "image/image.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define JC_MODEL_FORMAT "jaclip-model"
/* Version 2 adds the family and, for CLIP, logit_scale; a CLOOB model is still written as version 1. */
#define JC_MODEL_FORMAT_VERSION 2
#define JC_MODEL_FAMILY_CLOOB "cloob"
#define JC_MODEL_FAMILY_CLIP "clip"
/* rinna's ImageNet evaluation of CLOOB multiplies cosines by 100. */
#define JC_CLOOB_SCALE 100.0f
/* Images are preprocessed and encoded this many at a time, bounding the float buffer (~19 MB). */
#define JC_IMAGE_CHUNK 32
#define JC_TEXT_CHUNK 256
/* The largest normalised pixel magnitude a configuration may produce (rinna's: about 2.1). */
#define JC_MAX_NORMALISED_PIXEL 1e4
/* Decoders running at once hold at most this much (by their headers' estimate); an image estimated
 * over it is decoded alone. Peak memory is then max(budget, one image), whatever the batch size. */
#define JC_DECODE_BUDGET ((uint64_t)1 << 30)

struct jaclip_model_options {
    char device[32];
    int32_t num_threads;
    jaclip_precision precision;
    uint64_t max_image_pixels;
    uint32_t image_flags;
};

struct jaclip_model {
    const jc_torch_api *api;
    jc_torch_model *torch;
    jaclip_tokenizer *tokenizer;
    int64_t embedding_dim;
    int64_t image_size;
    int64_t max_text_length;
    int64_t max_positions;
    int64_t vocab_size;
    float mean[3];
    float std[3];
    uint64_t max_image_pixels;
    uint32_t image_flags;
    const char *family;
    float default_scale;
    char fingerprint[64];
    char precision_reason[320];
};

/* ---- options ---------------------------------------------------------------------------------- */

static void options_defaults(jaclip_model_options *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->device, "cpu");
    o->precision = JACLIP_PRECISION_DEFAULT;
}

jaclip_status jaclip_model_options_create(jaclip_model_options **out)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = malloc(sizeof **out);
    if (!*out)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    options_defaults(*out);
    return JACLIP_OK;
}

void jaclip_model_options_free(jaclip_model_options *options) { free(options); }

static bool valid_device(const char *device)
{
    if (strcmp(device, "cpu") == 0 || strcmp(device, "cuda") == 0)
        return true;
    if (strncmp(device, "cuda:", 5) != 0)
        return false;
    const char *digits = device + 5;
    size_t n = strlen(digits);
    if (n == 0 || n > 3)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)digits[i]))
            return false;
    return true;
}

jaclip_status jaclip_model_options_set_device(jaclip_model_options *options, const char *device)
{
    if (!options || !device)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options and device must not be NULL");
    if (!valid_device(device))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "device \"%.40s\" is not \"cpu\", \"cuda\" or \"cuda:N\"", device);
    snprintf(options->device, sizeof options->device, "%s", device);
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_num_threads(jaclip_model_options *options, int32_t num_threads)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (num_threads < 0 || num_threads > 1024)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "num_threads must be 0..1024, got %d", (int)num_threads);
    options->num_threads = num_threads;
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_precision(jaclip_model_options *options, jaclip_precision precision)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (precision != JACLIP_PRECISION_DEFAULT && precision != JACLIP_PRECISION_FP32 &&
        precision != JACLIP_PRECISION_BF16 && precision != JACLIP_PRECISION_INT8)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown precision %d", (int)precision);
    options->precision = precision;
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_max_image_pixels(jaclip_model_options *options, uint64_t max_pixels)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    options->max_image_pixels = max_pixels;
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_image_flags(jaclip_model_options *options, uint32_t flags)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (flags & ~(uint32_t)JACLIP_IMAGE_EXIF_TRANSPOSE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown image flags 0x%x", (unsigned)flags);
    options->image_flags = flags;
    return JACLIP_OK;
}

/* ---- the configuration record ------------------------------------------------------------------ */

/* Finds `key=` at the start of a line and returns its value up to the end of line in buf. */
static bool config_value(const char *text, const char *key, char *buf, size_t cap)
{
    size_t key_len = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == '=') {
            const char *value = line + key_len + 1;
            size_t n = strcspn(value, "\r\n");
            if (n >= cap)
                return false;
            memcpy(buf, value, n);
            buf[n] = '\0';
            return true;
        }
    }
    return false;
}

static jaclip_status config_int(const char *text, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    char buf[64], *end;
    if (!config_value(text, key, buf, sizeof buf))
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration lacks %s", key);
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end == buf || *end || v < lo || v > hi)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: %s=%s is not in %lld..%lld", key, buf,
                       (long long)lo, (long long)hi);
    *out = v;
    return JACLIP_OK;
}

static jaclip_status config_floats3(const char *text, const char *key, float out[3], bool positive)
{
    char buf[256], *p = buf, *end;
    if (!config_value(text, key, buf, sizeof buf))
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration lacks %s", key);
    for (int i = 0; i < 3; i++) {
        errno = 0;
        /* Parsed as double then rounded once to float, as torch.tensor(tuple_of_floats) does. */
        double v = strtod(p, &end);
        if (errno || end == p || (i < 2 && *end != ',') || (i == 2 && *end) || !(v == v) ||
            (positive && !(v > 0)) || v > 1e6 || v < -1e6)
            return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: %s=%s is not three numbers", key, buf);
        out[i] = (float)v;
        p = end + 1;
    }
    return JACLIP_OK;
}

/* Version 1 files are CLOOB; later ones name their family, and a CLIP one its learned logit_scale. */
static jaclip_status parse_family(jaclip_model *m, const char *text, int64_t version)
{
    char buf[64], *end;
    m->family = JC_MODEL_FAMILY_CLOOB;
    m->default_scale = JC_CLOOB_SCALE;
    if (version < 2)
        return JACLIP_OK;
    if (!config_value(text, "family", buf, sizeof buf))
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration lacks family");
    if (strcmp(buf, JC_MODEL_FAMILY_CLOOB) == 0)
        return JACLIP_OK;
    if (strcmp(buf, JC_MODEL_FAMILY_CLIP) != 0)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: family=%s is not cloob or clip", buf);
    m->family = JC_MODEL_FAMILY_CLIP;
    if (!config_value(text, "logit_scale", buf, sizeof buf))
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration of a clip model lacks logit_scale");
    errno = 0;
    double v = strtod(buf, &end);
    /* exp() of it must be a finite, positive float scale. */
    if (errno || end == buf || *end || !(v > -80 && v < 80))
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: logit_scale=%s is not a number in -80..80", buf);
    m->default_scale = (float)exp(v);
    return JACLIP_OK;
}

static jaclip_status parse_config(jaclip_model *m, const char *text)
{
    char format[64];
    int64_t version, special;
    jaclip_status st;
    if (!config_value(text, "format", format, sizeof format) || strcmp(format, JC_MODEL_FORMAT) != 0)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "not a jaclip model file (no \"format=%s\" record)", JC_MODEL_FORMAT);
    if ((st = config_int(text, "format_version", 0, INT32_MAX, &version)))
        return st;
    if (version < 1 || version > JC_MODEL_FORMAT_VERSION)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT,
                       "model format version %lld; this libjaclip %s reads versions 1..%d (convert the "
                       "checkpoint again with this release's tools/jaclip-convert)",
                       (long long)version, JACLIP_VERSION_STRING, JC_MODEL_FORMAT_VERSION);
    if ((st = config_int(text, "embedding_dim", 1, 65536, &m->embedding_dim)) ||
        (st = config_int(text, "image_size", 1, 4096, &m->image_size)) ||
        (st = config_int(text, "max_position_embeddings", 2, 1 << 20, &m->max_positions)) ||
        (st = config_int(text, "max_text_length", 2, m->max_positions, &m->max_text_length)) ||
        (st = config_int(text, "vocab_size", 8, 1 << 24, &m->vocab_size)) ||
        (st = config_floats3(text, "image_mean", m->mean, false)) ||
        (st = config_floats3(text, "image_std", m->std, true)))
        return st;
    /* A pixel normalises to (x / 255 - mean) / std: an std of 1e-40 gives inf (and NaN features) for
     * every image, so refuse a configuration whose normalised pixels leave a sane range. */
    for (int c = 0; c < 3; c++) {
        double low = (0.0 - m->mean[c]) / m->std[c], high = (1.0 - m->mean[c]) / m->std[c];
        if (!(fabs(low) <= JC_MAX_NORMALISED_PIXEL) || !(fabs(high) <= JC_MAX_NORMALISED_PIXEL))
            return jc_fail(JACLIP_ERROR_MODEL_FORMAT,
                           "model configuration: image_mean[%d]=%g, image_std[%d]=%g normalise pixels to "
                           "%g..%g, outside +-%g (the model could not give finite features)",
                           c, (double)m->mean[c], c, (double)m->std[c], low, high, JC_MAX_NORMALISED_PIXEL);
    }
    if ((st = parse_family(m, text, version)))
        return st;
    /* The tokenizer frames with [CLS]=4 and [PAD]=3; a model built for other ids would be misread. */
    if ((st = config_int(text, "cls_id", 0, INT32_MAX, &special)))
        return st;
    if (special != 4)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: cls_id=%lld, this library frames with 4", (long long)special);
    if ((st = config_int(text, "pad_id", 0, INT32_MAX, &special)))
        return st;
    if (special != 3)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: pad_id=%lld, this library pads with 3", (long long)special);
    return JACLIP_OK;
}

/* ---- load / free ------------------------------------------------------------------------------- */

/* Why the model computes in the precision it does, in words (jaclip_model_precision_reason). */
static void explain_precision(jaclip_model *m, jaclip_precision asked)
{
    jaclip_precision runs = m->api->precision(m->torch), stored = m->api->stored_precision(m->torch);
    const jc_cpu_features *cpu = jc_cpu();
    bool cpu_device = strcmp(m->api->device(m->torch), "cpu") == 0;
    const char *bf16_support = !cpu_device ? "on this GPU"
                               : cpu->native_bf16_overridden ? "(JACLIP_NATIVE_BF16 says so)"
                               : cpu->amx_bf16 ? "on this CPU (AMX-BF16)"
                               : cpu->avx512_bf16 ? "on this CPU (AVX512_BF16)" : "on this CPU";
    char *r = m->precision_reason;
    size_t n = sizeof m->precision_reason;
    if (asked == JACLIP_PRECISION_DEFAULT && stored == JACLIP_PRECISION_BF16 && runs == JACLIP_PRECISION_FP32)
        snprintf(r, n, "fp32: the file stores bf16, but bf16 is not native %s (no AVX512_BF16 or AMX-BF16), "
                       "where it runs many times slower than fp32, so the weights were widened to fp32 at load; "
                       "ask for JACLIP_PRECISION_BF16 to run bf16 anyway", bf16_support);
    else if (runs == JACLIP_PRECISION_BF16 && cpu_device && !cpu->native_bf16)
        snprintf(r, n, "bf16: asked for, although bf16 is not native %s (no AVX512_BF16 or AMX-BF16): expect it "
                       "to run many times slower than fp32", bf16_support);
    else if (runs == JACLIP_PRECISION_BF16)
        snprintf(r, n, "bf16: %s; bf16 is native %s", asked == JACLIP_PRECISION_DEFAULT ? "as stored in the file"
                                                       : "asked for", bf16_support);
    else if (runs == JACLIP_PRECISION_INT8)
        snprintf(r, n, "int8: as stored in the file (Linear layers quantized dynamically, run by oneDNN)");
    else
        snprintf(r, n, "fp32: %s", asked == JACLIP_PRECISION_FP32 && stored != JACLIP_PRECISION_FP32
                                       ? "asked for; the file's weights were widened at load"
                                       : "as stored in the file");
}

static jaclip_status model_load(jaclip_model **out, const char *path, const void *data, size_t size,
                                const jaclip_model_options *options, uint64_t digest)
{
    jaclip_model_options defaults;
    jc_torch_load_args args;
    char *config = NULL, *tokenizer = NULL;
    size_t config_size = 0, tokenizer_size = 0;
    jaclip_model *m;
    jaclip_status st;
    const char *where = path ? path : "model in memory";

    if (!options) {
        options_defaults(&defaults);
        options = &defaults;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    m->api = jc_torch(&st);
    if (!m->api) {
        free(m);
        return st;
    }
    args.path = path;
    args.data = data;
    args.size = size;
    args.device = options->device;
    args.precision = options->precision;
    args.num_threads = options->num_threads;
    args.native_bf16 = jc_cpu()->native_bf16;
    st = m->api->load(&m->torch, &args, &config, &config_size, &tokenizer, &tokenizer_size);
    if (st == JACLIP_OK && (config_size == 0 || strlen(config) != config_size))
        st = jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: not a jaclip model file (no jaclip/config.txt inside)", where);
    if (st == JACLIP_OK && (st = parse_config(m, config)) != JACLIP_OK)
        jc_fail_prefix(st, "%s: ", where);
    if (st == JACLIP_OK && tokenizer_size == 0)
        st = jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: the model file holds no tokenizer (jaclip/tokenizer.model)", where);
    if (st == JACLIP_OK && (st = jaclip_tokenizer_load_memory(&m->tokenizer, tokenizer, tokenizer_size)) != JACLIP_OK)
        jc_fail_prefix(st, "%s: stored tokenizer: ", where);
    free(config);
    free(tokenizer);
    if (st != JACLIP_OK) {
        jaclip_model_free(m);
        return st;
    }
    m->max_image_pixels = options->max_image_pixels;
    m->image_flags = options->image_flags;
    explain_precision(m, options->precision);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s-%lld-%016llx", m->family,
             (long long)m->embedding_dim, (unsigned long long)digest);
    *out = m;
    return JACLIP_OK;
}

jaclip_status jaclip_model_load(jaclip_model **out, const char *path, const jaclip_model_options *options)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    uint64_t digest;
    void *map;
    size_t size;
    jaclip_status st = jc_map_model_file(path, &map, &size, &digest);
    if (st)
        return st;
    /* libtorch reads the checked mapping, not the path again. */
    st = model_load(out, path, map, size, options, digest);
    munmap(map, size);
    return st;
}

jaclip_status jaclip_model_load_memory(jaclip_model **out, const void *data, size_t size,
                                       const jaclip_model_options *options)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!data || size == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data is NULL or size is 0");
    uint64_t digest;
    jaclip_status st = jc_check_model_archive(data, size, "model in memory", &digest);
    if (st)
        return st;
    return model_load(out, NULL, data, size, options, digest);
}

void jaclip_model_free(jaclip_model *model)
{
    if (!model)
        return;
    if (model->torch)
        model->api->free_model(model->torch);
    jaclip_tokenizer_free(model->tokenizer);
    free(model);
}

int64_t jaclip_model_embedding_dim(const jaclip_model *m) { return m ? m->embedding_dim : 0; }
int64_t jaclip_model_image_size(const jaclip_model *m) { return m ? m->image_size : 0; }
int64_t jaclip_model_max_text_length(const jaclip_model *m) { return m ? m->max_text_length : 0; }
const char *jaclip_model_device(const jaclip_model *m) { return m ? m->api->device(m->torch) : NULL; }
jaclip_precision jaclip_model_precision(const jaclip_model *m) { return m ? m->api->precision(m->torch) : JACLIP_PRECISION_DEFAULT; }
const float *jaclip_model_image_mean(const jaclip_model *m) { return m ? m->mean : NULL; }
const float *jaclip_model_image_std(const jaclip_model *m) { return m ? m->std : NULL; }
const jaclip_tokenizer *jaclip_model_tokenizer(const jaclip_model *m) { return m ? m->tokenizer : NULL; }
const char *jaclip_model_fingerprint(const jaclip_model *m) { return m ? m->fingerprint : NULL; }
const char *jaclip_model_precision_reason(const jaclip_model *m) { return m ? m->precision_reason : NULL; }
const char *jaclip_model_family(const jaclip_model *m) { return m ? m->family : NULL; }
float jaclip_model_default_scale(const jaclip_model *m) { return m ? m->default_scale : 0.0f; }

/* ---- encoding ---------------------------------------------------------------------------------- */

static jaclip_status check_model_out(jaclip_tensor **out, const jaclip_model *model)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!model)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "model is NULL");
    return JACLIP_OK;
}

jaclip_status jaclip_model_encode_pixel_values(jaclip_tensor **out, const jaclip_model *model,
                                               const jaclip_tensor *pixel_values)
{
    jaclip_status st;
    const jaclip_tensor *px = pixel_values;
    if ((st = check_model_out(out, model)))
        return st;
    if (!px)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "pixel_values is NULL");
    if (px->dtype != JACLIP_DTYPE_FLOAT32 || px->ndim != 4 || px->shape[1] != 3 ||
        px->shape[2] != model->image_size || px->shape[3] != model->image_size)
        return jc_fail(JACLIP_ERROR_SHAPE, "pixel_values must be float32 [N, 3, %lld, %lld]",
                       (long long)model->image_size, (long long)model->image_size);
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, px->shape[0], model->embedding_dim)))
        return st;
    if (px->shape[0] == 0)
        return JACLIP_OK;
    st = model->api->encode_image(model->torch, px->data, px->shape[0], model->image_size, (*out)->data,
                               model->embedding_dim);
    if (st) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* Columns past the last one any row attends to change nothing (their keys get zero weight), so they
 * are not computed: a batch of short labels runs at its own length, not at 77. */
static int64_t attended_length(const int64_t *mask, int64_t rows, int64_t cols)
{
    int64_t length = 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = cols - 1; c >= length; c--)
            if (mask[r * cols + c]) {
                length = c + 1;
                break;
            }
    return length;
}

static jaclip_status encode_ids(jaclip_tensor *out, const jaclip_model *model, const int64_t *ids,
                                const int64_t *mask, int64_t rows, int64_t cols)
{
    for (int64_t first = 0; first < rows; first += JC_TEXT_CHUNK) {
        int64_t n = rows - first < JC_TEXT_CHUNK ? rows - first : JC_TEXT_CHUNK;
        int64_t length = attended_length(mask + first * cols, n, cols);
        jaclip_status st = model->api->encode_text(model->torch, ids + first * cols, mask + first * cols, n, length,
                                                cols, (float *)out->data + first * model->embedding_dim,
                                                model->embedding_dim);
        if (st)
            return st;
    }
    return JACLIP_OK;
}

jaclip_status jaclip_model_encode_token_ids(jaclip_tensor **out, const jaclip_model *model,
                                            const jaclip_tensor *input_ids, const jaclip_tensor *attention_mask)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)) || (st = jc_check_2d(input_ids, JACLIP_DTYPE_INT64, "input_ids")) ||
        (st = jc_check_2d(attention_mask, JACLIP_DTYPE_INT64, "attention_mask")))
        return st;
    int64_t rows = input_ids->shape[0], cols = input_ids->shape[1];
    if (attention_mask->shape[0] != rows || attention_mask->shape[1] != cols)
        return jc_fail(JACLIP_ERROR_SHAPE, "attention_mask is [%lld, %lld] but input_ids is [%lld, %lld]",
                       (long long)attention_mask->shape[0], (long long)attention_mask->shape[1], (long long)rows,
                       (long long)cols);
    if (cols < 2 || cols > model->max_positions)
        return jc_fail(JACLIP_ERROR_SHAPE, "sequence length %lld is not in 2..%lld", (long long)cols,
                       (long long)model->max_positions);
    const int64_t *ids = input_ids->data, *mask = attention_mask->data;
    for (size_t i = 0; i < input_ids->numel; i++) {
        if (ids[i] < 0 || ids[i] >= model->vocab_size)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "input_ids[%zu][%zu] = %lld is outside the vocabulary 0..%lld",
                           i / (size_t)cols, i % (size_t)cols, (long long)ids[i], (long long)model->vocab_size - 1);
        if (mask[i] != 0 && mask[i] != 1)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "attention_mask[%zu][%zu] = %lld is not 0 or 1",
                           i / (size_t)cols, i % (size_t)cols, (long long)mask[i]);
    }
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, rows, model->embedding_dim)))
        return st;
    if ((st = encode_ids(*out, model, ids, mask, rows, cols))) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

jaclip_status jaclip_model_encode_texts(jaclip_tensor **out, const jaclip_model *model, const char *const *texts,
                                        const size_t *lengths, size_t n)
{
    jaclip_tensor *ids = NULL, *mask = NULL;
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if (!texts && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "texts is NULL");
    if (n == 0)
        return jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, 0, model->embedding_dim);
    st = jaclip_tokenizer_encode(&ids, &mask, model->tokenizer, texts, lengths, n, (size_t)model->max_text_length);
    if (st == JACLIP_OK)
        st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)n, model->embedding_dim);
    if (st == JACLIP_OK)
        st = encode_ids(*out, model, ids->data, mask->data, (int64_t)n, ids->shape[1]);
    if (st != JACLIP_OK) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);
    return st;
}

jaclip_status jaclip_model_preprocess_images(jaclip_tensor **out, const jaclip_model *model,
                                             const jaclip_image *const *images, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    return jaclip_image_preprocess(out, images, n, (uint32_t)model->image_size, model->mean, model->std);
}

/* Decoding and resizing a photo takes 50-100 ms on one core, a third of the model's time per image at
 * batch 8, and the model cannot use the cores while it waits: each chunk is decoded and preprocessed by
 * one thread per usable core, then encoded. */
typedef struct decode_job {
    const jaclip_model *model;
    const char *const *paths;        /* paths, */
    const void *const *data;         /* buffers */
    const size_t *sizes;
    const jaclip_image *const *images; /* or decoded images */
    size_t first, count;
    float *pixels;                   /* [count, 3, S, S] */
    size_t next;                     /* next image to take, atomically */
    pthread_mutex_t lock;
    pthread_cond_t budget_freed;
    uint64_t budget_in_use;          /* estimated bytes held by the decoders running now */
    size_t decoding;                 /* how many decoders run now */
    jaclip_status status;            /* of the failure with the lowest index, for a stable message */
    size_t failed;
    char message[1024];
} decode_job;

/* Waits until bytes fit in the budget beside the decoders running now, or until none runs. */
static void budget_acquire(decode_job *job, uint64_t bytes)
{
    pthread_mutex_lock(&job->lock);
    while (job->decoding > 0 && bytes > JC_DECODE_BUDGET - (job->budget_in_use < JC_DECODE_BUDGET
                                                                  ? job->budget_in_use : JC_DECODE_BUDGET))
        pthread_cond_wait(&job->budget_freed, &job->lock);
    job->budget_in_use += bytes;
    job->decoding++;
    pthread_mutex_unlock(&job->lock);
}

static void budget_release(decode_job *job, uint64_t bytes)
{
    pthread_mutex_lock(&job->lock);
    job->budget_in_use -= bytes;
    job->decoding--;
    pthread_cond_broadcast(&job->budget_freed);
    pthread_mutex_unlock(&job->lock);
}

/* Decodes file or buffer i within the budget. The header is read first, so an image the model could
 * not resize (too elongated) or over the pixel limit is refused before decoding. */
static jaclip_status decode_source(decode_job *job, size_t i, jaclip_image **image, uint64_t *held)
{
    const jaclip_model *m = job->model;
    uint8_t *file_bytes = NULL;
    const uint8_t *bytes;
    size_t size;
    jc_image_header header;
    jaclip_status st;
    const char *path = job->paths ? job->paths[i] : NULL;
    if (job->paths && !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "paths[%zu] is NULL", i);
    if (path) {
        st = jc_image_read_file(path, m->max_image_pixels, (uint32_t)m->image_size, &file_bytes, &size, &header);
        bytes = file_bytes;
    } else {
        bytes = job->data[i];
        size = job->sizes[i];
        st = bytes || size == 0 ? jc_image_check_header(bytes, size, m->max_image_pixels, (uint32_t)m->image_size, &header)
                                : jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data[%zu] is NULL", i);
    }
    if (st == JACLIP_OK) {
        *held = jc_image_header_decode_bytes(&header) + (path ? size : 0);
        budget_acquire(job, *held);
        st = jaclip_image_load_memory(image, bytes, size, m->max_image_pixels, m->image_flags);
    }
    free(file_bytes);
    if (st && path && strncmp(jaclip_last_error(), path, strlen(path)) != 0)
        jc_fail_prefix(st, "%s: ", path);
    else if (st && !path)
        jc_fail_prefix(st, "image buffer %zu: ", i);
    return st;
}

static void decode_one(decode_job *job, size_t k)
{
    const jaclip_model *m = job->model;
    size_t i = job->first + k;
    jaclip_image *image = NULL;
    const jaclip_image *decoded = NULL;
    jaclip_tensor *px = NULL;
    jaclip_status st = JACLIP_OK;
    uint64_t held = 0;
    if (job->images)
        decoded = job->images[i];
    else
        st = decode_source(job, i, &image, &held);
    if (st == JACLIP_OK) {
        const jaclip_image *one[1] = {decoded ? decoded : image};
        st = jaclip_image_preprocess(&px, one, 1, (uint32_t)m->image_size, m->mean, m->std);
        if (st == JACLIP_OK)
            memcpy(job->pixels + k * (px->numel), px->data, px->numel * sizeof(float));
    }
    jaclip_tensor_free(px);
    jaclip_image_free(image);
    if (held)
        budget_release(job, held);
    if (st) {
        /* The message is thread-local: carry it to the calling thread. */
        pthread_mutex_lock(&job->lock);
        if (job->status == JACLIP_OK || k < job->failed) {
            job->status = st;
            job->failed = k;
            snprintf(job->message, sizeof job->message, "%s", jaclip_last_error());
        }
        pthread_mutex_unlock(&job->lock);
    }
}

static void *decode_worker(void *arg)
{
    decode_job *job = arg;
    for (;;) {
        size_t k = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (k >= job->count)
            return NULL;
        decode_one(job, k);
    }
}

static size_t usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    return 1;
}

static jaclip_status decode_chunk(decode_job *job)
{
    enum { MAX_DECODERS = 16 };
    pthread_t threads[MAX_DECODERS];
    size_t helpers = usable_cores();
    if (helpers > job->count)
        helpers = job->count;
    if (helpers > MAX_DECODERS)
        helpers = MAX_DECODERS;
    size_t started = 0;
    /* This thread decodes too; the others are extra hands, so a failed pthread_create only slows it. */
    for (; started + 1 < helpers; started++)
        if (pthread_create(&threads[started], NULL, decode_worker, job) != 0)
            break;
    decode_worker(job);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    if (job->status)
        return jc_fail(job->status, "%s", job->message);
    return JACLIP_OK;
}

static jaclip_status encode_sources(jaclip_tensor **out, const jaclip_model *model, const char *const *paths,
                                    const void *const *data, const size_t *sizes,
                                    const jaclip_image *const *images, size_t n)
{
    jaclip_tensor *pixels = NULL;
    jaclip_status st;
    const int64_t s = model->image_size;
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)n, model->embedding_dim)))
        return st;
    if (n > 0) {
        const int64_t shape[4] = {n < JC_IMAGE_CHUNK ? (int64_t)n : JC_IMAGE_CHUNK, 3, s, s};
        st = jc_tensor_new(&pixels, JACLIP_DTYPE_FLOAT32, 4, shape);
    }
    for (size_t first = 0; first < n && st == JACLIP_OK; first += JC_IMAGE_CHUNK) {
        decode_job job = {.model = model, .paths = paths, .data = data, .sizes = sizes, .images = images,
                          .first = first,
                          .count = n - first < JC_IMAGE_CHUNK ? n - first : JC_IMAGE_CHUNK,
                          .pixels = pixels->data, .lock = PTHREAD_MUTEX_INITIALIZER,
                          .budget_freed = PTHREAD_COND_INITIALIZER};
        st = decode_chunk(&job);
        if (st == JACLIP_OK)
            st = model->api->encode_image(model->torch, pixels->data, (int64_t)job.count, s,
                                          (float *)(*out)->data + first * (size_t)model->embedding_dim,
                                          model->embedding_dim);
    }
    jaclip_tensor_free(pixels);
    if (st) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

jaclip_status jaclip_model_encode_image_files(jaclip_tensor **out, const jaclip_model *model,
                                              const char *const *paths, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if (!paths && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "paths is NULL");
    return encode_sources(out, model, paths, NULL, NULL, NULL, n);
}

jaclip_status jaclip_model_encode_image_buffers(jaclip_tensor **out, const jaclip_model *model,
                                                const void *const *data, const size_t *sizes, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if ((!data || !sizes) && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data or sizes is NULL");
    return encode_sources(out, model, NULL, data, sizes, NULL, n);
}

jaclip_status jaclip_model_encode_images(jaclip_tensor **out, const jaclip_model *model,
                                         const jaclip_image *const *images, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if (!images && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "images is NULL");
    for (size_t i = 0; i < n; i++)
        if (!images[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "images[%zu] is NULL", i);
    return encode_sources(out, model, NULL, NULL, NULL, images, n);
}
