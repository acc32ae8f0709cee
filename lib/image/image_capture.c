/* jaclip_image_capture_time: finds the EXIF block of an encoded image without decoding it (JPEG APP1,
 * PNG eXIf, WebP EXIF, TIFF's own first directory, HEIF's Exif item through libheif) and reads its
 * DateTimeOriginal (image_exif.c). A scan walks the container's own lengths, each checked against
 * the bytes left, so truncated or hostile files end the walk with no date. */
#include "common/bytes.h"
#include "image/image.h"

#include <stdlib.h>
#include <string.h>

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* The first APP1 segment holding "Exif\0\0", before the first scan (where PIL looks too). */
static bool jpeg_exif(const uint8_t *d, size_t n, const uint8_t **tiff, size_t *tiff_size)
{
    size_t at = 2;
    while (at + 4 <= n) {
        if (d[at] != 0xFF)
            return false;
        uint8_t marker = d[at + 1];
        if (marker == 0xFF) { /* fill byte */
            at++;
            continue;
        }
        if (marker == 0xD9 || marker == 0xDA) /* EOI, SOS: no header segment follows */
            return false;
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) { /* no length */
            at += 2;
            continue;
        }
        size_t len = be16(d + at + 2);
        if (len < 2 || len > n - at - 2)
            return false;
        if (marker == 0xE1 && len >= 8 && memcmp(d + at + 4, "Exif\0\0", 6) == 0) {
            *tiff = d + at + 10;
            *tiff_size = len - 8;
            return true;
        }
        at += 2 + len;
    }
    return false;
}

/* The first eXIf chunk (the PNG extension places it before IDAT, but a later one is taken too). */
static bool png_exif(const uint8_t *d, size_t n, const uint8_t **tiff, size_t *tiff_size)
{
    size_t at = 8;
    while (at + 12 <= n) {
        uint32_t len = jc_get_u32be(d + at);
        if (len > n - at - 12)
            return false;
        if (memcmp(d + at + 4, "eXIf", 4) == 0) {
            *tiff = d + at + 8;
            *tiff_size = len;
            return true;
        }
        if (memcmp(d + at + 4, "IEND", 4) == 0)
            return false;
        at += 12 + (size_t)len;
    }
    return false;
}

/* The EXIF chunk of a RIFF WebP file, with or without the JPEG-style "Exif\0\0" prefix (as PIL). */
static bool webp_exif(const uint8_t *d, size_t n, const uint8_t **tiff, size_t *tiff_size)
{
    size_t at = 12;
    while (at + 8 <= n) {
        uint32_t len = jc_get_u32le(d + at + 4);
        if (len > n - at - 8)
            return false;
        if (memcmp(d + at, "EXIF", 4) == 0) {
            const uint8_t *p = d + at + 8;
            size_t m = len;
            if (m >= 6 && memcmp(p, "Exif\0\0", 6) == 0)
                p += 6, m -= 6;
            *tiff = p;
            *tiff_size = m;
            return true;
        }
        at += 8 + (size_t)len + (len & 1);
    }
    return false;
}

jaclip_status jaclip_image_capture_time(int64_t *out_ns, const void *data, size_t size)
{
    if (!out_ns)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out_ns is NULL");
    *out_ns = JACLIP_TIME_NONE;
    if (!data && size > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data is NULL");
    const uint8_t *d = data, *tiff = NULL;
    size_t tiff_size = 0;
    switch (jc_image_sniff(d, size)) {
    case JC_FORMAT_JPEG:
        if (jpeg_exif(d, size, &tiff, &tiff_size))
            *out_ns = jc_exif_capture_time(tiff, tiff_size);
        break;
    case JC_FORMAT_PNG:
        if (png_exif(d, size, &tiff, &tiff_size))
            *out_ns = jc_exif_capture_time(tiff, tiff_size);
        break;
    case JC_FORMAT_WEBP:
        if (webp_exif(d, size, &tiff, &tiff_size))
            *out_ns = jc_exif_capture_time(tiff, tiff_size);
        break;
    case JC_FORMAT_TIFF:
        *out_ns = jc_exif_capture_time(d, size);
        break;
    case JC_FORMAT_HEIF: {
        uint8_t *block = NULL;
        if (jc_heif_exif(d, size, &block, &tiff_size))
            *out_ns = jc_exif_capture_time(block, tiff_size);
        free(block);
        break;
    }
    default: /* GIF and BMP carry no EXIF */
        break;
    }
    return JACLIP_OK;
}
