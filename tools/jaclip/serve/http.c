/* The HTTP layer: libmicrohttpd callbacks, request reading under the limits, admission checks,
 * dispatch to the routes, metrics. */
#include "http_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static const char *const route_names[ROUTE_COUNT] = {
    "page",   "healthz",   "metrics",     "info",           "indexes",      "embed_text", "embed_image", "classify",
    "search", "thumbnail", "immich_ping", "immich_predict", "admin_reload", "duplicates", "original",    "unknown"};
/* Upper bounds of the latency histogram, in seconds (the last bucket is +Inf). */
static const double latency_bounds[LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

/* ---- request bodies ---- */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static bool grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < need)
        cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p)
        return false;
    *buf = p;
    *cap = cap2;
    return true;
}

static enum MHD_Result on_form_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                    const char *content_type, const char *transfer_encoding, const char *data,
                                    uint64_t off, size_t size)
{
    request *r = cls;
    route_field *f = r->nfields ? &r->fields[r->nfields - 1] : NULL;
    if (!f || off == 0 || strcmp(f->name, key)) {
        if (r->nfields >= MAX_FORM_PARTS)
            return MHD_NO;
        route_field *p = realloc(r->fields, (r->nfields + 1) * sizeof *p);
        if (!p)
            return MHD_NO;
        r->fields = p;
        f = &r->fields[r->nfields++];
        *f = (route_field){.name = strdup(key ? key : ""),
                           .filename = dup_or_null(filename),
                           .content_type = dup_or_null(content_type)};
        if (!f->name)
            return MHD_NO;
    }
    if (!grow(&f->data, &f->cap, f->len + size + 1))
        return MHD_NO;
    memcpy(f->data + f->len, data, size);
    f->len += size;
    f->data[f->len] = '\0';
    return MHD_YES;
}

static void free_request(request *r)
{
    if (r->form)
        MHD_destroy_post_processor(r->form);
    for (size_t i = 0; i < r->nfields; i++) {
        free(r->fields[i].name);
        free(r->fields[i].filename);
        free(r->fields[i].content_type);
        free(r->fields[i].data);
    }
    free(r->fields);
    free(r->body);
    free(r);
}

/* ---- metrics ---- */

static void record(http_server *s, route_id route, unsigned http, double seconds)
{
    route_stats *m = &s->metrics[route];
    atomic_fetch_add(&m->codes[http < 600 ? http : 0], 1);
    size_t b = 0;
    while (b < LATENCY_BUCKETS && seconds > latency_bounds[b])
        b++;
    atomic_fetch_add(&m->buckets[b], 1);
    atomic_fetch_add(&m->sum_us, (unsigned long)(seconds * 1e6));
}

/* Prometheus text format. */
static void metrics_text(http_server *s, reply *out)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) {
        reply_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "JACLIP_ERROR_OUT_OF_MEMORY", "out of memory");
        return;
    }
    fputs("# HELP jaclip_requests_total HTTP requests answered, by route and status.\n"
          "# TYPE jaclip_requests_total counter\n",
          f);
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int c = 100; c < 600; c++) {
            unsigned long n = atomic_load(&s->metrics[r].codes[c]);
            if (n)
                fprintf(f, "jaclip_requests_total{route=\"%s\",code=\"%d\"} %lu\n", route_names[r], c, n);
        }
    fputs("# HELP jaclip_request_duration_seconds Time from the request's headers to its answer.\n"
          "# TYPE jaclip_request_duration_seconds histogram\n",
          f);
    for (int r = 0; r < ROUTE_COUNT; r++) {
        unsigned long total = 0;
        for (int b = 0; b <= LATENCY_BUCKETS; b++) {
            total += atomic_load(&s->metrics[r].buckets[b]);
            if (b < LATENCY_BUCKETS)
                fprintf(f, "jaclip_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %lu\n", route_names[r],
                        latency_bounds[b], total);
            else
                fprintf(f, "jaclip_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %lu\n", route_names[r],
                        total);
        }
        fprintf(f, "jaclip_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
                atomic_load(&s->metrics[r].sum_us) / 1e6);
        fprintf(f, "jaclip_request_duration_seconds_count{route=\"%s\"} %lu\n", route_names[r], total);
    }
    fprintf(f, "# TYPE jaclip_requests_in_flight gauge\njaclip_requests_in_flight %u\n", atomic_load(&s->in_flight));
    route_metrics(s->routes, f);
    fclose(f);
    out->http = MHD_HTTP_OK;
    out->body = text;
    out->len = size;
    out->content_type = "text/plain; version=0.0.4";
}

