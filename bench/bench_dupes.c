/* make bench-dupes: jaclip_index_duplicates on generated clustered 512-d rows (2000 clusters, rows at
 * cosine about 0.7 to their centre, like photo embeddings of similar scenes) with 1 % planted near
 * duplicates (cosine 0.964, 0.984 or 0.996) and 1 % exact duplicates (equal content hash). Prints its time
 * and memory, the exact-only time, and, as the peer measured in the same run, the exact scan
 * (jaclip_index_search, k = 10) of 200 rows, extrapolated to all rows: what a brute-force all-pairs
 * k-NN would cost. Recall: planted pairs found, and the pairs at cosine >= 0.95 that the exact scan of
 * 200 sampled rows finds which share a group. Usage: bench_dupes ROWS [ROWS...]. */
#include "jaclip.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIM 512
#define CLUSTERS 2000
#define SAMPLE 200
#define CHUNK 50000

#include "bench_synth.h"

static double peak_rss_mib(void)
{
    char line[256];
    double kib = 0;
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kib = atof(line + 6);
    if (f)
        fclose(f);
    return kib / 1024;
}

static void die_on(jaclip_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "bench_dupes: %s: %s: %s\n", what, jaclip_status_string(st), jaclip_last_error());
        exit(1);
    }
}

static void unit(float *v)
{
    double s = 0;
    for (int d = 0; d < DIM; d++)
        s += (double)v[d] * v[d];
    for (int d = 0; d < DIM; d++)
        v[d] = (float)(v[d] / sqrt(s));
}

