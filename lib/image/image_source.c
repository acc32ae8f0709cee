/* Image bytes from a file, read header first: the header says how large the image is, so a file is
 * refused or bounded before it is read whole (a 4 GB sparse ".jpg" costs its first bytes, not 4 GB). */
#include "common/bytes.h"
#include "image/image.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <webp/decode.h>

/* Markers (APPn with ICC profiles and thumbnails) may precede a JPEG frame header by up to 255 64 KB
 * segments; further than this no real file puts its header. */
#define JC_HEADER_SEARCH_LIMIT ((size_t)16 << 20)
/* Room for metadata and trailing data beside the pixel data a header can justify. */
#define JC_METADATA_ALLOWANCE ((uint64_t)16 << 20)

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* 1: header found; 0: more bytes needed; -1: these bytes cannot be a JPEG or PNG (status recorded). */
static int peek_jpeg(const uint8_t *d, size_t n, jc_image_header *h)
{
    size_t pos = 2;
    for (;;) {
        /* libjpeg skips bytes before a marker's 0xFF (with a warning), and fill bytes 0xFF. */
        while (pos < n && d[pos] != 0xFF)
            pos++;
        while (pos + 1 < n && d[pos + 1] == 0xFF)
            pos++;
        if (pos + 4 > n)
            return 0;
        uint32_t marker = d[pos + 1];
        if (marker == 0x00) { /* a stuffed 0xFF: garbage to libjpeg, which scans on */
            pos += 2;
            continue;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {
            pos += 2;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) {
            jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid JPEG data: %s before the frame header",
                    marker == 0xD9 ? "end of image" : "a scan");
            return -1;
        }
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            if (pos + 10 > n)
                return 0;
            h->height = be16(d + pos + 5);
            h->width = be16(d + pos + 7);
            h->components = d[pos + 9];
            h->sample_bits = d[pos + 4];
            return 1;
        }
        pos += 2 + (size_t)be16(d + pos + 2);
    }
}

static int peek_png(const uint8_t *d, size_t n, jc_image_header *h)
{
    static const unsigned components[7] = {1, 0, 3, 1, 2, 0, 4};
    if (n < 26)
        return 0;
    if (memcmp(d + 12, "IHDR", 4) != 0) {
        jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid PNG data: the first chunk is not IHDR");
        return -1;
    }
    h->width = be32(d + 16);
    h->height = be32(d + 20);
    h->sample_bits = d[24];
    h->components = d[25] < 7 ? components[d[25]] : 0;
    if (h->components == 0 || h->sample_bits == 0 || h->sample_bits > 16) {
        jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid PNG data: colour type %u, bit depth %u", d[25], d[24]);
        return -1;
    }
    return 1;
}

static int peek_webp(const uint8_t *d, size_t n, jc_image_header *h)
{
    WebPBitstreamFeatures features;
    VP8StatusCode st = WebPGetFeatures(d, n, &features);
    if (st == VP8_STATUS_NOT_ENOUGH_DATA)
        return 0;
    if (st != VP8_STATUS_OK) {
        jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid WebP data: bad header");
        return -1;
    }
    h->width = (uint32_t)features.width;
    h->height = (uint32_t)features.height;
    h->components = 4;
    h->sample_bits = 8;
    return 1;
}

/* GIF: the logical screen (a first frame reaching past it grows the image, checked when decoded; so
 * a zero-sized screen, which such a frame grows, counts as 1). */
static int peek_gif(const uint8_t *d, size_t n, jc_image_header *h)
{
    if (n < 10)
        return 0;
    h->width = jc_get_u16le(d + 6) ? jc_get_u16le(d + 6) : 1;
    h->height = jc_get_u16le(d + 8) ? jc_get_u16le(d + 8) : 1;
    h->components = 1;
    h->sample_bits = 8;
    return 1;
}

