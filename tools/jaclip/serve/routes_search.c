/* POST /v1/search. */
#include "routes_internal.h"

/* The parameters of a search: from a JSON body (*root keeps it) or the form / query string. false
 * when a reply was made. */
static bool search_params(const route_request *r, bool by_json, json_t **root, const char **index_name, long *k,
                          double *threshold, bool *exact, reply *out)
{
    static const char *const allowed[] = {"text",   "embedding", "row",   "k",      "threshold", "index", "exact",
                                          "offset", "folder",    "after", "before", "types",     NULL};
    if (!by_json) {
        *index_name = arg(r, "index");
        const char *e = arg(r, "exact");
        if (e && strcmp(e, "true") && strcmp(e, "false") && strcmp(e, "1") && strcmp(e, "0")) {
            BAD_REQUEST(out, "\"exact\" must be true, false, 1 or 0");
            return false;
        }
        *exact = e && (!strcmp(e, "true") || !strcmp(e, "1"));
        return int_option(NULL, arg(r, "k"), "k", 1, MAX_K, DEFAULT_K, k, out) &&
               number_option(NULL, arg(r, "threshold"), "threshold", -INFINITY, threshold, out);
    }
    if (!(*root = json_body(r, allowed, out)))
        return false;
    json_t *name = json_object_get(*root, "index"), *ex = json_object_get(*root, "exact");
    if (name && !json_is_string(name)) {
        BAD_REQUEST(out, "\"index\" must be a string");
        return false;
    }
    if (ex && !json_is_boolean(ex)) {
        BAD_REQUEST(out, "\"exact\" must be true or false");
        return false;
    }
    *exact = ex && json_is_true(ex);
    *index_name = json_string_value(name);
    return int_option(json_object_get(*root, "k"), NULL, "k", 1, MAX_K, DEFAULT_K, k, out) &&
           number_option(json_object_get(*root, "threshold"), NULL, "threshold", -INFINITY, threshold, out);
}

