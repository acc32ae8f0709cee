/* Image bytes from a file, read header first: the header says how large the image is, so a file is
 * refused or bounded before it is read whole (a 4 GB sparse ".jpg" costs its first bytes, not 4 GB). */
#include "image/image.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int peek(const uint8_t *d, size_t n, jc_image_header *h)
{
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
        h->is_png = false;
        return peek_jpeg(d, n, h);
    }
    if (n >= 8 && memcmp(d, png_signature, 8) == 0) {
        h->is_png = true;
        return peek_png(d, n, h);
    }
    if (n < 8 && (n == 0 || d[0] == 0xFF || d[0] == 0x89))
        return 0;
    jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unknown image format (neither JPEG nor PNG)");
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
    /* zlib's stored blocks add 5 bytes per 64 KB; Huffman-coded JPEG can reach ~3.4 bytes a sample. */
    return (h->is_png ? raw + raw / 64 : raw * 4) + JC_METADATA_ALLOWANCE;
}

uint64_t jc_image_header_decode_bytes(const jc_image_header *h)
{
    /* The decoded image (4 bytes a pixel at most), one more of it for an EXIF rotation or the
     * resize's intermediate, and the decoder's row pointers. */
    return (uint64_t)h->width * h->height * 8 + (uint64_t)h->height * 16;
}

jaclip_status jc_image_check_header(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t target_size,
                                    jc_image_header *header)
{
    memset(header, 0, sizeof *header);
    int found = peek(data, size, header);
    if (found < 0)
        return JACLIP_ERROR_IMAGE_DECODE;
    if (found == 0)
        return size == 0 ? jc_fail(JACLIP_ERROR_IMAGE_DECODE, "empty image data")
                         : jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated image data (ends inside the header)");
    return check_header(header, max_pixels, target_size);
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
