/* Zero-shot classifiers (rinna's ImageNet protocol) and the named presets; their file format is in
 * classifier_file.c. docs/zeroshot.md describes the protocol and the file layout. */
#include "zeroshot/classifier.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zeroshot_presets.inc"

/* ---- presets ----------------------------------------------------------------------------------- */

static jaclip_status preset(const char *const **out, size_t *out_count, const char *name, bool labels)
{
    if (out)
        *out = NULL;
    if (out_count)
        *out_count = 0;
    if (!out || !out_count || !name)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out, out_count and name must not be NULL");
    if (strcmp(name, "imagenet") != 0)
        return jc_fail(JACLIP_ERROR_NOT_FOUND, "no %s preset \"%.40s\" (known: imagenet)",
                       labels ? "label" : "template", name);
    *out = labels ? jc_imagenet_classes_ja : jc_imagenet_templates_ja;
    *out_count = labels ? JC_IMAGENET_CLASS_COUNT : JC_IMAGENET_TEMPLATE_COUNT;
    return JACLIP_OK;
}

jaclip_status jaclip_preset_labels(const char *const **out, size_t *out_count, const char *name)
{
    return preset(out, out_count, name, true);
}

jaclip_status jaclip_preset_templates(const char *const **out, size_t *out_count, const char *name)
{
    return preset(out, out_count, name, false);
}

/* ---- construction ------------------------------------------------------------------------------ */

void jaclip_classifier_free(jaclip_classifier *c)
{
    if (!c)
        return;
    free(c->labels);
    free(c->templates);
    free(c->strings);
    free(c->weights);
    free(c);
}

jaclip_status jc_classifier_alloc(jaclip_classifier **out, size_t size, size_t dim, size_t ntemplates,
                                  size_t strings_bytes)
{
    size_t cells;
    jaclip_classifier *c = calloc(1, sizeof *c);
    if (!c || !jc_mul_size(size, dim, &cells) || cells > SIZE_MAX / sizeof(float)) {
        free(c);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    }
    c->size = size;
    c->dim = dim;
    c->ntemplates = ntemplates;
    c->strings_bytes = strings_bytes;
    c->labels = calloc(size ? size : 1, sizeof *c->labels);
    c->templates = calloc(ntemplates ? ntemplates : 1, sizeof *c->templates);
    c->strings = malloc(strings_bytes ? strings_bytes : 1);
    c->weights = malloc(cells ? cells * sizeof(float) : 1);
    if (!c->labels || !c->templates || !c->strings || !c->weights) {
        jaclip_classifier_free(c);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    }
    *out = c;
    return JACLIP_OK;
}

bool jc_classifier_index_strings(jaclip_classifier *c)
{
    size_t pos = 0;
    for (size_t i = 0; i < c->size + c->ntemplates; i++) {
        const char *end = pos < c->strings_bytes ? memchr(c->strings + pos, '\0', c->strings_bytes - pos) : NULL;
        if (!end)
            return false;
        if (i < c->size)
            c->labels[i] = c->strings + pos;
        else
            c->templates[i - c->size] = c->strings + pos;
        pos = (size_t)(end - c->strings) + 1;
    }
    return pos == c->strings_bytes;
}

static size_t count_marks(const char *s)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, "{}")); p += 2)
        n++;
    return n;
}

/* template with its one {} replaced by label (malloc'd). */
static char *fill_template(const char *template_text, const char *label)
{
    const char *mark = strstr(template_text, "{}");
    size_t before = (size_t)(mark - template_text), label_len = strlen(label), after = strlen(mark + 2);
    char *s = malloc(before + label_len + after + 1);
    if (s) {
        memcpy(s, template_text, before);
        memcpy(s + before, label, label_len);
        memcpy(s + before + label_len, mark + 2, after + 1);
    }
    return s;
}

static void normalize_row(double *row, size_t d)
{
    double s = 0;
    for (size_t i = 0; i < d; i++)
        s += row[i] * row[i];
    s = sqrt(s);
    if (s > 0)
        for (size_t i = 0; i < d; i++)
            row[i] /= s;
}

/* Encodes the texts of labels [first, first+count) (count * T texts, label-major) and adds each text's
 * unit feature into acc [count, dim]. */