/* The query vector of a JSON body's "embedding". false when a reply was made. */
static bool embedding_query(size_t dim, json_t *emb, jaclip_tensor **query, reply *out)
{
    if (!json_is_array(emb) || json_array_size(emb) != dim) {
        BAD_REQUEST(out, "\"embedding\" must be an array of %zu numbers", dim);
        return false;
    }
    int64_t shape[2] = {1, (int64_t)dim};
    jaclip_status st = jaclip_tensor_create(query, JACLIP_DTYPE_FLOAT32, 2, shape, NULL);
    if (st) {
        reply_library_error(out, st, jaclip_last_error());
        return false;
    }
    float *q = jaclip_tensor_data_mut(*query);
    for (size_t i = 0; i < dim; i++) {
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
 * reply was made. */
static bool json_query(routes *rt, json_t *root, const engine_index *x, jaclip_tensor **query, reply *out)
{
    json_t *text = json_object_get(root, "text"), *emb = json_object_get(root, "embedding"),
           *row = json_object_get(root, "row");
    if (!!text + !!emb + !!row != 1) {
        BAD_REQUEST(out, "give exactly one of \"text\", \"embedding\" or \"row\"");
        return false;
    }
    if (emb)
        return embedding_query(engine_dim(rt->engine), emb, query, out);
    if (row) {
        const jaclip_index *index = engine_index_handle(x);
        json_int_t i = json_is_integer(row) ? json_integer_value(row) : -1;
        if (i < 0 || (size_t)i >= jaclip_index_size(index)) {
            BAD_REQUEST(out, "\"row\" must be an integer from 0 to %zu", jaclip_index_size(index) - 1);
            return false;
        }
        jaclip_status st = jaclip_index_embeddings(query, index, (size_t)i, 1);
        if (st)
            reply_library_error(out, st, jaclip_last_error());
        return !st;
    }
    if (!json_is_string(text)) {
        BAD_REQUEST(out, "\"text\" must be a string");
        return false;
    }
    engine_result why;
    const char *t = json_string_value(text);
    size_t len = json_string_length(text);
    if (!engine_encode_texts(rt->engine, &t, &len, 1, query, &why)) {
        reply_failure(out, &why);
        return false;
    }
    return true;
}

/* The query of a form: its one image encoded. false when a reply was made. */
static bool image_query(routes *rt, const route_request *r, jaclip_tensor **query, reply *out)
{
    const void *data[1];
    size_t size[1];
    if (!request_images(r, data, size, 1, out))
        return false;
    engine_result why;
    if (!engine_encode_images(rt->engine, data, size, 1, query, &why)) {
        reply_failure(out, &why);
        return false;
    }
    return true;
}

/* {"results": [{label, score, row}...], "search": "ann"|"exact"}, the hits at or above threshold (a row
 * the ANN missed, -1, ends the list). */
static void reply_hits(reply *out, const engine_index *x, const jaclip_tensor *rows, const jaclip_tensor *scores,
                       double threshold, bool used_ann)
{
    size_t n = (size_t)jaclip_tensor_dim(rows, 1);
    const int64_t *row = jaclip_tensor_data(rows);
    const float *score = jaclip_tensor_data(scores);
    json_t *list = json_array();
    for (size_t i = 0; list && i < n && row[i] >= 0 && score[i] >= threshold; i++) {
        const char *label = jaclip_index_label(engine_index_handle(x), (size_t)row[i]);
        /* Labels need not be UTF-8-clean for jansson; the index checks them on add, but be safe. */
        json_t *l = json_string(label);
        json_array_append_new(list, json_pack("{s:o*,s:f,s:I}", "label", l ? l : json_string("\xef\xbf\xbd"), "score",
                                              (double)score[i], "row", (json_int_t)row[i]));
    }
    reply_json(out, HTTP_OK, json_pack("{s:o*,s:s}", "results", list, "search", used_ann ? "ann" : "exact"));
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS]" (the server's local time) in ns since the epoch. */
static bool parse_date(const char *text, int64_t *ns)
{
    struct tm tm = {0};
    const char *end = text ? strptime(text, "%Y-%m-%d", &tm) : NULL;
    if (end && *end == 'T') {
        const char *more = strptime(end + 1, "%H:%M:%S", &tm);
        end = more ? more : strptime(end + 1, "%H:%M", &tm);
    }
    if (!end || *end)
        return false;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    *ns = (int64_t)t * 1000000000;
    return t != (time_t)-1;
}

/* A string field of the JSON body (root) or the form / query (r); false with a reply when not a string. */
static bool text_field(const route_request *r, json_t *root, const char *name, const char **v, reply *out)
{
    if (!root) {
        *v = arg(r, name);
        return true;
    }
    json_t *j = json_object_get(root, name);
    if (j && !json_is_string(j)) {
        BAD_REQUEST(out, "\"%s\" must be a string", name);
        return false;
    }
    *v = json_string_value(j);
    return true;
}

/* The library's search options for offset, folder, after, before and types (with threshold); *o stays
 * NULL when none is given. false when a reply was made. */
static bool filter_options(const route_request *r, json_t *root, double threshold, jaclip_search_options **o,
                           reply *out)
{
    long offset;
    const char *folder, *after, *before, *types_text = NULL;
    json_t *types = root ? json_object_get(root, "types") : NULL;
    if (!int_option(root ? json_object_get(root, "offset") : NULL, root ? NULL : arg(r, "offset"), "offset", 0,
                    1000000000, 0, &offset, out) ||
        !text_field(r, root, "folder", &folder, out) || !text_field(r, root, "after", &after, out) ||
        !text_field(r, root, "before", &before, out))
        return false;
    if (!root)
        types_text = arg(r, "types");
    else if (types && (!json_is_array(types) || json_array_size(types) > 32)) {
        BAD_REQUEST(out, "\"types\" must be an array of at most 32 file extensions");
        return false;
    }
    *o = NULL;
    if (!offset && !folder && !after && !before && !types_text && !types)
        return true;
    int64_t from = INT64_MIN, to = INT64_MAX;
    if ((after && !parse_date(after, &from)) || (before && !parse_date(before, &to))) {
        BAD_REQUEST(out, "\"after\" and \"before\" are dates: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (server local time)");
        return false;
    }
    jaclip_status st = jaclip_search_options_create(o);
    if (!st && folder)
        st = jaclip_search_options_set_folder(*o, folder);
    if (!st && (after || before))
        st = jaclip_search_options_set_time_range(*o, from, to);
    for (size_t i = 0; !st && types && i < json_array_size(types); i++) {
        const char *t = json_string_value(json_array_get(types, i));
        st = t ? jaclip_search_options_add_file_type(*o, t) : JACLIP_ERROR_INVALID_ARGUMENT;
    }
    if (!st && types_text) { /* "jpg,png" */
        char *list = strdup(types_text), *save = NULL;
        st = list ? JACLIP_OK : JACLIP_ERROR_OUT_OF_MEMORY;
        for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && !st; t = strtok_r(NULL, ",", &save))
            st = jaclip_search_options_add_file_type(*o, t);
        free(list);
    }
    if (!st)
        st = jaclip_search_options_set_offset(*o, (size_t)offset);
    if (!st && threshold > -INFINITY)
        st = jaclip_search_options_set_threshold(*o, (float)threshold);
    if (st) {
        reply_library_error(out, st, jaclip_last_error());
        jaclip_search_options_free(*o);
        *o = NULL;
        return false;
    }
    return true;
}

void route_search(routes *rt, const route_request *r, reply *out)
{
    json_t *root = NULL;
    const char *index_name = NULL;
    long k;
    double threshold;
    bool exact = false, used_ann = false;
    bool by_json = !r->is_form && content_type_is(r, "application/json");
    jaclip_tensor *query = NULL, *rows = NULL, *scores = NULL;
    engine_index *x = NULL;
    jaclip_search_options *filter = NULL;
    if (!search_params(r, by_json, &root, &index_name, &k, &threshold, &exact, out) ||
        !filter_options(r, root, threshold, &filter, out))
        goto done;
    if (!(x = pick_index(rt, index_name, out)))
        goto done;
    if (!(by_json ? json_query(rt, root, x, &query, out) : image_query(rt, r, &query, out)))
        goto done;
    engine_result why;
    /* Filters and pages are the library's exact filter-then-rank (the ANN is skipped, as jaclip search does). */
    if (filter ? !engine_search_with(rt->engine, x, query, (size_t)k, filter, &rows, &scores, &why)
               : !engine_search(rt->engine, x, query, (size_t)k, exact, &used_ann, &rows, &scores, &why))
        reply_failure(out, &why);
    else
        reply_hits(out, x, rows, scores, threshold, used_ann);
done:
    jaclip_search_options_free(filter);
    engine_index_put(rt->engine, x);
    jaclip_tensor_free(query);
    jaclip_tensor_free(rows);
    jaclip_tensor_free(scores);
    json_decref(root);
}
