/* jaclip_index_merge: many index files (the shards of a distributed run) into one. Rows are copied on
 * the public index API (load, label, embeddings, stamps, save, replace_file), so it follows whatever
 * the index file format becomes. What the shards know about their rows travels with them: the model
 * fingerprint, the row format, the metadata, each row's file stamp (so a merged index syncs without
 * re-embedding) and its capture time. */
#include "index/index_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rows are copied out of a shard this many bytes at a time: bounded memory, few segments. */
#define MERGE_BLOCK_BYTES ((size_t)64 << 20)

/* Appends rows first..first+count-1 of shard to the index file at out. */
static jaclip_status append_block(const char *out, const jaclip_index *shard, size_t first, size_t count)
{
    jaclip_tensor *rows = NULL;
    const char **labels = malloc(count * sizeof *labels);
    jaclip_index_stamp *stamps = malloc(count * sizeof *stamps);
    int64_t *times = malloc(count * sizeof *times);
    jaclip_status st = JACLIP_OK;
    if (!labels || !stamps || !times)
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for %zu labels", count);
    for (size_t i = 0; i < count && !st; i++) {
        int source = JACLIP_ROW_TIME_NONE;
        labels[i] = jaclip_index_label(shard, first + i);
        st = jaclip_index_stamp_of(&stamps[i], shard, first + i);
        if (!st)
            st = jaclip_index_row_time(&times[i], &source, shard, first + i);
        if (source != JACLIP_ROW_TIME_EXIF) /* only the capture time is the row's own; mtime is in the stamp */
            times[i] = JACLIP_TIME_NONE;
    }
    if (!st)
        st = jaclip_index_embeddings(&rows, shard, first, count);
    if (!st)
        st = jaclip_index_replace_file_timed(out, NULL, 0, rows, labels, stamps, times, NULL);
    jaclip_tensor_free(rows);
    free(labels);
    free(stamps);
    free(times);
    return st;
}

/* An empty index file at tmp recording what the first shard records: fingerprint, row format. */
static jaclip_status start_output(const char *tmp, const jaclip_index *first)
{
    jaclip_index *empty = NULL;
    jaclip_status st = jaclip_index_create(&empty, jaclip_index_dim(first));
    if (!st)
        st = jaclip_index_set_fingerprint(empty, jaclip_index_fingerprint(first));
    if (!st)
        st = jaclip_index_set_row_format(empty, jaclip_index_row_format(first));
    if (!st)
        st = jc_index_meta_copy(&empty->meta, &first->meta);
    if (!st)
        st = jaclip_index_save(empty, tmp);
    jaclip_index_free(empty);
    return st;
}

static const char *shown_fingerprint(const char *fp) { return fp[0] ? fp : "(none recorded)"; }

/* MODEL_MISMATCH unless shard was made by the same model as the first shard (both record the same
 * fingerprint, or neither records one): rows of two models must never share an index. */
static jaclip_status check_same_origin(const jaclip_index *shard, const char *name, const jaclip_index *first,
                                       const char *first_name)
{
    const char *a = jaclip_index_fingerprint(shard), *b = jaclip_index_fingerprint(first);
    if (strcmp(a, b) != 0)
        return jc_fail(JACLIP_ERROR_MODEL_MISMATCH,
                       "%s was made by model %s but %s by model %s: shards of different models cannot be merged",
                       name, shown_fingerprint(a), first_name, shown_fingerprint(b));
    /* Labels relative to two roots, or rows made under two orientation rules, do not mix either. */
    const jc_meta *m = &shard->meta, *f = &first->meta;
    for (size_t i = 0; i < m->count + f->count; i++) {
        const char *key = i < m->count ? m->keys[i] : f->keys[i - m->count];
        const char *x = jaclip_index_metadata(shard, key), *y = jaclip_index_metadata(first, key);
        if (!x || !y || strcmp(x, y) != 0)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s records %s = %s but %s records %s: shards made with "
                           "different settings cannot be merged", name, key, x ? x : "(nothing)", first_name,
                           y ? y : "(nothing)");
    }
    return JACLIP_OK;
}

