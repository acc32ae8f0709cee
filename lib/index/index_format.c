/* Reading index files (docs/index-format.md): the file and segment headers, every segment checked
 * (bounds, CRC32, labels, tombstones) before a row is used, and the live rows mapped or read. */
#include "index/index_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

uint32_t jc_index_header_size(uint32_t version) { return version == 1 ? JC_HEADER_SIZE_V1 : JC_HEADER_SIZE; }

void jc_index_encode_file_header(unsigned char *h, const jc_file_header *fh)
{
    uint32_t hs = jc_index_header_size(fh->version);
    memset(h, 0, hs);
    memcpy(h, JC_FILE_MAGIC, 8);
    jc_put_u32le(h + 8, fh->version);
    jc_put_u32le(h + 12, hs);
    jc_put_u32le(h + 16, fh->dim);
    jc_put_u32le(h + 20, fh->version == 1 ? 0 : fh->flags);
    jc_put_u64le(h + 24, fh->committed);
    jc_put_u64le(h + 32, fh->rows);
    jc_put_u64le(h + 40, fh->segments);
    jc_put_u64le(h + 48, fh->sequence);
    if (fh->version == 1) {
        jc_put_u32le(h + 60, jc_crc32(0, h, 60));
        return;
    }
    jc_put_u64le(h + 56, fh->deleted);
    memcpy(h + 64, fh->fingerprint, strnlen(fh->fingerprint, JC_FINGERPRINT_FIELD - 1));
    jc_put_u32le(h + 124, jc_crc32(0, h, 124));
}

/* Checks the header bytes h[0..got) (got: what could be read of the first JC_HEADER_SIZE bytes). The
 * committed size is checked against the file size separately (check_committed), after the header
 * was read: see jaclip_index_load. */
static jaclip_status decode_file_header(jc_file_header *fh, const unsigned char *h, size_t got, const char *path)
{
    memset(fh, 0, sizeof *fh);
    if (got < 8 || memcmp(h, JC_FILE_MAGIC, 8) != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: not a jaclip index (no JACLIPIX signature)", path);
    if (got < 12)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: %zu bytes, shorter than the file header", path, got);
    uint32_t version = jc_get_u32le(h + 8);
    if (version < 1 || version > JC_FORMAT_VERSION_TIMES)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: index format version %u; this library reads versions 1 to %u",
                       path, version, JC_FORMAT_VERSION_TIMES);
    uint32_t hs = jc_index_header_size(version);
    if (got < hs)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: %zu bytes, shorter than the %u-byte header", path,
                       got, hs);
    if (jc_get_u32le(h + hs - 4) != jc_crc32(0, h, hs - 4))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: the file header fails its CRC32 check", path);
    fh->version = version;
    fh->dim = jc_get_u32le(h + 16);
    fh->flags = jc_get_u32le(h + 20);
    fh->committed = jc_get_u64le(h + 24);
    fh->rows = jc_get_u64le(h + 32);
    fh->segments = jc_get_u64le(h + 40);
    fh->sequence = jc_get_u64le(h + 48);
    if (version == 1) {
        if (jc_get_u32le(h + 12) != hs || fh->flags != 0 || jc_get_u32le(h + 56) != 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                           "%s: header size, flags or reserved field not as version 1 writes", path);
    } else {
        fh->deleted = jc_get_u64le(h + 56);
        if (jc_get_u32le(h + 12) != hs || (fh->flags & ~JC_FLAG_FLOAT16) || jc_get_u32le(h + 120) != 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                           "%s: header size, flags or reserved field not as version %u writes", path, version);
        const char *fp = (const char *)h + 64;
        size_t len = strnlen(fp, JC_FINGERPRINT_FIELD);
        for (size_t i = len; i < JC_FINGERPRINT_FIELD; i++)
            if (fp[i] != 0)
                len = JC_FINGERPRINT_FIELD; /* unterminated or garbage after the NUL */
        if (len != 0 && !jc_index_valid_fingerprint(fp, len))
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: the model fingerprint field is not valid", path);
        memcpy(fh->fingerprint, fp, len);
        fh->fingerprint[len] = '\0';
        if (fh->deleted > fh->rows)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu rows deleted of %llu", path,
                           (unsigned long long)fh->deleted, (unsigned long long)fh->rows);
    }
    if (fh->dim == 0 || fh->dim > JACLIP_INDEX_MAX_DIM)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: dim %u is out of range 1..%d", path, fh->dim,
                       JACLIP_INDEX_MAX_DIM);
    if (fh->committed < hs || fh->committed % JC_ALIGN != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: committed size %llu is not a valid length", path,
                       (unsigned long long)fh->committed);
    return JACLIP_OK;
}

