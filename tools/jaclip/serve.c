#include "serve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* ---- serve: HTTP plumbing (libmicrohttpd) ------------------------------------------------------ */

static const char serve_usage[] =
    "usage: jaclip serve --model MODEL [--index [NAME=]INDEX]... [--host ADDR] [--port N] [options]\n"
    "\n"
    "An HTTP service: the JSON API of docs/serve.md (embed, classify, search, index info, /healthz,\n"
    "/metrics) and a search page at /. The model is loaded once and shared.\n"
    "\n"
    "  -m, --model FILE          model file (default: $JACLIP_MODEL)\n"
    "  -i, --index [NAME=]FILE   an index to search (repeatable); NAME defaults to the file's base name\n"
    "  -c, --classifier FILE     a classifier saved by 'jaclip classify --save-classifier' (or the\n"
    "                            library), used by /v1/classify when a request gives no labels\n"
    "      --host ADDR           address to bind (default: 127.0.0.1); a non-loopback one needs --token\n"
    "  -p, --port N              port (default: 8080; 0 picks a free one, printed on stdout)\n"
    "      --token TOKEN         require 'Authorization: Bearer TOKEN' (default: $JACLIP_SERVE_TOKEN)\n"
    "      --threads N           requests running library work at once (default: 1)\n"
    "      --max-batch N         single text queries, and single searches of one index, that queue\n"
    "                            while the model is busy run as one library call of up to N\n"
    "                            (default: 16; 1 turns batching off)\n"
    "      --model-threads N     cores each model call may use (default: all)\n"
    "      --max-requests N      requests in flight before answering 503 (default: 64)\n"
    "      --max-body BYTES      largest request body (default: 16777216)\n"
    "      --timeout SECONDS     idle connection timeout, and the longest wait for a model slot or a\n"
    "                            body (default: 30)\n"
    "      --device DEV          cpu (default), cuda or cuda:N\n"
    "  -h, --help                this help\n"
    "\n"
    "SIGINT or SIGTERM stops accepting, lets requests in flight finish (up to --timeout), and exits 0.\n";

enum {
    OPT_HOST = OPT_COMMAND_BASE,
    OPT_TOKEN,
    OPT_MODEL_THREADS,
    OPT_MAX_REQUESTS,
    OPT_MAX_BODY,
    OPT_TIMEOUT,
    OPT_MAX_BATCH
};

static const char *const route_names[ROUTE_COUNT] = {"page",    "healthz",    "metrics",     "info",
                                                     "indexes", "embed_text", "embed_image", "classify",
                                                     "search",  "thumbnail",  "unknown"};
/* Upper bounds of the latency histogram, in seconds (the last bucket is +Inf). */
static const double latency_bounds[LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

/* ---- replies ---- */

void reply_json(reply *out, unsigned http, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(value);
    if (!text) {
        out->http = MHD_HTTP_INTERNAL_SERVER_ERROR;
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

void reply_library_error(reply *out, jaclip_status st)
{
    reply_library_error_message(out, st, jaclip_last_error());
}

/* The library's status name ("JACLIP_ERROR_IO") and the HTTP status that fits it. */
void reply_library_error_message(reply *out, jaclip_status st, const char *msg)
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
    case JACLIP_ERROR_IMAGE_DECODE: http = MHD_HTTP_BAD_REQUEST; break;
    case JACLIP_ERROR_IMAGE_TOO_LARGE: http = MHD_HTTP_CONTENT_TOO_LARGE; break;
    case JACLIP_ERROR_NOT_FOUND: http = MHD_HTTP_NOT_FOUND; break;
    case JACLIP_ERROR_OUT_OF_MEMORY: http = MHD_HTTP_SERVICE_UNAVAILABLE; break;
    default: http = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    reply_error(out, http, name, "%s", msg[0] ? msg : full + (full[n] ? n + 2 : n));
}

/* ---- model slots ---- */

struct timespec slot_deadline(const server *s)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)s->request_timeout;
    return until;
}

