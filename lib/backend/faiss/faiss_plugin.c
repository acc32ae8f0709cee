/* Finds and opens the faiss plugin once per process (faiss_bridge.h says why it is a plugin). */
#include "backend/faiss/faiss_bridge.h"
#include "backend/plugin.h"

#include <dlfcn.h>
#include <pthread.h>

static jc_faiss_api faiss_api;
static const jc_faiss_host faiss_host = {jc_vfail};

static int bind_faiss(void *entry)
{
    jc_faiss_plugin_entry_fn fn;
    *(void **)&fn = entry;
    return fn(JC_FAISS_PLUGIN_INTERFACE, &faiss_host, &faiss_api);
}

/* RTLD_LOCAL: faiss's BLAS and OpenMP stay out of the program's symbol scope. Never closed: OpenMP's
 * worker threads outlive any unload. */
static jc_plugin plugin = {"faiss",
                           "faiss",
                           JC_FAISS_PLUGIN_FILE,
                           "JACLIP_FAISS_PLUGIN",
                           JC_FAISS_PLUGIN_ENTRY,
                           JC_FAISS_PLUGIN_INTERFACE,
                           RTLD_NOW | RTLD_LOCAL,
                           bind_faiss,
                           false,
                           ""};
static pthread_once_t faiss_once = PTHREAD_ONCE_INIT;

static void open_faiss_plugin(void) { jc_plugin_load(&plugin); }

const jc_faiss_api *jc_faiss(jaclip_status *status)
{
    pthread_once(&faiss_once, open_faiss_plugin);
    *status = jc_plugin_status(&plugin);
    return *status ? NULL : &faiss_api;
}
