#include "serve.h"

#include <fcntl.h>
#include <turbojpeg.h>

/* ---- serve: the JSON API on the library ---------------------------------------------------------- */

enum {
    MAX_TEXTS = 256,
    MAX_IMAGES = 64,
    MAX_LABELS = 1000,
    MAX_TEMPLATES = 100,
    MAX_K = 1000,
    DEFAULT_K = 10,
    DEFAULT_THUMB = 160
};
/* Thumbnails: the largest source file read, and its pixel limit (below the library's default). */
#define THUMB_MAX_FILE ((off_t)64 << 20)
#define THUMB_MAX_PIXELS ((uint64_t)64 << 20)

#define BAD_REQUEST(out, ...) reply_error(out, MHD_HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_ARGUMENT", __VA_ARGS__)
#define BUSY(out) reply_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "SERVE_BUSY", "no model slot free in time")

/* ---- request parsing ---- */

static bool content_type_is(const request *r, const char *type)
{
    size_t n = strlen(type);
    return r->content_type && !strncasecmp(r->content_type, type, n) &&
           (r->content_type[n] == '\0' || r->content_type[n] == ';' || r->content_type[n] == ' ');
}

/* The JSON object of the body, with only the fields in allowed[]; NULL with *out set otherwise. */
static json_t *json_body(const request *r, const char *const *allowed, reply *out)
{
    if (!content_type_is(r, "application/json")) {
        reply_error(out, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "JACLIP_ERROR_INVALID_ARGUMENT",
                    "send Content-Type: application/json");
        return NULL;
    }
    if (!r->body || !r->len) {
        BAD_REQUEST(out, "empty body: expected a JSON object");
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(r->body, r->len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (json_error_code(&err) == json_error_invalid_utf8)
            reply_error(out, MHD_HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_UTF8",
                        "invalid UTF-8 in the JSON body at byte %d", err.position);
        else
            BAD_REQUEST(out, "malformed JSON at byte %d: %s", err.position, err.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        BAD_REQUEST(out, "expected a JSON object");
        return NULL;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        bool known = false;
        for (const char *const *a = allowed; *a && !known; a++)
            known = !strcmp(key, *a);
        if (!known) {
            BAD_REQUEST(out, "unknown field '%.64s'", key);
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* An integer option from JSON (value), a form field or a query argument (text); def if absent. */
static bool int_option(json_t *value, const char *text, const char *name, long min, long max, long def, long *v,
                       reply *out)
{
    *v = def;
    if (value) {
        if (!json_is_integer(value) || json_integer_value(value) < min || json_integer_value(value) > max) {
            BAD_REQUEST(out, "'%s' must be an integer from %ld to %ld", name, min, max);
            return false;
        }
        *v = (long)json_integer_value(value);
    } else if (text) {
        char *end;
        errno = 0;
        long x = strtol(text, &end, 10);
        if (errno || end == text || *end || x < min || x > max) {
            BAD_REQUEST(out, "'%s' must be an integer from %ld to %ld", name, min, max);
            return false;
        }
        *v = x;
    }
    return true;
}

static bool number_option(json_t *value, const char *text, const char *name, double def, double *v, reply *out)
{
    *v = def;
    if (value) {
        if (!json_is_number(value)) {
            BAD_REQUEST(out, "'%s' must be a number", name);
            return false;
        }
        *v = json_number_value(value);
    } else if (text) {
        char *end;
        errno = 0;
        *v = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(*v)) {
            BAD_REQUEST(out, "'%s' must be a finite number", name);
            return false;
        }
    }
    return true;
}

/* A form field's value, else the query argument's. */
static const char *arg(const request *r, const char *name)
{
    const form_field *f = form_get(r, name, 0);
    return f ? f->data : query_arg(r, name);
}

static const served_index *pick_index(const server *s, const char *name, reply *out)
{
    if (!name) {
        if (s->nindexes == 1)
            return &s->indexes[0];
        if (s->nindexes == 0)
            reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "no index is loaded (start with --index)");
        else
            BAD_REQUEST(out, "%zu indexes are loaded: name one with \"index\"", s->nindexes);
        return NULL;
    }
    for (size_t i = 0; i < s->nindexes; i++)
        if (!strcmp(s->indexes[i].name, name))
            return &s->indexes[i];
    reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "no index named '%.64s'", name);
    return NULL;
}

/* The image bytes of the request: the raw body, or every file part of a form (the field "image" first). */
static size_t request_images(const request *r, const void **data, size_t *sizes, size_t max, reply *out)
{
    size_t n = 0;
    if (is_form(r)) {
        for (size_t i = 0; i < r->nfields && n < max; i++)
            if (r->fields[i].filename || !strcmp(r->fields[i].name, "image")) {
                data[n] = r->fields[i].data ? r->fields[i].data : "";
                sizes[n++] = r->fields[i].len;
            }
        if (!n)
            BAD_REQUEST(out, "the form has no image file part (e.g. curl -F image=@photo.jpg)");
        return n;
    }
    if (content_type_is(r, "application/json") || content_type_is(r, "text/plain")) {
        reply_error(out, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "JACLIP_ERROR_INVALID_ARGUMENT",
                    "send the image as the raw body (image/jpeg, image/png) or as multipart/form-data");
        return 0;
    }
    if (!r->len) {
        BAD_REQUEST(out, "empty body: expected a JPEG or PNG image");
        return 0;
    }
    data[0] = r->body;
    sizes[0] = r->len;
    return 1;
}

/* ---- JSON output ---- */

static json_t *float_row(const float *v, size_t n)
{
    json_t *row = json_array();
    for (size_t i = 0; row && i < n; i++)
        if (json_array_append_new(row, json_real((double)v[i]))) {
            json_decref(row);
            return NULL;
        }
    return row;
}

static json_t *embeddings_json(const jaclip_tensor *t)
{
    size_t rows = (size_t)jaclip_tensor_dim(t, 0), cols = (size_t)jaclip_tensor_dim(t, 1);
    const float *v = jaclip_tensor_data(t);
    json_t *list = json_array();
    for (size_t i = 0; list && i < rows; i++)
        if (json_array_append_new(list, float_row(v + i * cols, cols))) {
            json_decref(list);
            return NULL;
        }
    return json_pack("{s:o*}", "embeddings", list);
}

/* {"embeddings": ...} of emb, or the library's error; frees emb. */
static void reply_embeddings(reply *out, jaclip_status st, jaclip_tensor *emb)
{
    if (st)
        reply_library_error(out, st);
    else
        reply_json(out, MHD_HTTP_OK, embeddings_json(emb));
    jaclip_tensor_free(emb);
}

static json_t *index_json(const served_index *x)
{
    return json_pack("{s:s,s:I,s:I}", "name", x->name, "rows", (json_int_t)jaclip_index_size(x->index), "dim",
                     (json_int_t)jaclip_index_dim(x->index));
}

/* ---- info ---- */

void api_info(server *s, request *r, reply *out)
{
    json_t *indexes = json_array();
    for (size_t i = 0; indexes && i < s->nindexes; i++)
        json_array_append_new(indexes, index_json(&s->indexes[i]));
    const jaclip_model *m = s->model;
    reply_json(out, MHD_HTTP_OK,
               json_pack("{s:s,s:{s:I,s:I,s:I,s:s,s:s,s:s},s:o*,s:{s:I,s:I,s:I,s:I,s:I},s:b}", "version",
                         jaclip_version_string(), "model", "dim", (json_int_t)jaclip_model_embedding_dim(m),
                         "image_size", (json_int_t)jaclip_model_image_size(m), "max_text_length",
                         (json_int_t)jaclip_model_max_text_length(m), "device", jaclip_model_device(m), "precision",
                         jaclip_model_precision(m) == JACLIP_PRECISION_BF16 ? "bf16" : "fp32", "fingerprint",
                         jaclip_model_fingerprint(m), "indexes", indexes, "limits", "max_body", (json_int_t)s->max_body,
                         "max_texts", (json_int_t)MAX_TEXTS, "max_labels", (json_int_t)MAX_LABELS, "max_k",
                         (json_int_t)MAX_K, "max_requests", (json_int_t)s->max_requests, "token_required",
                         s->token != NULL));
}

void api_indexes(server *s, request *r, const char *name, reply *out)
{
    if (name) {
        const served_index *x = pick_index(s, name, out);
        if (x)
            reply_json(out, MHD_HTTP_OK, index_json(x));
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < s->nindexes; i++)
        json_array_append_new(list, index_json(&s->indexes[i]));
    reply_json(out, MHD_HTTP_OK, json_pack("{s:o*}", "indexes", list));
}

/* ---- embed ---- */

void api_embed_text(server *s, request *r, reply *out)
{
    static const char *const allowed[] = {"texts", NULL};
    json_t *root = json_body(r, allowed, out);
    if (!root)
        return;
    json_t *texts = json_object_get(root, "texts");
    size_t n = json_array_size(texts);
    if (!json_is_array(texts) || n == 0 || n > MAX_TEXTS) {
        BAD_REQUEST(out, "\"texts\" must be an array of 1 to %d strings", MAX_TEXTS);
        json_decref(root);
        return;
    }
    const char **ptrs = xcalloc(n, sizeof *ptrs);
    size_t *lengths = xcalloc(n, sizeof *lengths);
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(texts, i);
        if (!json_is_string(t)) {
            BAD_REQUEST(out, "\"texts\"[%zu] is not a string", i);
            goto done;
        }
        ptrs[i] = json_string_value(t);
        lengths[i] = json_string_length(t);
    }
    if (n == 1) {
        batch_job job = {.kind = BATCH_TEXT, .text = ptrs[0], .len = lengths[0]};
        if (!batch_run(s, &job))
            BUSY(out);
        else if (job.st)
            reply_library_error_message(out, job.st, job.message);
        else
            reply_embeddings(out, JACLIP_OK, job.features);
        goto done;
    }
    if (!take_slot(s)) {
        BUSY(out);
        goto done;
    }
    jaclip_tensor *emb = NULL;
    jaclip_status st = jaclip_model_encode_texts(&emb, s->model, ptrs, lengths, n);
    give_slot(s);
    reply_embeddings(out, st, emb);
done:
    free(ptrs);
    free(lengths);
    json_decref(root);
}

void api_embed_image(server *s, request *r, reply *out)
{
    const void *data[MAX_IMAGES];
    size_t sizes[MAX_IMAGES];
    size_t n = request_images(r, data, sizes, MAX_IMAGES, out);
    if (!n)
        return;
    if (!take_slot(s)) {
        BUSY(out);
        return;
    }
    jaclip_tensor *emb = NULL;
    jaclip_status st = jaclip_model_encode_image_buffers(&emb, s->model, data, sizes, n);
    give_slot(s);
    reply_embeddings(out, st, emb);
}

/* ---- classify ---- */

/* Unit-length class embeddings [nlabels, D] by rinna's zero-shot protocol (jaclip_classifier_create:
 * each template, with exactly one "{}", filled with the label and encoded, each row L2-normalised,
 * averaged per label, re-normalised). */
jaclip_status class_embeddings(jaclip_tensor **out, const jaclip_model *model, const char *const *labels,
                               size_t nlabels, const char *const *templates, size_t ntemplates)
{
    /* rinna's ensemble lives once, in the library's classifier. */
    jaclip_classifier *classifier = NULL;
    *out = NULL;
    jaclip_status st = jaclip_classifier_create(&classifier, model, labels, nlabels, templates, ntemplates);
    if (!st)
        st = jaclip_classifier_weights(out, classifier);
    jaclip_classifier_free(classifier);
    return st;
}

typedef struct {
    const char *name;
    const char **items;
    size_t count;
} value_list;

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    value_list *l = cls;
    if (key && value && !strcmp(key, l->name) && l->count < MAX_LABELS + 1)
        l->items[l->count++] = value;
    return MHD_YES;
}

