/* The model handle: loading a model file through the torch plugin (lib/backend/torch/torch_bridge.h),
 * its configuration and tokenizer, the precision it runs at, and the getters. Options are in
 * model_options.c, the configuration record in model_config.c, encoding in model_encode.c. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Why the model computes in the precision it does, in words (jaclip_model_precision_reason). */
static void explain_precision(jaclip_model *m, jaclip_precision asked)
{
    jaclip_precision runs = m->api->precision(m->torch), stored = m->api->stored_precision(m->torch);
    const jc_cpu_features *cpu = jc_cpu();
    bool cpu_device = strcmp(m->api->device(m->torch), "cpu") == 0;
    const char *bf16_support = !cpu_device                   ? "on this GPU"
                               : cpu->native_bf16_overridden ? "(JACLIP_NATIVE_BF16 says so)"
                               : cpu->amx_bf16               ? "on this CPU (AMX-BF16)"
                               : cpu->avx512_bf16            ? "on this CPU (AVX512_BF16)"
                                                             : "on this CPU";
    char *r = m->precision_reason;
    size_t n = sizeof m->precision_reason;
    bool as_default = asked == JACLIP_PRECISION_DEFAULT || asked == JACLIP_PRECISION_AUTO;
    if (asked == JACLIP_PRECISION_AUTO && runs == JACLIP_PRECISION_INT8_WEIGHTS)
        snprintf(r, n,
                 "int8-weights: chosen by JACLIP_PRECISION_AUTO: this CPU has AVX512-VNNI and no AMX, where int8 "
                 "weights on libjaclip's kernel measured fastest (1.5-2.1x bf16; a new text query in 9.8 ms on 2 "
                 "cores) with features at cosine 0.9996 to fp32 (docs/precision.md)");
    else if (asked == JACLIP_PRECISION_AUTO && runs == JACLIP_PRECISION_BF16 && cpu_device)
        snprintf(r, n,
                 "bf16: chosen by JACLIP_PRECISION_AUTO: bf16 is native %s, where it measured 1.4-3.6x fp32 "
                 "with features at cosine 0.9998 to fp32 (docs/precision.md)",
                 bf16_support);
    else if (asked == JACLIP_PRECISION_AUTO && runs == JACLIP_PRECISION_FP32 && stored == JACLIP_PRECISION_FP32)
        snprintf(r, n, "fp32: chosen by JACLIP_PRECISION_AUTO: %s",
                 cpu_device ? "bf16 is not native here (no AVX512_BF16 or AMX-BF16), where it runs many times "
                              "slower than fp32"
                            : "as stored in the file (no faster precision was measured on GPUs)");
    else if (as_default && stored == JACLIP_PRECISION_BF16 && runs == JACLIP_PRECISION_FP32)
        snprintf(r, n,
                 "fp32: the file stores bf16, but bf16 is not native %s (no AVX512_BF16 or AMX-BF16), "
                 "where it runs many times slower than fp32, so the weights were widened to fp32 at load; "
                 "ask for JACLIP_PRECISION_BF16 to run bf16 anyway",
                 bf16_support);
    else if (runs == JACLIP_PRECISION_BF16 && cpu_device && !cpu->native_bf16)
        snprintf(r, n,
                 "bf16: asked for, although bf16 is not native %s (no AVX512_BF16 or AMX-BF16): expect it "
                 "to run many times slower than fp32",
                 bf16_support);
    else if (runs == JACLIP_PRECISION_BF16)
        snprintf(r, n, "bf16: %s; bf16 is native %s",
                 as_default ? "as stored in the file" : "asked for", bf16_support);
    else if (runs == JACLIP_PRECISION_INT8)
        snprintf(r, n, "int8: as stored in the file (Linear layers quantized dynamically, run by oneDNN)");
    else if (runs == JACLIP_PRECISION_INT8_WEIGHTS)
        snprintf(r, n, "int8-weights: asked for; %s",
                 cpu->int8_kernel   ? "Linear layers run libjaclip's int8 kernel on AVX512-VNNI"
                 : cpu->avx512_vnni ? "JACLIP_Q8_PORTABLE=1 forces libjaclip's portable int8 code: expect it many "
                                      "times slower than fp32"
                                    : "no AVX512-VNNI on this CPU, so Linear layers run libjaclip's portable int8 "
                                      "code: expect it many times slower than fp32");
    else
        snprintf(r, n, "fp32: %s",
                 asked == JACLIP_PRECISION_FP32 && stored != JACLIP_PRECISION_FP32
                     ? "asked for; the file's weights were widened at load"
                     : "as stored in the file");
}