static jaclip_status check_committed(const jc_file_header *fh, uint64_t file_size, const char *path)
{
    if (fh->committed > file_size)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated: the header records %llu bytes, the file has %llu",
                       path, (unsigned long long)fh->committed, (unsigned long long)file_size);
    return JACLIP_OK;
}

uint32_t jc_index_row_format_of(const jc_file_header *fh)
{
    return fh->flags & JC_FLAG_FLOAT16 ? JACLIP_INDEX_ROWS_FLOAT16 : JACLIP_INDEX_ROWS_FLOAT32;
}

bool jc_index_segment_layout(jc_segment_layout *l, uint64_t rows, uint64_t dim, uint64_t value_bytes, bool stamps,
                             bool times, uint64_t label_bytes)
{
    uint64_t v, o, s, t;
    if (!jc_mul_add_u64(rows, dim * value_bytes, 0, &v) || v > UINT64_MAX - 8)
        return false;
    l->vector_bytes = v;
    l->offsets_at = jc_align_up(v, 8);
    if (!jc_mul_add_u64(rows, 8, l->offsets_at, &o) || !jc_mul_add_u64(rows, stamps ? JC_STAMP_BYTES : 0, o, &s) ||
        !jc_mul_add_u64(rows, times ? JC_TIME_BYTES : 0, s, &t) || t > UINT64_MAX - label_bytes - JC_ALIGN)
        return false;
    l->stamps_at = o;
    l->times_at = s;
    l->labels_at = t;
    l->payload_bytes = jc_align_up(t + label_bytes, JC_ALIGN);
    return true;
}

void jc_index_encode_segment_header(unsigned char *h, const char *magic, uint64_t rows, uint64_t label_bytes,
                                    uint64_t payload_bytes, uint32_t payload_crc, uint32_t segment_flags)
{
    memset(h, 0, JC_SEGMENT_HEADER_SIZE);
    memcpy(h, magic, 4);
    jc_put_u32le(h + 4, JC_SEGMENT_HEADER_SIZE);
    jc_put_u64le(h + 8, rows);
    jc_put_u64le(h + 16, label_bytes);
    jc_put_u64le(h + 24, payload_bytes);
    jc_put_u32le(h + 32, payload_crc);
    jc_put_u32le(h + 36, segment_flags);
    jc_put_u32le(h + 60, jc_crc32(0, h, 60));
}

/* Checks the labels of a segment: offsets run from 0 through the blob, each label is UTF-8 ended by
 * its NUL, and the last ends at the end of the blob. */
static jaclip_status check_labels(const uint64_t *offsets, const char *labels, uint64_t rows, uint64_t bytes,
                                  const char *path, size_t segment)
{
    uint64_t at = 0;
    for (uint64_t r = 0; r < rows; r++) {
        if (offsets[r] != at)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu label %llu starts at %llu, not %llu",
                           path, segment, (unsigned long long)r, (unsigned long long)offsets[r],
                           (unsigned long long)at);
        const char *end = at < bytes ? memchr(labels + at, 0, bytes - at) : NULL;
        if (!end)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu label %llu runs past its segment",
                           path, segment, (unsigned long long)r);
        size_t len = (size_t)(end - (labels + at)), bad = jc_utf8_invalid_at((const unsigned char *)labels + at, len);
        if (bad != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu label %llu is not UTF-8 at byte %zu",
                           path, segment, (unsigned long long)r, bad);
        at += len + 1;
    }
    if (at != bytes)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                       "%s: corrupted: segment %zu has %llu label bytes, its labels use %llu", path, segment,
                       (unsigned long long)bytes, (unsigned long long)at);
    return JACLIP_OK;
}

/* Checks a tombstone segment's row numbers (strictly increasing, naming stored rows before it that are
 * not deleted yet) and marks them in dead[]. */
static jaclip_status apply_tombstones(const unsigned char *ids, uint64_t count, uint64_t rows_before,
                                      unsigned char *dead, uint64_t *deleted, const char *path, size_t segment)
{
    uint64_t prev = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t id = jc_get_u64le(ids + i * 8);
        if (id >= rows_before || (i > 0 && id <= prev) || dead[id])
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: deletion segment %zu names row %llu (%s)", path,
                           segment, (unsigned long long)id,
                           id >= rows_before ? "not stored before it"
                           : dead[id]        ? "already deleted"
                                             : "out of order");
        dead[id] = 1;
        prev = id;
    }
    *deleted += count;
    return JACLIP_OK;
}

