/* The configuration record of a model file (docs/model-format.md): `key=value` lines of sizes, the
 * image mean and std and the model family, each value checked against its range. */
#include "model/model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        if (errno || end == p || (i < 2 && *end != ',') || (i == 2 && *end) || !(v == v) || (positive && !(v > 0)) ||
            v > 1e6 || v < -1e6)
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
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: logit_scale=%s is not a number in -80..80",
                       buf);
    m->default_scale = (float)exp(v);
    return JACLIP_OK;
}

jaclip_status jc_model_parse_config(jaclip_model *m, const char *text)
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
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: cls_id=%lld, this library frames with 4",
                       (long long)special);
    if ((st = config_int(text, "pad_id", 0, INT32_MAX, &special)))
        return st;
    if (special != 3)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "model configuration: pad_id=%lld, this library pads with 3",
                       (long long)special);
    return JACLIP_OK;
}
