/* Finding and opening a backend plugin (libjaclip-torch.so.1, libjaclip-faiss.so.1): what the two
 * loaders share. A plugin is looked for in $<env> when set (and nowhere else), else beside
 * libjaclip.so itself (build tree or install prefix), else in JACLIP_PLUGIN_DIR (where `make install`
 * put it; static linking ends up here). Its one export, entry_name, must accept interface. */
#ifndef JACLIP_BACKEND_PLUGIN_H
#define JACLIP_BACKEND_PLUGIN_H

#include "common/internal.h"

typedef struct jc_plugin {
    const char *library;    /* "libtorch": in "cannot load the libtorch plugin" */
    const char *kind;       /* "torch": in "is not a libjaclip X.Y.Z torch plugin" */
    const char *file;       /* JC_TORCH_PLUGIN_FILE */
    const char *env;        /* "JACLIP_TORCH_PLUGIN" */
    const char *entry_name; /* JC_TORCH_PLUGIN_ENTRY */
    int interface;
    int dlopen_flags;
    /* Calls the entry point (found by dlsym) with the interface, the host table and the api to fill;
     * returns its result, 0 when the plugin accepts. */
    int (*bind)(void *entry);
    /* Set by jc_plugin_load. */
    bool ok;
    char error[1024];
} jc_plugin;

/* Looks for and opens p (once: call it from pthread_once). Never closes a plugin it opened. */
void jc_plugin_load(jc_plugin *p);
/* JACLIP_OK, or BACKEND saying what was tried, after jc_plugin_load. */
jaclip_status jc_plugin_status(const jc_plugin *p);

#endif