/* One segment as its header describes it, after check_segment. */
typedef struct {
    bool is_tomb, is_meta, has_times;
    uint64_t count, label_bytes, payload_bytes;
    jc_segment_layout layout; /* row segments */
    const unsigned char *payload;
} jc_segment;

/* Checks the header of segment seg at pos (magic, CRC, lengths against the layout and the committed
 * end) and, unless flags say JACLIP_INDEX_NO_CHECKSUM, its payload's CRC32. */
static jaclip_status check_segment(jc_segment *sg, const unsigned char *data, uint64_t pos, size_t seg,
                                   const jc_file_header *fh, size_t value_bytes, uint32_t flags, const char *path)
{
    const unsigned char *h = data + pos;
    if (seg >= fh->segments)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more segments than the %llu the header records", path,
                       (unsigned long long)fh->segments);
    if (fh->committed - pos < JC_SEGMENT_HEADER_SIZE)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu header at byte %llu is cut short", path,
                       seg, (unsigned long long)pos);
    bool is_rows = memcmp(h, JC_SEGMENT_MAGIC, 4) == 0;
    bool is_tomb = fh->version >= 2 && memcmp(h, JC_TOMBSTONE_MAGIC, 4) == 0;
    bool is_meta = fh->version >= JC_FORMAT_VERSION_META && memcmp(h, JC_META_MAGIC, 4) == 0;
    if ((!is_rows && !is_tomb && !is_meta) || jc_get_u32le(h + 60) != jc_crc32(0, h, 60))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu header at byte %llu is damaged", path,
                       seg, (unsigned long long)pos);
    sg->is_tomb = is_tomb;
    sg->is_meta = is_meta;
    sg->count = jc_get_u64le(h + 8), sg->label_bytes = jc_get_u64le(h + 16), sg->payload_bytes = jc_get_u64le(h + 24);
    /* Segment flags: only a row segment of a version 4 file may record capture times. */
    uint32_t seg_flags = jc_get_u32le(h + 36);
    sg->has_times = seg_flags == JC_SEGMENT_TIMES;
    bool flags_ok = seg_flags == 0 || (sg->has_times && is_rows && fh->version >= JC_FORMAT_VERSION_TIMES);
    /* A metadata segment may hold no entry (it then clears what earlier ones set). */
    bool lengths_ok = flags_ok && jc_get_u32le(h + 4) == JC_SEGMENT_HEADER_SIZE && (sg->count != 0 || is_meta);
    if (lengths_ok && is_rows)
        lengths_ok = jc_index_segment_layout(&sg->layout, sg->count, fh->dim, value_bytes, fh->version >= 2,
                                             sg->has_times, sg->label_bytes) &&
                     sg->layout.payload_bytes == sg->payload_bytes;
    if (lengths_ok && is_meta)
        lengths_ok = sg->label_bytes <= (uint64_t)JC_META_MAX_ENTRIES * (JC_META_MAX_KEY + JC_META_MAX_VALUE + 2) &&
                     sg->payload_bytes == jc_index_meta_payload_bytes(sg->label_bytes);
    if (lengths_ok && is_tomb)
        lengths_ok = sg->label_bytes == 0 && sg->count <= UINT64_MAX / 16 &&
                     sg->payload_bytes == jc_align_up(sg->count * 8, JC_ALIGN);
    if (!lengths_ok || jc_get_u32le(h + 40) != 0)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu has inconsistent lengths", path, seg);
    if (sg->payload_bytes > fh->committed - pos - JC_SEGMENT_HEADER_SIZE)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu (%llu bytes) runs past the end", path,
                       seg, (unsigned long long)sg->payload_bytes);
    sg->payload = h + JC_SEGMENT_HEADER_SIZE;
    /* Without the checksum, the label and row-number checks that follow still make every pointer safe. */
    if (!(flags & JACLIP_INDEX_NO_CHECKSUM) && jc_crc32(0, sg->payload, sg->payload_bytes) != jc_get_u32le(h + 32))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: segment %zu data fails its CRC32 check", path, seg);
    return JACLIP_OK;
}

