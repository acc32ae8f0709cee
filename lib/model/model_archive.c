/* Structural check of a model file's zip archive before libtorch reads it.
 *
 * libtorch 1.13 trusts its archives: fuzzing found damaged code and debug-pickle entries that crash
 * it (SEGV in ScriptTypeParser, heap corruption while formatting its own error) and a damaged
 * data.pkl that makes it reserve 4 GB. Every such input had an entry whose CRC32 no longer matched,
 * and libtorch checks none. So every entry's bounds are checked against the file, and the CRC32 of
 * every entry except the tensor storages (archive/data/N: raw weights, most of the file, which cannot
 * crash anything when damaged) — code, pickles, constants and our extra files. */
#include "common/bytes.h"
#include "common/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_EOCD64_LOCATOR 0x07064b50u
/* A code or pickle entry larger than this is not something the converter writes. */
#define MAX_CHECKED_ENTRY ((uint64_t)256 << 20)

#define rd16 jc_get_u16le
#define rd32 jc_get_u32le
#define rd64 jc_get_u64le

/* "archive/data/123": a tensor storage. */
static bool is_storage(const unsigned char *name, size_t len)
{
    size_t i = len;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
        i--;
    return i < len && i >= 6 && memcmp(name + i - 6, "/data/", 6) == 0;
}

static jaclip_status bad(const char *where, const char *what)
{
    return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: damaged or not a model archive: %s", where, what);
}

static uint32_t entry_crc(const unsigned char *data, uint64_t csize, uint64_t usize, uint16_t method, bool *ok)
{
    *ok = false;
    if (method == 0) {
        *ok = csize == usize;
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t done = 0; done < csize;) {
            uInt n = csize - done > (1u << 30) ? (1u << 30) : (uInt)(csize - done);
            crc = crc32(crc, data + done, n);
            done += n;
        }
        return (uint32_t)crc;
    }
    /* Deflated (method 8): inflate into a buffer of the declared size, no more. */
    if (usize > MAX_CHECKED_ENTRY || csize > UINT32_MAX)
        return 0;
    unsigned char *buf = malloc(usize ? usize : 1);
    z_stream z;
    memset(&z, 0, sizeof z);
    if (!buf || inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        free(buf);
        return 0;
    }
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)csize;
    z.next_out = buf;
    z.avail_out = (uInt)usize;
    int rc = inflate(&z, Z_FINISH);
    *ok = rc == Z_STREAM_END && z.total_out == usize;
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)z.total_out);
    inflateEnd(&z);
    free(buf);
    return crc;
}