static int peek_bmp(const uint8_t *d, size_t n, jc_image_header *h)
{
    if (n < 30)
        return 0;
    uint32_t size = jc_get_u32le(d + 14);
    if (size == 12) {
        h->width = jc_get_u16le(d + 18);
        h->height = jc_get_u16le(d + 20);
        h->sample_bits = jc_get_u16le(d + 24);
    } else {
        uint32_t height = jc_get_u32le(d + 22);
        h->width = jc_get_u32le(d + 18);
        h->height = d[25] == 0xFF ? 0 - height : height; /* top-down rows: a negative height */
        h->sample_bits = jc_get_u16le(d + 28);
    }
    h->components = 1;
    if (h->sample_bits == 0 || h->sample_bits > 32) {
        jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported BMP pixel depth (%u)", h->sample_bits);
        return -1;
    }
    return 1;
}

/* The first TIFF directory: image size, samples and their bits (the first, if several). */
static int peek_tiff_directory(const uint8_t *d, size_t n, bool little, bool big, jc_image_header *h)
{
#define U16(p) (little ? (uint32_t)jc_get_u16le(p) : (uint32_t)(p)[0] << 8 | (p)[1])
#define U32(p) (little ? jc_get_u32le(p) : jc_get_u32be(p))
    size_t head = big ? 8 : 2, entry = big ? 20 : 12;
    if (n < head)
        return 0;
    uint64_t count = big ? (little ? jc_get_u64le(d) : (uint64_t)jc_get_u32be(d) << 32 | jc_get_u32be(d + 4)) : U16(d);
    if (count > 65535 || n < head + count * entry)
        return count > 65535 ? (jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid TIFF data (directory of %llu entries)",
                                        (unsigned long long)count),
                                -1)
                             : 0;
    h->components = 1;
    h->sample_bits = 1;
    bool seen[4] = {false, false, false, false};
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *e = d + head + i * entry, *value = e + (big ? 12 : 8);
        uint32_t tag = U16(e), type = U16(e + 2);
        /* The integer types libtiff reads these tags from (BYTE, SHORT, LONG, their signed kinds, LONG8:
         * its low half; values past 2^31 are refused by the limit, as libtiff refuses negative ones). */
        uint32_t v = type == 1 || type == 6              ? value[0]
                     : type == 3 || type == 8            ? U16(value)
                     : type == 4 || type == 9            ? U32(value)
                     : (type == 16 || type == 17) && big ? (little ? U32(value) : U32(value + 4))
                                                         : 0;
        int which = tag == 256 ? 0 : tag == 257 ? 1 : tag == 258 ? 2 : tag == 277 ? 3 : -1;
        if (which < 0 || seen[which]) /* libtiff ignores a tag's repetitions */
            continue;
        seen[which] = true;
        if (which == 0)
            h->width = v;
        else if (which == 1)
            h->height = v;
        else if (which == 2) /* with several samples the bits may lie elsewhere: then assume 16 */
            h->sample_bits = v && v <= 32 && (big || U32(e + 4) <= 2) ? v : 16;
        else
            h->components = v ? v : 1;
    }
#undef U16
#undef U32
    if (h->width == 0 || h->height == 0) {
        jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid TIFF data (no image size in the first directory)");
        return -1;
    }
    if (h->components > 16)
        h->components = 16;
    return 1;
}

/* 2: the first directory lies (partly) past these bytes, at h->tiff_directory. */
static int peek_tiff(const uint8_t *d, size_t n, jc_image_header *h)
{
    bool little = d[0] == 'I', big = d[2] == '+' || d[3] == '+';
    if (n < (big ? 16u : 8u))
        return 0;
    uint64_t offset = big ? (little ? jc_get_u64le(d + 8) : (uint64_t)be32(d + 8) << 32 | be32(d + 12))
                          : (little ? jc_get_u32le(d + 4) : be32(d + 4));
    int found = offset < n ? peek_tiff_directory(d + offset, n - (size_t)offset, little, big, h) : 0;
    if (found == 0) {
        h->tiff_directory = offset;
        return 2;
    }
    return found;
}

