/* Index metadata (format version 3, docs/index-format.md): a small set of key = value strings that say
 * how the rows were made (the root their labels are relative to, the label style, the orientation
 * rule), kept in memory, saved as one JMET segment and replaced as a whole by a later one. */
#include "index/index_internal.h"

#include <stdlib.h>
#include <string.h>

/* A key is 1..JC_META_MAX_KEY characters of [a-z0-9_.-]. */
static bool valid_key(const char *key)
{
    size_t n = strnlen(key, JC_META_MAX_KEY + 1);
    if (n == 0 || n > JC_META_MAX_KEY)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

static jaclip_status check_entry(const char *key, const char *value)
{
    if (!key)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "metadata key is NULL");
    if (!valid_key(key))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "metadata key '%.80s' is not 1..%d characters of a-z 0-9 _ . -",
                       key, JC_META_MAX_KEY);
    if (value) {
        size_t n = strnlen(value, JC_META_MAX_VALUE + 1);
        if (n > JC_META_MAX_VALUE)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "metadata value of '%s' is longer than %d bytes", key,
                           JC_META_MAX_VALUE);
        if (jc_utf8_invalid_at((const unsigned char *)value, n) != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INVALID_UTF8, "metadata value of '%s' is not valid UTF-8", key);
    }
    return JACLIP_OK;
}

void jc_index_meta_clear(jc_meta *m)
{
    for (size_t i = 0; i < m->count; i++) {
        free(m->keys[i]);
        free(m->values[i]);
    }
    m->count = 0;
}

static size_t find_key(const jc_meta *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->keys[i], key) == 0)
            return i;
    return SIZE_MAX;
}

/* Sets (value non-NULL) or removes key in m; copies both. */
static jaclip_status meta_put(jc_meta *m, const char *key, const char *value)
{
    size_t i = find_key(m, key);
    if (!value) {
        if (i != SIZE_MAX) {
            free(m->keys[i]);
            free(m->values[i]);
            m->count--;
            memmove(m->keys + i, m->keys + i + 1, (m->count - i) * sizeof *m->keys);
            memmove(m->values + i, m->values + i + 1, (m->count - i) * sizeof *m->values);
        }
        return JACLIP_OK;
    }
    char *v = strdup(value);
    if (!v)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for metadata");
    if (i != SIZE_MAX) {
        free(m->values[i]);
        m->values[i] = v;
        return JACLIP_OK;
    }
    if (m->count == JC_META_MAX_ENTRIES) {
        free(v);
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "an index holds at most %d metadata entries", JC_META_MAX_ENTRIES);
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for metadata");
    }
    m->keys[m->count] = k;
    m->values[m->count++] = v;
    return JACLIP_OK;
}

jaclip_status jc_index_meta_copy(jc_meta *dst, const jc_meta *src)
{
    jaclip_status st = JACLIP_OK;
    jc_index_meta_clear(dst);
    for (size_t i = 0; i < src->count && !st; i++)
        st = meta_put(dst, src->keys[i], src->values[i]);
    if (st)
        jc_index_meta_clear(dst);
    return st;
}

uint64_t jc_index_meta_bytes(const jc_meta *m)
{
    uint64_t n = 0;
    for (size_t i = 0; i < m->count; i++)
        n += strlen(m->keys[i]) + 1 + strlen(m->values[i]) + 1;
    return n;
}

uint64_t jc_index_meta_payload_bytes(uint64_t text_bytes)
{
    return jc_align_up(text_bytes ? text_bytes : 1, JC_ALIGN);
}

jaclip_status jc_index_meta_parse(jc_meta *m, const unsigned char *payload, uint64_t count, uint64_t bytes,
                                  const char *path, size_t seg)
{
    jc_meta fresh = {0};
    const char *p = (const char *)payload, *end = p + bytes;
    jaclip_status st = JACLIP_OK;
    if (count > JC_META_MAX_ENTRIES)
        return jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: metadata segment %zu holds %llu entries", path, seg,
                       (unsigned long long)count);
    for (uint64_t i = 0; i < count && !st; i++) {
        const char *kend = memchr(p, 0, (size_t)(end - p));
        const char *vend = kend ? memchr(kend + 1, 0, (size_t)(end - kend - 1)) : NULL;
        if (!vend || check_entry(p, kend + 1) || find_key(&fresh, p) != SIZE_MAX) {
            st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: metadata segment %zu entry %llu is not valid", path,
                         seg, (unsigned long long)i);
            break;
        }
        st = meta_put(&fresh, p, kend + 1);
        p = vend + 1;
    }
    if (!st && p != end)
        st = jc_fail(JACLIP_ERROR_INDEX_FORMAT, "%s: corrupted: metadata segment %zu has %llu text bytes, its entries use %zu",
                     path, seg, (unsigned long long)bytes, (size_t)(p - (const char *)payload));
    if (st) {
        jc_index_meta_clear(&fresh);
        return st;
    }
    jc_index_meta_clear(m);
    *m = fresh;
    return JACLIP_OK;
}

jaclip_status jc_index_meta_write(int fd, uint64_t offset, const jc_meta *m, const char *path,
                                  uint64_t *segment_bytes)
{
    uint64_t text = jc_index_meta_bytes(m), payload = jc_index_meta_payload_bytes(text);
    unsigned char *buf = calloc(1, (size_t)payload);
    if (!buf)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    size_t at = 0;
    for (size_t i = 0; i < m->count; i++) {
        size_t k = strlen(m->keys[i]) + 1, v = strlen(m->values[i]) + 1;
        memcpy(buf + at, m->keys[i], k);
        memcpy(buf + at + k, m->values[i], v);
        at += k + v;
    }
    unsigned char h[JC_SEGMENT_HEADER_SIZE];
    jc_index_encode_segment_header(h, JC_META_MAGIC, m->count, text, payload, jc_crc32(0, buf, (size_t)payload), 0);
    jaclip_status st = jc_write_at(fd, buf, (size_t)payload, offset + JC_SEGMENT_HEADER_SIZE, path);
    if (!st)
        st = jc_write_at(fd, h, sizeof h, offset, path);
    free(buf);
    *segment_bytes = JC_SEGMENT_HEADER_SIZE + payload;
    return st;
}

const char *jaclip_index_metadata(const jaclip_index *index, const char *key)
{
    if (!index || !key)
        return NULL;
    size_t i = find_key(&index->meta, key);
    return i == SIZE_MAX ? NULL : index->meta.values[i];
}

jaclip_status jaclip_index_set_metadata(jaclip_index *index, const char *key, const char *value)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    jaclip_status st = check_entry(key, value);
    return st ? st : meta_put(&index->meta, key, value);
}

jaclip_status jc_index_meta_set_checked(jc_meta *m, const char *key, const char *value)
{
    jaclip_status st = check_entry(key, value);
    return st ? st : meta_put(m, key, value);
}

const char *jaclip_index_root(const jaclip_index *index)
{
    return jaclip_index_metadata(index, JACLIP_INDEX_META_ROOT);
}

size_t jaclip_index_deleted_rows(const jaclip_index *index) { return index ? index->file_deleted : 0; }
