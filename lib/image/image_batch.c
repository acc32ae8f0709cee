/* A batch of images decoded and preprocessed for the model. Decoding and resizing a photo takes
 * 50-100 ms on one core, a third of the model's time per image at batch 8, and the model cannot use the
 * cores while it waits: each chunk is decoded and preprocessed by one thread per usable core (at most
 * 16), within a memory budget, and then encoded by the caller. */
#include "image/image.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decoders running at once hold at most this much (by their headers' estimate); an image estimated
 * over it is decoded alone. Peak memory is then max(budget, one image), whatever the batch size. */
#define JC_DECODE_BUDGET ((uint64_t)1 << 30)

typedef struct decode_job {
    const jc_image_batch *batch;
    size_t first, count;
    float *pixels; /* [count, 3, S, S] */
    size_t next;   /* next image to take, atomically */
    pthread_mutex_t lock;
    pthread_cond_t budget_freed;
    uint64_t budget_in_use; /* estimated bytes held by the decoders running now */
    size_t decoding;        /* how many decoders run now */
    jaclip_status status;   /* of the failure with the lowest index, for a stable message */
    size_t failed;
    char message[1024];
} decode_job;

/* Waits until bytes fit in the budget beside the decoders running now, or until none runs. */
static void budget_acquire(decode_job *job, uint64_t bytes)
{
    pthread_mutex_lock(&job->lock);
    while (job->decoding > 0 &&
           bytes > JC_DECODE_BUDGET - (job->budget_in_use < JC_DECODE_BUDGET ? job->budget_in_use : JC_DECODE_BUDGET))
        pthread_cond_wait(&job->budget_freed, &job->lock);
    job->budget_in_use += bytes;
    job->decoding++;
    pthread_mutex_unlock(&job->lock);
}

static void budget_release(decode_job *job, uint64_t bytes)
{
    pthread_mutex_lock(&job->lock);
    job->budget_in_use -= bytes;
    job->decoding--;
    pthread_cond_broadcast(&job->budget_freed);
    pthread_mutex_unlock(&job->lock);
}

/* Decodes file or buffer i within the budget. The header is read first, so an image the model could
 * not resize (too elongated) or over the pixel limit is refused before decoding. */
static jaclip_status decode_source(decode_job *job, size_t i, jaclip_image **image, uint64_t *held)
{
    const jc_image_batch *b = job->batch;
    uint8_t *file_bytes = NULL;
    const uint8_t *bytes;
    size_t size;
    jc_image_header header;
    jaclip_status st;
    const char *path = b->paths ? b->paths[i] : NULL;
    if (b->paths && !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "paths[%zu] is NULL", i);
    if (path) {
        st = jc_image_read_file(path, b->max_pixels, b->size, &file_bytes, &size, &header);
        bytes = file_bytes;
    } else {
        bytes = b->data[i];
        size = b->sizes[i];
        st = bytes || size == 0 ? jc_image_check_header(bytes, size, b->max_pixels, b->size, &header)
                                : jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data[%zu] is NULL", i);
    }
    if (st == JACLIP_OK) {
        *held = jc_image_header_decode_bytes(&header) + (path ? size : 0);
        budget_acquire(job, *held);
        st = jaclip_image_load_memory(image, bytes, size, b->max_pixels, b->flags);
    }
    free(file_bytes);
    if (st && path && strncmp(jaclip_last_error(), path, strlen(path)) != 0)
        jc_fail_prefix(st, "%s: ", path);
    else if (st && !path)
        jc_fail_prefix(st, "image buffer %zu: ", i);
    return st;
}

static void decode_one(decode_job *job, size_t k)
{
    const jc_image_batch *b = job->batch;
    size_t i = job->first + k;
    jaclip_image *image = NULL;
    const jaclip_image *decoded = NULL;
    jaclip_tensor *px = NULL;
    jaclip_status st = JACLIP_OK;
    uint64_t held = 0;
    if (b->images)
        decoded = b->images[i];
    else
        st = decode_source(job, i, &image, &held);
    if (st == JACLIP_OK) {
        const jaclip_image *one[1] = {decoded ? decoded : image};
        st = jaclip_image_preprocess(&px, one, 1, b->size, b->mean, b->std);
        if (st == JACLIP_OK)
            memcpy(job->pixels + k * (px->numel), px->data, px->numel * sizeof(float));
    }
    jaclip_tensor_free(px);
    jaclip_image_free(image);
    if (held)
        budget_release(job, held);
    if (b->item_status) {
        b->item_status[k] = st;
        b->item_message[k] = st ? strdup(jaclip_last_error()) : NULL;
        return;
    }
    if (st) {
        /* The message is thread-local: carry it to the calling thread. */
        pthread_mutex_lock(&job->lock);
        if (job->status == JACLIP_OK || k < job->failed) {
            job->status = st;
            job->failed = k;
            snprintf(job->message, sizeof job->message, "%s", jaclip_last_error());
        }
        pthread_mutex_unlock(&job->lock);
    }
}

static void *decode_worker(void *arg)
{
    decode_job *job = arg;
    for (;;) {
        size_t k = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
        if (k >= job->count)
            return NULL;
        decode_one(job, k);
    }
}

jaclip_status jc_image_batch_preprocess(const jc_image_batch *batch, size_t first, size_t count, float *pixels)
{
    decode_job one = {.batch = batch,
                      .first = first,
                      .count = count,
                      .pixels = pixels,
                      .lock = PTHREAD_MUTEX_INITIALIZER,
                      .budget_freed = PTHREAD_COND_INITIALIZER};
    decode_job *job = &one;
    enum { MAX_DECODERS = 16 };
    pthread_t threads[MAX_DECODERS];
    size_t helpers = jc_usable_cores();
    if (helpers > job->count)
        helpers = job->count;
    if (helpers > MAX_DECODERS)
        helpers = MAX_DECODERS;
    size_t started = 0;
    /* This thread decodes too; the others are extra hands, so a failed pthread_create only slows it. */
    for (; started + 1 < helpers; started++)
        if (pthread_create(&threads[started], NULL, decode_worker, job) != 0)
            break;
    decode_worker(job);
    for (size_t t = 0; t < started; t++)
        pthread_join(threads[t], NULL);
    if (job->status)
        return jc_fail(job->status, "%s", job->message);
    return JACLIP_OK;
}