/* HEIF boxes in [pos, end): at depth 0 the file (end: what is here so far), then meta, iprp and ipco,
 * whose ispe properties give the image sizes. 1: sizes found; 0: more bytes needed; -1: invalid. */
static int heif_boxes(const uint8_t *d, size_t pos, size_t end, int depth, jc_image_header *h)
{
    static const char path[3][5] = {"meta", "iprp", "ipco"};
    while (pos < end) {
        if (end - pos < 8)
            return depth == 0 ? 0 : -1;
        uint64_t size = be32(d + pos);
        size_t head = 8;
        if (size == 1) {
            if (end - pos < 16)
                return depth == 0 ? 0 : -1;
            size = (uint64_t)be32(d + pos + 8) << 32 | be32(d + pos + 12);
            head = 16;
        } else if (size == 0) {
            size = end - pos; /* to the end of its parent (of the file: of what is here) */
        }
        if (size < head + (depth == 0 && memcmp(d + pos + 4, "meta", 4) == 0 ? 4 : 0))
            return -1;
        if (size > end - pos)
            return depth == 0 ? 0 : -1;
        if (depth < 3 && memcmp(d + pos + 4, path[depth], 4) == 0)
            return heif_boxes(d, pos + head + (depth == 0 ? 4 : 0), pos + (size_t)size, depth + 1, h);
        if (depth == 3 && memcmp(d + pos + 4, "ispe", 4) == 0 && size >= head + 12) {
            uint32_t w = be32(d + pos + head + 4), hh = be32(d + pos + head + 8);
            h->width = w > h->width ? w : h->width;
            h->height = hh > h->height ? hh : h->height;
        }
        pos += (size_t)size;
    }
    return depth == 3 && h->width ? 1 : depth == 0 ? 0 : -1;
}

/* HEIF: the largest ispe (image spatial extent) of the meta box, which bounds the primary image
 * whatever its transformations. */
static int peek_heif(const uint8_t *d, size_t n, jc_image_header *h)
{
    int found = heif_boxes(d, 0, n, 0, h);
    if (found < 0) {
        jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid HEIF data (no image size in the meta box)");
        return -1;
    }
    h->components = 4;
    h->sample_bits = 16; /* up to 16-bit samples, decoded through YCbCr planes */
    return found;
}

/* Whether n (< JC_IMAGE_SNIFF_BYTES) bytes may still grow into a signature jc_image_sniff knows. */
static bool signature_prefix(const uint8_t *d, size_t n)
{
    static const struct {
        const char *bytes;
        size_t size, at;
    } signatures[] = {{"\xFF\xD8\xFF", 3, 0}, {"\x89PNG\r\n\x1A\n", 8, 0},
                      {"RIFF", 4, 0},         {"GIF8", 4, 0},
                      {"BM", 2, 0},           {"II*\0", 4, 0},
                      {"MM\0*", 4, 0},        {"II+\0", 4, 0},
                      {"MM\0+", 4, 0},        {"ftyp", 4, 4}};
    for (size_t i = 0; i < sizeof signatures / sizeof signatures[0]; i++) {
        size_t at = signatures[i].at, size = signatures[i].size;
        if (n <= at || memcmp(d + at, signatures[i].bytes, n - at < size ? n - at : size) == 0)
            return true;
    }
    return false;
}

