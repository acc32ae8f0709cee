/* make bench-ann: exact fp32 search (jaclip_index_search) against the ANN (jaclip_ann_*) on generated
 * clustered 512-d rows: build time, memory, latency of one query at a time, recall@10 against exact.
 * Usage: bench_ann ROWS [ROWS...]; prints a markdown table per size, with the CPU. */
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
#define QUERIES 200
#define K 10

#include "bench_synth.h"

static double rss_mib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    if (f)
        fclose(f);
    return resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static void die_on(jaclip_status st, const char *what)
{
    if (st) {
        fprintf(stderr, "bench_ann: %s: %s: %s\n", what, jaclip_status_string(st), jaclip_last_error());
        exit(1);
    }
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median and 95th percentile of per-query latency (ms), one query per call. */
static void latency(const jaclip_ann *ann, const jaclip_index *index, const float *q, size_t nq, double *median,
                    double *p95)
{
    double *t = malloc(nq * sizeof *t);
    int64_t shape[2] = {1, DIM};
    for (size_t i = 0; i < nq; i++) {
        jaclip_tensor *one = NULL, *idx = NULL;
        die_on(jaclip_tensor_create(&one, JACLIP_DTYPE_FLOAT32, 2, shape, q + i * DIM), "query");
        double t0 = now();
        die_on(ann ? jaclip_ann_search(&idx, NULL, ann, one, K) : jaclip_index_search(&idx, NULL, index, one, K),
               "search");
        t[i] = (now() - t0) * 1e3;
        jaclip_tensor_free(idx);
        jaclip_tensor_free(one);
    }
    qsort(t, nq, sizeof *t, by_double);
    *median = t[nq / 2];
    *p95 = t[nq * 95 / 100];
    free(t);
}

static double recall(const jaclip_tensor *exact, const jaclip_ann *ann, const jaclip_tensor *queries)
{
    jaclip_tensor *got = NULL;
    die_on(jaclip_ann_search(&got, NULL, ann, queries, K), "ann search");
    const int64_t *e = jaclip_tensor_data(exact), *a = jaclip_tensor_data(got);
    size_t hits = 0;
    for (size_t q = 0; q < QUERIES; q++)
        for (size_t i = 0; i < K; i++)
            for (size_t j = 0; j < K; j++)
                hits += e[q * K + i] == a[q * K + j];
    jaclip_tensor_free(got);
    return (double)hits / (QUERIES * K);
}

static void cpu_line(void)
{
    char line[4096], model[256] = "unknown";
    int avx2 = 0, avx512 = 0, bf16 = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10) && strchr(line, ':'))
            snprintf(model, sizeof model, "%s", strchr(line, ':') + 2), model[strcspn(model, "\n")] = 0;
        if (!strncmp(line, "flags", 5)) {
            avx2 = strstr(line, " avx2") != NULL;
            avx512 = strstr(line, " avx512f") != NULL;
            bf16 = strstr(line, " avx512_bf16") != NULL;
            break;
        }
    }
    if (f)
        fclose(f);
    printf("CPU: %s, %ld cores online, AVX2 %s, AVX-512 %s, BF16 %s\n", model, sysconf(_SC_NPROCESSORS_ONLN),
           avx2 ? "yes" : "no", avx512 ? "yes" : "no", bf16 ? "yes" : "no");
}

