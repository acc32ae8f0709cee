/* `jaclip serve`: shared by serve.c (HTTP plumbing on libmicrohttpd: routing, limits, token, metrics,
 * shutdown), serve_api.c (the JSON API on the library) and serve_web.c (the search page's files). */
#ifndef JACLIP_SERVE_H
#define JACLIP_SERVE_H

#include "cli.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

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
    ROUTE_UNKNOWN,
    ROUTE_COUNT
} route_id;

typedef struct {
    char *name;
    jaclip_index *index;
} served_index;

/* One cached thumbnail (a direct-mapped slot keyed by index, row and size). */
typedef struct {
    size_t index, row;
    unsigned size;
    unsigned char *jpeg;
    size_t len;
} thumb_slot;

enum { THUMB_SLOTS = 512, LATENCY_BUCKETS = 12 };

/* One query for serve_batch.c: a text to encode, or one query row to search an index with. */
typedef enum { BATCH_TEXT, BATCH_SEARCH, BATCH_KINDS } batch_kind;

typedef struct batch_job {
    struct batch_job *next;
    batch_kind kind;
    const served_index *index; /* BATCH_SEARCH */
    const char *text;          /* BATCH_TEXT, len bytes */
    size_t len;
    const jaclip_tensor *query; /* BATCH_SEARCH: [1, D] */
    size_t k;
    /* Results, owned by the caller after batch_run: features [1, D], or rows and scores [1, <=k]. */
    jaclip_status st;
    char message[512]; /* the library's message when st fails */
    jaclip_tensor *features, *rows, *scores;
    bool taken, done;
} batch_job;

typedef struct {
    atomic_ulong codes[600];                   /* requests answered, by HTTP status */
    atomic_ulong buckets[LATENCY_BUCKETS + 1]; /* cumulative at output time; here per bucket */
    atomic_ulong sum_us;
} route_metrics;

typedef struct {
    jaclip_model *model;
    jaclip_classifier *classifier; /* --classifier: used by /v1/classify when no label is given */
    size_t dim;
    served_index *indexes;
    size_t nindexes;
    const char *token;
    size_t token_len;
    size_t max_body;
    unsigned max_requests;
    double request_timeout;
    atomic_uint in_flight;
    atomic_bool stopping;
    /* Model slots: at most `workers` requests run library work at once; the others wait. */
    pthread_mutex_t slot_lock;
    pthread_cond_t slot_free;
    unsigned slots_left;
    /* Batching (serve_batch.c): queued single queries, and whether a leader waits for a slot. */
    unsigned max_batch;
    pthread_mutex_t batch_lock;
    pthread_cond_t batch_wake;
    struct batch_job *pending;
    bool leader_waiting;
    atomic_ulong batches[BATCH_KINDS], batched_jobs[BATCH_KINDS];
    pthread_mutex_t thumb_lock;
    thumb_slot thumbs[THUMB_SLOTS];
    atomic_ulong thumb_hits, thumb_misses;
    route_metrics metrics[ROUTE_COUNT];
} server;

/* One named part of a multipart/form-data or urlencoded body. */
typedef struct {
    char *name, *filename, *content_type;
    char *data;
    size_t len, cap;
} form_field;

typedef struct {
    server *server;
    route_id route;
    struct MHD_Connection *conn;
    double start;
    const char *content_type;
    char *body; /* the raw body (NUL-terminated), unless a form */
    size_t len, cap, received;
    bool too_large, bad_form;
    struct MHD_PostProcessor *form;
    form_field *fields;
    size_t nfields;
    bool counted;  /* holds one of max_requests */
    unsigned http; /* the status answered */
} request;

/* What a handler answers: status, body (malloc'd, owned) and its type. */
typedef struct {
    unsigned http;
    char *body;
    size_t len;
    const char *content_type;
    const char *cache_control;
} reply;

/* ---- serve.c ---- */
void reply_json(reply *out, unsigned http, json_t *value); /* takes value */
void reply_error(reply *out, unsigned http, const char *status_name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void reply_library_error(reply *out, jaclip_status st); /* with jaclip_last_error() */
void reply_library_error_message(reply *out, jaclip_status st, const char *message);
struct timespec slot_deadline(const server *s); /* now + request_timeout, for take_slot_until */
bool take_slot(server *s);                       /* false after request_timeout: the caller answers 503 */
bool take_slot_until(server *s, const struct timespec *until);
void give_slot(server *s);
const char *query_arg(const request *r, const char *name);
const form_field *form_get(const request *r, const char *name, size_t nth);
bool is_form(const request *r);

/* ---- serve_api.c ---- */
void api_info(server *s, request *r, reply *out);
void api_indexes(server *s, request *r, const char *name, reply *out);
void api_embed_text(server *s, request *r, reply *out);
void api_embed_image(server *s, request *r, reply *out);
void api_classify(server *s, request *r, reply *out);
void api_search(server *s, request *r, reply *out);
void api_thumbnail(server *s, request *r, reply *out);
jaclip_status class_embeddings(jaclip_tensor **out, const jaclip_model *model, const char *const *labels,
                               size_t nlabels, const char *const *templates, size_t ntemplates);

/* ---- serve_batch.c ---- */
/* Runs the job, alone or in one library call with others queued alike; false if no model slot came
 * free within request_timeout (the caller answers 503). Otherwise job->st and the results are set. */
bool batch_run(server *s, batch_job *job);

/* ---- serve_web.c ---- */
bool web_file(const char *path, const unsigned char **data, size_t *len, const char **content_type);

#endif