static int peek(const uint8_t *d, size_t n, jc_image_header *h)
{
    h->format = jc_image_sniff(d, n);
    switch (h->format) {
    case JC_FORMAT_JPEG: return peek_jpeg(d, n, h);
    case JC_FORMAT_PNG: return peek_png(d, n, h);
    case JC_FORMAT_WEBP: return peek_webp(d, n, h);
    case JC_FORMAT_GIF: return peek_gif(d, n, h);
    case JC_FORMAT_BMP: return peek_bmp(d, n, h);
    case JC_FORMAT_TIFF: return peek_tiff(d, n, h);
    case JC_FORMAT_HEIF: return peek_heif(d, n, h);
    case JC_FORMAT_UNKNOWN: break;
    }
    if (n < JC_IMAGE_SNIFF_BYTES && signature_prefix(d, n))
        return 0;
    jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unknown image format (not JPEG, PNG, WebP, GIF, BMP, TIFF or HEIF)");
    return -1;
}

/* The pixel limit, then (when the caller resizes to target_size) whether the resize can be done. */
static jaclip_status check_header(const jc_image_header *h, uint64_t max_pixels, uint32_t target_size)
{
    jaclip_status st = jc_image_check_size(h->width, h->height, max_pixels);
    if (st == JACLIP_OK && target_size > 0)
        st = jc_image_check_resizable(h->width, h->height, target_size);
    return st;
}

uint64_t jc_image_header_data_bound(const jc_image_header *h)
{
    uint64_t row = ((uint64_t)h->width * h->components * h->sample_bits + 7) / 8;
    uint64_t raw = (row + 1) * h->height;
    /* zlib's stored blocks add 5 bytes per 64 KB; Huffman-coded JPEG can reach ~3.4 bytes a sample;
     * the other formats' codes (LZW, RLE, VP8, HEVC, AV1) stay within 4 times the raw samples too. */
    return (h->format == JC_FORMAT_PNG ? raw + raw / 64 : raw * 4) + JC_METADATA_ALLOWANCE;
}

uint64_t jc_image_header_decode_bytes(const jc_image_header *h)
{
    /* The decoded image (4 bytes a pixel at most), one more of it for an EXIF rotation or the
     * resize's intermediate, and the decoder's row pointers; libheif also holds its YCbCr planes
     * (up to 16-bit) and its own RGB(A) image besides. */
    uint64_t per_pixel = h->format == JC_FORMAT_HEIF ? 8 + 6 + 4 : 8;
    return (uint64_t)h->width * h->height * per_pixel + (uint64_t)h->height * 16;
}

jaclip_status jc_image_check_header(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t target_size,
                                    jc_image_header *header)
{
    memset(header, 0, sizeof *header);
    int found = peek(data, size, header);
    if (found < 0)
        return JACLIP_ERROR_IMAGE_DECODE;
    if (found == 0 || found == 2)
        return size == 0 ? jc_fail(JACLIP_ERROR_IMAGE_DECODE, "empty image data")
                         : jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated image data (ends inside the header)");
    return check_header(header, max_pixels, target_size);
}

/* A TIFF's first directory past the bytes read: read where it is, without what lies between. */
static jaclip_status read_tiff_directory(int fd, uint64_t file_size, const char *path, jc_image_header *h)
{
    enum { MOST = 8 + 65535 * 20 };
    uint8_t first[4];
    uint64_t offset = h->tiff_directory;
    if (offset >= file_size)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated TIFF data (first directory at byte %llu)",
                       (unsigned long long)offset);
    size_t n = file_size - offset < MOST ? (size_t)(file_size - offset) : MOST;
    uint8_t *dir = malloc(n);
    if (!dir)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading image %s", path);
    ssize_t got = pread(fd, first, 4, 0) == 4 ? pread(fd, dir, n, (off_t)offset) : -1;
    int found =
        got > 0 ? peek_tiff_directory(dir, (size_t)got, first[0] == 'I', first[2] == '+' || first[3] == '+', h) : 0;
    free(dir);
    if (found < 0)
        return JACLIP_ERROR_IMAGE_DECODE;
    if (found == 0)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated TIFF data (in the first directory)");
    return JACLIP_OK;
}

