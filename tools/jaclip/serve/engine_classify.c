/* Zero-shot classification of one image: against labels × templates (rinna's ensemble, in the
 * library's classifier) or against the classifier the server was started with. */
#include "engine_internal.h"

/* Unit-length class embeddings [nlabels, D] by rinna's zero-shot protocol (jaclip_classifier_create). */
static jaclip_status class_embeddings(jaclip_tensor **out, const jaclip_model *model, const char *const *labels,
                                      size_t nlabels, const char *const *templates, size_t ntemplates)
{
    jaclip_classifier *classifier = NULL;
    *out = NULL;
    jaclip_status st = jaclip_classifier_create(&classifier, model, labels, nlabels, templates, ntemplates);
    if (!st)
        st = jaclip_classifier_weights(out, classifier);
    jaclip_classifier_free(classifier);
    return st;
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
    if (!take_slot(e, why))
        return false;
    jaclip_tensor *classes = NULL, *image = NULL, *cosines = NULL;
    size_t nclasses = loaded ? jaclip_classifier_size(loaded) : q->nlabels;
    jaclip_status st = loaded ? jaclip_classifier_weights(&classes, loaded)
                              : class_embeddings(&classes, e->model, q->labels, q->nlabels, templates, ntemplates);
    const void *data[1] = {q->image};
    if (!st)
        st = jaclip_model_encode_image_buffers(&image, e->model, data, &q->image_size, 1);
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