/* Every value of a repeated form field or query argument. */
static void collect(const request *r, value_list *l)
{
    if (is_form(r)) {
        const form_field *f;
        for (size_t i = 0; (f = form_get(r, l->name, i)) && l->count < MAX_LABELS + 1; i++)
            l->items[l->count++] = f->data ? f->data : "";
    } else {
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_query, l);
    }
}

void api_classify(server *s, request *r, reply *out)
{
    const void *data[1];
    size_t size[1];
    const char *label_items[MAX_LABELS + 1], *template_items[MAX_LABELS + 1];
    value_list labels = {"label", label_items, 0}, templates = {"template", template_items, 0};
    if (!request_images(r, data, size, 1, out))
        return;
    collect(r, &labels);
    collect(r, &templates);
    /* No labels: the classifier the server was started with (--classifier), if any. */
    const jaclip_classifier *loaded = labels.count == 0 && templates.count == 0 ? s->classifier : NULL;
    if (!loaded && (labels.count == 0 || labels.count > MAX_LABELS)) {
        BAD_REQUEST(out, "give 1 to %d 'label' values (repeat the field or the query argument)%s", MAX_LABELS,
                    s->classifier ? ", or none (and no template) for the server's classifier" : "");
        return;
    }
    if (templates.count > MAX_TEMPLATES) {
        BAD_REQUEST(out, "at most %d templates", MAX_TEMPLATES);
        return;
    }
    for (size_t i = 0; i < labels.count; i++)
        if (!*labels.items[i] || !is_utf8(labels.items[i])) {
            reply_error(out, MHD_HTTP_BAD_REQUEST,
                        !*labels.items[i] ? "JACLIP_ERROR_INVALID_ARGUMENT" : "JACLIP_ERROR_INVALID_UTF8",
                        "label %zu is empty or not UTF-8", i);
            return;
        }
    for (size_t i = 0; i < templates.count; i++)
        if (!strstr(templates.items[i], "{}") || !is_utf8(templates.items[i])) {
            BAD_REQUEST(out, "template %zu must be UTF-8 and contain {} where the label goes", i);
            return;
        }
    static const char *const plain[] = {"{}"};
    if (!templates.count) {
        templates.items = (const char **)plain;
        templates.count = 1;
    }
    double scale;
    double default_scale = loaded ? jaclip_classifier_default_scale(loaded) : jaclip_model_default_scale(s->model);
    if (!number_option(NULL, arg(r, "scale"), "scale", default_scale, &scale, out))
        return;
    if (!take_slot(s)) {
        BUSY(out);
        return;
    }
    jaclip_tensor *classes = NULL, *image = NULL, *probs = NULL, *cosines = NULL, *order = NULL;
    size_t nclasses = loaded ? jaclip_classifier_size(loaded) : labels.count;
    jaclip_status st =
        loaded ? jaclip_classifier_weights(&classes, loaded)
               : class_embeddings(&classes, s->model, labels.items, labels.count, templates.items, templates.count);
    if (!st)
        st = jaclip_model_encode_image_buffers(&image, s->model, data, size, 1);
    give_slot(s);
    /* Ranked by cosine, as `jaclip classify` and the bindings rank: at a scale of 100 probabilities
     * saturate to equal values (0) where the cosines still differ. */
    if (!st)
        st = jaclip_probabilities(&probs, image, classes, JACLIP_SIMILARITY_COSINE, (float)scale);
    if (!st)
        st = jaclip_similarity(&cosines, image, classes, JACLIP_SIMILARITY_COSINE, 1.0f);
    if (!st)
        st = jaclip_topk(&order, NULL, cosines, nclasses);
    if (st) {
        reply_library_error(out, st);
    } else {
        const float *p = jaclip_tensor_data(probs);
        const int64_t *rank = jaclip_tensor_data(order);
        json_t *list = json_array();
        for (size_t i = 0; list && i < nclasses; i++) {
            size_t c = (size_t)rank[i];
            const char *name = loaded ? jaclip_classifier_label(loaded, c) : labels.items[c];
            json_array_append_new(list, json_pack("{s:s,s:f}", "label", name, "probability", (double)p[c]));
        }
        reply_json(out, MHD_HTTP_OK, json_pack("{s:o*}", "labels", list));
    }
    jaclip_tensor_free(classes);
    jaclip_tensor_free(image);
    jaclip_tensor_free(probs);
    jaclip_tensor_free(cosines);
    jaclip_tensor_free(order);
}

