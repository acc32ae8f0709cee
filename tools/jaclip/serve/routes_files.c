/* The files of index rows: GET /v1/thumbnail and GET /v1/original. The file opened is always a row's
 * label: nothing from the request is used as a path. */
#include "routes_internal.h"

/* The row a request names: &row=N, or &label=PATH (a row's label exactly). false when a reply was made. */
static bool requested_row(const route_request *r, const engine_index *x, size_t *row, reply *out)
{
    const jaclip_index *index = engine_index_handle(x);
    const char *label = query_arg(r, "label");
    long n = -1;
    if (label && query_arg(r, "row")) {
        BAD_REQUEST(out, "give \"row\" or \"label\", not both");
        return false;
    }
    if (label) {
        if (jaclip_index_find_label(row, index, label)) {
            reply_error(out, HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "no row of '%s' has that label",
                        engine_index_name(x));
            return false;
        }
        return true;
    }
    if (!int_option(NULL, query_arg(r, "row"), "row", 0, (long)jaclip_index_size(index) - 1, -1, &n, out))
        return false;
    if (n < 0) {
        BAD_REQUEST(out, "give \"row\" (or \"label\")");
        return false;
    }
    *row = (size_t)n;
    return true;
}

/* GET /v1/thumbnail?index=NAME&row=N (or &label=PATH)&size=S: a JPEG, S x S. */
void route_thumbnail(routes *rt, const route_request *r, reply *out)
{
    engine_index *x = pick_index(rt, query_arg(r, "index"), out);
    if (!x)
        return;
    long size;
    size_t row;
    engine_result why;
    unsigned char *jpeg;
    size_t len;
    if (!int_option(NULL, query_arg(r, "size"), "size", 16, 512, DEFAULT_THUMB, &size, out) ||
        !requested_row(r, x, &row, out))
        goto done;
    if (!engine_thumbnail(rt->engine, x, row, (unsigned)size, &jpeg, &len, &why)) {
        reply_failure(out, &why);
        goto done;
    }
    out->http = HTTP_OK;
    out->body = (char *)jpeg;
    out->len = len;
    out->content_type = "image/jpeg";
    out->cache_control = "private, max-age=3600";
done:
    engine_index_put(rt->engine, x);
}

/* "inline; filename*=UTF-8''NAME" for label's last part, percent-encoded as RFC 5987 asks, so that a
 * browser saves the original under its own name; nothing when it would not fit. */
static void set_disposition(reply *out, const char *label)
{
    static const char keep[] = "!#$&+-.^_`|~";
    const char *slash = strrchr(label, '/'), *name = slash ? slash + 1 : label;
    size_t n = (size_t)snprintf(out->disposition, sizeof out->disposition, "inline; filename*=UTF-8''");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (n + 4 > sizeof out->disposition) {
            out->disposition[0] = '\0';
            return;
        }
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     (*p && strchr(keep, *p));
        n += (size_t)(plain ? snprintf(out->disposition + n, 2, "%c", *p)
                            : snprintf(out->disposition + n, 4, "%%%02X", *p));
    }
}

/* GET /v1/original?index=NAME&row=N (or &label=PATH): the row's file as it is, streamed from the file
 * opened under the thumbnails' rules, typed by its first bytes, named by its label's last part. */
void route_original(routes *rt, const route_request *r, reply *out)
{
    engine_index *x = pick_index(rt, query_arg(r, "index"), out);
    if (!x)
        return;
    size_t row, size;
    int fd;
    const char *type;
    engine_result why;
    if (!requested_row(r, x, &row, out))
        goto done;
    if (!engine_original(rt->engine, x, row, &fd, &size, &type, &why)) {
        reply_failure(out, &why);
        goto done;
    }
    out->http = HTTP_OK;
    out->has_file = true;
    out->file = fd;
    out->len = size;
    out->content_type = type;
    set_disposition(out, jaclip_index_label(engine_index_handle(x), row));
    /* A row may name another file after a reload: the browser asks again rather than keep it. */
    out->cache_control = "private, no-cache";
done:
    engine_index_put(rt->engine, x);
}
