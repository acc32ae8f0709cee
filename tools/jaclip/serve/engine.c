/* The engine: the model, its slots, and the calls that encode and search. */
#include "engine_internal.h"

#include <stdarg.h>

engine *engine_open(const engine_options *o)
{
    engine *e = xcalloc(1, sizeof *e);
    e->model = load_model(o->model);
    e->dim = (size_t)jaclip_model_embedding_dim(e->model);
    jaclip_status loaded;
    if (o->classifier_path && (loaded = jaclip_classifier_load(&e->classifier, o->classifier_path, e->model)))
        die(o->classifier_path, loaded);
    e->slot_timeout = o->slot_timeout;
    e->slots_left = o->workers;
    pthread_mutex_init(&e->slot_lock, NULL);
    pthread_cond_init(&e->slot_free, NULL);
    e->max_batch = o->max_batch;
    pthread_mutex_init(&e->batch_lock, NULL);
    pthread_cond_init(&e->batch_wake, NULL);
    pthread_mutex_init(&e->index_lock, NULL);
    pthread_cond_init(&e->reload_done, NULL);
    pthread_mutex_init(&e->thumb_lock, NULL);
    e->force = o->force;
    e->exact = o->exact;
    engine_indexes_open(e, o->index_args, o->nindex_args);
    return e;
}

void engine_close(engine *e)
{
    engine_indexes_close(e);
    engine_thumbs_close(e);
    jaclip_classifier_free(e->classifier);
    jaclip_model_free(e->model);
    free(e);
}

void engine_stop(engine *e, double deadline) { atomic_store(&e->stop_deadline, deadline); }

bool engine_stopped(const engine *e)
{
    double deadline = atomic_load(&e->stop_deadline);
    return deadline > 0 && now_seconds() >= deadline;
}

const jaclip_model *engine_model(const engine *e) { return e->model; }
const jaclip_classifier *engine_classifier(const engine *e) { return e->classifier; }
size_t engine_dim(const engine *e) { return e->dim; }

/* ---- results ---- */

bool fail(engine_result *why, engine_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why->message, sizeof why->message, fmt, ap);
    va_end(ap);
    why->code = code;
    why->st = JACLIP_OK;
    return false;
}

bool fail_library(engine_result *why, jaclip_status st)
{
    why->code = ENGINE_LIBRARY;
    why->st = st;
    snprintf(why->message, sizeof why->message, "%s", jaclip_last_error());
    return false;
}

/* ---- model slots ---- */

struct timespec slot_deadline(const engine *e)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)e->slot_timeout;
    return until;
}

bool take_slot_until(engine *e, const struct timespec *until)
{
    /* While stopping, wait no later than the stop deadline (in CLOCK_REALTIME, as until). */
    struct timespec limit = *until;
    double deadline = atomic_load(&e->stop_deadline);
    if (deadline > 0) {
        double left = deadline - now_seconds();
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        double stop_at = (double)now.tv_sec + now.tv_nsec / 1e9 + (left > 0 ? left : 0);
        if (stop_at < (double)limit.tv_sec + limit.tv_nsec / 1e9) {
            limit.tv_sec = (time_t)stop_at;
            limit.tv_nsec = (long)((stop_at - (double)limit.tv_sec) * 1e9);
        }
    }
    bool ok = !engine_stopped(e);
    pthread_mutex_lock(&e->slot_lock);
    while (ok && e->slots_left == 0) {
        ok = pthread_cond_timedwait(&e->slot_free, &e->slot_lock, &limit) == 0 || e->slots_left > 0;
        ok = ok && !engine_stopped(e);
    }
    if (ok)
        e->slots_left--;
    pthread_mutex_unlock(&e->slot_lock);
    return ok;
}

bool take_slot(engine *e, engine_result *why)
{
    struct timespec until = slot_deadline(e);
    if (take_slot_until(e, &until))
        return true;
    return engine_stopped(e) ? fail(why, ENGINE_STOPPING, "shutting down")
                             : fail(why, ENGINE_BUSY, "no model slot free in time");
}

void give_slot(engine *e)
{
    pthread_mutex_lock(&e->slot_lock);
    e->slots_left++;
    pthread_cond_signal(&e->slot_free);
    pthread_mutex_unlock(&e->slot_lock);
}

/* ---- work ---- */

static bool busy_or_stopping(engine *e, engine_result *why)
{
    return engine_stopped(e) ? fail(why, ENGINE_STOPPING, "shutting down")
                             : fail(why, ENGINE_BUSY, "no model slot free in time");
}

/* A finished job's outcome; its results stay in the job. */
static bool job_result(engine *e, bool served, const batch_job *job, engine_result *why)
{
    if (!served)
        return busy_or_stopping(e, why);
    if (job->st) {
        why->code = ENGINE_LIBRARY;
        why->st = job->st;
        snprintf(why->message, sizeof why->message, "%s", job->message);
        return false;
    }
    return true;
}

