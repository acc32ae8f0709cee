/* The engine of `jaclip serve`: the model and its slots, request batching, the registry of loaded
 * indexes and the thumbnail cache. It knows nothing of HTTP or JSON: routes/ calls it, it calls the
 * library. Every function is safe to call from any number of request threads at once. */
#ifndef JACLIP_SERVE_ENGINE_H
#define JACLIP_SERVE_ENGINE_H

#include "../cli.h"

#include <stdio.h>

typedef struct engine engine;
typedef struct engine_index engine_index; /* one loaded index, shared by the requests that use it */

typedef struct {
    model_args *model;
    const char *classifier_path;   /* NULL: none */
    const char *const *index_args; /* "[NAME=]FILE" each */
    size_t nindex_args;
    unsigned workers;    /* model slots */
    unsigned max_batch;  /* single queries per batched library call */
    double slot_timeout; /* longest wait for a model slot, seconds */
    bool exact;          /* --exact: never use INDEX.ann */
    bool force;          /* --force: serve indexes recording another model's fingerprint (every index) */
} engine_options;

/* Why a call failed: the library's status and message, or one of the engine's own. */
typedef enum {
    ENGINE_OK,
    ENGINE_LIBRARY,   /* st and message: the library refused or failed */
    ENGINE_BUSY,      /* no model slot came free in time */
    ENGINE_STOPPING,  /* the server is stopping: the work was abandoned between library calls */
    ENGINE_NOT_FOUND, /* no such index, row or file */
    ENGINE_INVALID,   /* a bad argument (message says which) */
    ENGINE_TOO_MUCH   /* over a documented work limit */
} engine_code;

typedef struct {
    engine_code code;
    jaclip_status st;
    char message[512];
} engine_result;

/* Loads the model, the classifier and the indexes; exits with a message as the CLI does on failure. */
engine *engine_open(const engine_options *o);
void engine_close(engine *e);
/* From deadline (now_seconds() clock) on, refuse new work and abandon long work (classify) at its next
 * library call: those requests get ENGINE_STOPPING. Work running before the deadline goes on. */
void engine_stop(engine *e, double deadline);

const jaclip_model *engine_model(const engine *e);
const jaclip_classifier *engine_classifier(const engine *e); /* NULL without --classifier */
size_t engine_dim(const engine *e);

/* ---- indexes (engine_index.c) ---- */
size_t engine_index_count(const engine *e);
/* The index called name (NULL: the only one loaded), held until engine_index_put; NULL with *why set. */
engine_index *engine_index_get(engine *e, const char *name, engine_result *why);
engine_index *engine_index_get_at(engine *e, size_t i);
void engine_index_put(engine *e, engine_index *x);
const char *engine_index_name(const engine_index *x);
/* Reloads every index from its file now (SIGHUP, POST /v1/admin/reload), changed or not, one at a
 * time; requests holding an old view finish on it, later ones get the new one. A file that fails to
 * load (or is another model's, without --force) leaves the old view serving. each (may be NULL) is
 * called per index with the view now served, whether it was reloaded, and why not. Returns how many
 * failed. */
typedef void (*engine_reload_fn)(void *ctx, const engine_index *x, bool reloaded, const char *why);
size_t engine_reload_all(engine *e, engine_reload_fn each, void *ctx);
const jaclip_index *engine_index_handle(const engine_index *x);

/* ---- work: each takes a model slot (waiting up to slot_timeout); false with *why set ---- */
/* Features [n, D] of texts; a single text may be batched with others (engine_batch.c). */
bool engine_encode_texts(engine *e, const char *const *texts, const size_t *lengths, size_t n, jaclip_tensor **out,
                         engine_result *why);
bool engine_encode_images(engine *e, const void *const *data, const size_t *sizes, size_t n, jaclip_tensor **out,
                          engine_result *why);
/* Features [1, D] of one encoded image and its decoded size (no EXIF transpose), for Immich's
 * /predict: decoded once, inside the model slot. */
bool engine_encode_image_sized(engine *e, const void *data, size_t size, jaclip_tensor **out, uint32_t *width,
                               uint32_t *height, engine_result *why);
/* Top k rows and scores [1, <=k] of a [1, D] query in x; may be batched with other searches of x.
 * Through x's INDEX.ann when it has a current one and exact is false (*used_ann says which answered;
 * a row the ANN misses is -1). */
bool engine_search(engine *e, engine_index *x, const jaclip_tensor *query, size_t k, bool exact, bool *used_ann,
                   jaclip_tensor **rows, jaclip_tensor **scores, engine_result *why);
/* jaclip_index_search_with (filters, offset, threshold: exact, never batched, never the ANN). */
bool engine_search_with(engine *e, engine_index *x, const jaclip_tensor *query, size_t k,
                        const jaclip_search_options *options, jaclip_tensor **rows, jaclip_tensor **scores,
                        engine_result *why);
/* Every duplicate group of x at threshold (jaclip_index_duplicates), grouped once per view and setting
 * and kept with the view (4 settings; past those *owned is set and the caller frees it).
 * The result stays valid while x is held. One grouping of a view runs at a time; others wait for it.
 * NULL with *why set when the library fails. */
const jaclip_dupes *engine_dupes(engine_index *x, float threshold, bool exact_only, jaclip_dupes **owned,
                                 engine_result *why);
/* Whether x is searched through an INDEX.ann, and its kind's name. */
bool engine_index_has_ann(const engine_index *x);
const char *engine_index_ann_kind(const engine_index *x);

/* ---- classify (engine_classify.c) ---- */
typedef struct {
    const char *const *labels; /* nlabels == 0: the server's classifier */
    size_t nlabels;
    const char *const *templates; /* each with one "{}"; ntemplates == 0: "{}" */
    size_t ntemplates;
    const void *image;
    size_t image_size;
    double scale;
} classify_request;

/* Probabilities [1, C] and the classes ranked by cosine, best first (int64 [1, C]). */
bool engine_classify(engine *e, const classify_request *q, jaclip_tensor **probs, jaclip_tensor **order,
                     engine_result *why);

/* ---- thumbnails (engine_thumb.c) ---- */
/* A JPEG (malloc'd) of row's file, resized to size and centre-cropped; from a cache when it can. */
bool engine_thumbnail(engine *e, engine_index *x, size_t row, unsigned size, unsigned char **jpeg, size_t *len,
                      engine_result *why);

/* ---- original files (engine_files.c) ---- */
/* Row's own file, opened for reading under the rules of thumbnails (a regular file below the index's
 * folder): *fd (the caller closes it), its size, and its media type from its first bytes (an image
 * type, or application/octet-stream). Takes no model slot. */
bool engine_original(engine *e, engine_index *x, size_t row, int *fd, size_t *size, const char **type,
                     engine_result *why);

/* Prometheus lines of the engine's counters (batches, thumbnail cache, index reloads). */
void engine_metrics(engine *e, FILE *f);

#endif
