/* Finds and opens the libtorch plugin once per process (see torch_bridge.h for why it is a plugin). */
#include "backend/plugin.h"
#include "backend/torch/torch_bridge.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>

static jc_torch_api plugin_api;
static const jc_torch_host host = {jc_vfail};

static int bind_torch(void *entry)
{
    jc_torch_plugin_entry_fn fn;
    *(void **)&fn = entry;
    return fn(JC_TORCH_PLUGIN_INTERFACE, &host, &plugin_api);
}

/* RTLD_DEEPBIND: libtorch's libprotobuf must resolve to itself, not to sentencepiece's copy. Never
 * closed: libtorch does not support being unloaded. */
static jc_plugin plugin = {"libtorch",
                           "torch",
                           JC_TORCH_PLUGIN_FILE,
                           "JACLIP_TORCH_PLUGIN",
                           JC_TORCH_PLUGIN_ENTRY,
                           JC_TORCH_PLUGIN_INTERFACE,
                           RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND,
                           bind_torch,
                           false,
                           ""};
static pthread_once_t plugin_once = PTHREAD_ONCE_INIT;

/* libgomp (libtorch's OpenMP) reads its wait policy once, when it is loaded with the plugin. Its default
 * spins idle threads, and where other processes share the cores a spinning pool collapses: bf16 on the
 * 2-core Zen 5 under load 7-11 ran 7x slower per image with 2 spinning threads than with passive ones
 * (docs/benchmarks.md, make bench-levers). Passive unless the host chose a policy, set once under
 * pthread_once before the plugin loads; a host that loaded libgomp already keeps whatever it has. */
static void open_plugin(void)
{
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    jc_plugin_load(&plugin);
}

const jc_torch_api *jc_torch(jaclip_status *status)
{
    pthread_once(&plugin_once, open_plugin);
    *status = jc_plugin_status(&plugin);
    return *status ? NULL : &plugin_api;
}