/* ---- search ---- */

/* The parameters of a search: from a JSON body (*root keeps it) or the form / query string. false
 * when a reply was made. */
static bool search_params(request *r, bool by_json, json_t **root, const char **index_name, long *k, double *threshold,
                          reply *out)
{
    static const char *const allowed[] = {"text", "embedding", "row", "k", "threshold", "index", NULL};
    if (!by_json) {
        *index_name = arg(r, "index");
        return int_option(NULL, arg(r, "k"), "k", 1, MAX_K, DEFAULT_K, k, out) &&
               number_option(NULL, arg(r, "threshold"), "threshold", -INFINITY, threshold, out);
    }
    if (!(*root = json_body(r, allowed, out)))
        return false;
    json_t *name = json_object_get(*root, "index");
    if (name && !json_is_string(name)) {
        BAD_REQUEST(out, "\"index\" must be a string");
        return false;
    }
    *index_name = json_string_value(name);
    return int_option(json_object_get(*root, "k"), NULL, "k", 1, MAX_K, DEFAULT_K, k, out) &&
           number_option(json_object_get(*root, "threshold"), NULL, "threshold", -INFINITY, threshold, out);
}

/* The query vector of a JSON body's "embedding". false when a reply was made. */
static bool embedding_query(server *s, json_t *emb, jaclip_tensor **query, jaclip_status *st, reply *out)
{
    if (!json_is_array(emb) || json_array_size(emb) != s->dim) {
        BAD_REQUEST(out, "\"embedding\" must be an array of %zu numbers", s->dim);
        return false;
    }
    int64_t shape[2] = {1, (int64_t)s->dim};
    if ((*st = jaclip_tensor_create(query, JACLIP_DTYPE_FLOAT32, 2, shape, NULL)))
        return true;
    float *q = jaclip_tensor_data_mut(*query);
    for (size_t i = 0; i < s->dim; i++) {
        json_t *v = json_array_get(emb, i);
        double d = json_number_value(v);
        if (!json_is_number(v) || !isfinite((float)d)) {
            BAD_REQUEST(out, "\"embedding\"[%zu] is not a finite float32 number", i);
            jaclip_tensor_free(*query);
            *query = NULL;
            return false;
        }
        q[i] = (float)d;
    }
    return true;
}