/* Checks a row segment's labels and values; its rows become stored run *run (stored rows from rows). */
static jaclip_status check_row_segment(jc_run *run, const jc_segment *sg, const jc_file_header *fh, uint64_t rows,
                                       uint32_t row_format, uint32_t flags, const char *path, size_t seg)
{
    jaclip_status st;
    const unsigned char *payload = sg->payload;
    const uint64_t *offsets = (const uint64_t *)(payload + sg->layout.offsets_at);
    if ((st = check_labels(offsets, (const char *)payload + sg->layout.labels_at, sg->count, sg->label_bytes, path,
                           seg)))
        return st;
    if (sg->count > fh->rows - rows)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more rows than the %llu the header records", path,
                       (unsigned long long)fh->rows);
    if (!(flags & JACLIP_INDEX_NO_CHECKSUM)) {
        size_t bad = jc_index_first_bad_value(payload, (size_t)sg->count * fh->dim, row_format);
        if (bad != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                           "%s: corrupted: segment %zu row %zu column %zu holds a value no writer stores (not "
                           "finite, or |v| >= 2 in a unit-length row)",
                           path, seg, bad / fh->dim, bad % fh->dim);
    }
    *run = (jc_run){payload,
                    offsets,
                    (const char *)payload + sg->layout.labels_at,
                    fh->version >= 2 ? payload + sg->layout.stamps_at : NULL,
                    (size_t)sg->count,
                    0,
                    rows,
                    sg->has_times ? payload + sg->layout.times_at : NULL};
    return JACLIP_OK;
}

/* index->runs: the stored runs split around their deleted rows (dead[], NULL when none), numbered from 0. */
static jaclip_status split_live_runs(jaclip_index *index, const jc_run *stored, size_t nstored,
                                     const unsigned char *dead, uint64_t deleted, size_t row_bytes, const char *path)
{
    index->runs = calloc(nstored + (size_t)deleted + 1, sizeof *index->runs);
    if (!index->runs)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory loading %s", path);
    size_t next = 0;
    for (size_t i = 0; i < nstored; i++)
        jc_index_split_run(index->runs, &index->nruns, &stored[i], dead ? dead + stored[i].file_row : NULL, row_bytes,
                           &next);
    index->file_rows = index->count = next;
    return JACLIP_OK;
}

/* Walks and checks every segment of the committed part of data, then fills index->runs with the rows
 * no tombstone deletes. */
static jaclip_status parse_segments(jaclip_index *index, const unsigned char *data, const jc_file_header *fh,
                                    uint32_t flags, const char *path)
{
    uint64_t pos = jc_index_header_size(fh->version), rows = 0, deleted = 0;
    size_t seg = 0, nstored = 0;
    size_t value_bytes = jc_row_bytes(index->row_format);
    jaclip_status st = JACLIP_OK;
    if (fh->segments > (fh->committed - pos) / (JC_SEGMENT_HEADER_SIZE + JC_ALIGN))
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu segments cannot fit in %llu bytes", path,
                       (unsigned long long)fh->segments, (unsigned long long)fh->committed);
    /* Every stored row takes at least a label offset and a NUL. */
    if (fh->rows > fh->committed / 9)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: %llu rows cannot fit in %llu bytes", path,
                       (unsigned long long)fh->rows, (unsigned long long)fh->committed);
    jc_run *stored = calloc(fh->segments ? (size_t)fh->segments : 1, sizeof *stored);
    unsigned char *dead = fh->deleted ? calloc((size_t)fh->rows, 1) : NULL;
    if (!stored || (fh->deleted && !dead)) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory loading %s", path);
        goto done;
    }
    for (; pos < fh->committed; seg++) {
        jc_segment sg;
        if ((st = check_segment(&sg, data, pos, seg, fh, value_bytes, flags, path)))
            goto done;
        if (sg.is_meta) {
            /* The last metadata segment holds the whole set. */
            if ((st = jc_index_meta_parse(&index->meta, sg.payload, sg.count, sg.label_bytes, path, seg)))
                goto done;
        } else if (sg.is_tomb) {
            if (sg.count > fh->deleted - deleted || !dead) {
                st =
                    jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: more deletions than the %llu the header records",
                            path, (unsigned long long)fh->deleted);
                goto done;
            }
            if ((st = apply_tombstones(sg.payload, sg.count, rows, dead, &deleted, path, seg)))
                goto done;
        } else {
            if ((st = check_row_segment(&stored[nstored], &sg, fh, rows, index->row_format, flags, path, seg)))
                goto done;
            nstored++;
            rows += sg.count;
        }
        pos += JC_SEGMENT_HEADER_SIZE + sg.payload_bytes;
    }
    if (seg != fh->segments || rows != fh->rows || deleted != fh->deleted) {
        st = jc_fail(JACLIP_ERROR_INDEX_FORMAT,
                     "%s: corrupted: the header records %llu rows (%llu deleted) in %llu segments, the file holds "
                     "%llu (%llu deleted) in %zu",
                     path, (unsigned long long)fh->rows, (unsigned long long)fh->deleted,
                     (unsigned long long)fh->segments, (unsigned long long)rows, (unsigned long long)deleted, seg);
        goto done;
    }
    st = split_live_runs(index, stored, nstored, dead, deleted, value_bytes * fh->dim, path);