static jaclip_status encode_chunk(const jaclip_model *model, const jaclip_classifier *c, size_t first, size_t count,
                                  double *acc)
{
    size_t t = c->ntemplates, n = count * t, d = c->dim;
    char **texts = calloc(n, sizeof *texts);
    jaclip_tensor *features = NULL;
    jaclip_status st = JACLIP_OK;
    if (!texts)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < n && st == JACLIP_OK; i++)
        if (!(texts[i] = fill_template(c->templates[i % t], c->labels[first + i / t])))
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    if (st == JACLIP_OK && (st = jaclip_model_encode_texts(&features, model, (const char *const *)texts, NULL, n)))
        jc_fail_prefix(st, "labels %zu..%zu: ", first, first + count - 1);
    if (st == JACLIP_OK) {
        const float *f = features->data;
        double *row = malloc(d * sizeof *row);
        if (!row)
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
        for (size_t i = 0; row && i < n; i++) {
            for (size_t k = 0; k < d; k++)
                row[k] = f[i * d + k];
            normalize_row(row, d);
            for (size_t k = 0; k < d; k++)
                acc[(i / t) * d + k] += row[k];
        }
        free(row);
    }
    jaclip_tensor_free(features);
    for (size_t i = 0; i < n; i++)
        free(texts[i]);
    free(texts);
    return st;
}

static jaclip_status check_strings(const char *const *items, size_t n, const char *what, bool is_template,
                                   size_t *bytes)
{
    for (size_t i = 0; i < n; i++) {
        if (!items[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s[%zu] is NULL", what, i);
        if (!is_template && !items[i][0])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s[%zu] is empty", what, i);
        if (is_template && count_marks(items[i]) != 1)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s[%zu] \"%.60s\" must contain exactly one {}", what, i,
                           items[i]);
        size_t len = strlen(items[i]);
        if (jc_utf8_invalid_at((const unsigned char *)items[i], len) != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INVALID_UTF8, "%s[%zu] is not valid UTF-8", what, i);
        if (len > SIZE_MAX / 2 - *bytes)
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
        *bytes += len + 1;
    }
    return JACLIP_OK;
}

jaclip_status jaclip_classifier_create(jaclip_classifier **out, const jaclip_model *model, const char *const *labels,
                                       size_t n_labels, const char *const *templates, size_t n_templates)
{
    static const char *const label_only[1] = {"{}"};
    size_t bytes = 0;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!model || !labels)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "model and labels must not be NULL");
    if (n_labels == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "no labels given");
    if (!templates && n_templates)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "templates is NULL");
    if (!templates || n_templates == 0) {
        templates = label_only;
        n_templates = 1;
    }
    if ((st = check_strings(labels, n_labels, "labels", false, &bytes)) ||
        (st = check_strings(templates, n_templates, "templates", true, &bytes)))
        return st;
    jaclip_classifier *c;
    size_t d = (size_t)jaclip_model_embedding_dim(model);
    if ((st = jc_classifier_alloc(&c, n_labels, d, n_templates, bytes)))
        return st;
    char *p = c->strings;
    for (size_t i = 0; i < n_labels + n_templates; i++) {
        const char *s = i < n_labels ? labels[i] : templates[i - n_labels];
        size_t len = strlen(s) + 1;
        memcpy(p, s, len);
        p += len;
    }
    jc_classifier_index_strings(c);
    c->scale = jaclip_model_default_scale(model);
    snprintf(c->fingerprint, sizeof c->fingerprint, "%s", jaclip_model_fingerprint(model));

    size_t per_chunk = JC_BUILD_CHUNK / n_templates ? JC_BUILD_CHUNK / n_templates : 1;
    double *acc = calloc(per_chunk * d, sizeof *acc);
    if (!acc)
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    for (size_t first = 0; first < n_labels && st == JACLIP_OK; first += per_chunk) {
        size_t count = n_labels - first < per_chunk ? n_labels - first : per_chunk;
        memset(acc, 0, per_chunk * d * sizeof *acc);
        if ((st = encode_chunk(model, c, first, count, acc)))
            break;
        for (size_t i = 0; i < count; i++) {
            double *row = acc + i * d;
            for (size_t k = 0; k < d; k++)
                row[k] /= (double)n_templates;
            normalize_row(row, d);
            for (size_t k = 0; k < d; k++)
                c->weights[(first + i) * d + k] = (float)row[k];
        }
    }
    free(acc);
    if (st) {
        jaclip_classifier_free(c);
        return st;
    }
    *out = c;
    return JACLIP_OK;
}

/* ---- introspection ----------------------------------------------------------------------------- */

size_t jaclip_classifier_size(const jaclip_classifier *c) { return c ? c->size : 0; }
size_t jaclip_classifier_dim(const jaclip_classifier *c) { return c ? c->dim : 0; }
size_t jaclip_classifier_template_count(const jaclip_classifier *c) { return c ? c->ntemplates : 0; }
float jaclip_classifier_default_scale(const jaclip_classifier *c) { return c ? c->scale : 0.0f; }
const char *jaclip_classifier_fingerprint(const jaclip_classifier *c) { return c ? c->fingerprint : NULL; }

const char *jaclip_classifier_label(const jaclip_classifier *c, size_t i)
{
    return c && i < c->size ? c->labels[i] : NULL;
}

const char *jaclip_classifier_template(const jaclip_classifier *c, size_t i)
{
    return c && i < c->ntemplates ? c->templates[i] : NULL;
}