/* The query of a JSON body: its "text" encoded, its "embedding", or index row "row". false when a
 * reply (bad request, busy) was made; else *st is the library's status. */
static bool json_query(server *s, json_t *root, const served_index *x, jaclip_tensor **query, jaclip_status *st,
                       reply *out)
{
    json_t *text = json_object_get(root, "text"), *emb = json_object_get(root, "embedding"),
           *row = json_object_get(root, "row");
    if (!!text + !!emb + !!row != 1) {
        BAD_REQUEST(out, "give exactly one of \"text\", \"embedding\" or \"row\"");
        return false;
    }
    if (emb)
        return embedding_query(s, emb, query, st, out);
    if (row) {
        json_int_t i = json_is_integer(row) ? json_integer_value(row) : -1;
        if (i < 0 || (size_t)i >= jaclip_index_size(x->index)) {
            BAD_REQUEST(out, "\"row\" must be an integer from 0 to %zu", jaclip_index_size(x->index) - 1);
            return false;
        }
        *st = jaclip_index_embeddings(query, x->index, (size_t)i, 1);
        return true;
    }
    if (!json_is_string(text)) {
        BAD_REQUEST(out, "\"text\" must be a string");
        return false;
    }
    batch_job job = {.kind = BATCH_TEXT, .text = json_string_value(text), .len = json_string_length(text)};
    if (!batch_run(s, &job)) {
        BUSY(out);
        return false;
    }
    if (job.st) {
        reply_library_error_message(out, job.st, job.message);
        return false;
    }
    *query = job.features;
    return true;
}

