/* Private to the route files (routes*.c): request parsing and replies shared by the endpoints. */
#ifndef JACLIP_SERVE_ROUTES_INTERNAL_H
#define JACLIP_SERVE_ROUTES_INTERNAL_H

#include "routes.h"

enum {
    MAX_TEXTS = 256,
    MAX_IMAGES = 64,
    MAX_LABELS = 1000,
    MAX_TEMPLATES = 100,
    MAX_K = 1000,
    DEFAULT_K = 10,
    DEFAULT_THUMB = 160,
    /* /v1/classify's work: each label and template at most 1 KiB (the model reads 77 tokens: a filled
     * text costs what the tokenizer reads, not a template's bytes times the labels), and at most 2000
     * filled texts (labels x templates) per request. */
    MAX_CLASSIFY_BYTES = 1024,
    MAX_CLASSIFY_TEXTS = 2000,
    /* JSON bodies: values and nesting any endpoint takes (an embedding of up to 16 Ki numbers, 256
     * texts), and the memory jansson may use to parse one (ROUTES_JSON_MAX_BODY is routes.h's). */
    JSON_MAX_ELEMENTS = 16384 + 64,
    JSON_MAX_DEPTH = 8,
    JSON_MAX_TREE = 4 << 20
};

#define HTTP_OK 200
#define HTTP_BAD_REQUEST 400
#define HTTP_NOT_FOUND 404
#define HTTP_UNSUPPORTED_MEDIA_TYPE 415
#define HTTP_CONTENT_TOO_LARGE 413
#define HTTP_UNPROCESSABLE 422
#define HTTP_INTERNAL_ERROR 500
#define HTTP_UNAVAILABLE 503

#define BAD_REQUEST(out, ...) reply_error(out, HTTP_BAD_REQUEST, "JACLIP_ERROR_INVALID_ARGUMENT", __VA_ARGS__)

/* routes.c */
void reply_library_error(reply *out, jaclip_status st, const char *message);
void reply_failure(reply *out, const engine_result *why); /* the engine's refusal as HTTP */
bool content_type_is(const route_request *r, const char *type);
json_t *json_body(const route_request *r, const char *const *allowed, reply *out);
/* Any JSON value of text, under the JSON body limits; malformed text is answered bad_http. */
json_t *json_parse_limited(const char *text, size_t len, unsigned bad_http, reply *out);
bool int_option(json_t *value, const char *text, const char *name, long min, long max, long def, long *v, reply *out);
bool number_option(json_t *value, const char *text, const char *name, double def, double *v, reply *out);
const char *query_arg(const route_request *r, const char *name); /* the first, or NULL */
const route_field *form_get(const route_request *r, const char *name, size_t nth);
const char *arg(const route_request *r, const char *name); /* a form field's value, else the query's */
/* The image bytes of the request (1 to max; more is a 400): the raw body, or a form's file parts. */
size_t request_images(const route_request *r, const void **data, size_t *sizes, size_t max, reply *out);
engine_index *pick_index(routes *rt, const char *name, reply *out); /* engine_index_put it after */

#endif
