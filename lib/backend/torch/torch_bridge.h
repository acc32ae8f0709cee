/* The interface between libjaclip and its libtorch plugin (libjaclip-torch.so.1, built from
 * torch_bridge.cpp, the only file that includes libtorch).
 *
 * Why a plugin: libtorch pulls in libprotobuf 3.21, while Debian's libsentencepiece exports its own
 * bundled protobuf 3.14 under the same symbol names. Linked into one symbol scope, whichever comes
 * first breaks the other at start-up. libjaclip therefore opens the plugin with RTLD_LOCAL |
 * RTLD_DEEPBIND, so libtorch and its protobuf resolve among themselves. It also keeps libtorch out of
 * every program that never loads a model, and lets a CUDA build of the plugin replace the CPU one. */
#ifndef JACLIP_TORCH_BRIDGE_H
#define JACLIP_TORCH_BRIDGE_H

#include "common/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever jc_torch_api or jc_torch_host changes; both sides must agree. */
#define JC_TORCH_PLUGIN_INTERFACE 3
#define JC_TORCH_PLUGIN_FILE "libjaclip-torch.so.1"
#define JC_TORCH_PLUGIN_ENTRY "jc_torch_plugin_entry"

typedef struct jc_torch_model jc_torch_model;

typedef struct jc_torch_load_args {
    const char *path; /* the file's name in messages; read only when data is NULL */
    const void *data; /* the bytes to load (a checked mapping of path, or caller's memory) */
    size_t size;
    const char *device; /* "cpu", "cuda", "cuda:N" (already validated) */
    jaclip_precision precision;
    int32_t num_threads; /* 0: the cores this process may use */
    bool native_bf16;    /* the CPU computes bf16 natively (lib/common/cpu.c) */
    bool auto_int8_weights; /* AUTO means INT8_WEIGHTS for an fp32 / bf16 file on this CPU (model.c) */
} jc_torch_load_args;

/* What libjaclip lends the plugin: its error recording, so messages land in jaclip_last_error(). */
typedef struct jc_torch_host {
    jaclip_status (*vfail)(jaclip_status status, const char *fmt, va_list ap);
} jc_torch_host;

typedef struct jc_torch_api {
    /* Loads the TorchScript archive and hands back its two extra files as malloc'd buffers (empty
     * ones when absent: the caller decides that this is not a jaclip model). */
    jaclip_status (*load)(jc_torch_model **out, const jc_torch_load_args *args, char **config_text, size_t *config_size,
                          char **tokenizer_bytes, size_t *tokenizer_size);
    void (*free_model)(jc_torch_model *model);
    /* pixels float32 [n,3,size,size] -> out float32 [n,dim]. */
    jaclip_status (*encode_image)(const jc_torch_model *model, const float *pixels, int64_t n, int64_t size, float *out,
                                  int64_t dim);
    /* ids / mask: int64 rows of row_stride elements, the first length used -> out float32 [n,dim]. */
    jaclip_status (*encode_text)(const jc_torch_model *model, const int64_t *ids, const int64_t *mask, int64_t n,
                                 int64_t length, int64_t row_stride, float *out, int64_t dim);
    /* "cpu" or "cuda:N" as loaded (borrowed). */
    const char *(*device)(const jc_torch_model *model);
    /* FP32, BF16 or INT8: what the loaded model computes in. */
    jaclip_precision (*precision)(const jc_torch_model *model);
    /* FP32, BF16 or INT8: what the model file stores. */
    jaclip_precision (*stored_precision)(const jc_torch_model *model);
} jc_torch_api;

/* The plugin's only export: fills api if interface matches, returns 0 on success. */
typedef int (*jc_torch_plugin_entry_fn)(int interface, const jc_torch_host *host, jc_torch_api *api);

/* libjaclip side: the plugin's functions, loaded once per process; NULL with a recorded error (and
 * *status set) when the plugin cannot be found or opened. Thread-safe. */
const jc_torch_api *jc_torch(jaclip_status *status);

#ifdef __cplusplus
}
#endif

#endif