/* ---- routing ---- */

static route_id route_of(const char *url, const char **rest)
{
    static const struct {
        const char *path;
        route_id route;
    } exact[] = {{"/healthz", ROUTE_HEALTHZ},
                 {"/metrics", ROUTE_METRICS},
                 {"/v1/info", ROUTE_INFO},
                 {"/v1/indexes", ROUTE_INDEXES},
                 {"/v1/embed/text", ROUTE_EMBED_TEXT},
                 {"/v1/embed/image", ROUTE_EMBED_IMAGE},
                 {"/v1/classify", ROUTE_CLASSIFY},
                 {"/v1/search", ROUTE_SEARCH},
                 {"/v1/thumbnail", ROUTE_THUMBNAIL},
                 {"/ping", ROUTE_IMMICH_PING},
                 {"/predict", ROUTE_IMMICH_PREDICT},
                 {"/v1/admin/reload", ROUTE_ADMIN_RELOAD},
                 {"/v1/duplicates", ROUTE_DUPLICATES},
                 {"/v1/original", ROUTE_ORIGINAL}};
    *rest = NULL;
    for (size_t i = 0; i < sizeof exact / sizeof *exact; i++)
        if (!strcmp(url, exact[i].path))
            return exact[i].route;
    if (!strncmp(url, "/v1/indexes/", 12)) {
        *rest = url + 12;
        return ROUTE_INDEXES;
    }
    const unsigned char *data;
    size_t len;
    const char *type;
    if (web_file(url, &data, &len, &type))
        return ROUTE_PAGE;
    return ROUTE_UNKNOWN;
}

static bool wants_post(route_id r)
{
    return r == ROUTE_EMBED_TEXT || r == ROUTE_EMBED_IMAGE || r == ROUTE_CLASSIFY || r == ROUTE_SEARCH ||
           r == ROUTE_IMMICH_PREDICT || r == ROUTE_ADMIN_RELOAD;
}

/* Whether the request's peer is a loopback address: without --token, admin routes answer only those
 * (a --trust-network server's network may search, not administer). */
