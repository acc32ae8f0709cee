/* Finds and opens the libtorch plugin once per process (see torch_bridge.h for why it is a plugin). */
#include "backend/torch/torch_bridge.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JACLIP_PLUGIN_DIR
#define JACLIP_PLUGIN_DIR "/usr/local/lib"
#endif

static pthread_once_t plugin_once = PTHREAD_ONCE_INIT;
static jc_torch_api plugin_api;
static bool plugin_ok;
static char plugin_error[1024];

static const jc_torch_host host = {jc_vfail};

static bool try_open(const char *path)
{
    /* RTLD_DEEPBIND: libtorch's libprotobuf must resolve to itself, not to sentencepiece's copy. */
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!handle) {
        const char *why = dlerror();
        size_t used = strlen(plugin_error);
        snprintf(plugin_error + used, sizeof plugin_error - used, "%s%s", used ? "; " : "", why ? why : path);
        return false;
    }
    jc_torch_plugin_entry_fn entry;
    *(void **)&entry = dlsym(handle, JC_TORCH_PLUGIN_ENTRY);
    if (!entry || entry(JC_TORCH_PLUGIN_INTERFACE, &host, &plugin_api) != 0) {
        snprintf(plugin_error, sizeof plugin_error, "%s is not a libjaclip %s torch plugin (interface %d)", path,
                 JACLIP_VERSION_STRING, JC_TORCH_PLUGIN_INTERFACE);
        dlclose(handle);
        return false;
    }
    /* Never closed: libtorch does not support being unloaded. */
    return true;
}

static void open_plugin(void)
{
    char path[PATH_MAX];
    const char *env = getenv("JACLIP_TORCH_PLUGIN");
    Dl_info self;
    if (env && *env) {
        plugin_ok = try_open(env);
        return;
    }
    /* Beside libjaclip.so itself (build tree or install prefix)... */
    if (dladdr((void *)&jc_torch, &self) && self.dli_fname && strchr(self.dli_fname, '/')) {
        const char *slash = strrchr(self.dli_fname, '/');
        int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname,
                         JC_TORCH_PLUGIN_FILE);
        if (n > 0 && (size_t)n < sizeof path && (plugin_ok = try_open(path)))
            return;
    }
    /* ... else where `make install` put it (static linking ends up here). */
    snprintf(path, sizeof path, "%s/%s", JACLIP_PLUGIN_DIR, JC_TORCH_PLUGIN_FILE);
    plugin_ok = try_open(path);
}

const jc_torch_api *jc_torch(jaclip_status *status)
{
    pthread_once(&plugin_once, open_plugin);
    if (!plugin_ok) {
        *status = jc_fail(JACLIP_ERROR_BACKEND, "cannot load the libtorch plugin %s (set JACLIP_TORCH_PLUGIN to its "
                          "path): %s", JC_TORCH_PLUGIN_FILE, plugin_error);
        return NULL;
    }
    *status = JACLIP_OK;
    return &plugin_api;
}