/* FNV-1a, 64-bit: the weights' identity needs no cryptographic strength, only to change with them. */
static uint64_t fnv1a(uint64_t h, const void *bytes, size_t n)
{
    for (const unsigned char *p = bytes; n--; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h;
}

/* Where the central directory is, from the end record (zip64's when present). */
static jaclip_status find_directory(const unsigned char *d, size_t size, const char *where, uint64_t *entries,
                                    uint64_t *cd_size, uint64_t *cd_offset)
{
    if (size < 22)
        return bad(where, "too short to be a zip archive");
    /* The end-of-central-directory record: last 22 bytes plus up to a 64 KiB comment. */
    size_t eocd = SIZE_MAX, lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (size_t i = size - 22 + 1; i-- > lowest;)
        if (rd32(d + i) == SIG_EOCD && i + 22 + rd16(d + i + 20) == size) {
            eocd = i;
            break;
        }
    if (eocd == SIZE_MAX)
        return bad(where, "no zip end record");
    *entries = rd16(d + eocd + 10), *cd_size = rd32(d + eocd + 12), *cd_offset = rd32(d + eocd + 16);
    if (eocd >= 20 && rd32(d + eocd - 20) == SIG_EOCD64_LOCATOR) {
        uint64_t at = rd64(d + eocd - 20 + 8);
        if (at > size - 56 || rd32(d + at) != SIG_EOCD64)
            return bad(where, "zip64 end record out of place");
        *entries = rd64(d + at + 32);
        *cd_size = rd64(d + at + 40);
        *cd_offset = rd64(d + at + 48);
    }
    if (*cd_offset > size || *cd_size > size - *cd_offset || *entries == 0 || *entries > *cd_size / 46)
        return bad(where, "central directory out of bounds");
    return JACLIP_OK;
}

/* zip64: the 0xFFFFFFFF fields are in the 0x0001 extra field, in this order. */
static jaclip_status read_zip64_sizes(const unsigned char *extra, size_t extra_len, uint64_t *usize, uint64_t *csize,
                                      uint64_t *local, const char *where)
{
    for (size_t x = 0; x + 4 <= extra_len;) {
        size_t id = rd16(extra + x), len = rd16(extra + x + 2), q = x + 4;
        if (x + 4 + len > extra_len)
            return bad(where, "bad extra field");
        if (id == 1) {
            if (*usize == UINT32_MAX && q + 8 <= x + 4 + len)
                *usize = rd64(extra + q), q += 8;
            if (*csize == UINT32_MAX && q + 8 <= x + 4 + len)
                *csize = rd64(extra + q), q += 8;
            if (*local == UINT32_MAX && q + 8 <= x + 4 + len)
                *local = rd64(extra + q);
        }
        x += 4 + len;
    }
    return JACLIP_OK;
}

/* Checks the central directory entry at p (of at most avail bytes) and the data it points at; *entry_len is
 * its length and *h the digest folded with its name, size and CRC32. */
static jaclip_status check_entry(const unsigned char *d, size_t size, const unsigned char *p, size_t avail,
                                 const char *where, size_t *entry_len, uint64_t *h)
{
    jaclip_status st;
    if (avail < 46 || rd32(p) != SIG_CENTRAL)
        return bad(where, "central directory entry out of bounds");
    uint16_t flags = rd16(p + 8), method = rd16(p + 10);
    uint32_t crc = rd32(p + 16);
    uint64_t csize = rd32(p + 20), usize = rd32(p + 24), local = rd32(p + 42);
    size_t name_len = rd16(p + 28), extra_len = rd16(p + 30), comment_len = rd16(p + 32);
    if (avail < 46 + name_len + extra_len + comment_len)
        return bad(where, "central directory entry out of bounds");
    const unsigned char *name = p + 46;
    if ((st = read_zip64_sizes(name + name_len, extra_len, &usize, &csize, &local, where)))
        return st;
    char shown[128];
    snprintf(shown, sizeof shown, "%.*s", (int)(name_len < 100 ? name_len : 100), (const char *)name);
    if (flags & 1)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: entry %s is encrypted", where, shown);
    if (method != 0 && method != 8)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: entry %s uses compression method %u", where, shown, method);
    if (local > size - 30 || rd32(d + local) != SIG_LOCAL)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: entry %s: local header out of place", where, shown);
    uint64_t start = local + 30 + (uint64_t)rd16(d + local + 26) + rd16(d + local + 28);
    if (start > size || csize > size - start)
        return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: entry %s runs past the end of the file (truncated?)", where,
                       shown);
    if (!is_storage(name, name_len)) {
        bool ok;
        uint32_t actual = entry_crc(d + start, csize, usize, method, &ok);
        if (!ok || actual != crc)
            return jc_fail(JACLIP_ERROR_MODEL_FORMAT, "%s: entry %s is damaged (checksum mismatch)", where, shown);
    }
    /* Every entry's name, size and stored CRC32 (storages too): a digest of the weights as written,
     * without reading them. */
    unsigned char sums[12];
    memcpy(sums, p + 16, 4);
    for (int i = 0; i < 8; i++)
        sums[4 + i] = (unsigned char)(usize >> (8 * i));
    *h = fnv1a(fnv1a(*h, name, name_len), sums, sizeof sums);
    *entry_len = 46 + name_len + extra_len + comment_len;
    return JACLIP_OK;
}

jaclip_status jc_check_model_archive(const void *bytes, size_t size, const char *where, uint64_t *digest)
{
    uint64_t h = 0xcbf29ce484222325ull, entries = 0, cd_size = 0, cd_offset = 0;
    const unsigned char *d = bytes;
    jaclip_status st;
    if ((st = find_directory(d, size, where, &entries, &cd_size, &cd_offset)))
        return st;
    const unsigned char *p = d + cd_offset, *end = p + cd_size;
    for (uint64_t e = 0; e < entries; e++) {
        size_t len = 0;
        if ((st = check_entry(d, size, p, (size_t)(end - p), where, &len, &h)))
            return st;
        p += len;
    }
    if (digest)
        *digest = h;
    return JACLIP_OK;
}

jaclip_status jc_map_model_file(const char *path, void **out_map, size_t *out_size, uint64_t *digest)
{
    int fd;
    uint64_t size;
    *out_map = NULL;
    *out_size = 0;
    jaclip_status status = jc_open_regular(path, "model file", &fd, &size);
    if (status)
        return status;
    if (size == 0) {
        close(fd);
        return bad(path, "empty file");
    }
    if (size > SIZE_MAX) {
        close(fd);
        return bad(path, "file too large for this address space");
    }
    /* Mapped, not read: only the directory and the small entries are touched here, and libtorch
     * later reads these same pages, so a file replaced after the check is never what it reads. */
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return jc_fail(JACLIP_ERROR_IO, "cannot map model file %s: %s", path, strerror(errno));
    status = jc_check_model_archive(map, (size_t)size, path, digest);
    if (status) {
        munmap(map, (size_t)size);
        return status;
    }
    *out_map = map;
    *out_size = (size_t)size;
    return JACLIP_OK;
}
