/* Writing the segments of index files (docs/index-format.md): row segments (vectors, label offsets,
 * stamps, capture times, labels) and tombstone segments, streamed with their CRC32. Where and when
 * they are committed is index_write.c's part. */
#include "index/index_internal.h"

#include <stdlib.h>
#include <string.h>

/* Streams a segment payload to fd at offset, keeping its CRC32. */
typedef struct {
    int fd;
    uint64_t offset;
    uint32_t crc;
    const char *path;
    unsigned char buf[1 << 16];
    size_t used;
} jc_writer;

static jaclip_status writer_flush(jc_writer *w)
{
    jaclip_status st = jc_write_at(w->fd, w->buf, w->used, w->offset, w->path);
    w->offset += w->used;
    w->used = 0;
    return st;
}

static jaclip_status writer_put(jc_writer *w, const void *data, size_t size)
{
    const unsigned char *p = data;
    w->crc = jc_crc32(w->crc, data, size);
    while (size > 0) {
        size_t n = sizeof w->buf - w->used < size ? sizeof w->buf - w->used : size;
        memcpy(w->buf + w->used, p, n);
        w->used += n, p += n, size -= n;
        if (w->used == sizeof w->buf) {
            jaclip_status st = writer_flush(w);
            if (st)
                return st;
        }
    }
    return JACLIP_OK;
}

static jaclip_status writer_zeros(jc_writer *w, size_t n)
{
    static const unsigned char zeros[JC_ALIGN];
    return writer_put(w, zeros, n);
}

static jc_writer *writer_new(int fd, uint64_t payload_offset, const char *path)
{
    jc_writer *w = malloc(sizeof *w);
    if (w)
        w->fd = fd, w->offset = payload_offset, w->crc = 0, w->path = path, w->used = 0;
    return w;
}

bool jc_index_runs_have_times(const jc_run *runs, size_t nruns)
{
    for (size_t i = 0; i < nruns; i++)
        for (size_t r = 0; runs[i].times && r < runs[i].count; r++)
            if (jc_run_capture(&runs[i], r) != INT64_MIN)
                return true;
    return false;
}

jaclip_status jc_index_write_segment(int fd, uint64_t offset, const jc_run *runs, size_t nruns, size_t rows,
                                     const jc_file_header *fh, bool times, uint64_t label_bytes, const char *path,
                                     uint64_t *segment_bytes)
{
    jc_segment_layout l;
    jaclip_status st = JACLIP_OK;
    size_t dim = fh->dim, es = jc_row_bytes(jc_index_row_format_of(fh));
    bool stamps = fh->version >= 2;
    if (!jc_index_segment_layout(&l, rows, dim, es, stamps, times, label_bytes))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index too large to write");
    jc_writer *w = writer_new(fd, offset + JC_SEGMENT_HEADER_SIZE, path);
    if (!w)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    for (size_t i = 0; i < nruns && !st; i++)
        st = writer_put(w, runs[i].vectors, runs[i].count * dim * es);
    if (!st)
        st = writer_zeros(w, (size_t)(l.offsets_at - l.vector_bytes));
    uint64_t base = 0;
    for (size_t i = 0; i < nruns && !st; i++) {
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            unsigned char le[8];
            jc_put_u64le(le, base);
            st = writer_put(w, le, 8);
            base += strlen(jc_run_label(&runs[i], r)) + 1;
        }
    }
    for (size_t i = 0; i < nruns && stamps && !st; i++) {
        if (runs[i].stamps) {
            st = writer_put(w, runs[i].stamps, runs[i].count * JC_STAMP_BYTES);
        } else {
            for (size_t r = 0; r < runs[i].count && !st; r++)
                st = writer_zeros(w, JC_STAMP_BYTES);
        }
    }
    for (size_t i = 0; i < nruns && times && !st; i++) {
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            unsigned char le[JC_TIME_BYTES];
            jc_put_u64le(le, (uint64_t)jc_run_capture(&runs[i], r));
            st = writer_put(w, le, sizeof le);
        }
    }
    for (size_t i = 0; i < nruns && !st; i++)
        for (size_t r = 0; r < runs[i].count && !st; r++) {
            const char *s = jc_run_label(&runs[i], r);
            st = writer_put(w, s, strlen(s) + 1);
        }
    if (!st)
        st = writer_zeros(w, (size_t)(l.payload_bytes - l.labels_at - label_bytes));
    if (!st)
        st = writer_flush(w);
    if (!st) {
        unsigned char h[JC_SEGMENT_HEADER_SIZE];
        jc_index_encode_segment_header(h, JC_SEGMENT_MAGIC, rows, label_bytes, l.payload_bytes, w->crc,
                                       times ? JC_SEGMENT_TIMES : 0);
        st = jc_write_at(fd, h, sizeof h, offset, path);
    }
    free(w);
    *segment_bytes = JC_SEGMENT_HEADER_SIZE + l.payload_bytes;
    return st;
}

jaclip_status jc_index_write_tombstones(int fd, uint64_t offset, const uint64_t *ids, size_t n, const char *path,
                                        uint64_t *segment_bytes)
{
    jaclip_status st = JACLIP_OK;
    uint64_t payload = jc_align_up((uint64_t)n * 8, JC_ALIGN);
    jc_writer *w = writer_new(fd, offset + JC_SEGMENT_HEADER_SIZE, path);
    if (!w)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    for (size_t i = 0; i < n && !st; i++) {
        unsigned char le[8];
        jc_put_u64le(le, ids[i]);
        st = writer_put(w, le, 8);
    }
    if (!st)
        st = writer_zeros(w, (size_t)(payload - (uint64_t)n * 8));
    if (!st)
        st = writer_flush(w);
    if (!st) {
        unsigned char h[JC_SEGMENT_HEADER_SIZE];
        jc_index_encode_segment_header(h, JC_TOMBSTONE_MAGIC, n, 0, payload, w->crc, 0);
        st = jc_write_at(fd, h, sizeof h, offset, path);
    }
    free(w);
    *segment_bytes = JC_SEGMENT_HEADER_SIZE + payload;
    return st;
}

uint64_t jc_index_run_label_bytes(const jc_run *runs, size_t nruns)
{
    uint64_t bytes = 0;
    for (size_t i = 0; i < nruns; i++)
        for (size_t r = 0; r < runs[i].count; r++)
            bytes += strlen(jc_run_label(&runs[i], r)) + 1;
    return bytes;
}

