/* The routes' shared parsing and replies, and the endpoints that describe the server. */
#include "routes_internal.h"

#include <stdarg.h>

/* ---- what a JSON body may cost ----
 * jaclip serve's JSON bodies are small objects (at most MAX_TEXTS strings, or one embedding), but jansson
 * builds a tree of ~100 bytes per element, so a body of "[{},{},...]" costs ~75x its size. Before
 * parsing, a scan refuses bodies with more elements or nesting than any endpoint takes; while parsing,
 * jansson's allocator (process-global, so the budget is per thread) refuses to go past the
 * request's budget. */
static _Thread_local struct {
    bool armed;
    size_t left;
} budget;

typedef union {
    size_t size;
    max_align_t align;
} alloc_header;

static void *budget_malloc(size_t size)
{
    if (size > SIZE_MAX - sizeof(alloc_header))
        return NULL;
    size_t total = size + sizeof(alloc_header);
    if (budget.armed) {
        if (total > budget.left)
            return NULL;
        budget.left -= total;
    }
    alloc_header *h = malloc(total);
    if (!h)
        return NULL;
    h->size = total;
    return h + 1;
}

static void budget_free(void *p)
{
    if (!p)
        return;
    alloc_header *h = (alloc_header *)p - 1;
    if (budget.armed)
        budget.left += h->size;
    free(h);
}

void routes_init(void) { json_set_alloc_funcs(budget_malloc, budget_free); }

/* Elements (values) and the deepest nesting of a JSON text, counted without parsing it; stops counting
 * at the limits. Strings are skipped with their escapes. */
static bool json_within(const char *p, size_t n, size_t max_elements, size_t max_depth, size_t *elements, size_t *depth)
{
    size_t count = 1, level = 0, deepest = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++level > deepest)
                deepest = level;
        } else if (c == ']' || c == '}') {
            level -= level > 0;
        } else if (c == ',' || c == ':') {
            count++;
        }
        if (count > max_elements || deepest > max_depth)
            break;
    }
    *elements = count, *depth = deepest;
    return count <= max_elements && deepest <= max_depth;
}

/* ---- replies ---- */

void reply_json(reply *out, unsigned http, json_t *value)
{
    /* Into a buffer of plain malloc (the HTTP layer frees it with free): json_dumps would use jansson's
     * allocator, which is budget_malloc here. */
    const size_t flags = JSON_COMPACT | JSON_REAL_PRECISION(9);
    size_t size = value ? json_dumpb(value, NULL, 0, flags) : 0;
    char *text = size ? malloc(size + 1) : NULL;
    if (text && json_dumpb(value, text, size, flags) == size)
        text[size] = '\0';
    else
        free(text), text = NULL;
    json_decref(value);
    if (!text) {
        out->http = HTTP_INTERNAL_ERROR;
        out->body = xstrdup("{\"error\":{\"status\":\"JACLIP_ERROR_OUT_OF_MEMORY\",\"message\":\"out of memory\"}}");
    } else {
        out->http = http;
        out->body = text;
    }
    out->len = strlen(out->body);
    out->content_type = "application/json";
    out->cache_control = "no-store";
}

void reply_error(reply *out, unsigned http, const char *status_name, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* A message may quote request bytes: keep it valid UTF-8 for the JSON string. */
    for (unsigned char *p = (unsigned char *)message; *p;) {
        size_t n = utf8_char_len(p);
        if (!n || strnlen((char *)p, n) < n)
            *p++ = '?';
        else
            p += n;
    }
    reply_json(out, http, json_pack("{s:{s:s,s:s}}", "error", "status", status_name, "message", message));
}

/* The library's status name ("JACLIP_ERROR_IO") and the HTTP status that fits it. */
void reply_library_error(reply *out, jaclip_status st, const char *msg)
{
    char name[64];
    const char *full = jaclip_status_string(st);
    size_t n = strcspn(full, ":");
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), full);
    unsigned http;
    switch (st) {
    case JACLIP_ERROR_INVALID_ARGUMENT:
    case JACLIP_ERROR_SHAPE:
    case JACLIP_ERROR_INVALID_UTF8:
    case JACLIP_ERROR_IMAGE_DECODE: http = HTTP_BAD_REQUEST; break;
    case JACLIP_ERROR_IMAGE_TOO_LARGE: http = HTTP_CONTENT_TOO_LARGE; break;
    case JACLIP_ERROR_NOT_FOUND: http = HTTP_NOT_FOUND; break;
    case JACLIP_ERROR_OUT_OF_MEMORY: http = HTTP_UNAVAILABLE; break;
    default: http = HTTP_INTERNAL_ERROR;
    }
    reply_error(out, http, name, "%s", msg[0] ? msg : full + (full[n] ? n + 2 : n));
}