/* The shard holding merged row `row`, given each shard's first row. */
static size_t shard_of(const size_t *starts, size_t n, size_t row)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (starts[mid] <= row)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* INVALID_ARGUMENT naming the first label of the merged file at tmp that an earlier row already has. */
static jaclip_status check_unique(const char *tmp, const char *const *shards, const size_t *starts, size_t n)
{
    jaclip_index *merged = NULL;
    /* Just written and synced by this call: the checksums were computed from the verified shards. */
    jaclip_status st = jaclip_index_load(&merged, tmp, JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM);
    if (st)
        return st;
    size_t rows = jaclip_index_size(merged), first;
    for (size_t i = 0; i < rows && !st; i++) {
        const char *label = jaclip_index_label(merged, i);
        if ((st = jaclip_index_find_label(&first, merged, label)))
            break;
        if (first != i)
            st = jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "label '%s' occurs twice: in %s and in %s", label,
                         shards[shard_of(starts, n, first)], shards[shard_of(starts, n, i)]);
    }
    jaclip_index_free(merged);
    return st;
}

jaclip_status jaclip_index_merge(const char *path, const char *const *shards, size_t n, uint32_t flags)
{
    if (!path || !shards)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", path ? "shards" : "path");
    if (n == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "no shards to merge");
    if (flags & ~JACLIP_INDEX_MERGE_UNIQUE_LABELS)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown merge flags 0x%x", flags);
    for (size_t i = 0; i < n; i++)
        if (!shards[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "shard %zu is NULL", i);

    size_t *starts = malloc(n * sizeof *starts);
    if (!starts)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory merging into %s", path);
    /* The temporary every atomic writer uses (PATH.tmp-PID-XXXXXXXX, mode as a new or the replaced
     * file): the next writer of PATH removes it if this process is killed. */
    jc_temp_file t;
    jaclip_status st0 = jc_temp_open(&t, path);
    if (st0) {
        free(starts);
        return st0;
    }
    close(t.fd);
    char *tmp = t.tmp;

    jaclip_status st = JACLIP_OK;
    size_t dim = 0, total = 0;
    jaclip_index *first_shard = NULL; /* kept (mapped) to compare the others with */
    for (size_t s = 0; s < n && !st; s++) {
        jaclip_index *shard = NULL;
        if ((st = jaclip_index_load(&shard, shards[s], JACLIP_INDEX_MMAP)))
            break; /* the message names the file */
        if (s == 0) {
            dim = jaclip_index_dim(shard);
            st = start_output(tmp, shard);
        } else if (jaclip_index_dim(shard) != dim) {
            st = jc_fail(JACLIP_ERROR_SHAPE, "%s holds %zu-wide rows but %s holds %zu-wide ones", shards[s],
                         jaclip_index_dim(shard), shards[0], dim);
        } else {
            st = check_same_origin(shard, shards[s], first_shard, shards[0]);
        }
        size_t rows = jaclip_index_size(shard), block = MERGE_BLOCK_BYTES / (dim * sizeof(float));
        if (block == 0)
            block = 1;
        starts[s] = total;
        for (size_t first = 0; first < rows && !st; first += block)
            if ((st = append_block(tmp, shard, first, rows - first < block ? rows - first : block)))
                jc_fail_prefix(st, "merging %s: ", shards[s]);
        total += rows;
        if (s == 0)
            first_shard = shard;
        else
            jaclip_index_free(shard);
    }
    jaclip_index_free(first_shard);
    if (!st && (flags & JACLIP_INDEX_MERGE_UNIQUE_LABELS))
        st = check_unique(tmp, shards, starts, n);
    if (!st && rename(tmp, path) != 0)
        st = jc_fail(JACLIP_ERROR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (st)
        unlink(tmp);
    else
        jc_sync_parent_dir(path);
    free(tmp);
    free(starts);
    return st;
}
