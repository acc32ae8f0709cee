/* The routes of `jaclip serve`: one function per endpoint, taking a request already read and checked
 * by the HTTP layer (http.c) and answering JSON (or a JPEG); the work is the engine's (engine.h). */
#ifndef JACLIP_SERVE_ROUTES_H
#define JACLIP_SERVE_ROUTES_H

#include "engine.h"

#include <jansson.h>
#include <stdio.h>

/* One named part of a multipart/form-data or urlencoded body. */
typedef struct {
    char *name, *filename, *content_type;
    char *data;
    size_t len, cap;
} route_field;

/* One query-string argument (borrowed from the HTTP layer for the request's life). */
typedef struct {
    const char *key, *value;
} route_arg;

/* A request as the routes see it. */
typedef struct {
    const char *content_type;
    const char *body; /* the raw body (NUL-terminated), unless a form */
    size_t len;
    bool is_form;
    const route_field *fields;
    size_t nfields;
    const route_arg *args;
    size_t nargs;
} route_request;

/* The largest JSON body a route reads (1 MiB): the HTTP layer refuses a larger application/json body
 * (413) before reading it. With the parse budget (routes_internal.h) a JSON request costs at most
 * ~5 MiB of memory, whatever --max-body says. */
#define ROUTES_JSON_MAX_BODY (1 << 20)

/* What a route answers: status, body (malloc'd, owned) and its type; or, with has_file, the first len
 * bytes of the open file `file` (owned: the HTTP layer sends and closes it). */
typedef struct {
    unsigned http;
    char *body;
    size_t len;
    const char *content_type;
    const char *cache_control;
    char disposition[800]; /* Content-Disposition when not empty */
    bool has_file;
    int file;
} reply;

/* What the routes need besides the engine: the server's limits, for /v1/info. */
typedef struct {
    engine *engine;
    size_t max_body;
    unsigned max_requests;
    bool token_required;
    const char *immich_model; /* --immich-model: the only modelName /predict accepts; NULL: any */
} routes;

/* Once, before any request: jansson's allocator (see routes.c). */
void routes_init(void);

void reply_json(reply *out, unsigned http, json_t *value); /* takes value */
void reply_error(reply *out, unsigned http, const char *status_name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void route_info(routes *rt, const route_request *r, reply *out);
void route_indexes(routes *rt, const route_request *r, const char *name, reply *out);
void route_embed_text(routes *rt, const route_request *r, reply *out);
void route_embed_image(routes *rt, const route_request *r, reply *out);
void route_classify(routes *rt, const route_request *r, reply *out);
void route_search(routes *rt, const route_request *r, reply *out);
void route_thumbnail(routes *rt, const route_request *r, reply *out); /* routes_files.c */
void route_original(routes *rt, const route_request *r, reply *out);  /* routes_files.c */
/* Immich's machine-learning protocol (routes_immich.c, docs/immich.md): GET /ping, POST /predict. */
void route_immich_ping(routes *rt, const route_request *r, reply *out);
void route_immich_predict(routes *rt, const route_request *r, reply *out);
/* POST /v1/admin/reload: every index reloaded now (the HTTP layer admits only the token's holder, or
 * a loopback client when there is no token). */
void route_admin_reload(routes *rt, const route_request *r, reply *out);
void route_dupes(routes *rt, const route_request *r, reply *out); /* routes_dupes.c */
/* Appends the engine's Prometheus lines to the HTTP layer's. */
void route_metrics(routes *rt, FILE *f);

#endif