void reply_failure(reply *out, const engine_result *why)
{
    switch (why->code) {
    case ENGINE_LIBRARY: reply_library_error(out, why->st, why->message); return;
    case ENGINE_BUSY:
    case ENGINE_STOPPING: reply_error(out, HTTP_UNAVAILABLE, "SERVE_BUSY", "%s", why->message); return;
    case ENGINE_NOT_FOUND: reply_error(out, HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "%s", why->message); return;
    case ENGINE_TOO_MUCH: reply_error(out, HTTP_CONTENT_TOO_LARGE, "SERVE_TOO_MUCH_WORK", "%s", why->message); return;
    case ENGINE_INVALID:
    default: BAD_REQUEST(out, "%s", why->message); return;
    }
}

/* ---- request parsing ---- */

bool content_type_is(const route_request *r, const char *type)
{
    size_t n = strlen(type);
    return r->content_type && !strncasecmp(r->content_type, type, n) &&
           (r->content_type[n] == '\0' || r->content_type[n] == ';' || r->content_type[n] == ' ');
}

/* The JSON object of the body, with only the fields in allowed[]; NULL with *out set otherwise. */
json_t *json_body(const route_request *r, const char *const *allowed, reply *out)
{
    if (!content_type_is(r, "application/json")) {
        reply_error(out, HTTP_UNSUPPORTED_MEDIA_TYPE, "JACLIP_ERROR_INVALID_ARGUMENT",
                    "send Content-Type: application/json");
        return NULL;
    }
    if (!r->body || !r->len) {
        BAD_REQUEST(out, "empty body: expected a JSON object");
        return NULL;
    }
    json_t *root = json_parse_limited(r->body, r->len, HTTP_BAD_REQUEST, out);
    if (!root)
        return NULL;
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

/* A JSON text under the body limits (size, values, nesting, parse budget); malformed is bad_http. */
json_t *json_parse_limited(const char *text, size_t len, unsigned bad_http, reply *out)
{
    const char *bad_name = "JACLIP_ERROR_INVALID_ARGUMENT";
    size_t elements, depth;
    if (len > ROUTES_JSON_MAX_BODY) {
        reply_error(out, HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "a JSON text is at most %d bytes",
                    ROUTES_JSON_MAX_BODY);
        return NULL;
    }
    if (!json_within(text, len, JSON_MAX_ELEMENTS, JSON_MAX_DEPTH, &elements, &depth)) {
        if (depth > JSON_MAX_DEPTH)
            reply_error(out, bad_http, bad_name, "the JSON is nested over %d deep", JSON_MAX_DEPTH);
        else
            reply_error(out, HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "the JSON has over %d values",
                        JSON_MAX_ELEMENTS);
        return NULL;
    }
    json_error_t err;
    budget.armed = true;
    budget.left = JSON_MAX_TREE;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    budget.armed = false; /* the tree is freed later, unarmed: the budget is set afresh per parse */
    if (!root) {
        if (json_error_code(&err) == json_error_out_of_memory)
            reply_error(out, HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "the JSON needs over %d bytes to parse",
                        JSON_MAX_TREE);
        else if (json_error_code(&err) == json_error_invalid_utf8)
            reply_error(out, bad_http, "JACLIP_ERROR_INVALID_UTF8", "invalid UTF-8 in the JSON at byte %d",
                        err.position);
        else
            reply_error(out, bad_http, bad_name, "malformed JSON at byte %d: %s", err.position, err.text);
        return NULL;
    }
    return root;
}

/* An integer option from JSON (value), a form field or a query argument (text); def if absent. */
bool int_option(json_t *value, const char *text, const char *name, long min, long max, long def, long *v, reply *out)
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

bool number_option(json_t *value, const char *text, const char *name, double def, double *v, reply *out)
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

const char *query_arg(const route_request *r, const char *name)
{
    for (size_t i = 0; i < r->nargs; i++)
        if (!strcmp(r->args[i].key, name))
            return r->args[i].value;
    return NULL;
}

/* The nth field called name (0-based), or NULL. */
const route_field *form_get(const route_request *r, const char *name, size_t nth)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (!strcmp(r->fields[i].name, name) && nth-- == 0)
            return &r->fields[i];
    return NULL;
}

const char *arg(const route_request *r, const char *name)
{
    const route_field *f = form_get(r, name, 0);
    return f ? f->data : query_arg(r, name);
}

/* A form's images: with max 1, the part named "image" (or the form's only file part); otherwise every
 * part named "image" or carrying a file name, in order. More than max is refused, never cut. */
