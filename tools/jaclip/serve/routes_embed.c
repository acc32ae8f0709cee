/* POST /v1/embed/text, /v1/embed/image and /v1/classify. */
#include "routes_internal.h"

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

/* {"embeddings": ...} of emb, or the engine's refusal; frees emb. */
static void reply_embeddings(reply *out, bool ok, jaclip_tensor *emb, const engine_result *why)
{
    if (!ok)
        reply_failure(out, why);
    else
        reply_json(out, HTTP_OK, embeddings_json(emb));
    jaclip_tensor_free(emb);
}

void route_embed_text(routes *rt, const route_request *r, reply *out)
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
    engine_result why;
    jaclip_tensor *emb;
    bool ok = engine_encode_texts(rt->engine, ptrs, lengths, n, &emb, &why);
    reply_embeddings(out, ok, emb, &why);
done:
    free(ptrs);
    free(lengths);
    json_decref(root);
}

void route_embed_image(routes *rt, const route_request *r, reply *out)
{
    const void *data[MAX_IMAGES];
    size_t sizes[MAX_IMAGES];
    size_t n = request_images(r, data, sizes, MAX_IMAGES, out);
    if (!n)
        return;
    engine_result why;
    jaclip_tensor *emb;
    bool ok = engine_encode_images(rt->engine, data, sizes, n, &emb, &why);
    reply_embeddings(out, ok, emb, &why);
}

typedef struct {
    const char *name;
    const char **items;
    size_t count;
} value_list;

/* Every value of a repeated form field or query argument. */
static void collect(const route_request *r, value_list *l)
{
    if (r->is_form) {
        const route_field *f;
        for (size_t i = 0; (f = form_get(r, l->name, i)) && l->count < MAX_LABELS + 1; i++)
            l->items[l->count++] = f->data ? f->data : "";
    } else {
        for (size_t i = 0; i < r->nargs && l->count < MAX_LABELS + 1; i++)
            if (!strcmp(r->args[i].key, l->name) && r->args[i].value)
                l->items[l->count++] = r->args[i].value;
    }
}

void route_classify(routes *rt, const route_request *r, reply *out)
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
    const jaclip_classifier *loaded = labels.count == 0 && templates.count == 0 ? engine_classifier(rt->engine) : NULL;
    if (!loaded && (labels.count == 0 || labels.count > MAX_LABELS)) {
        BAD_REQUEST(out, "give 1 to %d 'label' values (repeat the field or the query argument)%s", MAX_LABELS,
                    engine_classifier(rt->engine) ? ", or none (and no template) for the server's classifier" : "");
        return;
    }
    if (templates.count > MAX_TEMPLATES) {
        BAD_REQUEST(out, "at most %d templates", MAX_TEMPLATES);
        return;
    }
    size_t texts = (labels.count ? labels.count : 1) * (templates.count ? templates.count : 1);
    if (!loaded && texts > MAX_CLASSIFY_TEXTS) {
        reply_error(out, HTTP_CONTENT_TOO_LARGE, "SERVE_TOO_MUCH_WORK",
                    "%zu labels x %zu templates is %zu texts to encode: at most %d per request (start the server "
                    "with --classifier for larger sets)",
                    labels.count, templates.count ? templates.count : 1, texts, MAX_CLASSIFY_TEXTS);
        return;
    }
    for (size_t i = 0; i < labels.count + templates.count; i++) {
        const char *t = i < labels.count ? labels.items[i] : templates.items[i - labels.count];
        if (strlen(t) > MAX_CLASSIFY_BYTES) {
            BAD_REQUEST(out, "%s %zu is over %d bytes (the model reads 77 tokens)",
                        i < labels.count ? "label" : "template", i < labels.count ? i : i - labels.count,
                        MAX_CLASSIFY_BYTES);
            return;
        }
    }
    for (size_t i = 0; i < labels.count; i++)
        if (!*labels.items[i] || !is_utf8(labels.items[i])) {
            reply_error(out, HTTP_BAD_REQUEST,
                        !*labels.items[i] ? "JACLIP_ERROR_INVALID_ARGUMENT" : "JACLIP_ERROR_INVALID_UTF8",
                        "label %zu is empty or not UTF-8", i);
            return;
        }
    for (size_t i = 0; i < templates.count; i++)
        if (!strstr(templates.items[i], "{}") || !is_utf8(templates.items[i])) {
            BAD_REQUEST(out, "template %zu must be UTF-8 and contain {} where the label goes", i);
            return;
        }
    classify_request q = {.labels = labels.items,
                          .nlabels = labels.count,
                          .templates = templates.items,
                          .ntemplates = templates.count,
                          .image = data[0],
                          .image_size = size[0]};
    double default_scale =
        loaded ? jaclip_classifier_default_scale(loaded) : jaclip_model_default_scale(engine_model(rt->engine));
    if (!number_option(NULL, arg(r, "scale"), "scale", default_scale, &q.scale, out))
        return;
    engine_result why;
    jaclip_tensor *probs, *order;
    if (!engine_classify(rt->engine, &q, &probs, &order, &why)) {
        reply_failure(out, &why);
        return;
    }
    size_t nclasses = (size_t)jaclip_tensor_dim(probs, 1);
    const float *p = jaclip_tensor_data(probs);
    const int64_t *rank = jaclip_tensor_data(order);
    json_t *list = json_array();
    for (size_t i = 0; list && i < nclasses; i++) {
        size_t c = (size_t)rank[i];
        const char *name = loaded ? jaclip_classifier_label(loaded, c) : labels.items[c];
        json_array_append_new(list, json_pack("{s:s,s:f}", "label", name, "probability", (double)p[c]));
    }
    reply_json(out, HTTP_OK, json_pack("{s:o*}", "labels", list));
    jaclip_tensor_free(probs);
    jaclip_tensor_free(order);
}
