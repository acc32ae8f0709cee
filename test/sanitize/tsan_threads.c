/* The libtorch-free objects shared by 4 threads under ThreadSanitizer (make test-tsan): one tokenizer,
 * image bytes decoded and preprocessed in every thread, one decoded image, similarity inputs, an
 * index large enough to be scanned by its own worker threads, and the per-thread error message.
 * Every thread's results must equal the serial ones byte for byte; TSan reports any data race. */
#include "jaclip.h"
#include "check.h"

#include <pthread.h>
#include <stdint.h>

#define THREADS 4
#define REPS 6

static const char *texts[] = {"吾輩は猫である。名前はまだ無い。", "犬が座っている", "ΟΔΟΣ İstanbul [SEP] <S> x",
                              "ＨＥＬＬＯ　ｗｏｒｌｄ [CLS]", ""};
#define NTEXTS (sizeof texts / sizeof texts[0])
#define MAX_IMAGES 4

static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float stdev[3] = {0.26862954f, 0.26130258f, 0.27577711f};

static struct {
    jaclip_tokenizer *tok;
    jaclip_tensor *ids;               /* serial tokenizer result */
    unsigned char *bytes[MAX_IMAGES]; /* encoded images, read once */
    size_t sizes[MAX_IMAGES];
    size_t nimages;
    jaclip_tensor *pixels[MAX_IMAGES]; /* serial preprocess result of each */
    jaclip_image *shared_image;
    jaclip_tensor *crop;               /* serial resize_crop of shared_image */
    jaclip_tensor *a, *b, *sim, *prob; /* similarity inputs and serial results */
    jaclip_index *index;
    jaclip_tensor *queries, *hits;
} g;

static int same(const jaclip_tensor *x, const jaclip_tensor *y)
{
    return x && y && jaclip_tensor_nbytes(x) == jaclip_tensor_nbytes(y) &&
           memcmp(jaclip_tensor_data(x), jaclip_tensor_data(y), jaclip_tensor_nbytes(x)) == 0;
}

static jaclip_tensor *preprocess_bytes(size_t i)
{
    jaclip_image *img = NULL;
    jaclip_tensor *t = NULL;
    if (jaclip_image_load_memory(&img, g.bytes[i], g.sizes[i], 0, 0) == JACLIP_OK) {
        const jaclip_image *batch[1] = {img};
        jaclip_image_preprocess(&t, batch, 1, 224, mean, stdev);
    }
    jaclip_image_free(img);
    return t;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg, bad = 0;
    for (int rep = 0; rep < REPS; rep++) {
        jaclip_tensor *t = NULL, *u = NULL;
        bad += jaclip_tokenizer_encode(&t, NULL, g.tok, texts, NULL, NTEXTS, 0) != JACLIP_OK || !same(t, g.ids);
        jaclip_tensor_free(t);
        t = preprocess_bytes((size_t)(id + rep) % g.nimages);
        bad += !same(t, g.pixels[(size_t)(id + rep) % g.nimages]);
        jaclip_tensor_free(t);
        t = NULL;
        bad += jaclip_image_resize_crop(&t, g.shared_image, 224) != JACLIP_OK || !same(t, g.crop);
        jaclip_tensor_free(t);
        t = NULL;
        bad += jaclip_similarity(&t, g.a, g.b, JACLIP_SIMILARITY_COSINE, 100.0f) != JACLIP_OK || !same(t, g.sim);
        bad += jaclip_probabilities(&u, g.a, g.b, JACLIP_SIMILARITY_COSINE, 100.0f) != JACLIP_OK || !same(u, g.prob);
        jaclip_tensor_free(t);
        jaclip_tensor_free(u);
        t = NULL;
        bad += jaclip_index_search(&t, NULL, g.index, g.queries, 5) != JACLIP_OK || !same(t, g.hits);
        jaclip_tensor_free(t);
        /* The error detail is per thread: each sees its own. */
        char want[64];
        snprintf(want, sizeof want, "%d", 4097 + id);
        bad += jaclip_tokenizer_encode(&t, NULL, g.tok, texts, NULL, 1, (size_t)(4097 + id)) !=
               JACLIP_ERROR_INVALID_ARGUMENT;
        bad += strstr(jaclip_last_error(), want) == NULL;
    }
    return (void *)(intptr_t)bad;
}

