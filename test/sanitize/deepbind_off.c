/* Linked with -Wl,--wrap=dlopen into the ASan builds that do load libtorch (mk/81-memcheck.mk), where
 * valgrind cannot run the plugin. Sanitizer runtimes abort on RTLD_DEEPBIND, so the flag is dropped:
 * these test programs load neither libprotobuf nor SentencePiece into the global scope, and with
 * RTLD_LOCAL alone each of the two still binds to its own copy (docs/architecture.md, "Plugin
 * boundaries"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>

void *__real_dlopen(const char *file, int flags);

void *__wrap_dlopen(const char *file, int flags) { return __real_dlopen(file, flags & ~RTLD_DEEPBIND); }
