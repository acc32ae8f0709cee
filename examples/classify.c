/* Zero-shot image classification with Japanese labels: the smallest complete libjaclip program.
 *
 *   classify MODEL IMAGE LABEL...        e.g. classify rinna-cloob.jaclip dog.jpeg 犬 猫 象
 *
 * Prints the labels ranked by probability = softmax(100 * cosine(image, label)), as rinna's
 * evaluation does. Build: cc classify.c $(pkg-config --cflags --libs jaclip) */
#include <jaclip.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, jaclip_status status)
{
    fprintf(stderr, "classify: %s: %s (%s)\n", what, jaclip_last_error(), jaclip_status_string(status));
    return 1;
}

int main(int argc, char **argv)
{
    jaclip_model *model = NULL;
    jaclip_tensor *image = NULL, *labels = NULL, *probs = NULL, *order = NULL;
    jaclip_status st;
    int rc = 1;

    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL IMAGE LABEL...\n", argv[0]);
        return 2;
    }
    if (jaclip_version_number() != JACLIP_VERSION_NUMBER) {
        fprintf(stderr, "classify: built for libjaclip %s but loaded %s\n", JACLIP_VERSION_STRING,
                jaclip_version_string());
        return 1;
    }
    const char *model_path = argv[1], *image_path = argv[2];
    const char *const *label_texts = (const char *const *)argv + 3;
    size_t n_labels = (size_t)(argc - 3);

    if ((st = jaclip_model_load(&model, model_path, NULL)) != JACLIP_OK) {
        rc = fail(model_path, st);
        goto done;
    }
    if ((st = jaclip_model_encode_image_files(&image, model, &image_path, 1)) != JACLIP_OK) {
        rc = fail(image_path, st);
        goto done;
    }
    if ((st = jaclip_model_encode_texts(&labels, model, label_texts, NULL, n_labels)) != JACLIP_OK) {
        rc = fail("labels", st);
        goto done;
    }
    if ((st = jaclip_probabilities(&probs, image, labels, JACLIP_SIMILARITY_COSINE, 100.0f)) != JACLIP_OK ||
        (st = jaclip_topk(&order, NULL, probs, n_labels)) != JACLIP_OK) {
        rc = fail("scoring", st);
        goto done;
    }
    const float *p = jaclip_tensor_data(probs);
    const int64_t *rank = jaclip_tensor_data(order);
    printf("%s (model %s, %lld-d embeddings)\n", image_path, model_path, (long long)jaclip_model_embedding_dim(model));
    for (size_t i = 0; i < n_labels; i++)
        printf("  %-12s %.4f\n", label_texts[rank[i]], p[rank[i]]);
    rc = 0;

done:
    jaclip_tensor_free(order);
    jaclip_tensor_free(probs);
    jaclip_tensor_free(labels);
    jaclip_tensor_free(image);
    jaclip_model_free(model);
    return rc;
}