jaclip_status jaclip_classifier_weights(jaclip_tensor **out, const jaclip_classifier *c)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!c)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "classifier is NULL");
    const int64_t shape[2] = {(int64_t)c->size, (int64_t)c->dim};
    return jaclip_tensor_create(out, JACLIP_DTYPE_FLOAT32, 2, shape, c->weights);
}

/* ---- classification ---------------------------------------------------------------------------- */

/* logit_scale * cosine(features, weights): rinna's logits are normalised image features @ the (unit)
 * weights. Scaled inside jaclip_similarity, as jaclip_probabilities does, so that classifying equals
 * jaclip_probabilities over the weights to the bit (scaling afterwards rounds differently). */
static jaclip_status scaled_scores(jaclip_tensor **out, const jaclip_classifier *c, const jaclip_tensor *features,
                                   float scale)
{
    jaclip_tensor *weights = NULL;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!c)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "classifier is NULL");
    if ((st = jc_check_2d(features, JACLIP_DTYPE_FLOAT32, "features")))
        return st;
    if ((size_t)features->shape[1] != c->dim)
        return jc_fail(JACLIP_ERROR_SHAPE, "features have %lld columns, the classifier %zu",
                       (long long)features->shape[1], c->dim);
    for (size_t i = 0; i < features->numel; i++)
        if (!isfinite(((const float *)features->data)[i]))
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "features row %zu holds a non-finite value", i / c->dim);
    if (!(st = jaclip_classifier_weights(&weights, c)))
        st = jaclip_similarity(out, features, weights, JACLIP_SIMILARITY_COSINE, scale);
    jaclip_tensor_free(weights);
    return st;
}

jaclip_status jaclip_classifier_scores(jaclip_tensor **out, const jaclip_classifier *c, const jaclip_tensor *features)
{
    return scaled_scores(out, c, features, 1.0f);
}

jaclip_status jaclip_classifier_classify_features(jaclip_tensor **out, const jaclip_classifier *c,
                                                  const jaclip_tensor *features, float scale)
{
    jaclip_tensor *scores = NULL;
    jaclip_status st;
    if (out)
        *out = NULL;
    if (!(scale == 0 || (isfinite(scale) && scale > 0)))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "scale must be 0 (the default) or finite and positive");
    if ((st = scaled_scores(&scores, c, features, scale == 0 ? c->scale : scale)))
        return st;
    st = jaclip_softmax(out, scores);
    jaclip_tensor_free(scores);
    return st;
}

static jaclip_status check_same_model(const jaclip_classifier *c, const jaclip_model *model)
{
    if (!c || !model)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "classifier and model must not be NULL");
    if (strcmp(c->fingerprint, jaclip_model_fingerprint(model)) != 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "the classifier was built with model %s, not with this model %s",
                       c->fingerprint, jaclip_model_fingerprint(model));
    return JACLIP_OK;
}

typedef enum { FROM_IMAGES, FROM_FILES, FROM_BUFFERS } image_source;

/* Encodes the images (decoded, files or buffers, as source says) with model, then classifies them. */
static jaclip_status classify_sources(jaclip_tensor **out, const jaclip_classifier *c, const jaclip_model *model,
                                      image_source source, const void *items, const size_t *sizes, size_t n,
                                      float scale)
{
    jaclip_tensor *features = NULL;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if ((st = check_same_model(c, model)))
        return st;
    if (source == FROM_FILES)
        st = jaclip_model_encode_image_files(&features, model, items, n);
    else if (source == FROM_BUFFERS)
        st = jaclip_model_encode_image_buffers(&features, model, items, sizes, n);
    else
        st = jaclip_model_encode_images(&features, model, items, n);
    if (st == JACLIP_OK)
        st = jaclip_classifier_classify_features(out, c, features, scale);
    jaclip_tensor_free(features);
    return st;
}

jaclip_status jaclip_classifier_classify_images(jaclip_tensor **out, const jaclip_classifier *c,
                                                const jaclip_model *model, const jaclip_image *const *images, size_t n,
                                                float scale)
{
    return classify_sources(out, c, model, FROM_IMAGES, images, NULL, n, scale);
}

jaclip_status jaclip_classifier_classify_image_files(jaclip_tensor **out, const jaclip_classifier *c,
                                                     const jaclip_model *model, const char *const *paths, size_t n,
                                                     float scale)
{
    return classify_sources(out, c, model, FROM_FILES, paths, NULL, n, scale);
}

jaclip_status jaclip_classifier_classify_image_buffers(jaclip_tensor **out, const jaclip_classifier *c,
                                                       const jaclip_model *model, const void *const *data,
                                                       const size_t *sizes, size_t n, float scale)
{
    return classify_sources(out, c, model, FROM_BUFFERS, data, sizes, n, scale);
}
