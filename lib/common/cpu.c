/* What this CPU computes natively, read once with cpuid (and xgetbv: the OS must save the wide
 * registers too). Precision is chosen from it: bf16 without native support runs on oneDNN's slow
 * reference paths (a ViT-B/16 image 75x slower than fp32 measured on an AVX2-only EPYC). */
#include "common/internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xgetbv0(void)
{
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (unsigned long long)edx << 32 | eax;
}

static void detect(jc_cpu_features *f)
{
    unsigned a, b, c, d, max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 1 || !__get_cpuid(1, &a, &b, &c, &d))
        return;
    bool osxsave = c & (1u << 27), fma = c & (1u << 12);
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    bool ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xE6) == 0xE6, tiles = (xcr0 & 0x60000) == 0x60000;
    if (max_leaf < 7)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned max_sub = a;
    f->avx2 = ymm && (b & (1u << 5));
    f->fma = ymm && fma;
    f->avx512f = zmm && (b & (1u << 16));
    f->avx512_vnni = f->avx512f && (c & (1u << 11));
    f->amx_bf16 = tiles && (d & (1u << 22));
    f->amx_int8 = tiles && (d & (1u << 25));
    if (max_sub >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        f->avx512_bf16 = f->avx512f && (a & (1u << 5));
    }
}
#else
static void detect(jc_cpu_features *f) { (void)f; }
#endif

static jc_cpu_features features;
static char feature_names[128];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    detect(&features);
    features.native_bf16 = features.avx512_bf16 || features.amx_bf16;
    /* JACLIP_NATIVE_BF16=0/1 overrides the detection (documented: for tests and for CPUs that lie). */
    const char *env = getenv("JACLIP_NATIVE_BF16");
    if (env && (!strcmp(env, "0") || !strcmp(env, "1"))) {
        features.native_bf16 = env[0] == '1';
        features.native_bf16_overridden = true;
    }
    const char *portable = getenv("JACLIP_Q8_PORTABLE");
    features.int8_kernel = features.avx512_vnni && !(portable && portable[0] == '1');
    static const struct {
        const char *name;
        size_t offset;
    } names[] = {
        {"avx2", offsetof(jc_cpu_features, avx2)},
        {"fma", offsetof(jc_cpu_features, fma)},
        {"avx512f", offsetof(jc_cpu_features, avx512f)},
        {"avx512_vnni", offsetof(jc_cpu_features, avx512_vnni)},
        {"avx512_bf16", offsetof(jc_cpu_features, avx512_bf16)},
        {"amx_bf16", offsetof(jc_cpu_features, amx_bf16)},
        {"amx_int8", offsetof(jc_cpu_features, amx_int8)},
    };
    size_t used = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (*(const bool *)((const char *)&features + names[i].offset))
            used += (size_t)snprintf(feature_names + used, sizeof feature_names - used, "%s%s", used ? " " : "",
                                     names[i].name);
}

const jc_cpu_features *jc_cpu(void)
{
    pthread_once(&once, init);
    return &features;
}

const char *jaclip_cpu_features(void)
{
    pthread_once(&once, init);
    return feature_names;
}

size_t jc_usable_cores(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (size_t)CPU_COUNT(&set);
    return 1;
}
