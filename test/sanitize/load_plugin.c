/* The memcheck probe's subject (mk/81-memcheck.mk): opens a plugin as lib/backend/torch/torch_plugin.c
 * does, so that every static initialiser of libtorch's dependency tree runs (libhwy's executes RDTSCP,
 * which valgrind 3.19 refuses on CPUs whose CPUID hides it). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: load_plugin LIBRARY\n");
        return 2;
    }
    if (!dlopen(argv[1], RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)) {
        fprintf(stderr, "load_plugin: %s\n", dlerror());
        return 3;
    }
    return 0;
}
