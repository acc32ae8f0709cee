/* libFuzzer harness for ANN files (lib/ann/ann.c, docs/ann.md): any bytes written to a file and loaded by
 * jaclip_ann_load against a fixed index of 10 000 clustered 16-wide rows; what loads is searched.
 * The first input byte picks the mode:
 *   even: the bytes as they are (the header parser, checksums, the stale checks);
 *   odd:  with JACLIP_FUZZ_ANN_FORGED=1 only (otherwise as even), the header's rows, dim and row
 *         fingerprint are set to the index's and both CRC32s are recomputed, so the mutated faiss data
 *         reaches the check of faiss's stream (lib/ann/ann_faiss_check.c, instrumented here) and what
 *         it lets through reaches faiss (a forged file, not a damaged one).
 * Every failure must be a documented status with a message, and leave *out NULL.
 * JACLIP_FUZZ_ANN_SEEDS=DIR writes one valid file per ANN kind into DIR and exits (the seeds). */
#include "common/bytes.h"
#include "jaclip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define ROWS 10000 /* IVF-PQ needs 10 000 rows to train */
#define DIM 16
#define HEADER 64

static jaclip_index *index_;
static unsigned char fingerprint_field[8];
static char path[64];
static int forged_mode;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_ann: %s: %s\n", what, jaclip_last_error());
    exit(1);
}

/* Eight clusters of rows, the same on every run (a small LCG, not rand(): no libc state). */
static jaclip_index *make_index(void)
{
    static float rows[ROWS * DIM];
    static char names[ROWS][16];
    const char *labels[ROWS];
    uint32_t state = 12345;
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t d = 0; d < DIM; d++) {
            state = state * 1664525u + 1013904223u;
            float noise = (float)(state >> 8) / 16777216.0f - 0.5f;
            rows[r * DIM + d] = (d == r % 8 ? 3.0f : 0.0f) + noise;
        }
        snprintf(names[r], sizeof names[r], "photo%zu.jpg", r);
        labels[r] = names[r];
    }
    jaclip_index *ix = NULL;
    jaclip_tensor *t = NULL;
    int64_t shape[2] = {ROWS, DIM};
    if (jaclip_index_create(&ix, DIM) || jaclip_tensor_create(&t, JACLIP_DTYPE_FLOAT32, 2, shape, rows) ||
        jaclip_index_add(ix, t, labels))
        die("building the index");
    jaclip_tensor_free(t);
    return ix;
}

static int write_seeds(const char *dir)
{
    static const jaclip_ann_kind kinds[] = {JACLIP_ANN_EXACT, JACLIP_ANN_IVF_FLAT, JACLIP_ANN_IVF_PQ, JACLIP_ANN_HNSW};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        jaclip_ann *ann = NULL;
        char file[4096];
        snprintf(file, sizeof file, "%s/%s.ann", dir, jaclip_ann_kind_name(kinds[i]));
        if (jaclip_ann_build(&ann, index_, kinds[i], 0) || jaclip_ann_save(ann, file))
            die(file);
        jaclip_ann_free(ann);
    }
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    index_ = make_index();
    const char *forged = getenv("JACLIP_FUZZ_ANN_FORGED");
    forged_mode = forged && strcmp(forged, "1") == 0;
    snprintf(path, sizeof path, "/tmp/jaclip-fuzz-ann-%d.ann", (int)getpid());
    const char *seeds = getenv("JACLIP_FUZZ_ANN_SEEDS");
    if (seeds && *seeds)
        exit(write_seeds(seeds));
    /* The row fingerprint the header must carry: from a file this library writes for the index. */
    jaclip_ann *ann = NULL;
    if (jaclip_ann_build(&ann, index_, JACLIP_ANN_EXACT, 0) || jaclip_ann_save(ann, path))
        die("the exact ANN");
    jaclip_ann_free(ann);
    FILE *f = fopen(path, "rb");
    unsigned char h[HEADER];
    if (!f || fread(h, 1, HEADER, f) != HEADER)
        die("reading its header");
    fclose(f);
    memcpy(fingerprint_field, h + 32, 8);
    return 0;
}

static void write_input(const uint8_t *data, size_t size, int crafted)
{
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    if (crafted && size >= HEADER) {
        jc_put_u32le(copy + 20, DIM);
        jc_put_u64le(copy + 24, ROWS);
        memcpy(copy + 32, fingerprint_field, 8);
        jc_put_u64le(copy + 48, size - HEADER);
        jc_put_u32le(copy + 56, (uint32_t)crc32(0, copy + HEADER, (uInt)(size - HEADER)));
        jc_put_u32le(copy + 60, (uint32_t)crc32(0, copy, 60));
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(copy, 1, size, f) != size) || fclose(f) != 0)
        abort();
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    write_input(data + 1, size - 1, forged_mode && (data[0] & 1));
    jaclip_ann *ann = (jaclip_ann *)&ann; /* garbage in *out must be overwritten */
    jaclip_status st = jaclip_ann_load(&ann, path, index_, 0);
    if (st != JACLIP_OK) {
        if (ann != NULL || (st != JACLIP_ERROR_INDEX_FORMAT && st != JACLIP_ERROR_BACKEND &&
                            st != JACLIP_ERROR_OUT_OF_MEMORY) || jaclip_last_error()[0] == '\0') {
            fprintf(stderr, "bad failure: status %d, message '%s'\n", (int)st, jaclip_last_error());
            abort();
        }
        return 0;
    }
    float q[DIM] = {1.0f};
    int64_t shape[2] = {1, DIM};
    jaclip_tensor *query = NULL, *idx = NULL, *scores = NULL;
    if (jaclip_tensor_create(&query, JACLIP_DTYPE_FLOAT32, 2, shape, q) != JACLIP_OK)
        abort();
    st = jaclip_ann_search(&idx, &scores, ann, query, 5);
    if (st == JACLIP_OK) {
        const int64_t *rows = jaclip_tensor_data(idx);
        for (size_t i = 0; i < jaclip_tensor_numel(idx); i++)
            if (rows[i] < -1 || rows[i] >= ROWS)
                abort();
    } else if (st != JACLIP_ERROR_BACKEND && st != JACLIP_ERROR_OUT_OF_MEMORY) {
        abort();
    }
    jaclip_tensor_free(query);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(scores);
    jaclip_ann_free(ann);
    return 0;
}
