/* Request batching (the engine of `jaclip serve`): single text encodes, and single-row searches of one index, that
 * queue while the model slots are busy are answered by one library call. The text tower reads all its
 * weights per call whatever the batch, and the index scan reads every row once per query block, so a
 * batch of n costs far less than n calls. A queued job whose deadline passes unserved gets a 503.
 *
 * Combining: the first queued job with no leader ahead of it leads. It waits for a slot, then takes up
 * to max_batch queued jobs of its kind (and index), runs them, and wakes their threads. Jobs of another
 * kind stay queued and elect the next leader. */
#include "engine_internal.h"

#include <time.h>

static bool same_batch(const batch_job *a, const batch_job *b)
{
    return a->kind == b->kind && a->index == b->index && a->ann == b->ann;
}

static void unlink_job(engine *s, batch_job *job)
{
    for (batch_job **p = &s->pending; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            return;
        }
}

static void fail_job(batch_job *job, jaclip_status st)
{
    job->st = st;
    snprintf(job->message, sizeof job->message, "%s", jaclip_last_error());
}

/* The first `k` columns of row `i` of a [n, m] tensor (k <= m), as a new [1, k] tensor. */
static jaclip_status copy_prefix(jaclip_tensor **out, const jaclip_tensor *t, size_t i, size_t k)
{
    size_t m = (size_t)jaclip_tensor_dim(t, 1), width = jaclip_tensor_dtype(t) == JACLIP_DTYPE_INT64 ? 8 : 4;
    const int64_t shape[2] = {1, (int64_t)k};
    return jaclip_tensor_create(out, jaclip_tensor_dtype(t), 2, shape,
                                (const char *)jaclip_tensor_data(t) + i * m * width);
}

static void run_alone(engine *s, batch_job *job)
{
    if (job->kind == BATCH_TEXT) {
        if ((job->st = jaclip_model_encode_texts(&job->features, s->model, &job->text, &job->len, 1)))
            fail_job(job, job->st);
    } else if ((job->st = job->ann
                              ? jaclip_ann_search(&job->rows, &job->scores, job->index->ann, job->query, job->k)
                              : jaclip_index_search(&job->rows, &job->scores, job->index->index, job->query, job->k))) {
        fail_job(job, job->st);
    }
}

/* One library call for jobs[0..n) (all of one kind and index). If it fails, each job runs alone, so
 * that one bad query does not fail its neighbours and each gets its own message. */
