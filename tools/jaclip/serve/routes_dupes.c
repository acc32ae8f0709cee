/* GET /v1/duplicates: the duplicate groups of a loaded index (jaclip_index_duplicates), one page. */
#include "routes_internal.h"

enum { MAX_DUP_LIMIT = 1000, DEFAULT_DUP_LIMIT = 50 };

/* GET /v1/duplicates?index=NAME&threshold=T&exact_only=1&offset=N&limit=N. The whole index is grouped
 * once per loaded view and setting (engine_dupes) while the request holds that view, so a reload never
 * changes the rows under it and later pages cost a copy. */
void route_dupes(routes *rt, const route_request *r, reply *out)
{
    double threshold;
    long offset, limit, exact_only;
    if (!number_option(NULL, query_arg(r, "threshold"), "threshold", 0.95, &threshold, out) ||
        !int_option(NULL, query_arg(r, "offset"), "offset", 0, LONG_MAX, 0, &offset, out) ||
        !int_option(NULL, query_arg(r, "limit"), "limit", 1, MAX_DUP_LIMIT, DEFAULT_DUP_LIMIT, &limit, out) ||
        !int_option(NULL, query_arg(r, "exact_only"), "exact_only", 0, 1, 0, &exact_only, out))
        return;
    if (!(threshold >= 0.5 && threshold <= 1)) {
        BAD_REQUEST(out, "'threshold' must be a cosine from 0.5 to 1");
        return;
    }
    engine_index *x = pick_index(rt, query_arg(r, "index"), out);
    if (!x)
        return;
    const jaclip_index *index = engine_index_handle(x);
    jaclip_dupes *owned = NULL;
    engine_result why = {0};
    const jaclip_dupes *d = engine_dupes(x, (float)threshold, exact_only != 0, &owned, &why);
    if (!d) {
        reply_failure(out, &why);
        engine_index_put(rt->engine, x);
        return;
    }
    size_t total = jaclip_dupes_count(d), end = (size_t)offset + (size_t)limit;
    json_t *groups = json_array();
    for (size_t g = (size_t)offset; groups && g < total && g < end; g++) {
        json_t *rows = json_array();
        for (size_t j = 0; rows && j < jaclip_dupes_group_size(d, g); j++) {
            size_t row = 0;
            float score = 0;
            jaclip_dupes_member(&row, &score, d, g, j);
            json_t *l = json_string(jaclip_index_label(index, row));
            json_array_append_new(rows, json_pack("{s:o*,s:f,s:I}", "label", l ? l : json_string("\xef\xbf\xbd"),
                                                  "score", (double)score, "row", (json_int_t)row));
        }
        json_array_append_new(groups, json_pack("{s:b,s:o*}", "exact", jaclip_dupes_group_exact(d, g), "rows", rows));
    }
    reply_json(out, HTTP_OK,
               json_pack("{s:s,s:I,s:I,s:I,s:f,s:b,s:o*}", "index", engine_index_name(x), "total", (json_int_t)total,
                         "offset", (json_int_t)offset, "limit", (json_int_t)limit, "threshold", threshold,
                         "exact_only", (int)exact_only, "groups", groups));
    jaclip_dupes_free(owned);
    engine_index_put(rt->engine, x);
}
