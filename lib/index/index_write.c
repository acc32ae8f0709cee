/* Writing index files (docs/index-format.md): a whole file saved atomically (common/file_output.c),
 * and appends, deletions and compaction under the file's exclusive lock, each committed by one header
 * write after its segments are synced. */
#include "index/index_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static jaclip_status sync_fd(int fd, const char *path)
{
    return fdatasync(fd) == 0 ? JACLIP_OK : jc_io_fail("cannot sync", path);
}

jaclip_status jaclip_index_save(const jaclip_index *index, const char *path)
{
    jaclip_status st = JACLIP_OK;
    if (!index || !path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "path" : "index");
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    jc_run *runs = malloc((index->nruns + 1) * sizeof *runs);
    if (!runs)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory saving %s", path);
    jc_temp_file t;
    if ((st = jc_temp_open(&t, path))) {
        free(runs);
        return st;
    }
    int fd = t.fd;
    const char *tmp = t.tmp;
    size_t nruns = jc_index_build_runs(index, runs);
    jc_file_header fh = {0};
    /* Version 3 only when there is metadata, 4 only with capture times: older readers keep reading the
     * rest. */
    bool times = jc_index_runs_have_times(runs, nruns);
    fh.version = times ? JC_FORMAT_VERSION_TIMES : index->meta.count ? JC_FORMAT_VERSION_META : JC_FORMAT_VERSION;
    fh.dim = (uint32_t)index->dim;
    fh.flags = index->row_format == JACLIP_INDEX_ROWS_FLOAT16 ? JC_FLAG_FLOAT16 : 0;
    fh.committed = JC_HEADER_SIZE;
    fh.rows = index->count;
    fh.sequence = 1;
    memcpy(fh.fingerprint, index->fingerprint, sizeof fh.fingerprint);
    if (index->meta.count) {
        uint64_t seg_bytes = 0;
        st = jc_index_meta_write(fd, fh.committed, &index->meta, tmp, &seg_bytes);
        fh.committed += seg_bytes;
        fh.segments += 1;
    }
    if (index->count > 0 && !st) {
        uint64_t seg_bytes = 0;
        st = jc_index_write_segment(fd, fh.committed, runs, nruns, index->count, &fh, times,
                                    jc_index_run_label_bytes(runs, nruns), tmp, &seg_bytes);
        fh.committed += seg_bytes;
        fh.segments += 1;
    }
    unsigned char h[JC_HEADER_SIZE];
    jc_index_encode_file_header(h, &fh);
    if (!st)
        st = jc_write_at(fd, h, JC_HEADER_SIZE, 0, tmp);
    st = jc_temp_commit(&t, st, "index");
    free(runs);
    return st;
}

/* Opens path read-write holding its exclusive flock. A writer that waited for the lock while another
 * replaced the file by rename (compaction) would hold the lock of a file no longer under that name:
 * then it opens the new one. */
static jaclip_status open_locked(const char *path, int *out_fd)
{
    for (int attempt = 0; attempt < 1000; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return jc_io_fail("cannot open", path);
        struct stat a, b;
        if (fstat(fd, &a) != 0 || !S_ISREG(a.st_mode)) {
            jaclip_status st = S_ISREG(a.st_mode) ? jc_io_fail("cannot stat", path)
                                                  : jc_fail(JACLIP_ERROR_IO, "%s: not a regular file", path);
            close(fd);
            return st;
        }
        while (flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                jaclip_status st = jc_io_fail("cannot lock", path);
                close(fd);
                return st;
            }
        }
        if (stat(path, &b) == 0 && fstat(fd, &a) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
            *out_fd = fd;
            return JACLIP_OK;
        }
        close(fd);
    }
    return jc_fail(JACLIP_ERROR_IO, "%s: replaced too often while waiting for its lock", path);
}

/* Rewrites the open, locked file at path with only its live rows, as version 2 (fingerprint NULL keeps
 * the file's). The caller closes fd afterwards, which lets waiting writers see the new file. */
static jaclip_status compact_locked(int fd, const char *path, const char *fingerprint)
{
    jc_file_header fh;
    jaclip_index *index = NULL;
    jaclip_status st = jc_index_load_fd(&index, fd, path, JACLIP_INDEX_DEFAULT, &fh);
    if (!st && fingerprint)
        st = jaclip_index_set_fingerprint(index, fingerprint);
    if (!st)
        st = jaclip_index_save(index, path);
    jaclip_index_free(index);
    return st;
}

jaclip_status jaclip_index_compact_file(const char *path, const char *fingerprint)
{
    int fd;
    jaclip_status st;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if (fingerprint && fingerprint[0] &&
        !jc_index_valid_fingerprint(fingerprint, strnlen(fingerprint, JC_FINGERPRINT_FIELD)))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "a fingerprint is 1..%u printable ASCII characters without spaces", JC_FINGERPRINT_FIELD - 1);
    if ((st = open_locked(path, &fd)))
        return st;
    st = compact_locked(fd, path, fingerprint);
    close(fd);
    return st;
}