static bool peer_is_loopback(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *a = info ? info->client_addr : NULL;
    if (!a)
        return false;
    if (a->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->sa_family != AF_INET6)
        return false;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

/* Routes that anyone may reach when --token is set: the page's own files and the health check. */
static bool is_public(route_id r) { return r == ROUTE_PAGE || r == ROUTE_HEALTHZ || r == ROUTE_IMMICH_PING; }

#define PAGE_POLICY                                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; " \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
#define OTHER_POLICY "default-src 'none'; frame-ancestors 'none'; sandbox"

static enum MHD_Result send_reply(struct MHD_Connection *c, request *r, reply *out)
{
    struct MHD_Response *resp = out->has_file
                                    ? MHD_create_response_from_fd64(out->len, out->file)
                                    : MHD_create_response_from_buffer(out->len, out->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        if (out->has_file)
            close(out->file);
        else
            free(out->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, out->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* The page may run its own scripts and show its own images only; any other answer (JSON, a photo,
     * the favicon) opened as a document runs nothing and cannot be framed. */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            !strncmp(out->content_type, "text/html", 9) ? PAGE_POLICY : OTHER_POLICY);
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (out->cache_control)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, out->cache_control);
    if (out->disposition[0])
        MHD_add_response_header(resp, "Content-Disposition", out->disposition);
    if (out->http == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (out->http == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, wants_post(r->route) ? "POST" : "GET, HEAD");
    if (out->http == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->close)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    /* Counted before the answer leaves, so that a client's next /metrics already sees it. */
    r->http = out->http;
    record(r->server, r->route, r->http, now_seconds() - r->start);
    enum MHD_Result ok = MHD_queue_response(c, out->http, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
                                size_t value_size)
{
    bool *found = cls;
    if (strlen(key) != key_size || (value && strlen(value) != value_size)) {
        *found = true;
        return MHD_NO;
    }
    return MHD_YES;
}

/* Checks made as soon as the headers are in; false with *out set to answer at once. */
static bool admit(http_server *s, request *r, const char *method, reply *out)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    const char *why;
    if (!framing_ok(r)) {
        r->close = true;
        reply_error(out, MHD_HTTP_BAD_REQUEST, "SERVE_BAD_FRAMING",
                    "Content-Length with Transfer-Encoding, or Content-Length given twice differently");
        return false;
    }
    if (!s->token && !same_site(s, r, &why)) {
        reply_error(out, MHD_HTTP_FORBIDDEN, "SERVE_FORBIDDEN", "%s", why);
        return false;
    }
    if (r->route == ROUTE_UNKNOWN) {
        reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "no such endpoint (see /v1/info)");
        return false;
    }
    if (wants_post(r->route) ? !post : !get) {
        reply_error(out, MHD_HTTP_METHOD_NOT_ALLOWED, "JACLIP_ERROR_INVALID_ARGUMENT", "method %s not allowed here",
                    method);
        return false;
    }
    if (!s->token && r->route == ROUTE_ADMIN_RELOAD && !peer_is_loopback(r->conn)) {
        reply_error(out, MHD_HTTP_FORBIDDEN, "SERVE_FORBIDDEN",
                    "without --token, only loopback clients may administer");
        return false;
    }
    if (s->token && !is_public(r->route) &&
        !token_matches(s, MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION))) {
        reply_error(out, MHD_HTTP_UNAUTHORIZED, "SERVE_UNAUTHORIZED", "missing or wrong bearer token");
        return false;
    }
    /* A %00 in the query would cut a C string short: "a.jpg%00.png" must not read as "a.jpg". */
    bool nul = false;
    MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND | MHD_HEADER_KIND, find_nul, &nul);
    if (nul) {
        reply_error(out, MHD_HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_ARGUMENT", "a NUL byte in the query or a header");
        return false;
    }
    r->content_type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    /* A JSON body is parsed whole: it gets the routes' smaller limit (routes.h). */
    bool json = r->content_type && !strncasecmp(r->content_type, "application/json", 16);
    r->limit = json && s->max_body > ROUTES_JSON_MAX_BODY ? ROUTES_JSON_MAX_BODY : s->max_body;
    const char *length = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > r->limit) {
        reply_error(out, MHD_HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "the %sbody is over %zu bytes",
                    json ? "JSON " : "", r->limit);
        return false;
    }
    if (r->route != ROUTE_HEALTHZ && r->route != ROUTE_METRICS && r->route != ROUTE_PAGE &&
        r->route != ROUTE_IMMICH_PING) {
        r->counted = true;
        unsigned now = atomic_fetch_add(&s->in_flight, 1) + 1;
        if (atomic_load(&s->stopping) || now > s->max_requests) {
            reply_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "SERVE_BUSY",
                        atomic_load(&s->stopping) ? "shutting down" : "too many requests in flight (%u)",
                        s->max_requests);
            return false;
        }
    }
    if (post && r->content_type &&
        (!strncasecmp(r->content_type, MHD_HTTP_POST_ENCODING_MULTIPART_FORMDATA, 19) ||
         !strncasecmp(r->content_type, MHD_HTTP_POST_ENCODING_FORM_URLENCODED, 33))) {
        r->form = MHD_create_post_processor(r->conn, 64 * 1024, on_form_part, r);
        if (!r->form) {
            reply_error(out, MHD_HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_ARGUMENT", "malformed form content type");
            return false;
        }
    }
    return true;
}

typedef struct {
    route_arg *items;
    size_t count, cap;
    bool failed;
} arg_list;

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    arg_list *l = cls;
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        route_arg *p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            l->failed = true;
            return MHD_NO;
        }
        l->items = p, l->cap = cap;
    }
    l->items[l->count++] = (route_arg){key ? key : "", value};
    return MHD_YES;
}