jaclip_status jc_image_read_file(const char *path, uint64_t max_pixels, uint32_t target_size, uint8_t **out,
                                 size_t *out_size, jc_image_header *header)
{
    int fd;
    uint64_t file_size;
    size_t have = 0, cap;
    uint8_t *data = NULL;
    int found = 0;
    jaclip_status st;
    *out = NULL;
    *out_size = 0;
    memset(header, 0, sizeof *header);
    if ((st = jc_open_regular(path, "image", &fd, &file_size)))
        return st;
    if (file_size == 0) {
        close(fd);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "empty image data");
    }
    /* First the header: 64 KB, doubling while markers go on, never past the file's size. */
    for (cap = 1 << 16;; cap *= 2) {
        size_t want = file_size < cap ? (size_t)file_size : cap, got;
        uint8_t *grown = want > have ? realloc(data, want) : data;
        if (!grown) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading image %s", path);
            goto done;
        }
        data = grown;
        if ((st = jc_read_fd(fd, data + have, want - have, &got, "image", path)))
            goto done;
        have += got;
        found = peek(data, have, header);
        if (found != 0 || have < want || have == file_size || cap >= JC_HEADER_SEARCH_LIMIT)
            break;
    }
    if (found < 0) {
        st = JACLIP_ERROR_IMAGE_DECODE;
        goto done;
    }
    if (found == 2 && (st = read_tiff_directory(fd, file_size, path, header)))
        goto done;
    if (found == 0) {
        st = have == 0 ? jc_fail(JACLIP_ERROR_IMAGE_DECODE, "empty image data")
             : have >= JC_HEADER_SEARCH_LIMIT
                 ? jc_fail(JACLIP_ERROR_IMAGE_DECODE, "no image header in the first %zu bytes", have)
                 : jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated image data (ends inside the header)");
        goto done;
    }
    if ((st = check_header(header, max_pixels, target_size)))
        goto done;
    /* Then no more than the header's image can need: trailing data past that is never looked at, as
     * decoders stop at the last row. */
    uint64_t bound = jc_image_header_data_bound(header);
    if (header->tiff_directory > bound) {
        st = jc_fail(JACLIP_ERROR_IMAGE_DECODE,
                     "invalid TIFF data (first directory at byte %llu, past what a "
                     "%ux%u image can need)",
                     (unsigned long long)header->tiff_directory, header->width, header->height);
        goto done;
    }
    uint64_t total = file_size < bound ? file_size : bound;
    if (total > SIZE_MAX - 1) {
        st = jc_fail(JACLIP_ERROR_IMAGE_TOO_LARGE, "image file %s is too large for this address space", path);
        goto done;
    }
    if (total > have) {
        size_t got;
        uint8_t *grown = realloc(data, (size_t)total);
        if (!grown) {
            st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading %llu bytes of image %s",
                         (unsigned long long)total, path);
            goto done;
        }
        data = grown;
        if ((st = jc_read_fd(fd, data + have, (size_t)total - have, &got, "image", path)))
            goto done;
        have += got;
    }
done:
    close(fd);
    if (st) {
        free(data);
        return st;
    }
    *out = data;
    *out_size = have;
    return JACLIP_OK;
}

jaclip_status jaclip_image_load(jaclip_image **out, const char *path, uint64_t max_pixels, uint32_t flags)
{
    uint8_t *data;
    size_t size;
    jc_image_header header;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    if (flags & ~JACLIP_IMAGE_EXIF_TRANSPOSE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown image flags 0x%x", flags & ~JACLIP_IMAGE_EXIF_TRANSPOSE);
    st = jc_image_read_file(path, max_pixels, 0, &data, &size, &header);
    if (st == JACLIP_OK) {
        st = jaclip_image_load_memory(out, data, size, max_pixels, flags);
        free(data);
    }
    if (st != JACLIP_OK && strncmp(jaclip_last_error(), path, strlen(path)) != 0)
        return jc_fail_prefix(st, "%s: ", path);
    return st;
}