static void run_jobs(engine *s, batch_job **jobs, size_t n)
{
    if (n == 1) {
        run_alone(s, jobs[0]);
        return;
    }
    jaclip_status st = JACLIP_OK;
    if (jobs[0]->kind == BATCH_TEXT) {
        const char **texts = xcalloc(n, sizeof *texts);
        size_t *lengths = xcalloc(n, sizeof *lengths);
        for (size_t i = 0; i < n; i++)
            texts[i] = jobs[i]->text, lengths[i] = jobs[i]->len;
        jaclip_tensor *features = NULL;
        st = jaclip_model_encode_texts(&features, s->model, texts, lengths, n);
        for (size_t i = 0; !st && i < n; i++)
            st = copy_prefix(&jobs[i]->features, features, i, (size_t)jaclip_tensor_dim(features, 1));
        jaclip_tensor_free(features);
        free(texts);
        free(lengths);
    } else {
        size_t d = s->dim, kmax = 0;
        const int64_t shape[2] = {(int64_t)n, (int64_t)d};
        jaclip_tensor *queries = NULL, *rows = NULL, *scores = NULL;
        st = jaclip_tensor_create(&queries, JACLIP_DTYPE_FLOAT32, 2, shape, NULL);
        for (size_t i = 0; !st && i < n; i++) {
            const jaclip_tensor *q = jobs[i]->query;
            if (jaclip_tensor_dim(q, 0) != 1 || (size_t)jaclip_tensor_dim(q, 1) != d) {
                st = JACLIP_ERROR_SHAPE; /* cannot stack: each runs alone and reports its own shape */
                break;
            }
            memcpy((float *)jaclip_tensor_data(queries) + i * d, jaclip_tensor_data(q), d * sizeof(float));
            kmax = jobs[i]->k > kmax ? jobs[i]->k : kmax;
        }
        /* The top k of a query is the prefix of its top kmax: the order is total (score, then row); through
         * an ANN, the rows found among the same candidate lists (IVF visits nprobe lists whatever k). */
        if (!st)
            st = jobs[0]->ann ? jaclip_ann_search(&rows, &scores, jobs[0]->index->ann, queries, kmax)
                              : jaclip_index_search(&rows, &scores, jobs[0]->index->index, queries, kmax);
        for (size_t i = 0; !st && i < n; i++) {
            size_t k =
                jobs[i]->k < (size_t)jaclip_tensor_dim(rows, 1) ? jobs[i]->k : (size_t)jaclip_tensor_dim(rows, 1);
            if (!(st = copy_prefix(&jobs[i]->rows, rows, i, k)))
                st = copy_prefix(&jobs[i]->scores, scores, i, k);
        }
        jaclip_tensor_free(queries);
        jaclip_tensor_free(rows);
        jaclip_tensor_free(scores);
    }
    if (!st)
        return;
    for (size_t i = 0; i < n; i++) {
        batch_job *job = jobs[i];
        jaclip_tensor_free(job->features), jaclip_tensor_free(job->rows), jaclip_tensor_free(job->scores);
        job->features = job->rows = job->scores = NULL;
        run_alone(s, job);
    }
}

bool batch_run(engine *s, batch_job *job)
{
    struct timespec until = slot_deadline(s);
    job->next = NULL, job->taken = job->done = false, job->st = JACLIP_OK, job->message[0] = '\0';
    job->features = job->rows = job->scores = NULL;

    pthread_mutex_lock(&s->batch_lock);
    batch_job **tail = &s->pending;
    while (*tail)
        tail = &(*tail)->next;
    *tail = job;
    bool served = true;
    while (!job->done) {
        if (!job->taken && !s->leader_waiting) {
            s->leader_waiting = true;
            pthread_mutex_unlock(&s->batch_lock);
            bool slot = take_slot_until(s, &until);
            pthread_mutex_lock(&s->batch_lock);
            s->leader_waiting = false;
            if (!slot) {
                unlink_job(s, job);
                served = false;
                break;
            }
            batch_job **jobs = xcalloc(s->max_batch, sizeof *jobs);
            size_t n = 0;
            unlink_job(s, job);
            job->taken = true;
            jobs[n++] = job;
            for (batch_job **p = &s->pending; *p && n < s->max_batch;) {
                batch_job *j = *p;
                if (same_batch(j, job)) { /* queued jobs are never taken */
                    *p = j->next;
                    j->taken = true;
                    jobs[n++] = j;
                } else {
                    p = &j->next;
                }
            }
            pthread_cond_broadcast(&s->batch_wake); /* another kind may lead now */
            pthread_mutex_unlock(&s->batch_lock);
            run_jobs(s, jobs, n);
            give_slot(s);
            atomic_fetch_add(&s->batches[job->kind], 1);
            atomic_fetch_add(&s->batched_jobs[job->kind], n);
            pthread_mutex_lock(&s->batch_lock);
            for (size_t i = 0; i < n; i++)
                jobs[i]->done = true;
            free(jobs);
            break;
        }
        if (job->taken) {
            pthread_cond_wait(&s->batch_wake, &s->batch_lock);
        } else if (pthread_cond_timedwait(&s->batch_wake, &s->batch_lock, &until) != 0 && !job->taken) {
            unlink_job(s, job);
            served = false;
            break;
        }
    }
    pthread_cond_broadcast(&s->batch_wake);
    pthread_mutex_unlock(&s->batch_lock);
    return served;
}