static void dispatch(http_server *s, request *r, const char *rest, reply *out)
{
    if (r->too_large) {
        reply_error(out, MHD_HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "the body is over %zu bytes", r->limit);
        return;
    }
    if (r->bad_form) {
        reply_error(out, MHD_HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_ARGUMENT", "malformed form body");
        return;
    }
    if (r->route == ROUTE_HEALTHZ) {
        reply_json(out, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
        return;
    }
    if (r->route == ROUTE_METRICS) {
        metrics_text(s, out);
        return;
    }
    arg_list args = {0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &args);
    if (args.failed) {
        free(args.items);
        reply_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "JACLIP_ERROR_OUT_OF_MEMORY", "out of memory");
        return;
    }
    route_request q = {.content_type = r->content_type,
                       .body = r->body,
                       .len = r->len,
                       .is_form = r->form != NULL,
                       .fields = r->fields,
                       .nfields = r->nfields,
                       .args = args.items,
                       .nargs = args.count};
    switch (r->route) {
    case ROUTE_INFO: route_info(s->routes, &q, out); break;
    case ROUTE_INDEXES: route_indexes(s->routes, &q, rest, out); break;
    case ROUTE_EMBED_TEXT: route_embed_text(s->routes, &q, out); break;
    case ROUTE_EMBED_IMAGE: route_embed_image(s->routes, &q, out); break;
    case ROUTE_CLASSIFY: route_classify(s->routes, &q, out); break;
    case ROUTE_SEARCH: route_search(s->routes, &q, out); break;
    case ROUTE_THUMBNAIL: route_thumbnail(s->routes, &q, out); break;
    case ROUTE_IMMICH_PING: route_immich_ping(s->routes, &q, out); break;
    case ROUTE_IMMICH_PREDICT: route_immich_predict(s->routes, &q, out); break;
    case ROUTE_ADMIN_RELOAD: route_admin_reload(s->routes, &q, out); break;
    case ROUTE_DUPLICATES: route_dupes(s->routes, &q, out); break;
    case ROUTE_ORIGINAL: route_original(s->routes, &q, out); break;
    default: break;
    }
    free(args.items);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **state)
{
    http_server *s = cls;
    request *r = *state;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *state = r;
        r->server = s;
        r->conn = c;
        r->start = now_seconds();
        const char *rest;
        r->route = route_of(url, &rest);
        reply out = {0};
        if (!admit(s, r, method, &out))
            return send_reply(c, r, &out);
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (now_seconds() - r->start > s->timeout)
            return MHD_NO; /* a body trickling in for longer than --timeout: drop the connection */
        r->received += n;
        if (r->received > r->limit)
            r->too_large = true;
        if (r->too_large || r->bad_form)
            return MHD_YES; /* read and drop the rest, then answer */
        if (r->form) {
            if (MHD_post_process(r->form, upload_data, n) != MHD_YES)
                r->bad_form = true;
        } else if (!grow(&r->body, &r->cap, r->len + n + 1)) {
            r->too_large = true;
        } else {
            memcpy(r->body + r->len, upload_data, n);
            r->len += n;
            r->body[r->len] = '\0';
        }
        return MHD_YES;
    }
    reply out = {0};
    if (r->route == ROUTE_PAGE) {
        const unsigned char *data;
        const char *type;
        web_file(url, &data, &out.len, &type);
        out.http = MHD_HTTP_OK;
        out.content_type = type;
        out.cache_control = "no-cache";
        if ((out.body = malloc(out.len ? out.len : 1)))
            memcpy(out.body, data, out.len);
        else
            return MHD_NO;
    } else {
        const char *rest;
        route_of(url, &rest);
        dispatch(s, r, rest, &out);
    }
    return send_reply(c, r, &out);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
    http_server *s = cls;
    request *r = *state;
    if (!r)
        return;
    /* A connection dropped before an answer (timeout, client gone) counts as 408 / 499. */
    if (!r->http)
        record(s, r->route, why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? 408 : 499, now_seconds() - r->start);
    if (r->counted)
        atomic_fetch_sub(&s->in_flight, 1);
    free_request(r);
    *state = NULL;
}

/* ---- start and stop ---- */

http_server *http_start(routes *rt, const http_options *o, unsigned *port)
{
    http_server *s = xcalloc(1, sizeof *s);
    s->routes = rt;
    s->token = o->token;
    s->token_len = o->token ? strlen(o->token) : 0;
    s->bound_host = o->bound_host;
    s->allow_hosts = o->allow_hosts;
    s->nallow_hosts = o->nallow_hosts;
    s->max_body = o->max_body;
    s->max_requests = o->max_requests;
    s->timeout = o->timeout;
    s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                                     MHD_USE_ERROR_LOG | (o->addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                                 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&o->addr,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o->timeout, MHD_OPTION_CONNECTION_LIMIT,
                                 o->max_requests + 16, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        int e = errno;
        free(s);
        errno = e;
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return s;
}

unsigned http_stop(http_server *s, double deadline)
{
    atomic_store(&s->stopping, true);
    MHD_socket listener = MHD_quiesce_daemon(s->daemon);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    while (atomic_load(&s->in_flight) > 0 && now_seconds() < deadline)
        usleep(10000);
    unsigned left = atomic_load(&s->in_flight);
    if (left)
        return left; /* MHD_stop_daemon would wait for those threads without bound */
    MHD_stop_daemon(s->daemon);
    free(s);
    return left;
}
