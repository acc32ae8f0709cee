/* Private to the HTTP layer's files (http*.c). */
#ifndef JACLIP_SERVE_HTTP_INTERNAL_H
#define JACLIP_SERVE_HTTP_INTERNAL_H

#include "http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

typedef enum {
    ROUTE_PAGE,
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_INFO,
    ROUTE_INDEXES,
    ROUTE_EMBED_TEXT,
    ROUTE_EMBED_IMAGE,
    ROUTE_CLASSIFY,
    ROUTE_SEARCH,
    ROUTE_THUMBNAIL,
    ROUTE_IMMICH_PING,
    ROUTE_IMMICH_PREDICT,
    ROUTE_ADMIN_RELOAD,
    ROUTE_DUPLICATES,
    ROUTE_ORIGINAL,
    ROUTE_UNKNOWN,
    ROUTE_COUNT
} route_id;

enum {
    LATENCY_BUCKETS = 12,
    MAX_FORM_PARTS = 1024,
    /* What libmicrohttpd may hold per connection: the request line, headers and their parsed form.
     * A query string of 1000 labels (~40 KB of percent-encoded Japanese) needs more than its 32 KiB
     * default; beyond this the request is answered 431. */
    CONNECTION_MEMORY = 256 * 1024
};

typedef struct {
    atomic_ulong codes[600];                   /* requests answered, by HTTP status */
    atomic_ulong buckets[LATENCY_BUCKETS + 1]; /* cumulative at output time; here per bucket */
    atomic_ulong sum_us;
} route_stats;

struct http_server {
    routes *routes;
    struct MHD_Daemon *daemon;
    const char *token;
    size_t token_len;
    const char *bound_host;         /* the bound address as a Host value names it: "127.0.0.1", "[::1]" */
    const char *const *allow_hosts; /* --allow-host: more names the Host header may give */
    size_t nallow_hosts;
    size_t max_body;
    unsigned max_requests;
    double timeout;
    atomic_uint in_flight;
    atomic_bool stopping;
    route_stats metrics[ROUTE_COUNT];
};

typedef struct {
    http_server *server;
    route_id route;
    struct MHD_Connection *conn;
    double start;
    const char *content_type;
    char *body;                       /* the raw body (NUL-terminated), unless a form */
    size_t len, cap, received, limit; /* limit: max_body, or less for a JSON body */
    bool too_large, bad_form;
    struct MHD_PostProcessor *form;
    route_field *fields;
    size_t nfields;
    bool counted;  /* holds one of max_requests */
    bool close;    /* answer with Connection: close (the stream cannot be trusted past this request) */
    unsigned http; /* the status answered */
} request;

/* http_guard.c: the checks on a request's headers that need no route. */
bool token_matches(const http_server *s, const char *header);       /* constant time in the token */
bool framing_ok(request *r);                                        /* RFC 9112 6.3 */
bool same_site(const http_server *s, request *r, const char **why); /* Host, Origin, Sec-Fetch-Site */

#endif