static void run(size_t n)
{
    float *centres = malloc((size_t)CLUSTERS * DIM * sizeof *centres);
    for (size_t i = 0; i < (size_t)CLUSTERS * DIM; i++)
        centres[i] = (float)gaussian();
    for (size_t c = 0; c < CLUSTERS; c++)
        unit(centres + c * DIM);
    /* rows 100 q .. 100 q + 1 are near duplicates of row 100 q, 100 q + 2 an exact one (same hash) */
    const char *path = "/tmp/jaclip_bench_dupes.jci";
    jaclip_index *ix = NULL;
    die_on(jaclip_index_create(&ix, DIM), "create");
    die_on(jaclip_index_save(ix, path), "save");
    jaclip_index_free(ix);
    float *chunk = malloc((size_t)CHUNK * DIM * sizeof *chunk);
    char (*names)[24] = malloc((size_t)CHUNK * sizeof *names);
    const char **labels = malloc(CHUNK * sizeof *labels);
    jaclip_index_stamp *stamps = malloc(CHUNK * sizeof *stamps);
    size_t planted = 0;
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t m = n - at < CHUNK ? n - at : CHUNK;
        for (size_t j = 0; j < m; j++) {
            size_t i = at + j;
            float *v = chunk + j * DIM;
            stamps[j] = (jaclip_index_stamp){1000 + i, 1, 0x51ull << 40 | i};
            if (i % 100 == 1 && j > 0) {
                for (int d = 0; d < DIM; d++)
                    v[d] = (float)(v[d - DIM] + 0.004 * (double)(1 + i / 100 % 3) * gaussian());
                planted++;
            } else if (i % 100 == 2 && j > 1) {
                memcpy(v, v - 2 * DIM, DIM * sizeof *v);
                stamps[j] = stamps[j - 2];
            } else {
                const float *c = centres + (size_t)(uniform() * CLUSTERS) * DIM;
                for (int d = 0; d < DIM; d++)
                    v[d] = (float)(c[d] + 0.045 * gaussian());
            }
            unit(v);
            snprintf(names[j], sizeof names[j], "p/%zu.jpg", i);
            labels[j] = names[j];
        }
        int64_t shape[2] = {(int64_t)m, DIM};
        jaclip_tensor *t = NULL;
        die_on(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, chunk), "tensor");
        die_on(jaclip_index_replace_file(path, NULL, 0, t, labels, stamps, NULL), "append");
        jaclip_tensor_free(t);
    }
    free(chunk);
    free(names);
    free(labels);
    free(stamps);
    free(centres);
    die_on(jaclip_index_load(&ix, path, 0), "load");
    unlink(path);
    double rss0 = peak_rss_mib();

    jaclip_dupes_options *o = NULL;
    jaclip_dupes *d = NULL, *e = NULL;
    die_on(jaclip_dupes_options_create(&o), "options");
    double t0 = now();
    die_on(jaclip_index_duplicates(&d, ix, o), "duplicates");
    double t_dupes = now() - t0;
    double rss1 = peak_rss_mib();
    die_on(jaclip_dupes_options_set_exact_only(o, 1), "exact only");
    t0 = now();
    die_on(jaclip_index_duplicates(&e, ix, o), "exact duplicates");
    double t_exact = now() - t0;

    /* row -> group (page = all groups) */
    size_t *group = calloc(n, sizeof *group);
    size_t grouped = 0;
    for (size_t g = 0; g < jaclip_dupes_count(d); g++)
        for (size_t j = 0; j < jaclip_dupes_group_size(d, g); j++) {
            size_t row;
            jaclip_dupes_member(&row, NULL, d, g, j);
            group[row] = g + 1;
            grouped++;
        }
    size_t found = 0;
    for (size_t i = 1; i < n; i += 100)
        found += i >= 1 && group[i] && group[i] == group[i - 1];

    /* peer: exact top-10 of SAMPLE rows; pairs >= 0.95 among them give the sampled recall */
    int64_t qshape[2] = {SAMPLE, DIM};
    jaclip_tensor *q = NULL, *idx = NULL, *val = NULL;
    die_on(jaclip_tensor_create(&q, JACLIP_DTYPE_FLOAT32, 2, qshape, NULL), "queries");
    size_t rows_of[SAMPLE];
    for (size_t s = 0; s < SAMPLE; s++) {
        rows_of[s] = (size_t)(uniform() * (double)(n / 100)) * 100; /* planted bases: they have partners */
        if (s % 2)
            rows_of[s] = (size_t)(uniform() * (double)n); /* and any rows */
        jaclip_tensor *one = NULL;
        die_on(jaclip_index_embeddings(&one, ix, rows_of[s], 1), "row");
        memcpy((float *)jaclip_tensor_data_mut(q) + s * DIM, jaclip_tensor_data(one), DIM * sizeof(float));
        jaclip_tensor_free(one);
    }
    t0 = now();
    die_on(jaclip_index_search(&idx, &val, ix, q, 10), "search");
    double t_scan = now() - t0, t_brute = t_scan * (double)n / SAMPLE;
    size_t pairs = 0, pairs_found = 0;
    const int64_t *ri = jaclip_tensor_data(idx);
    const float *rv = jaclip_tensor_data(val);
    for (size_t s = 0; s < SAMPLE; s++)
        for (int k = 0; k < 10; k++) {
            size_t r = (size_t)ri[s * 10 + k];
            if (r == rows_of[s] || rv[s * 10 + k] < 0.95f)
                continue;
            pairs++;
            pairs_found += group[r] && group[r] == group[rows_of[s]];
        }

    char cpu[256] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
            cpu[strcspn(cpu, "\n")] = 0;
            break;
        }
    if (f)
        fclose(f);
    double load[3] = {0};
    getloadavg(load, 3);
    printf("\n### %zu rows x %d (float32), %s, %ld cores, load average %.2f %.2f %.2f\n\n", n, DIM, cpu,
           sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
    printf("| measure | value |\n|---|---|\n");
    printf("| duplicates (exact + near, threshold 0.95) | %.2f s |\n", t_dupes);
    printf("| exact only | %.3f s |\n", t_exact);
    printf("| peer: exact top-10 scan of all rows (extrapolated from %d) | %.1f s |\n", SAMPLE, t_brute);
    printf("| duplicates / all-rows scan | %.4f |\n", t_dupes / t_brute);
    printf("| groups (exact-only groups) | %zu (%zu) |\n", jaclip_dupes_total(d), jaclip_dupes_total(e));
    printf("| rows grouped | %zu |\n", grouped);
    printf("| planted near pairs found (cosine 0.964 / 0.984 / 0.996) | %zu / %zu |\n", found, planted);
    printf("| sampled pairs >= 0.95 (exact scan) in one group | %zu / %zu |\n", pairs_found, pairs);
    printf("| peak RSS before / after | %.0f / %.0f MiB |\n", rss0, rss1);
    fflush(stdout);
    free(group);
    jaclip_tensor_free(q);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(val);
    jaclip_dupes_free(d);
    jaclip_dupes_free(e);
    jaclip_dupes_options_free(o);
    jaclip_index_free(ix);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_dupes ROWS [ROWS...]\n");
        return 2;
    }
    for (int i = 1; i < argc; i++)
        run((size_t)strtoull(argv[i], NULL, 10));
    return 0;
}
