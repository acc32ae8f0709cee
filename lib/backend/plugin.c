/* Finds and opens a backend plugin (plugin.h); torch_plugin.c and faiss_plugin.c say what each
 * plugin is and why it is one. */
#include "backend/plugin.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef JACLIP_PLUGIN_DIR
#define JACLIP_PLUGIN_DIR "/usr/local/lib"
#endif

static bool try_open(jc_plugin *p, const char *path)
{
    void *handle = dlopen(path, p->dlopen_flags);
    if (!handle) {
        const char *why = dlerror();
        size_t used = strlen(p->error);
        snprintf(p->error + used, sizeof p->error - used, "%s%s", used ? "; " : "", why ? why : path);
        return false;
    }
    void *entry = dlsym(handle, p->entry_name);
    if (!entry || p->bind(entry) != 0) {
        snprintf(p->error, sizeof p->error, "%s is not a libjaclip %s %s plugin (interface %d)", path,
                 JACLIP_VERSION_STRING, p->kind, p->interface);
        dlclose(handle);
        return false;
    }
    return true;
}

void jc_plugin_load(jc_plugin *p)
{
    char path[PATH_MAX];
    const char *env = getenv(p->env);
    Dl_info self;
    if (env && *env) {
        p->ok = try_open(p, env);
        return;
    }
    /* Beside libjaclip.so itself (build tree or install prefix)... */
    if (dladdr((void *)&jc_plugin_load, &self) && self.dli_fname && strchr(self.dli_fname, '/')) {
        const char *slash = strrchr(self.dli_fname, '/');
        int n = snprintf(path, sizeof path, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname, p->file);
        if (n > 0 && (size_t)n < sizeof path && (p->ok = try_open(p, path)))
            return;
    }
    /* ... else where `make install` put it (static linking ends up here). */
    snprintf(path, sizeof path, "%s/%s", JACLIP_PLUGIN_DIR, p->file);
    p->ok = try_open(p, path);
}

jaclip_status jc_plugin_status(const jc_plugin *p)
{
    if (p->ok)
        return JACLIP_OK;
    return jc_fail(JACLIP_ERROR_BACKEND, "cannot load the %s plugin %s (set %s to its path): %s", p->library, p->file,
                   p->env, p->error);
}