/* The query of a form: its one image encoded. false when a reply was made. */
static bool image_query(server *s, request *r, jaclip_tensor **query, jaclip_status *st, reply *out)
{
    const void *data[1];
    size_t size[1];
    if (!request_images(r, data, size, 1, out))
        return false;
    if (!take_slot(s)) {
        BUSY(out);
        return false;
    }
    *st = jaclip_model_encode_image_buffers(query, s->model, data, size, 1);
    give_slot(s);
    return true;
}

/* {"results": [{label, score, row}...]}, the hits at or above threshold. */
static void reply_hits(reply *out, const served_index *x, const jaclip_tensor *rows, const jaclip_tensor *scores,
                       double threshold)
{
    size_t n = (size_t)jaclip_tensor_dim(rows, 1);
    const int64_t *row = jaclip_tensor_data(rows);
    const float *score = jaclip_tensor_data(scores);
    json_t *list = json_array();
    for (size_t i = 0; list && i < n && score[i] >= threshold; i++) {
        const char *label = jaclip_index_label(x->index, (size_t)row[i]);
        /* Labels need not be UTF-8-clean for jansson; the index checks them on add, but be safe. */
        json_t *l = json_string(label);
        json_array_append_new(list, json_pack("{s:o*,s:f,s:I}", "label", l ? l : json_string("\xef\xbf\xbd"), "score",
                                              (double)score[i], "row", (json_int_t)row[i]));
    }
    reply_json(out, MHD_HTTP_OK, json_pack("{s:o*}", "results", list));
}