int main(void)
{
    const char *project = getenv("JACLIP_PROJECT_DATA"), *shared = getenv("JACLIP_SHARED_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/rinna-japanese-spiece.model", project ? project : "data");
    CHECK_OK(jaclip_tokenizer_load(&g.tok, path));
    CHECK_OK(jaclip_tokenizer_encode(&g.ids, NULL, g.tok, texts, NULL, NTEXTS, 0));

    const char *images[MAX_IMAGES] = {"%s/dog.jpeg", "%s/images/pngsuite/basn6a08.png",
                                      "%s/images/pngsuite/basi3p02.png", "%s/images/pngsuite/tbbn0g04.png"};
    for (size_t i = 0; i < MAX_IMAGES; i++) {
        snprintf(path, sizeof path, images[i],
                 i == 0 ? (project ? project : "data") : (shared ? shared : "../shared/data"));
        size_t size = 0;
        unsigned char *bytes = read_file(path, &size);
        if (!bytes) {
            printf("tsan_threads: %s is missing, not used\n", path);
            continue;
        }
        g.bytes[g.nimages] = bytes;
        g.sizes[g.nimages] = size;
        g.pixels[g.nimages] = preprocess_bytes(g.nimages);
        CHECK(g.pixels[g.nimages] != NULL);
        g.nimages++;
    }
    CHECK(g.nimages >= 1);
    CHECK_OK(jaclip_image_load_memory(&g.shared_image, g.bytes[0], g.sizes[0], 0, 0));
    CHECK_OK(jaclip_image_resize_crop(&g.crop, g.shared_image, 224));

    /* Similarity inputs, and an index of 20000 rows: big enough for its parallel scan. */
    enum { ROWS = 20000, DIM = 32, Q = 3 };
    int64_t sa[2] = {7, DIM}, sb[2] = {ROWS, DIM}, sq[2] = {Q, DIM};
    CHECK_OK(jaclip_tensor_create(&g.a, JACLIP_DTYPE_FLOAT32, 2, sa, NULL));
    CHECK_OK(jaclip_tensor_create(&g.b, JACLIP_DTYPE_FLOAT32, 2, sb, NULL));
    CHECK_OK(jaclip_tensor_create(&g.queries, JACLIP_DTYPE_FLOAT32, 2, sq, NULL));
    if (!g.a || !g.b || !g.queries)
        return check_summary("tsan_threads");
    uint32_t seed = 7;
    jaclip_tensor *fill[3] = {g.a, g.b, g.queries};
    for (int k = 0; k < 3; k++) {
        float *d = jaclip_tensor_data_mut(fill[k]);
        for (size_t i = 0; i < jaclip_tensor_numel(fill[k]); i++) {
            seed = seed * 1664525u + 1013904223u;
            d[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
        }
    }
    CHECK_OK(jaclip_similarity(&g.sim, g.a, g.b, JACLIP_SIMILARITY_COSINE, 100.0f));
    CHECK_OK(jaclip_probabilities(&g.prob, g.a, g.b, JACLIP_SIMILARITY_COSINE, 100.0f));
    char **labels = malloc(ROWS * sizeof *labels);
    CHECK_OK(jaclip_index_create(&g.index, DIM));
    if (labels && g.index) {
        for (size_t i = 0; i < ROWS; i++) {
            labels[i] = malloc(16);
            snprintf(labels[i], 16, "row%zu", i);
        }
        CHECK_OK(jaclip_index_add(g.index, g.b, (const char *const *)labels));
        for (size_t i = 0; i < ROWS; i++)
            free(labels[i]);
    }
    free(labels);
    CHECK_OK(jaclip_index_search(&g.hits, NULL, g.index, g.queries, 5));

    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < THREADS; i++) {
        void *bad = NULL;
        pthread_join(th[i], &bad);
        CHECK(bad == NULL);
    }

    jaclip_tokenizer_free(g.tok);
    jaclip_tensor_free(g.ids);
    for (size_t i = 0; i < g.nimages; i++) {
        free(g.bytes[i]);
        jaclip_tensor_free(g.pixels[i]);
    }
    jaclip_image_free(g.shared_image);
    jaclip_tensor_free(g.crop);
    jaclip_tensor *all[6] = {g.a, g.b, g.sim, g.prob, g.queries, g.hits};
    for (int i = 0; i < 6; i++)
        jaclip_tensor_free(all[i]);
    jaclip_index_free(g.index);
    return check_summary("tsan_threads");
}
