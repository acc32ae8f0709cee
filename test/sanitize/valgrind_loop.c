/* Run under memcheck by make test-valgrind-loop: the whole life of a model three times over (load,
 * tokenise, encode texts, images and pixels, similarity, top-k, free) plus the failing loads of
 * damaged files, so that a leak per load or per call shows as a definite leak of three blocks rather
 * than hiding in start-up noise; each round once as stored and once with int8 weights (packed at load,
 * the graph rewritten, lib/qlinear's kernel). Needs JACLIP_TEST_MODEL and JACLIP_BAD_MODELS. */
#include "jaclip.h"
#include "check.h"

static void one_round(const char *model_path, const char *bad_dir, const char *dog, jaclip_precision precision)
{
    jaclip_model_options *o = NULL;
    jaclip_model *m = NULL;
    CHECK_OK(jaclip_model_options_create(&o));
    CHECK_OK(jaclip_model_options_set_num_threads(o, 1));
    CHECK_OK(jaclip_model_options_set_precision(o, precision));
    CHECK_OK(jaclip_model_load(&m, model_path, o));
    jaclip_model_options_free(o);
    if (!m)
        return;

    const char *texts[3] = {"犬の写真", "猫", "象がいる [SEP] 風景"};
    jaclip_tensor *ids = NULL, *mask = NULL, *tf = NULL, *tf2 = NULL, *imf = NULL, *px = NULL, *pf = NULL;
    jaclip_tensor *sim = NULL, *prob = NULL, *top = NULL, *norm = NULL;
    CHECK_OK(jaclip_tokenizer_encode(&ids, &mask, jaclip_model_tokenizer(m), texts, NULL, 3, 0));
    CHECK_OK(jaclip_model_encode_token_ids(&tf, m, ids, mask));
    CHECK_OK(jaclip_model_encode_texts(&tf2, m, texts, NULL, 3));
    const char *paths[2] = {dog, dog};
    CHECK_OK(jaclip_model_encode_image_files(&imf, m, paths, 2));
    jaclip_image *img = NULL;
    CHECK_OK(jaclip_image_load(&img, dog, 0, 0));
    const jaclip_image *imgs[1] = {img};
    CHECK_OK(jaclip_model_preprocess_images(&px, m, imgs, 1));
    CHECK_OK(jaclip_model_encode_pixel_values(&pf, m, px));
    CHECK_OK(jaclip_similarity(&sim, imf, tf2, JACLIP_SIMILARITY_COSINE, 100.0f));
    CHECK_OK(jaclip_probabilities(&prob, imf, tf, JACLIP_SIMILARITY_COSINE, 100.0f));
    CHECK_OK(jaclip_topk(&top, NULL, prob, 2));
    CHECK_OK(jaclip_normalize(&norm, pf));
    /* Failing calls free what they allocated. */
    jaclip_tensor *none = NULL;
    const char *missing[2] = {dog, "/nonexistent/cat.jpg"};
    CHECK_ERROR(jaclip_model_encode_image_files(&none, m, missing, 2), JACLIP_ERROR_IO);
    const char *bad_utf8[2] = {"ok", "\xe7\x8a"};
    CHECK_ERROR(jaclip_model_encode_texts(&none, m, bad_utf8, NULL, 2), JACLIP_ERROR_INVALID_UTF8);

    jaclip_tensor *all[11] = {ids, mask, tf, tf2, imf, px, pf, sim, prob, top, norm};
    for (int i = 0; i < 11; i++)
        jaclip_tensor_free(all[i]);
    jaclip_image_free(img);
    jaclip_model_free(m);

    /* Loads that fail at each stage: archive, configuration, signature, stored tokenizer. */
    const char *bad[] = {"truncated.jaclip", "wrong-version.jaclip", "wrong-signature.jaclip", "bad-tokenizer.jaclip"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", bad_dir, bad[i]);
        CHECK(jaclip_model_load(&m, path, NULL) != JACLIP_OK && m == NULL);
    }
}

int main(void)
{
    const char *model = env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip");
    const char *bad = env_or("JACLIP_BAD_MODELS", "build/models/bad");
    char dog[4096];
    snprintf(dog, sizeof dog, "%s/dog.jpeg", env_or("JACLIP_PROJECT_DATA", "data"));
    for (int round = 0; round < 3; round++) {
        one_round(model, bad, dog, JACLIP_PRECISION_DEFAULT);
        one_round(model, bad, dog, JACLIP_PRECISION_INT8_WEIGHTS);
    }
    return check_summary("valgrind_loop");
}