void api_search(server *s, request *r, reply *out)
{
    json_t *root = NULL;
    const char *index_name = NULL;
    long k;
    double threshold;
    bool by_json = !is_form(r) && content_type_is(r, "application/json");
    jaclip_tensor *query = NULL, *rows = NULL, *scores = NULL;
    jaclip_status st = JACLIP_OK;
    if (!search_params(r, by_json, &root, &index_name, &k, &threshold, out))
        goto done;
    const served_index *x = pick_index(s, index_name, out);
    if (!x || !(by_json ? json_query(s, root, x, &query, &st, out) : image_query(s, r, &query, &st, out)))
        goto done;
    if (st) {
        reply_library_error(out, st);
        goto done;
    }
    batch_job job = {.kind = BATCH_SEARCH, .index = x, .query = query, .k = (size_t)k};
    if (!batch_run(s, &job)) {
        BUSY(out);
        goto done;
    }
    rows = job.rows, scores = job.scores;
    if (job.st)
        reply_library_error_message(out, job.st, job.message);
    else
        reply_hits(out, x, rows, scores, threshold);
done:
    jaclip_tensor_free(query);
    jaclip_tensor_free(rows);
    jaclip_tensor_free(scores);
    json_decref(root);
}

/* ---- thumbnails ---- */

/* The file of a row, read only if it is a regular file and not a symbolic link. */
static char *read_row_file(const char *path, size_t *len, reply *out)
{
    if (path[0] != '/') {
        reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "this row's label is not a file path");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > THUMB_MAX_FILE) {
        int e = fd < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_IO", "this row's file cannot be served%s",
                    e == ELOOP ? " (a symbolic link)" : "");
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        reply_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "JACLIP_ERROR_IO", "this row's file could not be read");
        return NULL;
    }
    *len = got;
    return buf;
}

