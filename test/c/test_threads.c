/* The thread rules of include/jaclip.h and docs/threading.md, on the real library and its libtorch
 * plugin: one loaded model shared by 4 threads encoding images (the demo photo and PngSuite images)
 * and texts at once, each result byte-identical to a serial run of the same call (same batch shape);
 * the model's tokenizer shared by 4 threads; models loaded and freed in several threads at once; the
 * error detail kept per thread. Needs JACLIP_TEST_MODEL. */
#include "jaclip.h"
#include "check.h"

#include <pthread.h>
#include <stdint.h>

#define THREADS 4
#define REPS 3
#define MAX_FILES 6

static const char *texts[] = {"犬の写真", "猫が座っている", "吾輩は猫である。名前はまだ無い。",
                              "a photo of an elephant", "[CLS] ＡＢＣ 😀"};
#define NTEXTS (sizeof texts / sizeof texts[0])

static const jaclip_model *model;
static const char *files[MAX_FILES];
static size_t nfiles;
static jaclip_tensor *serial_images[MAX_FILES]; /* each file encoded alone */
static jaclip_tensor *serial_batch;             /* all files in one batch */
static jaclip_tensor *serial_texts, *serial_ids;
static unsigned char *model_bytes;
static size_t model_size;

static int same(const jaclip_tensor *x, const jaclip_tensor *y)
{
    return x && y && jaclip_tensor_nbytes(x) == jaclip_tensor_nbytes(y) &&
           memcmp(jaclip_tensor_data(x), jaclip_tensor_data(y), jaclip_tensor_nbytes(x)) == 0;
}

struct result {
    int mismatches, errors;
};

static void *encoder(void *arg)
{
    int id = (int)(intptr_t)arg;
    struct result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    for (int rep = 0; rep < REPS; rep++) {
        jaclip_tensor *out = NULL;
        /* Threads start at different files so that different inputs run side by side. */
        size_t i = (size_t)(id + rep) % nfiles;
        if (jaclip_model_encode_image_files(&out, model, &files[i], 1) != JACLIP_OK)
            r->errors++;
        else
            r->mismatches += !same(out, serial_images[i]);
        jaclip_tensor_free(out);
        out = NULL;
        if (jaclip_model_encode_texts(&out, model, texts, NULL, NTEXTS) != JACLIP_OK)
            r->errors++;
        else
            r->mismatches += !same(out, serial_texts);
        jaclip_tensor_free(out);
        out = NULL;
        if (rep == id % REPS) { /* the whole batch, once per thread */
            if (jaclip_model_encode_image_files(&out, model, files, nfiles) != JACLIP_OK)
                r->errors++;
            else
                r->mismatches += !same(out, serial_batch);
            jaclip_tensor_free(out);
        }
        /* A failure here leaves this thread's message, not another's. */
        const char *missing[1] = {id % 2 ? "/nonexistent/odd.png" : "/nonexistent/even.png"};
        out = NULL;
        r->errors += jaclip_model_encode_image_files(&out, model, missing, 1) != JACLIP_ERROR_IO;
        r->mismatches += strstr(jaclip_last_error(), missing[0]) == NULL;
    }
    return r;
}

static void *tokenizer_user(void *arg)
{
    (void)arg;
    struct result *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    for (int rep = 0; rep < 50; rep++) {
        jaclip_tensor *ids = NULL;
        if (jaclip_tokenizer_encode(&ids, NULL, jaclip_model_tokenizer(model), texts, NULL, NTEXTS, 0) != JACLIP_OK)
            r->errors++;
        else
            r->mismatches += !same(ids, serial_ids);
        jaclip_tensor_free(ids);
    }
    return r;
}

/* Loads its own model from memory, encodes with it and frees it, while the others do the same. */
static void *loader(void *arg)
{
    (void)arg;
    struct result *r = calloc(1, sizeof *r);
    jaclip_model *m = NULL;
    jaclip_tensor *out = NULL;
    if (!r)
        return NULL;
    if (jaclip_model_load_memory(&m, model_bytes, model_size, NULL) != JACLIP_OK ||
        jaclip_model_encode_texts(&out, m, texts, NULL, NTEXTS) != JACLIP_OK)
        r->errors++;
    else
        r->mismatches += !same(out, serial_texts);
    jaclip_tensor_free(out);
    jaclip_model_free(m);
    return r;
}

static void run_threads(void *(*fn)(void *), const char *what)
{
    pthread_t th[THREADS];
    int started[THREADS] = {0};
    for (int i = 0; i < THREADS; i++) {
        started[i] = pthread_create(&th[i], NULL, fn, (void *)(intptr_t)i) == 0;
        CHECK(started[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        if (!started[i])
            continue;
        void *p = NULL;
        pthread_join(th[i], &p);
        struct result *r = p;
        CHECK(r != NULL);
        if (r && (r->mismatches || r->errors)) {
            fprintf(stderr, "%s thread %d: %d mismatches, %d errors\n", what, i, r->mismatches, r->errors);
            CHECK(0);
        }
        free(r);
    }
}

int main(void)
{
    const char *model_path = env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip");
    const char *project = env_or("JACLIP_PROJECT_DATA", "data"),
               *shared = env_or("JACLIP_SHARED_DATA", "../shared/data");
    static char paths[MAX_FILES][4096];
    const char *pngs[] = {"basn2c08.png", "basn6a08.png", "basi3p02.png", "tbbn0g04.png", "s01i3p01.png"};
    snprintf(paths[0], sizeof paths[0], "%s/dog.jpeg", project);
    files[nfiles++] = paths[0];
    for (size_t i = 0; i < sizeof pngs / sizeof pngs[0] && nfiles < MAX_FILES; i++) {
        snprintf(paths[nfiles], sizeof paths[nfiles], "%s/images/pngsuite/%s", shared, pngs[i]);
        FILE *f = fopen(paths[nfiles], "rb");
        if (f) {
            fclose(f);
            files[nfiles] = paths[nfiles];
            nfiles++;
        }
    }
    if (nfiles == 1)
        printf("test_threads: %s/images/pngsuite is missing: the demo photo only\n", shared);

    jaclip_model *m = NULL;
    CHECK_OK(jaclip_model_load(&m, model_path, NULL));
    if (!m)
        return check_summary("test_threads");
    model = m;
    for (size_t i = 0; i < nfiles; i++)
        CHECK_OK(jaclip_model_encode_image_files(&serial_images[i], model, &files[i], 1));
    CHECK_OK(jaclip_model_encode_image_files(&serial_batch, model, files, nfiles));
    CHECK_OK(jaclip_model_encode_texts(&serial_texts, model, texts, NULL, NTEXTS));
    CHECK_OK(jaclip_tokenizer_encode(&serial_ids, NULL, jaclip_model_tokenizer(model), texts, NULL, NTEXTS, 0));
    model_bytes = read_file(model_path, &model_size);
    CHECK(model_bytes != NULL);

    run_threads(encoder, "encoder");
    run_threads(tokenizer_user, "tokenizer");
    if (model_bytes)
        run_threads(loader, "loader");

    for (size_t i = 0; i < nfiles; i++)
        jaclip_tensor_free(serial_images[i]);
    jaclip_tensor_free(serial_batch);
    jaclip_tensor_free(serial_texts);
    jaclip_tensor_free(serial_ids);
    free(model_bytes);
    jaclip_model_free(m);
    return check_summary("test_threads");
}
