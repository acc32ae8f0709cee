/* A classifier's file (docs/zeroshot.md): header, fingerprint, strings, weights and a CRC32 of
 * everything before it, little-endian; written atomically (common/file_output.c). */
#include "common/bytes.h"
#include "zeroshot/classifier.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The whole file: header, fingerprint, strings, weights, CRC32 of everything before it. */
static unsigned char *serialize(const jaclip_classifier *c, size_t *out_size)
{
    size_t fp = strlen(c->fingerprint), weights = c->size * c->dim * sizeof(float);
    size_t total = JC_CLASSIFIER_HEADER + fp + c->strings_bytes + weights + 4;
    unsigned char *buf = malloc(total), *p = buf;
    if (!buf)
        return NULL;
    memcpy(p, JC_CLASSIFIER_MAGIC, 8);
    jc_put_u32le(p + 8, JC_CLASSIFIER_VERSION);
    jc_put_u32le(p + 12, (uint32_t)c->dim);
    jc_put_u64le(p + 16, c->size);
    jc_put_u32le(p + 24, (uint32_t)c->ntemplates);
    jc_put_u32le(p + 28, float_bits(c->scale));
    jc_put_u32le(p + 32, (uint32_t)fp);
    jc_put_u32le(p + 36, (uint32_t)c->strings_bytes);
    p += JC_CLASSIFIER_HEADER;
    memcpy(p, c->fingerprint, fp);
    p += fp;
    memcpy(p, c->strings, c->strings_bytes);
    p += c->strings_bytes;
    for (size_t i = 0; i < c->size * c->dim; i++, p += 4)
        jc_put_u32le(p, float_bits(c->weights[i]));
    jc_put_u32le(p, jc_crc32(0, buf, total - 4));
    *out_size = total;
    return buf;
}

jaclip_status jaclip_classifier_save(const jaclip_classifier *c, const char *path)
{
    if (!c || !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "classifier and path must not be NULL");
    if (c->strings_bytes > UINT32_MAX || c->dim > UINT32_MAX || c->ntemplates > UINT32_MAX)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "the classifier's strings exceed the format's 4 GiB");
    size_t size;
    unsigned char *buf = serialize(c, &size);
    if (!buf)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    jc_temp_file t;
    jaclip_status st = jc_temp_open(&t, path);
    if (!st)
        st = jc_temp_commit(&t, jc_write_at(t.fd, buf, size, 0, t.tmp), "classifier");
    free(buf);
    return st;
}

static jaclip_status format_fail(const char *path, const char *what)
{
    return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: %s", path, what);
}

/* What a CRC cannot vouch for (a forged file has a valid one): the strings are UTF-8, labels are not
 * empty, each template has its one {}, and every weight row is finite and of unit length (or all zero),
 * as jaclip_classifier_create makes them. */
static jaclip_status check_contents(const jaclip_classifier *c, const char *path)
{
    size_t bad = jc_utf8_invalid_at((const unsigned char *)c->strings, c->strings_bytes);
    if (bad != SIZE_MAX)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: classifier strings are not valid UTF-8 (byte %zu)", path, bad);
    for (size_t i = 0; i < c->size; i++)
        if (!c->labels[i][0])
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: classifier label %zu is empty", path, i);
    for (size_t i = 0; i < c->ntemplates; i++) {
        const char *mark = strstr(c->templates[i], "{}");
        if (!mark || strstr(mark + 2, "{}"))
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: classifier template %zu does not hold exactly one {}",
                           path, i);
    }
    for (size_t i = 0; i < c->size; i++) {
        const float *row = c->weights + i * c->dim;
        double norm = 0;
        for (size_t k = 0; k < c->dim; k++) {
            if (!isfinite(row[k]))
                return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: classifier weight [%zu, %zu] is not finite", path, i,
                               k);
            norm += (double)row[k] * row[k];
        }
        if (norm != 0 && fabs(sqrt(norm) - 1.0) > 1e-3) /* 0: features that cancelled, as create leaves them */
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: classifier row %zu is not of unit length (%g)", path, i,
                           sqrt(norm));
    }
    return JACLIP_OK;
}

