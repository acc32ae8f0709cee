/* libFuzzer harness: mutated model files through jaclip_model_load_memory and, when one loads, one
 * text and one image encode. libtorch is reached through the RTLD_DEEPBIND plugin, which sanitizer
 * runtimes refuse, so this harness is built with -fsanitize=fuzzer only: a crash, hang or abort is
 * caught, silent memory corruption is not (docs/reliability.md). Seeds: test/fuzz/make_model_seed.py.
 *
 * The address space is capped (JACLIP_FUZZ_AS_MB, default 3072): libtorch 1.13's unpickler reserves
 * whatever length a damaged pickle claims (up to 4 GB) before reading it, so without a cap one 3 KB
 * input costs gigabytes of RSS. Under the cap that allocation fails, and the library must turn it
 * into JACLIP_ERROR_OUT_OF_MEMORY, as it promises. */
#include "jaclip.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static jaclip_model_options *options;

/* Every failure must leave *out NULL, use a documented status and explain itself. */
static void check_failure(const char *what, jaclip_status st, const void *out, const jaclip_status *allowed)
{
    for (; *allowed != JACLIP_OK; allowed++)
        if (st == *allowed)
            break;
    if (*allowed == JACLIP_OK || out != NULL || jaclip_last_error()[0] == '\0') {
        fprintf(stderr, "%s: undocumented or unexplained %s (%s)\n", what, jaclip_status_string(st),
                jaclip_last_error());
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *as = getenv("JACLIP_FUZZ_AS_MB");
    struct rlimit limit;
    limit.rlim_cur = limit.rlim_max = (rlim_t)(as && *as ? strtoul(as, NULL, 10) : 3072) << 20;
    if (limit.rlim_cur && setrlimit(RLIMIT_AS, &limit) != 0)
        perror("setrlimit(RLIMIT_AS)");
    /* One libtorch thread: the harness measures robustness, not speed, and spawns no pools per run. */
    if (jaclip_model_options_create(&options) != JACLIP_OK ||
        jaclip_model_options_set_num_threads(options, 1) != JACLIP_OK)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const jaclip_status load_errors[] = {JACLIP_ERROR_MODEL_FORMAT, JACLIP_ERROR_TOKENIZER,
                                                JACLIP_ERROR_OUT_OF_MEMORY, JACLIP_OK};
    static const jaclip_status encode_errors[] = {JACLIP_ERROR_MODEL_FORMAT, JACLIP_ERROR_BACKEND,
                                                  JACLIP_ERROR_OUT_OF_MEMORY, JACLIP_OK};
    jaclip_model *model = NULL;
    jaclip_tensor *out = NULL, *px = NULL;
    if (size == 0)
        return 0; /* INVALID_ARGUMENT by contract, tested elsewhere */
    jaclip_status st = jaclip_model_load_memory(&model, data, size, options);
    if (st != JACLIP_OK) {
        check_failure("load", st, model, load_errors);
        return 0;
    }
    /* A mutated configuration may ask for large images: bound the pixel buffer at 64 MB. */
    int64_t s = jaclip_model_image_size(model), d = jaclip_model_embedding_dim(model);
    if (s < 1 || d < 1 || !jaclip_model_tokenizer(model))
        abort();
    const char *texts[2] = {"犬の写真", "a [CLS] cat"};
    st = jaclip_model_encode_texts(&out, model, texts, NULL, 2);
    if (st == JACLIP_OK && (jaclip_tensor_dim(out, 0) != 2 || jaclip_tensor_dim(out, 1) != d))
        abort();
    if (st != JACLIP_OK)
        check_failure("encode_texts", st, out, encode_errors);
    jaclip_tensor_free(out);
    out = NULL;
    int64_t shape[4] = {1, 3, s, s};
    if (3 * s * s <= (16 << 20) && jaclip_tensor_create(&px, JACLIP_DTYPE_FLOAT32, 4, shape, NULL) == JACLIP_OK) {
        st = jaclip_model_encode_pixel_values(&out, model, px);
        if (st == JACLIP_OK && (jaclip_tensor_dim(out, 0) != 1 || jaclip_tensor_dim(out, 1) != d))
            abort();
        if (st != JACLIP_OK)
            check_failure("encode_pixel_values", st, out, encode_errors);
        jaclip_tensor_free(out);
        jaclip_tensor_free(px);
    }
    jaclip_model_free(model);
    return 0;
}