/* A JPEG of the row's image: shorter side resized to size and centre-cropped by the library. */
static unsigned char *make_thumbnail(const char *path, unsigned size, size_t *len, reply *out)
{
    size_t file_len;
    char *file = read_row_file(path, &file_len, out);
    if (!file)
        return NULL;
    jaclip_image *image = NULL;
    jaclip_tensor *pixels = NULL;
    jaclip_status st = jaclip_image_load_memory(&image, file, file_len, THUMB_MAX_PIXELS, JACLIP_IMAGE_EXIF_TRANSPOSE);
    free(file);
    if (!st)
        st = jaclip_image_resize_crop(&pixels, image, size);
    jaclip_image_free(image);
    if (st) {
        reply_library_error(out, st);
        return NULL;
    }
    unsigned long cap = tjBufSize((int)size, (int)size, TJSAMP_420), jpeg_len = cap;
    unsigned char *jpeg = malloc(cap);
    tjhandle tj = tjInitCompress();
    if (!jpeg || !tj ||
        tjCompress2(tj, jaclip_tensor_data(pixels), (int)size, 0, (int)size, TJPF_RGB, &jpeg, &jpeg_len, TJSAMP_420, 85,
                    TJFLAG_NOREALLOC)) {
        free(jpeg);
        jpeg = NULL;
        reply_error(out, MHD_HTTP_INTERNAL_SERVER_ERROR, "JACLIP_ERROR_INTERNAL", "JPEG encoding failed");
    }
    if (tj)
        tjDestroy(tj);
    jaclip_tensor_free(pixels);
    *len = jpeg_len;
    return jpeg;
}

/* GET /v1/thumbnail?index=NAME&row=N (or &label=PATH, which must be a row's label exactly)&size=S. The
 * file opened is always a row's label: nothing from the request is used as a path. */
void api_thumbnail(server *s, request *r, reply *out)
{
    const served_index *x = pick_index(s, query_arg(r, "index"), out);
    if (!x)
        return;
    long size, row = -1;
    if (!int_option(NULL, query_arg(r, "size"), "size", 16, 512, DEFAULT_THUMB, &size, out))
        return;
    const char *label = query_arg(r, "label");
    if (label && query_arg(r, "row")) {
        BAD_REQUEST(out, "give \"row\" or \"label\", not both");
        return;
    }
    if (label) {
        size_t found;
        if (jaclip_index_find_label(&found, x->index, label)) {
            reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "no row of '%s' has that label", x->name);
            return;
        }
        row = (long)found;
    } else if (!int_option(NULL, query_arg(r, "row"), "row", 0, (long)jaclip_index_size(x->index) - 1, -1, &row, out)) {
        return;
    } else if (row < 0) {
        BAD_REQUEST(out, "give \"row\" (or \"label\")");
        return;
    }
    size_t which = (size_t)(x - s->indexes);
    size_t slot = (which * 1000003u + (size_t)row * 31u + (size_t)size) % THUMB_SLOTS;
    out->content_type = "image/jpeg";
    out->cache_control = "private, max-age=3600";
    pthread_mutex_lock(&s->thumb_lock);
    thumb_slot *t = &s->thumbs[slot];
    if (t->jpeg && t->index == which && t->row == (size_t)row && t->size == (unsigned)size &&
        (out->body = malloc(t->len))) {
        memcpy(out->body, t->jpeg, t->len);
        out->len = t->len;
    }
    pthread_mutex_unlock(&s->thumb_lock);
    if (out->body) {
        atomic_fetch_add(&s->thumb_hits, 1);
        out->http = MHD_HTTP_OK;
        return;
    }
    atomic_fetch_add(&s->thumb_misses, 1);
    if (!take_slot(s)) {
        BUSY(out);
        return;
    }
    size_t len;
    unsigned char *jpeg = make_thumbnail(jaclip_index_label(x->index, (size_t)row), (unsigned)size, &len, out);
    give_slot(s);
    if (!jpeg)
        return;
    unsigned char *copy = malloc(len);
    if (copy) {
        memcpy(copy, jpeg, len);
        pthread_mutex_lock(&s->thumb_lock);
        free(t->jpeg);
        *t = (thumb_slot){which, (size_t)row, (unsigned)size, copy, len};
        pthread_mutex_unlock(&s->thumb_lock);
    }
    out->http = MHD_HTTP_OK;
    out->body = (char *)jpeg;
    out->len = len;
    out->content_type = "image/jpeg";
    out->cache_control = "private, max-age=3600";
}