bool take_slot(server *s)
{
    struct timespec until = slot_deadline(s);
    return take_slot_until(s, &until);
}

bool take_slot_until(server *s, const struct timespec *until)
{
    bool ok = true;
    pthread_mutex_lock(&s->slot_lock);
    while (s->slots_left == 0 && ok)
        ok = pthread_cond_timedwait(&s->slot_free, &s->slot_lock, until) == 0 || s->slots_left > 0;
    if (ok)
        s->slots_left--;
    pthread_mutex_unlock(&s->slot_lock);
    return ok;
}

void give_slot(server *s)
{
    pthread_mutex_lock(&s->slot_lock);
    s->slots_left++;
    pthread_cond_signal(&s->slot_free);
    pthread_mutex_unlock(&s->slot_lock);
}

/* ---- request bodies and arguments ---- */

const char *query_arg(const request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool is_form(const request *r) { return r->form != NULL; }

/* The nth field called name (0-based), or NULL. */
const form_field *form_get(const request *r, const char *name, size_t nth)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (!strcmp(r->fields[i].name, name) && nth-- == 0)
            return &r->fields[i];
    return NULL;
}

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
    form_field *f = r->nfields ? &r->fields[r->nfields - 1] : NULL;
    if (!f || off == 0 || strcmp(f->name, key)) {
        if (r->nfields >= 1024)
            return MHD_NO;
        form_field *p = realloc(r->fields, (r->nfields + 1) * sizeof *p);
        if (!p)
            return MHD_NO;
        r->fields = p;
        f = &r->fields[r->nfields++];
        *f = (form_field){.name = strdup(key ? key : ""),
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

/* ---- token ---- */

/* Constant time in the token's content: every byte of the expected token is compared. */
static bool token_matches(const server *s, const char *header)
{
    static const char prefix[] = "Bearer ";
    if (!header || strncasecmp(header, prefix, sizeof prefix - 1))
        return false;
    const char *given = header + sizeof prefix - 1;
    size_t given_len = strlen(given);
    volatile unsigned char diff = given_len != s->token_len;
    for (size_t i = 0; i < s->token_len; i++)
        diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

/* ---- metrics ---- */

static void record(server *s, route_id route, unsigned http, double seconds)
{
    route_metrics *m = &s->metrics[route];
    atomic_fetch_add(&m->codes[http < 600 ? http : 0], 1);
    size_t b = 0;
    while (b < LATENCY_BUCKETS && seconds > latency_bounds[b])
        b++;
    atomic_fetch_add(&m->buckets[b], 1);
    atomic_fetch_add(&m->sum_us, (unsigned long)(seconds * 1e6));
}

/* Prometheus text format. */
static void metrics_text(server *s, reply *out)
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
    static const char *const batch_kinds[BATCH_KINDS] = {"text", "search"};
    fputs("# HELP jaclip_batches_total Library calls made for batched queries (serve --max-batch).\n"
          "# TYPE jaclip_batches_total counter\n",
          f);
    for (int k = 0; k < BATCH_KINDS; k++)
        fprintf(f, "jaclip_batches_total{kind=\"%s\"} %lu\n", batch_kinds[k], atomic_load(&s->batches[k]));
    fputs("# HELP jaclip_batched_queries_total Queries answered by those calls.\n"
          "# TYPE jaclip_batched_queries_total counter\n",
          f);
    for (int k = 0; k < BATCH_KINDS; k++)
        fprintf(f, "jaclip_batched_queries_total{kind=\"%s\"} %lu\n", batch_kinds[k],
                atomic_load(&s->batched_jobs[k]));
    fprintf(f, "# TYPE jaclip_thumbnail_cache_hits_total counter\njaclip_thumbnail_cache_hits_total %lu\n",
            atomic_load(&s->thumb_hits));
    fprintf(f, "# TYPE jaclip_thumbnail_cache_misses_total counter\njaclip_thumbnail_cache_misses_total %lu\n",
            atomic_load(&s->thumb_misses));
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
    } exact[] = {
        {"/healthz", ROUTE_HEALTHZ},      {"/metrics", ROUTE_METRICS},          {"/v1/info", ROUTE_INFO},
        {"/v1/indexes", ROUTE_INDEXES},   {"/v1/embed/text", ROUTE_EMBED_TEXT}, {"/v1/embed/image", ROUTE_EMBED_IMAGE},
        {"/v1/classify", ROUTE_CLASSIFY}, {"/v1/search", ROUTE_SEARCH},         {"/v1/thumbnail", ROUTE_THUMBNAIL}};
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
    return r == ROUTE_EMBED_TEXT || r == ROUTE_EMBED_IMAGE || r == ROUTE_CLASSIFY || r == ROUTE_SEARCH;
}

/* Routes that anyone may reach when --token is set: the page's own files and the health check. */
static bool is_public(route_id r) { return r == ROUTE_PAGE || r == ROUTE_HEALTHZ; }

static enum MHD_Result send_reply(struct MHD_Connection *c, request *r, reply *out)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(out->len, out->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(out->body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, out->content_type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (out->cache_control)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, out->cache_control);
    if (out->http == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (out->http == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, wants_post(r->route) ? "POST" : "GET, HEAD");
    if (out->http == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
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
static bool admit(server *s, request *r, const char *method, reply *out)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool post = !strcmp(method, "POST");
    if (r->route == ROUTE_UNKNOWN) {
        reply_error(out, MHD_HTTP_NOT_FOUND, "JACLIP_ERROR_NOT_FOUND", "no such endpoint (see /v1/info)");
        return false;
    }
    if (wants_post(r->route) ? !post : !get) {
        reply_error(out, MHD_HTTP_METHOD_NOT_ALLOWED, "JACLIP_ERROR_INVALID_ARGUMENT", "method %s not allowed here",
                    method);
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
    const char *length = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length && strtoull(length, NULL, 10) > s->max_body) {
        reply_error(out, MHD_HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "the body is over %zu bytes", s->max_body);
        return false;
    }
    if (r->route != ROUTE_HEALTHZ && r->route != ROUTE_METRICS && r->route != ROUTE_PAGE) {
        r->counted = true;
        unsigned now = atomic_fetch_add(&s->in_flight, 1) + 1;
        if (atomic_load(&s->stopping) || now > s->max_requests) {
            reply_error(out, MHD_HTTP_SERVICE_UNAVAILABLE, "SERVE_BUSY",
                        atomic_load(&s->stopping) ? "shutting down" : "too many requests in flight (%u)",
                        s->max_requests);
            return false;
        }
    }
    r->content_type = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
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

static void dispatch(server *s, request *r, const char *rest, reply *out)
{
    if (r->too_large) {
        reply_error(out, MHD_HTTP_CONTENT_TOO_LARGE, "SERVE_BODY_TOO_LARGE", "the body is over %zu bytes", s->max_body);
        return;
    }
    if (r->bad_form) {
        reply_error(out, MHD_HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_ARGUMENT", "malformed form body");
        return;
    }
    switch (r->route) {
    case ROUTE_HEALTHZ: reply_json(out, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok")); return;
    case ROUTE_METRICS: metrics_text(s, out); return;
    case ROUTE_INFO: api_info(s, r, out); return;
    case ROUTE_INDEXES: api_indexes(s, r, rest, out); return;
    case ROUTE_EMBED_TEXT: api_embed_text(s, r, out); return;
    case ROUTE_EMBED_IMAGE: api_embed_image(s, r, out); return;
    case ROUTE_CLASSIFY: api_classify(s, r, out); return;
    case ROUTE_SEARCH: api_search(s, r, out); return;
    case ROUTE_THUMBNAIL: api_thumbnail(s, r, out); return;
    case ROUTE_PAGE:
    default: break;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **state)
{
    server *s = cls;
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
        if (now_seconds() - r->start > s->request_timeout)
            return MHD_NO; /* a body trickling in for longer than --timeout: drop the connection */
        r->received += n;
        if (r->received > s->max_body)
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
    server *s = cls;
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

/* ---- start-up ---- */

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

static void parse_host(const char *host, long port, struct sockaddr_storage *out, socklen_t *len)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        usage_error("--host must be a numeric IPv4 or IPv6 address, got '%s'", host);
    }
}

/* "NAME=PATH" or "PATH" (NAME: the base name without its extension). */
static served_index load_served_index(const char *arg, size_t dim)
{
    const char *eq = strchr(arg, '=');
    const char *path = eq ? eq + 1 : arg;
    char *name;
    if (eq) {
        name = strndup(arg, (size_t)(eq - arg));
    } else {
        const char *base = strrchr(path, '/');
        name = xstrdup(base ? base + 1 : path);
        char *dot = strrchr(name, '.');
        if (dot && dot != name)
            *dot = '\0';
    }
    if (!name || !*name ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(name))
        usage_error("--index name '%s' must be letters, digits, '.', '_' or '-' (use NAME=FILE)", name ? name : "");
    jaclip_index *index = load_index_or_die(path);
    if (jaclip_index_dim(index) != dim) {
        cli_warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", path, jaclip_index_dim(index), dim);
        exit(EXIT_RUNTIME);
    }
    return (served_index){name, index};
}

typedef struct {
    model_args m;
    string_list index_args;
    const char *host, *token, *classifier_path;
    long port, workers, max_requests, max_body, timeout, max_batch;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} serve_options;

static void parse_serve_args(serve_options *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},        {"index", required_argument, NULL, 'i'},
        {"host", required_argument, NULL, OPT_HOST},    {"port", required_argument, NULL, 'p'},
        {"token", required_argument, NULL, OPT_TOKEN},  {"threads", required_argument, NULL, OPT_THREADS},
        {"model-threads", required_argument, NULL, OPT_MODEL_THREADS},
        {"max-requests", required_argument, NULL, OPT_MAX_REQUESTS},
        {"max-body", required_argument, NULL, OPT_MAX_BODY}, {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"device", required_argument, NULL, OPT_DEVICE}, {"help", no_argument, NULL, 'h'},
        {"classifier", required_argument, NULL, 'c'},    {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
        {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->token = getenv("JACLIP_SERVE_TOKEN");
    o->port = 8080, o->workers = 1, o->max_requests = 64, o->max_body = 16L << 20, o->timeout = 30;
    o->max_batch = 16;
    while ((opt = getopt_long(argc, argv, ":m:i:p:c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm': o->m.model_path = optarg; break;
        case OPT_DEVICE: o->m.device = optarg; break;
        case 'i': list_push(&o->index_args, optarg); break;
        case OPT_HOST: o->host = optarg; break;
        case 'p': o->port = parse_long(optarg, "--port", 0, 65535); break;
        case OPT_TOKEN: o->token = optarg; break;
        case OPT_THREADS: o->workers = parse_long(optarg, "--threads", 1, 256); break;
        case OPT_MODEL_THREADS: o->m.threads = (int)parse_long(optarg, "--model-threads", 0, 1024); break;
        case OPT_MAX_REQUESTS: o->max_requests = parse_long(optarg, "--max-requests", 1, 10000); break;
        case OPT_MAX_BODY: o->max_body = parse_long(optarg, "--max-body", 1024, 1L << 30); break;
        case OPT_TIMEOUT: o->timeout = parse_long(optarg, "--timeout", 1, 3600); break;
        case OPT_MAX_BATCH: o->max_batch = parse_long(optarg, "--max-batch", 1, 256); break;
        case 'c': o->classifier_path = optarg; break;
        case 'h': exit(help_requested(serve_usage));
        default: bad_option(opt, argv);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (o->token && !*o->token)
        o->token = NULL;
    if (o->token && !is_utf8(o->token))
        usage_error("--token must be UTF-8");
    parse_host(o->host, o->port, &o->addr, &o->addr_len);
    if (!is_loopback(&o->addr) && !o->token)
        usage_error("--host %s is not a loopback address: give --token (or JACLIP_SERVE_TOKEN) too", o->host);
}

/* The server: the model, its classifier, the indexes, the limits. */
static server *make_server(const serve_options *o)
{
    server *s = xcalloc(1, sizeof *s);
    s->model = load_model((model_args *)&o->m);
    s->dim = (size_t)jaclip_model_embedding_dim(s->model);
    jaclip_status loaded;
    if (o->classifier_path && (loaded = jaclip_classifier_load(&s->classifier, o->classifier_path, s->model)))
        die(o->classifier_path, loaded);
    s->nindexes = o->index_args.count;
    s->indexes = xcalloc(o->index_args.count, sizeof *s->indexes);
    for (size_t i = 0; i < o->index_args.count; i++) {
        s->indexes[i] = load_served_index(o->index_args.items[i], s->dim);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->indexes[i].name, s->indexes[j].name))
                usage_error("two indexes are named '%s': use NAME=FILE", s->indexes[i].name);
    }
    s->token = o->token;
    s->token_len = o->token ? strlen(o->token) : 0;
    s->max_body = (size_t)o->max_body;
    s->max_requests = (unsigned)o->max_requests;
    s->request_timeout = (double)o->timeout;
    s->slots_left = (unsigned)o->workers;
    pthread_mutex_init(&s->slot_lock, NULL);
    pthread_cond_init(&s->slot_free, NULL);
    s->max_batch = (unsigned)o->max_batch;
    pthread_mutex_init(&s->batch_lock, NULL);
    pthread_cond_init(&s->batch_wake, NULL);
    pthread_mutex_init(&s->thumb_lock, NULL);
    return s;
}

static void free_server(server *s)
{
    for (size_t i = 0; i < s->nindexes; i++) {
        jaclip_index_free(s->indexes[i].index);
        free(s->indexes[i].name);
    }
    for (size_t i = 0; i < THUMB_SLOTS; i++)
        free(s->thumbs[i].jpeg);
    free(s->indexes);
    jaclip_classifier_free(s->classifier);
    jaclip_model_free(s->model);
    free(s);
}

/* Graceful stop: refuse new work, close the listening socket, let requests in flight finish. */
static void stop_server(server *s, struct MHD_Daemon *d, int sig)
{
    atomic_store(&s->stopping, true);
    MHD_socket listener = MHD_quiesce_daemon(d);
    if (listener != MHD_INVALID_SOCKET)
        close(listener);
    double until = now_seconds() + s->request_timeout;
    while (atomic_load(&s->in_flight) > 0 && now_seconds() < until)
        usleep(10000);
    unsigned left = atomic_load(&s->in_flight);
    MHD_stop_daemon(d);
    fprintf(stderr, "jaclip serve: stopped by signal %d%s\n", sig, left ? " (requests still running were cut)" : "");
}

int cmd_serve(int argc, char **argv)
{
    serve_options o;
    command_name = "jaclip serve";
    parse_serve_args(&o, argc, argv);
    /* The signals are taken by sigwait below. Blocked before anything starts a thread (libtorch and
     * OpenBLAS pools, MHD), so every thread inherits the mask and none dies of them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    server *s = make_server(&o);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                             MHD_USE_ERROR_LOG | (o.addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                         (uint16_t)o.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&o.addr,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)o.timeout, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)o.max_requests + 16, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)64 * 1024,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!d) {
        cli_warn("cannot listen on %s port %ld: %s", o.host, o.port, strerror(errno));
        return EXIT_RUNTIME;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    printf("jaclip serve: listening on http://%s%s%s:%u/ (%zu index%s)\n", o.addr.ss_family == AF_INET6 ? "[" : "",
           o.host, o.addr.ss_family == AF_INET6 ? "]" : "", info ? info->port : (unsigned)o.port, s->nindexes,
           s->nindexes == 1 ? "" : "es");
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    stop_server(s, d, sig);
    free_server(s);
    free(o.index_args.items);
    return 0;
}