done:
    free(stored);
    free(dead);
    return st;
}

static jaclip_status read_all(int fd, void *buf, size_t size, uint64_t offset, const char *path)
{
    unsigned char *p = buf;
    while (size > 0) {
        ssize_t n = pread(fd, p, size, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return jc_io_fail("cannot read", path);
        if (n == 0)
            return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: truncated while reading", path);
        p += n, size -= (size_t)n, offset += (uint64_t)n;
    }
    return JACLIP_OK;
}

/* Up to size bytes from offset 0; *got says how many there were. */
static jaclip_status read_some(int fd, void *buf, size_t size, size_t *got, const char *path)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < size) {
        ssize_t n = pread(fd, p + *got, size - *got, (off_t)*got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return jc_io_fail("cannot read", path);
        if (n == 0)
            break;
        *got += (size_t)n;
    }
    return JACLIP_OK;
}

/* Reads and checks the header of an open index file, then its size. The header comes first: an
 * appender grows the file before it commits, so the size seen after the header is at least what the
 * header records (stat-ing first could see the file before an append and its header after). */
jaclip_status jc_index_read_header(int fd, jc_file_header *fh, const char *path)
{
    unsigned char h[JC_HEADER_SIZE];
    struct stat sb;
    size_t got;
    jaclip_status st;
    if (fstat(fd, &sb) != 0)
        return jc_io_fail("cannot stat", path);
    if (!S_ISREG(sb.st_mode))
        return jc_fail(JACLIP_ERROR_IO, "%s: not a regular file", path);
    if ((st = read_some(fd, h, sizeof h, &got, path)) || (st = decode_file_header(fh, h, got, path)))
        return st;
    if (fstat(fd, &sb) != 0)
        return jc_io_fail("cannot stat", path);
    return check_committed(fh, (uint64_t)sb.st_size, path);
}

jaclip_status jc_index_load_fd(jaclip_index **out, int fd, const char *path, uint32_t flags, jc_file_header *fh)
{
    jaclip_status st;
    *out = NULL;
    if ((st = jc_index_read_header(fd, fh, path)))
        return st;
    if (fh->committed > SIZE_MAX)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "%s: too large for this address space", path);
    jaclip_index *index = NULL;
    if ((st = jaclip_index_create(&index, fh->dim)))
        return st;
    index->row_format = jc_index_row_format_of(fh);
    memcpy(index->fingerprint, fh->fingerprint, sizeof index->fingerprint);
    index->file_deleted = (size_t)fh->deleted;
    /* Only the committed part is used: bytes past it are an unfinished append. */
    index->file_size = (size_t)fh->committed;
    if (flags & JACLIP_INDEX_MMAP) {
        void *map = mmap(NULL, index->file_size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            st = jc_io_fail("cannot map", path);
            goto fail;
        }
        index->file_data = map;
        index->file_mapped = true;
    } else {
        index->file_data = malloc(index->file_size);
        if (!index->file_data) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading %s (%zu bytes)", path, index->file_size);
            goto fail;
        }
        if ((st = read_all(fd, index->file_data, index->file_size, 0, path)))
            goto fail;
    }
    /* The header read first stays authoritative: an appender may commit more meanwhile, but never
     * changes the bytes it already committed. */
    if ((st = parse_segments(index, index->file_data, fh, flags, path)) ||
        (st = jc_label_table_reserve(index, index->count)))
        goto fail;
    *out = index;
    return JACLIP_OK;
fail:
    jaclip_index_free(index);
    return st;
}

jaclip_status jaclip_index_load(jaclip_index **out, const char *path, uint32_t flags)
{
    jc_file_header fh;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if (flags & ~(JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown index flags 0x%x", (unsigned)flags);
    if (!JC_INDEX_HOST_LE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index files are read on little-endian hosts only");
    /* O_NONBLOCK: a FIFO or device under the name must not block the open; it is refused as not a
     * regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return jc_io_fail("cannot open", path);
    jaclip_status st = jc_index_load_fd(out, fd, path, flags, &fh);
    close(fd);
    return st;
}
