/* What the synthetic C benchmarks share (bench_ann.c, bench_dupes.c): a seeded xorshift generator for
 * reproducible rows, Gaussian samples, and a monotonic clock. Header-only: each bench is one program. */
#ifndef JACLIP_BENCH_SYNTH_H
#define JACLIP_BENCH_SYNTH_H

#include <math.h>
#include <stdint.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static inline double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 0.5) / 9007199254740992.0;
}
static inline double gaussian(void) { return sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform()); }

static inline double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#endif