static size_t form_images(const route_request *r, const void **data, size_t *sizes, size_t max, reply *out)
{
    size_t n = 0, named = 0, files = 0;
    for (size_t i = 0; i < r->nfields; i++) {
        named += !strcmp(r->fields[i].name, "image");
        files += r->fields[i].filename || !strcmp(r->fields[i].name, "image");
    }
    if (max == 1 && (named > 1 || (!named && files > 1))) {
        BAD_REQUEST(out, "send one image, in the part named 'image' (the form has %zu file parts)", files);
        return 0;
    }
    if (!(max == 1 && named) && files > max) {
        BAD_REQUEST(out, "at most %zu images per request (the form has %zu)", max, files);
        return 0;
    }
    for (size_t i = 0; i < r->nfields; i++) {
        const route_field *f = &r->fields[i];
        bool image = !strcmp(f->name, "image");
        if (max == 1 && named ? image : image || f->filename) {
            data[n] = f->data ? f->data : "";
            sizes[n++] = f->len;
        }
    }
    if (!n)
        BAD_REQUEST(out, "the form has no image file part (e.g. curl -F image=@photo.jpg)");
    return n;
}

size_t request_images(const route_request *r, const void **data, size_t *sizes, size_t max, reply *out)
{
    if (r->is_form)
        return form_images(r, data, sizes, max, out);
    if (content_type_is(r, "application/json") || content_type_is(r, "text/plain")) {
        reply_error(out, HTTP_UNSUPPORTED_MEDIA_TYPE, "JACLIP_ERROR_INVALID_ARGUMENT",
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

engine_index *pick_index(routes *rt, const char *name, reply *out)
{
    engine_result why;
    engine_index *x = engine_index_get(rt->engine, name, &why);
    if (!x)
        reply_failure(out, &why);
    return x;
}

/* ---- info ---- */

static json_t *index_json(const engine_index *x)
{
    const jaclip_index *index = engine_index_handle(x);
    return json_pack("{s:s,s:I,s:I,s:s?}", "name", engine_index_name(x), "rows", (json_int_t)jaclip_index_size(index),
                     "dim", (json_int_t)jaclip_index_dim(index), "ann",
                     engine_index_has_ann(x) ? engine_index_ann_kind(x) : NULL);
}

static json_t *indexes_json(routes *rt)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < engine_index_count(rt->engine); i++) {
        engine_index *x = engine_index_get_at(rt->engine, i);
        if (x)
            json_array_append_new(list, index_json(x));
        engine_index_put(rt->engine, x);
    }
    return list;
}

void route_info(routes *rt, const route_request *r, reply *out)
{
    const jaclip_model *m = engine_model(rt->engine);
    reply_json(out, HTTP_OK,
               json_pack("{s:s,s:{s:I,s:I,s:I,s:s,s:s,s:s,s:s},s:o*,s:{s:I,s:I,s:I,s:I,s:I},s:b}", "version",
                         jaclip_version_string(), "model", "dim", (json_int_t)jaclip_model_embedding_dim(m),
                         "image_size", (json_int_t)jaclip_model_image_size(m), "max_text_length",
                         (json_int_t)jaclip_model_max_text_length(m), "device", jaclip_model_device(m), "precision",
                         precision_word(jaclip_model_precision(m)) /* as `jaclip info` names it */, "precision_reason",
                         jaclip_model_precision_reason(m), "fingerprint", jaclip_model_fingerprint(m), "indexes",
                         indexes_json(rt), "limits", "max_body", (json_int_t)rt->max_body, "max_texts",
                         (json_int_t)MAX_TEXTS, "max_labels", (json_int_t)MAX_LABELS, "max_k", (json_int_t)MAX_K,
                         "max_requests", (json_int_t)rt->max_requests, "token_required", rt->token_required));
}

void route_indexes(routes *rt, const route_request *r, const char *name, reply *out)
{
    if (name) {
        engine_index *x = pick_index(rt, name, out);
        if (x)
            reply_json(out, HTTP_OK, index_json(x));
        engine_index_put(rt->engine, x);
        return;
    }
    reply_json(out, HTTP_OK, json_pack("{s:o*}", "indexes", indexes_json(rt)));
}

/* ---- admin ---- */

static void reload_one(void *ctx, const engine_index *x, bool reloaded, const char *why)
{
    json_t *entry = index_json(x);
    json_object_set_new(entry, "reloaded", json_boolean(reloaded));
    if (!reloaded)
        json_object_set_new(entry, "error", json_string(why));
    json_array_append_new(ctx, entry);
}

void route_admin_reload(routes *rt, const route_request *r, reply *out)
{
    json_t *list = json_array();
    size_t failed = engine_reload_all(rt->engine, reload_one, list);
    reply_json(out, HTTP_OK, json_pack("{s:o,s:I}", "indexes", list, "failed", (json_int_t)failed));
}

void route_metrics(routes *rt, FILE *f) { engine_metrics(rt->engine, f); }