static jaclip_status parse(jaclip_classifier **out, const unsigned char *b, size_t size, const char *path)
{
    if (size < 8 || memcmp(b, JC_CLASSIFIER_MAGIC, 8) != 0)
        return format_fail(path, "not a jaclip classifier file (bad magic)");
    if (size < JC_CLASSIFIER_HEADER + 4)
        return format_fail(path, "truncated classifier file (shorter than its header)");
    uint32_t version = jc_get_u32le(b + 8);
    if (version != JC_CLASSIFIER_VERSION)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                       "%s: classifier format version %u; this libjaclip %s reads version %d", path, (unsigned)version,
                       JACLIP_VERSION_STRING, JC_CLASSIFIER_VERSION);
    uint64_t dim = jc_get_u32le(b + 12), labels = jc_get_u64le(b + 16), templates = jc_get_u32le(b + 24);
    uint64_t fp = jc_get_u32le(b + 32), strings = jc_get_u32le(b + 36);
    float scale = bits_float(jc_get_u32le(b + 28));
    /* Every length against the file size before anything is allocated. */
    uint64_t avail = size - JC_CLASSIFIER_HEADER - 4;
    if (dim == 0 || dim > 65536 || labels == 0 || templates == 0 || fp == 0 || fp > JC_FINGERPRINT_MAX ||
        labels > avail / (dim * 4) || fp + strings + labels * dim * 4 != avail ||
        labels + templates > strings) /* each string holds at least its NUL */
        return jc_crc32(0, b, size - 4) != jc_get_u32le(b + size - 4)
                   ? format_fail(path, "corrupted or truncated classifier file (checksum mismatch)")
                   : format_fail(path, "classifier file lengths do not add up to its size");
    if (jc_crc32(0, b, size - 4) != jc_get_u32le(b + size - 4))
        return format_fail(path, "corrupted classifier file (checksum mismatch)");
    if (!(isfinite(scale) && scale > 0))
        return format_fail(path, "classifier file holds a scale that is not finite and positive");
    jaclip_classifier *c;
    jaclip_status st = jc_classifier_alloc(&c, (size_t)labels, (size_t)dim, (size_t)templates, (size_t)strings);
    if (st)
        return st;
    const unsigned char *p = b + JC_CLASSIFIER_HEADER;
    memcpy(c->fingerprint, p, fp);
    c->fingerprint[fp] = '\0';
    p += fp;
    memcpy(c->strings, p, strings);
    p += strings;
    c->scale = scale;
    for (size_t i = 0; i < c->size * c->dim; i++, p += 4)
        c->weights[i] = bits_float(jc_get_u32le(p));
    if (strlen(c->fingerprint) != fp || !jc_classifier_index_strings(c))
        st = format_fail(path, "classifier file's strings are malformed");
    else
        st = check_contents(c, path);
    if (st) {
        jaclip_classifier_free(c);
        return st;
    }
    *out = c;
    return JACLIP_OK;
}

jaclip_status jaclip_classifier_load(jaclip_classifier **out, const char *path, const jaclip_model *model)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path || !model)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path and model must not be NULL");
    char *buf = NULL;
    size_t size = 0;
    jaclip_status st = jc_read_regular_file(path, "classifier", SIZE_MAX / 2, &buf, &size);
    if (st)
        return st;
    jaclip_classifier *c = NULL;
    st = parse(&c, (const unsigned char *)buf, size, path);
    free(buf);
    if (st == JACLIP_OK && strcmp(c->fingerprint, jaclip_model_fingerprint(model)) != 0) {
        st =
            jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s: the classifier was built with model %s, not with this model %s",
                    path, c->fingerprint, jaclip_model_fingerprint(model));
        jaclip_classifier_free(c);
        c = NULL;
    }
    if (st == JACLIP_OK && c->dim != (size_t)jaclip_model_embedding_dim(model)) {
        st = format_fail(path, "classifier width differs from the model's");
        jaclip_classifier_free(c);
        c = NULL;
    }
    *out = c;
    return st;
}