/* The stored-row numbers (increasing) of the live rows of the locked file whose label is in set. */
static jaclip_status find_doomed(int fd, const char *path, const jc_label_set *set, uint64_t **out_ids, size_t *out_n)
{
    jc_file_header fh;
    jaclip_index *index = NULL;
    *out_ids = NULL;
    *out_n = 0;
    /* Labels are checked in full; vectors are not needed. */
    jaclip_status st = jc_index_load_fd(&index, fd, path, JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM, &fh);
    if (st)
        return st;
    uint64_t *ids = malloc((index->count ? index->count : 1) * sizeof *ids);
    size_t n = 0;
    if (!ids) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory removing rows from %s", path);
    } else {
        for (size_t i = 0; i < index->nruns; i++)
            for (size_t j = 0; j < index->runs[i].count; j++)
                if (jc_label_set_has(set, jc_run_label(&index->runs[i], j)))
                    ids[n++] = index->runs[i].file_row + j;
    }
    jaclip_index_free(index);
    *out_ids = ids;
    *out_n = n;
    return st;
}

/* Opens path locked with its header read; a version 1 file is first upgraded in place (atomically)
 * when deletions or stamps need version 2. */
static jaclip_status open_for_update(const char *path, bool need_v2, int *out_fd, jc_file_header *fh)
{
    jaclip_status st;
    for (;;) {
        /* Appenders queue on the lock; readers need none (they only use the committed part). */
        if ((st = open_locked(path, out_fd)))
            return st;
        if ((st = jc_index_read_header(*out_fd, fh, path))) {
            close(*out_fd);
            return st;
        }
        if (fh->version >= 2 || !need_v2)
            return JACLIP_OK;
        st = compact_locked(*out_fd, path, NULL);
        close(*out_fd);
        if (st)
            return st;
    }
}

/* New rows as one run, normalised (and rounded to the file's row format) as add stores them. */
typedef struct {
    void *vectors;
    uint64_t *offsets;
    char *labels;
    unsigned char *stamps;
    unsigned char *times; /* NULL when no row has a capture time */
    jc_run run;
} jc_staged_rows;

static void staged_free(jc_staged_rows *s)
{
    free(s->vectors);
    free(s->offsets);
    free(s->labels);
    free(s->stamps);
    free(s->times);
}

static jaclip_status stage_rows(jc_staged_rows *s, const jaclip_tensor *embeddings, const char *const *labels,
                                const jaclip_index_stamp *stamps, const int64_t *capture_ns, size_t rows,
                                size_t label_bytes, size_t dim, uint32_t row_format, const char *path)
{
    memset(s, 0, sizeof *s);
    bool times = false;
    for (size_t r = 0; capture_ns && r < rows; r++)
        times |= capture_ns[r] != INT64_MIN;
    if (times && !(s->times = malloc(rows * JC_TIME_BYTES)))
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory appending to %s", path);
    for (size_t r = 0; times && r < rows; r++)
        jc_put_u64le(s->times + r * JC_TIME_BYTES, (uint64_t)capture_ns[r]);
    s->vectors = malloc(rows * dim * jc_row_bytes(row_format));
    s->offsets = malloc(rows * sizeof *s->offsets);
    s->labels = malloc(label_bytes);
    s->stamps = malloc(rows * JC_STAMP_BYTES);
    float *scratch = malloc(dim * sizeof *scratch);
    if (!s->vectors || !s->offsets || !s->labels || !s->stamps || !scratch) {
        free(scratch);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory appending to %s", path);
    }
    size_t at = 0;
    for (size_t r = 0; r < rows; r++) {
        jc_index_store_row(s->vectors, r, (const float *)embeddings->data + r * dim, dim, row_format, scratch);
        jc_index_put_stamp(s->stamps + r * JC_STAMP_BYTES, stamps ? &stamps[r] : NULL);
        size_t len = strlen(labels[r]) + 1;
        s->offsets[r] = at;
        memcpy(s->labels + at, labels[r], len);
        at += len;
    }
    free(scratch);
    s->run = (jc_run){s->vectors, s->offsets, s->labels, s->stamps, rows, 0, 0, s->times};
    return JACLIP_OK;
}

/* Drops what an interrupted append left past the committed end, writes and syncs the tombstones of
 * ids[0..nids) and the segment of rows (if any), and only then commits them by rewriting the header
 * (one write in the first sector). */
