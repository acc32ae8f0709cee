/* Finds and opens the faiss plugin once per process (faiss_bridge.h says why it is a plugin). */
#include "backend/faiss/faiss_bridge.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JACLIP_PLUGIN_DIR
#define JACLIP_PLUGIN_DIR "/usr/local/lib"
#endif

static pthread_once_t faiss_once = PTHREAD_ONCE_INIT;
static jc_faiss_api faiss_api;
static bool faiss_ok;
static char faiss_error[1024];

static const jc_faiss_host faiss_host = {jc_vfail};

static bool try_open_faiss(const char *path)
{
    /* RTLD_LOCAL: faiss's BLAS and OpenMP stay out of the program's symbol scope. */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *why = dlerror();
        size_t used = strlen(faiss_error);
        snprintf(faiss_error + used, sizeof faiss_error - used, "%s%s", used ? "; " : "", why ? why : path);
        return false;
    }
    jc_faiss_plugin_entry_fn entry;
    *(void **)&entry = dlsym(handle, JC_FAISS_PLUGIN_ENTRY);
    if (!entry || entry(JC_FAISS_PLUGIN_INTERFACE, &faiss_host, &faiss_api) != 0) {
        snprintf(faiss_error, sizeof faiss_error, "%s is not a libjaclip %s faiss plugin (interface %d)", path,
                 JACLIP_VERSION_STRING, JC_FAISS_PLUGIN_INTERFACE);
        dlclose(handle);
        return false;
    }
    /* Never closed: OpenMP's worker threads outlive any unload. */
    return true;
}

static void open_faiss_plugin(void)
{
    char path[PATH_MAX];
    const char *env = getenv("JACLIP_FAISS_PLUGIN");
    Dl_info self;
    if (env && *env) {
        faiss_ok = try_open_faiss(env);
        return;
    }
    /* Beside libjaclip.so itself (build tree or install prefix), else where `make install` put it. */
    if (dladdr((void *)&jc_faiss, &self) && self.dli_fname && strchr(self.dli_fname, '/')) {
        const char *slash = strrchr(self.dli_fname, '/');
        int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname,
                         JC_FAISS_PLUGIN_FILE);
        if (n > 0 && (size_t)n < sizeof path && (faiss_ok = try_open_faiss(path)))
            return;
    }
    snprintf(path, sizeof path, "%s/%s", JACLIP_PLUGIN_DIR, JC_FAISS_PLUGIN_FILE);
    faiss_ok = try_open_faiss(path);
}

const jc_faiss_api *jc_faiss(jaclip_status *status)
{
    pthread_once(&faiss_once, open_faiss_plugin);
    if (!faiss_ok) {
        *status = jc_fail(JACLIP_ERROR_BACKEND, "cannot load the faiss plugin %s (set JACLIP_FAISS_PLUGIN to its "
                          "path): %s", JC_FAISS_PLUGIN_FILE, faiss_error);
        return NULL;
    }
    *status = JACLIP_OK;
    return &faiss_api;
}
