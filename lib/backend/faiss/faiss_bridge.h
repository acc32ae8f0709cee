/* The interface between libjaclip and its faiss plugin (libjaclip-faiss.so.1, built from
 * faiss_bridge.cpp, the only file that includes faiss).
 *
 * Why a plugin: Debian's libfaiss-dev ships only a static libfaiss.a (without its C API), which drags
 * in OpenMP and BLAS. Kept in a plugin opened with dlopen, libjaclip.so stays free of them and every
 * program that never builds an ANN index pays nothing; a missing plugin is a BACKEND error. */
#ifndef JACLIP_FAISS_BRIDGE_H
#define JACLIP_FAISS_BRIDGE_H

#include "common/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever jc_faiss_api or jc_faiss_host changes; both sides must agree. */
#define JC_FAISS_PLUGIN_INTERFACE 1
#define JC_FAISS_PLUGIN_FILE "libjaclip-faiss.so.1"
#define JC_FAISS_PLUGIN_ENTRY "jc_faiss_plugin_entry"

typedef struct jc_faiss_index jc_faiss_index;

/* The structures the plugin builds (the ANN file stores this value too: never renumber). */
typedef enum jc_faiss_family { JC_FAISS_IVF_FLAT = 1, JC_FAISS_IVF_PQ = 2, JC_FAISS_HNSW_FLAT = 3 } jc_faiss_family;

typedef struct jc_faiss_build_args {
    jc_faiss_family family;
    int64_t dim;
    int64_t nlist;  /* IVF lists */
    int64_t pq_m;   /* IVF-PQ: sub-quantizers (dim % pq_m == 0), 8 bits each */
    int64_t hnsw_m; /* HNSW: links per node */
    int64_t train_iterations;
} jc_faiss_build_args;

typedef struct jc_faiss_info {
    jc_faiss_family family;
    int64_t dim, ntotal, nlist;
    bool inner_product;
} jc_faiss_info;

/* What libjaclip lends the plugin: its error recording, so messages land in jaclip_last_error(). */
typedef struct jc_faiss_host {
    jaclip_status (*vfail)(jaclip_status status, const char *fmt, va_list ap);
} jc_faiss_host;

/* Every function catches what faiss throws and returns BACKEND (OUT_OF_MEMORY for bad_alloc), with
 * faiss's message recorded. Search functions are const and may run from many threads at once. */
typedef struct jc_faiss_api {
    /* An empty, untrained inner-product index. */
    jaclip_status (*create)(jc_faiss_index **out, const jc_faiss_build_args *args);
    void (*free_index)(jc_faiss_index *index);
    /* x: float32 [n, dim]. train once, then add in as many batches as wanted (ids follow on). */
    jaclip_status (*train)(jc_faiss_index *index, int64_t n, const float *x);
    jaclip_status (*add)(jc_faiss_index *index, int64_t n, const float *x);
    /* queries float32 [nq, dim] -> labels int64 / scores float32 [nq, k]; -1 labels where fewer
     * than k were found. nprobe (IVF) / ef_search (HNSW): 0 keeps the index's own. */
    jaclip_status (*search)(const jc_faiss_index *index, int64_t nq, const float *queries, int64_t k, int64_t nprobe,
                            int64_t ef_search, float *scores, int64_t *labels);
    /* faiss's own serialisation, into a malloc'd buffer / back from one. */
    jaclip_status (*serialize)(const jc_faiss_index *index, unsigned char **out, size_t *size);
    jaclip_status (*deserialize)(jc_faiss_index **out, const unsigned char *data, size_t size);
    void (*info)(const jc_faiss_index *index, jc_faiss_info *out);
} jc_faiss_api;

/* The plugin's only export: fills api if interface matches, returns 0 on success. */
typedef int (*jc_faiss_plugin_entry_fn)(int interface, const jc_faiss_host *host, jc_faiss_api *api);

/* libjaclip side: the plugin's functions, loaded once per process; NULL with a recorded BACKEND error
 * (and *status set) when the plugin cannot be found or opened. Thread-safe. */
const jc_faiss_api *jc_faiss(jaclip_status *status);

#ifdef __cplusplus
}
#endif

#endif