static void run(size_t rows, const char *dir)
{
    printf("\n### %zu rows x %d (clustered: %d centres, noise sd 1 per coordinate)\n\n", rows, DIM, CLUSTERS);
    /* Centres N(0, 1); points centre + N(0, 1): clusters overlap as real embeddings' topics do. */
    float *centres = malloc((size_t)CLUSTERS * DIM * sizeof *centres);
    for (size_t i = 0; i < (size_t)CLUSTERS * DIM; i++)
        centres[i] = (float)gaussian();
    jaclip_index *index = NULL;
    die_on(jaclip_index_create(&index, DIM), "create");
    const size_t batch = 50000;
    float *x = malloc(batch * DIM * sizeof *x);
    char **labels = malloc(batch * sizeof *labels);
    for (size_t i = 0; i < batch; i++)
        labels[i] = malloc(32);
    double rss0 = rss_mib(), t0 = now();
    for (size_t first = 0; first < rows; first += batch) {
        size_t n = rows - first < batch ? rows - first : batch;
        for (size_t r = 0; r < n; r++) {
            size_t c = (size_t)(uniform() * CLUSTERS) % CLUSTERS;
            for (size_t j = 0; j < DIM; j++)
                x[r * DIM + j] = centres[c * DIM + j] + (float)gaussian();
            snprintf(labels[r], 32, "photo-%zu.jpg", first + r);
        }
        int64_t shape[2] = {(int64_t)n, DIM};
        jaclip_tensor *t = NULL;
        die_on(jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, x), "tensor");
        die_on(jaclip_index_add(index, t, (const char *const *)labels), "add");
        jaclip_tensor_free(t);
    }
    double gen_s = now() - t0, index_mib = rss_mib() - rss0;
    /* Queries: new points near random rows (a user's photo of a known topic). */
    int64_t qshape[2] = {QUERIES, DIM};
    jaclip_tensor *queries = NULL, *exact = NULL;
    die_on(jaclip_tensor_create(&queries, JACLIP_DTYPE_FLOAT32, 2, qshape, NULL), "queries");
    float *q = jaclip_tensor_data_mut(queries);
    for (size_t i = 0; i < QUERIES; i++) {
        jaclip_tensor *row = NULL;
        die_on(jaclip_index_embeddings(&row, index, (size_t)(uniform() * rows) % rows, 1), "row");
        const float *r = jaclip_tensor_data(row);
        for (size_t j = 0; j < DIM; j++)
            q[i * DIM + j] = r[j] + (float)(0.02 * gaussian());
        jaclip_tensor_free(row);
    }
    die_on(jaclip_index_search(&exact, NULL, index, queries, K), "exact");
    double med, p95;
    latency(NULL, index, q, rows >= 500000 ? 15 : 100, &med, &p95);
    printf("| search | build s | memory MiB | ms/query median | p95 | recall@10 |\n|---|---|---|---|---|---|\n");
    printf("| exact fp32 (jaclip_index_search) | %.1f (generate + add) | %.0f (index rows) | %.2f | %.2f | 1 |\n",
           gen_s, index_mib, med, p95);

    jaclip_ann_kind kinds[] = {JACLIP_ANN_IVF_FLAT, JACLIP_ANN_IVF_PQ};
    for (size_t kind_i = 0; kind_i < 2; kind_i++) {
        jaclip_ann_kind kind = kinds[kind_i];
        if (rows >= 500000 && kind == JACLIP_ANN_IVF_FLAT)
            continue; /* a second 2 GiB copy of the rows: not what a million rows should use */
        jaclip_ann *ann = NULL;
        double m0 = rss_mib(), b0 = now();
        die_on(jaclip_ann_build(&ann, index, kind, 0), "ann build");
        double build_s = now() - b0, mem = rss_mib() - m0;
        char path[600];
        snprintf(path, sizeof path, "%s/bench.ann", dir);
        die_on(jaclip_ann_save(ann, path), "save");
        FILE *f = fopen(path, "rb");
        long file_bytes = 0;
        if (f && fseek(f, 0, SEEK_END) == 0)
            file_bytes = ftell(f);
        if (f)
            fclose(f);
        jaclip_ann *loaded = NULL;
        double l0 = now();
        die_on(jaclip_ann_load(&loaded, path, index, 0), "load");
        double load_s = now() - l0;
        jaclip_ann_free(loaded);
        unlink(path);
        /* (nprobe, rerank) pairs; 0 keeps the default. */
        size_t probes[][2] = {{0, 0}, {8, 10}, {16, 10}, {32, 10}, {64, 10}, {32, 50}, {64, 50}, {64, 100}};
        for (size_t p = 0; p < sizeof probes / sizeof *probes; p++) {
            if (kind == JACLIP_ANN_IVF_FLAT && probes[p][1] > 10)
                continue; /* re-ranking only widens IVF-PQ's candidates */
            die_on(jaclip_ann_set_params(ann, probes[p][0], 0, probes[p][1]), "params");
            latency(ann, index, q, QUERIES, &med, &p95);
            double r = recall(exact, ann, queries);
            if (p == 0)
                printf("| %s default | %.1f (load %.1f) | %.0f (file %.1f) | %.2f | %.2f | %.3f |\n",
                       jaclip_ann_kind_name(kind), build_s, load_s, mem, file_bytes / 1048576.0, med, p95, r);
            else
                printf("| %s nprobe %zu rerank %zu | | | %.2f | %.2f | %.3f |\n", jaclip_ann_kind_name(kind),
                       probes[p][0], probes[p][1], med, p95, r);
            fflush(stdout);
        }
        jaclip_ann_free(ann);
    }
    jaclip_tensor_free(exact);
    jaclip_tensor_free(queries);
    jaclip_index_free(index);
    for (size_t i = 0; i < batch; i++)
        free(labels[i]);
    free(labels);
    free(x);
    free(centres);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_ann ROWS [ROWS...]\n");
        return 2;
    }
    const char *dir = getenv("TMPDIR");
    cpu_line();
    for (int i = 1; i < argc; i++)
        run((size_t)strtoull(argv[i], NULL, 10), dir && *dir ? dir : "/tmp");
    return 0;
}
