/* Linked into sanitizer builds with -Wl,--wrap=dlopen. Sanitizer runtimes abort the process on any
 * dlopen with RTLD_DEEPBIND, and lib/backend/plugin.c opens the libtorch plugin that way: here such an
 * open fails instead, so model loading reports JACLIP_ERROR_BACKEND as it would without a plugin.
 * libprotobuf is refused too: without RTLD_DEEPBIND (off under sanitizers, see lib/text/tokenizer.cpp)
 * SentencePiece cannot share a process with it, so test_tokenizer's coexistence checks, which say
 * "not tested" when the library is missing, only run in the normal build. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stddef.h>
#include <string.h>

void *__real_dlopen(const char *file, int flags);

void *__wrap_dlopen(const char *file, int flags)
{
    if ((flags & RTLD_DEEPBIND) || (file && strstr(file, "libprotobuf")))
        return NULL;
    return __real_dlopen(file, flags);
}
