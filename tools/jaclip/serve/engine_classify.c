/* Zero-shot classification of one image: against labels × templates (rinna's ensemble, in the
 * library's classifier) or against the classifier the server was started with. */
#include "engine_internal.h"

/* Texts a chunk of labels fills (labels x templates) for one library call: the slot is given back
 * between chunks, and a stopping server abandons the request there. */
enum { CHUNK_TEXTS = 64 };

/* Unit-length class embeddings [nlabels, D] by rinna's zero-shot protocol (jaclip_classifier_create,
 * which lives once, in the library), computed a chunk of labels at a time: a label's row depends on
 * that label and the templates only, so the chunks' rows stacked are the whole classifier's. */
static bool class_embeddings(engine *e, jaclip_tensor **out, const char *const *labels, size_t nlabels,
                             const char *const *templates, size_t ntemplates, engine_result *why)
{
    size_t per_chunk = CHUNK_TEXTS / ntemplates ? CHUNK_TEXTS / ntemplates : 1, d = e->dim;
    const int64_t shape[2] = {(int64_t)nlabels, (int64_t)d};
    jaclip_status st = jaclip_tensor_create(out, JACLIP_DTYPE_FLOAT32, 2, shape, NULL);
    if (st)
        return fail_library(why, st);
    for (size_t first = 0; first < nlabels; first += per_chunk) {
        size_t n = nlabels - first < per_chunk ? nlabels - first : per_chunk;
        if (engine_stopped(e)) {
            fail(why, ENGINE_STOPPING, "shutting down: classification abandoned after %zu of %zu labels", first,
                 nlabels);
            break;
        }
        if (!take_slot(e, why))
            break;
        jaclip_classifier *classifier = NULL;
        jaclip_tensor *rows = NULL;
        st = jaclip_classifier_create(&classifier, e->model, labels + first, n, templates, ntemplates);
        if (!st)
            st = jaclip_classifier_weights(&rows, classifier);
        give_slot(e);
        if (!st)
            memcpy((float *)jaclip_tensor_data_mut(*out) + first * d, jaclip_tensor_data(rows), n * d * sizeof(float));
        jaclip_classifier_free(classifier);
        jaclip_tensor_free(rows);
        if (st) {
            fail_library(why, st);
            break;
        }
        if (first + n == nlabels)
            return true;
    }
    jaclip_tensor_free(*out);
    *out = NULL;
    return false;
}

bool engine_classify(engine *e, const classify_request *q, jaclip_tensor **probs, jaclip_tensor **order,
                     engine_result *why)
{
    static const char *const plain[] = {"{}"};
    const jaclip_classifier *loaded = q->nlabels ? NULL : e->classifier;
    const char *const *templates = q->ntemplates ? q->templates : plain;
    size_t ntemplates = q->ntemplates ? q->ntemplates : 1;
    *probs = *order = NULL;
    if (!loaded && !q->nlabels)
        return fail(why, ENGINE_INVALID, "no labels and no classifier");
    jaclip_tensor *classes = NULL, *image = NULL, *cosines = NULL;
    size_t nclasses = loaded ? jaclip_classifier_size(loaded) : q->nlabels;
    if (loaded) {
        jaclip_status st = jaclip_classifier_weights(&classes, loaded);
        if (st)
            return fail_library(why, st);
    } else if (!class_embeddings(e, &classes, q->labels, q->nlabels, templates, ntemplates, why)) {
        return false;
    }
    if (engine_stopped(e)) {
        jaclip_tensor_free(classes);
        return fail(why, ENGINE_STOPPING, "shutting down");
    }
    if (!take_slot(e, why)) {
        jaclip_tensor_free(classes);
        return false;
    }
    const void *data[1] = {q->image};
    jaclip_status st = jaclip_model_encode_image_buffers(&image, e->model, data, &q->image_size, 1);
    give_slot(e);
    /* Ranked by cosine, as `jaclip classify` and the bindings rank: at a scale of 100 probabilities
     * saturate to equal values (0) where the cosines still differ. */
    if (!st)
        st = jaclip_probabilities(probs, image, classes, JACLIP_SIMILARITY_COSINE, (float)q->scale);
    if (!st)
        st = jaclip_similarity(&cosines, image, classes, JACLIP_SIMILARITY_COSINE, 1.0f);
    if (!st)
        st = jaclip_topk(order, NULL, cosines, nclasses);
    if (st)
        fail_library(why, st);
    jaclip_tensor_free(classes);
    jaclip_tensor_free(image);
    jaclip_tensor_free(cosines);
    if (st) {
        jaclip_tensor_free(*probs);
        jaclip_tensor_free(*order);
        *probs = *order = NULL;
    }
    return !st;
}
