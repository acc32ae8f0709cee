/* Text-to-image search: embeds every JPEG/PNG in a folder with one jaclip_model_encode_image_files
 * call and prints them ranked by cosine similarity to a Japanese query.
 *
 *   search MODEL DIR QUERY [K]      e.g.  search model.jaclip photos/ 海辺の犬 5
 *
 * Output: one line per hit, "RANK<TAB>SCORE<TAB>PATH", best first; SCORE is the cosine in [-1, 1]. */
#include "jaclip.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int fail(jaclip_status status, const char *what)
{
    if (what)
        fprintf(stderr, "search: %s: %s (%s)\n", what, jaclip_last_error(), jaclip_status_string(status));
    else
        fprintf(stderr, "search: %s (%s)\n", jaclip_last_error(), jaclip_status_string(status));
    return 1;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The image files of dir, sorted, as "dir/name" strings the caller frees. */
static char **list_images(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **paths = NULL;
    size_t n = 0, cap = 0;
    if (!d)
        return NULL;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name))
            continue;
        if (n == cap) {
            char **grown = realloc(paths, (cap = cap ? cap * 2 : 16) * sizeof *paths);
            if (!grown)
                break;
            paths = grown;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        if (!(paths[n] = malloc(len)))
            break;
        snprintf(paths[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (n)
        qsort(paths, n, sizeof *paths, by_name);
    *count = n;
    return paths;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL DIR QUERY [K]\n", argv[0]);
        return 2;
    }
    size_t k = argc == 5 ? strtoul(argv[4], NULL, 10) : 10, n = 0;
    char **paths = list_images(argv[2], &n);
    if (!n) {
        fprintf(stderr, "search: no .jpg, .jpeg or .png files in %s\n", argv[2]);
        free(paths);
        return 1;
    }
    if (k == 0)
        k = n;

    int rc = 1;
    jaclip_status st;
    jaclip_model *model = NULL;
    jaclip_tensor *images = NULL, *query = NULL, *scores = NULL, *idx = NULL, *val = NULL;
    const char *texts[1] = {argv[3]};

    if ((st = jaclip_model_load(&model, argv[1], NULL)) != JACLIP_OK) {
        rc = fail(st, argv[1]);
        goto done;
    }
    /* One batch for the whole folder; a failure names the file. */
    if ((st = jaclip_model_encode_image_files(&images, model, (const char *const *)paths, n)) != JACLIP_OK ||
        (st = jaclip_model_encode_texts(&query, model, texts, NULL, 1)) != JACLIP_OK ||
        (st = jaclip_similarity(&scores, query, images, JACLIP_SIMILARITY_COSINE, 1.0f)) != JACLIP_OK ||
        (st = jaclip_topk(&idx, &val, scores, k)) != JACLIP_OK) {
        rc = fail(st, NULL);
        goto done;
    }
    const int64_t *order = jaclip_tensor_data(idx);
    const float *score = jaclip_tensor_data(val);
    for (int64_t i = 0; i < jaclip_tensor_dim(idx, 1); i++)
        printf("%lld\t%.6f\t%s\n", (long long)i + 1, score[i], paths[order[i]]);
    rc = 0;

done:
    jaclip_tensor_free(val);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(query);
    jaclip_tensor_free(images);
    jaclip_model_free(model);
    for (size_t i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    return rc;
}
