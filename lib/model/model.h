/* The model module's own header (lib/model/): the layout of a model and its options, shared by
 * model_options.c, model_config.c (the configuration record inside a model file), model.c (loading)
 * and model_encode.c (encoding, through the torch plugin). */
#ifndef JACLIP_MODEL_MODEL_H
#define JACLIP_MODEL_MODEL_H

#include "backend/torch/torch_bridge.h"

#define JC_MODEL_FORMAT "jaclip-model"
/* Version 2 adds the family and, for CLIP, logit_scale; a CLOOB model is still written as version 1. */
#define JC_MODEL_FORMAT_VERSION 2
#define JC_MODEL_FAMILY_CLOOB "cloob"
#define JC_MODEL_FAMILY_CLIP "clip"
/* rinna's ImageNet evaluation of CLOOB multiplies cosines by 100. */
#define JC_CLOOB_SCALE 100.0f
/* Images are preprocessed and encoded this many at a time, bounding the float buffer (~19 MB). */
#define JC_IMAGE_CHUNK 32
#define JC_TEXT_CHUNK 256
/* The largest normalised pixel magnitude a configuration may produce (rinna's: about 2.1). */
#define JC_MAX_NORMALISED_PIXEL 1e4

struct jaclip_model_options {
    char device[32];
    int32_t num_threads;
    jaclip_precision precision;
    uint64_t max_image_pixels;
    uint32_t image_flags;
};

struct jaclip_model {
    const jc_torch_api *api;
    jc_torch_model *torch;
    jaclip_tokenizer *tokenizer;
    int64_t embedding_dim;
    int64_t image_size;
    int64_t max_text_length;
    int64_t max_positions;
    int64_t vocab_size;
    float mean[3];
    float std[3];
    uint64_t max_image_pixels;
    uint32_t image_flags;
    const char *family;
    float default_scale;
    char fingerprint[64];
    char precision_reason[320];
};

/* The options a NULL jaclip_model_options stands for. */
void jc_model_options_defaults(jaclip_model_options *o);
/* Reads the configuration record (model_config.c) into m; MODEL_FORMAT naming what is wrong. */
jaclip_status jc_model_parse_config(jaclip_model *m, const char *text);

#endif