static jaclip_status commit_segments(int fd, jc_file_header *fh, const uint64_t *ids, size_t nids, const jc_run *rows,
                                     uint64_t label_bytes, const jc_meta *meta, const char *path)
{
    jaclip_status st;
    uint64_t pos = fh->committed, seg_bytes = 0;
    if (ftruncate(fd, (off_t)fh->committed) != 0)
        return jc_io_fail("cannot truncate the unfinished tail of", path);
    if (meta) {
        if ((st = jc_index_meta_write(fd, pos, meta, path, &seg_bytes)))
            return st;
        pos += seg_bytes;
        fh->segments += 1;
        if (fh->version < JC_FORMAT_VERSION_META)
            fh->version = JC_FORMAT_VERSION_META; /* committed with the header below */
    }
    if (nids > 0) {
        if ((st = jc_index_write_tombstones(fd, pos, ids, nids, path, &seg_bytes)))
            return st;
        pos += seg_bytes;
        fh->segments += 1;
        fh->deleted += nids;
    }
    if (rows->count > 0) {
        bool times = jc_index_runs_have_times(rows, 1);
        if (times)
            fh->version = JC_FORMAT_VERSION_TIMES; /* committed with the header below */
        if ((st = jc_index_write_segment(fd, pos, rows, 1, rows->count, fh, times, label_bytes, path, &seg_bytes)))
            return st;
        pos += seg_bytes;
        fh->segments += 1;
        fh->rows += rows->count;
    }
    if ((st = sync_fd(fd, path)))
        return st;
    fh->committed = pos;
    fh->sequence += 1;
    unsigned char h[JC_HEADER_SIZE];
    jc_index_encode_file_header(h, fh);
    if ((st = jc_write_at(fd, h, jc_index_header_size(fh->version), 0, path)))
        return st;
    return sync_fd(fd, path);
}

jaclip_status jaclip_index_replace_file_timed(const char *path, const char *const *remove_labels, size_t nremove,
                                              const jaclip_tensor *embeddings, const char *const *labels,
                                              const jaclip_index_stamp *stamps, const int64_t *capture_ns,
                                              size_t *out_removed)
{
    jaclip_status st;
    size_t rows = 0, label_bytes = 0;
    int fd = -1;
    jc_file_header fh;
    jc_label_set set = {NULL, 0};
    uint64_t *ids = NULL;
    size_t nids = 0;
    jc_staged_rows staged = {0};
    if (out_removed)
        *out_removed = 0;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if ((st = jc_index_check_label_list(remove_labels, nremove)))
        return st;
    if (embeddings && (st = jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings")))
        return st;
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    /* Deletions, stamps and capture times need version 2 at least. */
    if ((st = open_for_update(path, nremove > 0 || stamps || capture_ns, &fd, &fh)))
        return st;
    size_t dim = fh.dim;
    if (embeddings && (st = jc_index_check_rows(embeddings, labels, dim, &rows, &label_bytes)))
        goto done;
    if (nremove > 0) {
        if ((st = jc_label_set_build(&set, remove_labels, nremove)) || (st = find_doomed(fd, path, &set, &ids, &nids)))
            goto done;
    }
    if (rows == 0 && nids == 0)
        goto done;
    if (rows > 0 && (st = stage_rows(&staged, embeddings, labels, stamps, capture_ns, rows, label_bytes, dim,
                                     jc_index_row_format_of(&fh), path)))
        goto done;
    if ((st = commit_segments(fd, &fh, ids, nids, &staged.run, label_bytes, NULL, path)))
        goto done;
    if (out_removed)
        *out_removed = nids;
done:
    close(fd);
    free(set.slots);
    free(ids);
    staged_free(&staged);
    return st;
}

jaclip_status jaclip_index_replace_file(const char *path, const char *const *remove_labels, size_t nremove,
                                        const jaclip_tensor *embeddings, const char *const *labels,
                                        const jaclip_index_stamp *stamps, size_t *out_removed)
{
    return jaclip_index_replace_file_timed(path, remove_labels, nremove, embeddings, labels, stamps, NULL,
                                           out_removed);
}

jaclip_status jaclip_index_append_file(const char *path, const jaclip_tensor *embeddings, const char *const *labels)
{
    if (path && !embeddings)
        return jc_check_2d(embeddings, JACLIP_DTYPE_FLOAT32, "embeddings");
    return jaclip_index_replace_file(path, NULL, 0, embeddings, labels, NULL, NULL);
}

jaclip_status jaclip_index_remove_file(const char *path, const char *const *labels, size_t n, size_t *out_removed)
{
    return jaclip_index_replace_file(path, labels, n, NULL, NULL, NULL, out_removed);
}

jaclip_status jaclip_index_set_metadata_file(const char *path, const char *key, const char *value)
{
    int fd = -1;
    jc_file_header fh;
    jaclip_index *index = NULL;
    jc_meta meta = {0};
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    jaclip_status st = jc_index_meta_set_checked(&meta, key, value); /* checks key and value first */
    jc_index_meta_clear(&meta);
    if (st)
        return st;
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are written on little-endian hosts only");
    if ((st = open_for_update(path, true, &fd, &fh)))
        return st;
    /* The whole set is written again: the last metadata segment is the file's metadata. */
    if (!(st = jc_index_load_fd(&index, fd, path, JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM, &fh)) &&
        !(st = jc_index_meta_copy(&meta, &index->meta)) && !(st = jc_index_meta_set_checked(&meta, key, value))) {
        const char *old = jaclip_index_metadata(index, key);
        bool same = value ? old && strcmp(old, value) == 0 : !old;
        jc_run none = {0};
        if (!same)
            st = commit_segments(fd, &fh, NULL, 0, &none, 0, &meta, path);
    }
    jc_index_meta_clear(&meta);
    jaclip_index_free(index);
    close(fd);
    return st;
}