bool engine_encode_texts(engine *e, const char *const *texts, const size_t *lengths, size_t n, jaclip_tensor **out,
                         engine_result *why)
{
    *out = NULL;
    if (n == 1) {
        batch_job job = {.kind = BATCH_TEXT, .text = texts[0], .len = lengths[0]};
        bool ok = job_result(e, batch_run(e, &job), &job, why);
        *out = job.features;
        return ok;
    }
    if (!take_slot(e, why))
        return false;
    jaclip_status st = jaclip_model_encode_texts(out, e->model, (const char **)texts, lengths, n);
    give_slot(e);
    return st ? fail_library(why, st) : true;
}

bool engine_encode_images(engine *e, const void *const *data, const size_t *sizes, size_t n, jaclip_tensor **out,
                          engine_result *why)
{
    *out = NULL;
    if (!take_slot(e, why))
        return false;
    jaclip_status st = jaclip_model_encode_image_buffers(out, e->model, (const void **)data, sizes, n);
    give_slot(e);
    return st ? fail_library(why, st) : true;
}

bool engine_encode_image_sized(engine *e, const void *data, size_t size, jaclip_tensor **out, uint32_t *width,
                               uint32_t *height, engine_result *why)
{
    *out = NULL;
    *width = *height = 0;
    if (!take_slot(e, why))
        return false;
    /* The model's own flags are the library's default (serve has no --exif-transpose): decoding here
     * and encoding the decoded image is what jaclip_model_encode_image_buffers does. */
    jaclip_image *image = NULL;
    jaclip_status st = jaclip_image_load_memory(&image, data, size, 0, JACLIP_IMAGE_DEFAULT);
    if (!st) {
        *width = jaclip_image_width(image);
        *height = jaclip_image_height(image);
        st = jaclip_model_encode_images(out, e->model, (const jaclip_image *const *)&image, 1);
    }
    give_slot(e);
    if (st)
        fail_library(why, st); /* the message before freeing: jaclip_last_error is per thread */
    jaclip_image_free(image);
    return !st;
}

bool engine_search(engine *e, engine_index *x, const jaclip_tensor *query, size_t k, bool exact, bool *used_ann,
                   jaclip_tensor **rows, jaclip_tensor **scores, engine_result *why)
{
    batch_job job = {.kind = BATCH_SEARCH, .index = x, .query = query, .k = k, .ann = !exact && x->ann};
    *used_ann = job.ann;
    bool ok = job_result(e, batch_run(e, &job), &job, why);
    *rows = job.rows;
    *scores = job.scores;
    return ok;
}

bool engine_search_with(engine *e, engine_index *x, const jaclip_tensor *query, size_t k,
                        const jaclip_search_options *options, jaclip_tensor **rows, jaclip_tensor **scores,
                        engine_result *why)
{
    *rows = *scores = NULL;
    if (!take_slot(e, why))
        return false;
    jaclip_status st = jaclip_index_search_with(rows, scores, x->index, query, k, options);
    if (st)
        fail_library(why, st);
    give_slot(e);
    return !st;
}

void engine_metrics(engine *e, FILE *f)
{
    static const char *const batch_kinds[BATCH_KINDS] = {"text", "search"};
    fputs("# HELP jaclip_batches_total Library calls made for batched queries (serve --max-batch).\n"
          "# TYPE jaclip_batches_total counter\n",
          f);
    for (int k = 0; k < BATCH_KINDS; k++)
        fprintf(f, "jaclip_batches_total{kind=\"%s\"} %lu\n", batch_kinds[k], atomic_load(&e->batches[k]));
    fputs("# HELP jaclip_batched_queries_total Queries answered by those calls.\n"
          "# TYPE jaclip_batched_queries_total counter\n",
          f);
    for (int k = 0; k < BATCH_KINDS; k++)
        fprintf(f, "jaclip_batched_queries_total{kind=\"%s\"} %lu\n", batch_kinds[k], atomic_load(&e->batched_jobs[k]));
    fprintf(f, "# TYPE jaclip_thumbnail_cache_hits_total counter\njaclip_thumbnail_cache_hits_total %lu\n",
            atomic_load(&e->thumb_hits));
    fprintf(f, "# TYPE jaclip_thumbnail_cache_misses_total counter\njaclip_thumbnail_cache_misses_total %lu\n",
            atomic_load(&e->thumb_misses));
    fputs("# HELP jaclip_index_reloads_total Index files reloaded after they changed, by result (a failed\n"
          "# reload keeps the rows loaded before; the log says why).\n"
          "# TYPE jaclip_index_reloads_total counter\n",
          f);
    fprintf(f, "jaclip_index_reloads_total{result=\"ok\"} %lu\njaclip_index_reloads_total{result=\"failed\"} %lu\n",
            atomic_load(&e->reloads), atomic_load(&e->reload_failures));
}