static jaclip_status model_load(jaclip_model **out, const char *path, const void *data, size_t size,
                                const jaclip_model_options *options, uint64_t digest)
{
    jaclip_model_options defaults;
    jc_torch_load_args args;
    char *config = NULL, *tokenizer = NULL;
    size_t config_size = 0, tokenizer_size = 0;
    jaclip_model *m;
    jaclip_status st;
    const char *where = path ? path : "model in memory";

    if (!options) {
        jc_model_options_defaults(&defaults);
        options = &defaults;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    m->api = jc_torch(&st);
    if (!m->api) {
        free(m);
        return st;
    }
    args.path = path;
    args.data = data;
    args.size = size;
    args.device = options->device;
    args.precision = options->precision;
    args.num_threads = options->num_threads;
    args.native_bf16 = jc_cpu()->native_bf16;
    /* Measured fastest within the bar where the int8 kernel runs natively, except beside AMX, whose bf16
     * tiles were not raced against it (docs/precision.md). */
    args.auto_int8_weights = jc_cpu()->int8_kernel && !jc_cpu()->amx_bf16;
    st = m->api->load(&m->torch, &args, &config, &config_size, &tokenizer, &tokenizer_size);
    if (st == JACLIP_OK && (config_size == 0 || strlen(config) != config_size))
        st = jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: not a jaclip model file (no jaclip/config.txt inside)", where);
    if (st == JACLIP_OK && (st = jc_model_parse_config(m, config)) != JACLIP_OK)
        jc_fail_prefix(st, "%s: ", where);
    if (st == JACLIP_OK && tokenizer_size == 0)
        st =
            jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: the model file holds no tokenizer (jaclip/tokenizer.model)", where);
    if (st == JACLIP_OK && (st = jaclip_tokenizer_load_memory(&m->tokenizer, tokenizer, tokenizer_size)) != JACLIP_OK)
        jc_fail_prefix(st, "%s: stored tokenizer: ", where);
    free(config);
    free(tokenizer);
    if (st != JACLIP_OK) {
        jaclip_model_free(m);
        return st;
    }
    m->max_image_pixels = options->max_image_pixels;
    m->image_flags = options->image_flags;
    explain_precision(m, options->precision);
    snprintf(m->fingerprint, sizeof m->fingerprint, "%s-%lld-%016llx", m->family, (long long)m->embedding_dim,
             (unsigned long long)digest);
    *out = m;
    return JACLIP_OK;
}

jaclip_status jaclip_model_load(jaclip_model **out, const char *path, const jaclip_model_options *options)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    uint64_t digest;
    void *map;
    size_t size;
    jaclip_status st = jc_map_model_file(path, &map, &size, &digest);
    if (st)
        return st;
    /* libtorch reads the checked mapping, not the path again. */
    st = model_load(out, path, map, size, options, digest);
    munmap(map, size);
    return st;
}

jaclip_status jaclip_model_load_memory(jaclip_model **out, const void *data, size_t size,
                                       const jaclip_model_options *options)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!data || size == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data is NULL or size is 0");
    uint64_t digest;
    jaclip_status st = jc_check_model_archive(data, size, "model in memory", &digest);
    if (st)
        return st;
    return model_load(out, NULL, data, size, options, digest);
}

void jaclip_model_free(jaclip_model *model)
{
    if (!model)
        return;
    if (model->torch)
        model->api->free_model(model->torch);
    jaclip_tokenizer_free(model->tokenizer);
    free(model);
}

int64_t jaclip_model_embedding_dim(const jaclip_model *m) { return m ? m->embedding_dim : 0; }
int64_t jaclip_model_image_size(const jaclip_model *m) { return m ? m->image_size : 0; }
int64_t jaclip_model_max_text_length(const jaclip_model *m) { return m ? m->max_text_length : 0; }
const char *jaclip_model_device(const jaclip_model *m) { return m ? m->api->device(m->torch) : NULL; }
jaclip_precision jaclip_model_precision(const jaclip_model *m)
{
    return m ? m->api->precision(m->torch) : JACLIP_PRECISION_DEFAULT;
}
const float *jaclip_model_image_mean(const jaclip_model *m) { return m ? m->mean : NULL; }
const float *jaclip_model_image_std(const jaclip_model *m) { return m ? m->std : NULL; }
const jaclip_tokenizer *jaclip_model_tokenizer(const jaclip_model *m) { return m ? m->tokenizer : NULL; }
const char *jaclip_model_fingerprint(const jaclip_model *m) { return m ? m->fingerprint : NULL; }
const char *jaclip_model_precision_reason(const jaclip_model *m) { return m ? m->precision_reason : NULL; }
const char *jaclip_model_family(const jaclip_model *m) { return m ? m->family : NULL; }
float jaclip_model_default_scale(const jaclip_model *m) { return m ? m->default_scale : 0.0f; }
