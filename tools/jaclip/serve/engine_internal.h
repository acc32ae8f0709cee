/* Private to the engine's files (engine*.c). */
#ifndef JACLIP_SERVE_ENGINE_INTERNAL_H
#define JACLIP_SERVE_ENGINE_INTERNAL_H

#include "engine.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

/* Duplicate groupings kept per view (engine_dupes.c): up to this many settings each. */
enum { ENGINE_DUPES_KEPT = 4 };
typedef struct engine_dupes_cache engine_dupes_cache;
engine_dupes_cache *engine_dupes_cache_new(void);
void engine_dupes_cache_free(engine_dupes_cache *c);

/* One load of an index file. The rows are read into memory, never mapped: a file truncated or rewritten
 * in place under the server cannot fault it (SIGBUS), it is only noticed and reloaded. */
struct engine_index {
    const char *name; /* the registry entry's */
    jaclip_index *index;
    unsigned long id; /* unique per load: keys the thumbnail cache */
    unsigned refs;    /* the registry's own reference and one per request holding it (under index_lock) */
    /* The folder the rows' files lie under (their common parent, "" for "/"), and where it resolved to
     * when loaded; NULL when no row is an absolute path. Thumbnails are served only below it. */
    char *root, *resolved_root;
    bool recorded_root; /* root is the one the index records (jaclip_index_root): labels are relative */
    jaclip_ann *ann;    /* INDEX.ann, when present and current for these rows (and no --exact); borrows index */
    engine_dupes_cache *dupes; /* engine_dupes.c: groupings of these rows, kept with the view */
};

/* What identifies a file's content for reload detection. */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    bool known;
} file_stamp;

typedef struct {
    char *name, *path;
    engine_index *current; /* under index_lock */
    file_stamp loaded;     /* the file current was loaded from */
    file_stamp ann_loaded; /* INDEX.ann as it was then (known false: absent) */
    file_stamp failed;     /* a changed file that failed to load: not retried until it changes again */
    bool reloading;        /* one request thread is loading the changed file */
} index_entry;

/* One query for engine_batch.c: a text to encode, or one query row to search an index with. */
typedef enum { BATCH_TEXT, BATCH_SEARCH, BATCH_KINDS } batch_kind;

typedef struct batch_job {
    struct batch_job *next;
    batch_kind kind;
    const engine_index *index; /* BATCH_SEARCH */
    const char *text;          /* BATCH_TEXT, len bytes */
    size_t len;
    const jaclip_tensor *query; /* BATCH_SEARCH: [1, D] */
    size_t k;
    bool ann; /* BATCH_SEARCH: through index->ann (batched only with others alike) */
    /* Results, owned by the caller after batch_run: features [1, D], or rows and scores [1, <=k]. */
    jaclip_status st;
    char message[512]; /* the library's message when st fails */
    jaclip_tensor *features, *rows, *scores;
    bool taken, done;
} batch_job;

/* One cached thumbnail (a direct-mapped slot keyed by index load, row and size). */
typedef struct {
    unsigned long index_id;
    size_t row;
    unsigned size;
    unsigned char *jpeg;
    size_t len;
} thumb_slot;

enum { THUMB_SLOTS = 512 };

struct engine {
    jaclip_model *model;
    jaclip_classifier *classifier;
    size_t dim;
    double slot_timeout;
    _Atomic double stop_deadline; /* 0: not stopping; else now_seconds() after which work stops */
    /* Model slots: at most `workers` calls run library work at once; the others wait. */
    pthread_mutex_t slot_lock;
    pthread_cond_t slot_free;
    unsigned slots_left;
    /* Batching: queued single queries, and whether a leader waits for a slot. */
    unsigned max_batch;
    pthread_mutex_t batch_lock;
    pthread_cond_t batch_wake;
    batch_job *pending;
    bool leader_waiting;
    atomic_ulong batches[BATCH_KINDS], batched_jobs[BATCH_KINDS];
    /* The registry of indexes. */
    pthread_mutex_t index_lock;
    pthread_cond_t reload_done; /* an entry's reloading went false */
    index_entry *indexes;
    size_t nindexes;
    bool force; /* --force: another model's fingerprint is served (with a warning) */
    bool exact; /* --exact: INDEX.ann files are never loaded */
    atomic_ulong reloads, reload_failures;
    /* Thumbnails. */
    pthread_mutex_t thumb_lock;
    thumb_slot thumbs[THUMB_SLOTS];
    atomic_ulong thumb_hits, thumb_misses;
};

/* engine.c */
struct timespec slot_deadline(const engine *e);                /* now + slot_timeout */
bool take_slot_until(engine *e, const struct timespec *until); /* false: timed out or stopping */
bool engine_stopped(const engine *e);                          /* past the stop deadline */
bool take_slot(engine *e, engine_result *why);                 /* false with ENGINE_BUSY / ENGINE_STOPPING */
void give_slot(engine *e);
bool fail(engine_result *why, engine_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool fail_library(engine_result *why, jaclip_status st); /* with jaclip_last_error() */

/* engine_batch.c: runs the job, alone or in one library call with others queued alike; false if no
 * model slot came free in time. Otherwise job->st and the results are set. */
bool batch_run(engine *e, batch_job *job);

/* engine_index.c */
void engine_indexes_open(engine *e, const char *const *args, size_t n);
void engine_indexes_close(engine *e);

/* engine_files.c: the row's file (label as the index stores it), opened only if it is a regular file
 * below x's root (symbolic links as docs/serve.md says); -1 with *why set (ENGINE_NOT_FOUND). */
int engine_open_row_file(const engine_index *x, const char *label, struct stat *st, engine_result *why);

/* engine_thumb.c */
void engine_thumbs_close(engine *e);

#endif
