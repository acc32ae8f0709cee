/* Image objects (the mode and pixel layout PIL would open a file in) and decoding by format: JPEG
 * (image_jpeg.c), PNG (image_png.c), WebP, GIF, BMP, TIFF and HEIF (image_<format>.c), then the EXIF
 * orientation (image_exif.c). */
#include "image/image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- image objects --------------------------------------------------------------------------- */

size_t jc_image_mode_pixel_bytes(jc_image_mode mode)
{
    switch (mode) {
    case JC_MODE_1:
    case JC_MODE_L:
    case JC_MODE_P: return 1;
    case JC_MODE_LA: return 2;
    case JC_MODE_RGB: return 3;
    case JC_MODE_RGBA:
    case JC_MODE_I:
    case JC_MODE_CMYK: return 4;
    }
    return 0;
}

/* The limit a max_pixels of 0 stands for: $JACLIP_MAX_IMAGE_PIXELS when set (a process-wide override,
 * e.g. lower for a service), else JACLIP_DEFAULT_MAX_PIXELS. */
static jaclip_status default_max_pixels(uint64_t *out)
{
    const char *env = getenv("JACLIP_MAX_IMAGE_PIXELS");
    *out = JACLIP_DEFAULT_MAX_PIXELS;
    if (!env || !env[0])
        return JACLIP_OK;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    if (errno || *end || v == 0 || env[0] == '-' || env[0] == '+' || env[0] == ' ')
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "JACLIP_MAX_IMAGE_PIXELS=\"%.40s\" is not a positive integer", env);
    *out = (uint64_t)v;
    return JACLIP_OK;
}

jaclip_status jc_image_check_size(uint64_t width, uint64_t height, uint64_t max_pixels)
{
    jaclip_status st;
    if (max_pixels == 0 && (st = default_max_pixels(&max_pixels)))
        return st;
    if (width == 0 || height == 0)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "image has zero size (%llux%llu)", (unsigned long long)width,
                       (unsigned long long)height);
    /* width and height are at most 2^32 each, so compare by division to avoid overflow. */
    if (width > max_pixels || height > max_pixels / width)
        return jc_fail(JACLIP_ERROR_IMAGE_TOO_LARGE, "image of %llux%llu pixels exceeds the limit of %llu pixels",
                       (unsigned long long)width, (unsigned long long)height, (unsigned long long)max_pixels);
    return JACLIP_OK;
}

jaclip_status jc_image_new(jaclip_image **out, uint32_t width, uint32_t height, jc_image_mode mode, uint64_t max_pixels)
{
    size_t bytes;
    jaclip_image *image;
    jaclip_status st;
    *out = NULL;
    st = jc_image_check_size(width, height, max_pixels);
    if (st != JACLIP_OK)
        return st;
    if (!jc_mul_size(width, height, &bytes) || !jc_mul_size(bytes, jc_image_mode_pixel_bytes(mode), &bytes))
        return jc_fail(JACLIP_ERROR_IMAGE_TOO_LARGE, "image of %ux%u pixels does not fit in memory", width, height);
    image = calloc(1, sizeof *image);
    if (!image)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory allocating an image");
    image->pixels = malloc(bytes);
    if (!image->pixels) {
        free(image);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory allocating %zu bytes of pixels", bytes);
    }
    image->width = width;
    image->height = height;
    image->mode = mode;
    image->pixel_bytes = jc_image_mode_pixel_bytes(mode);
    for (int i = 0; i < 256; i++)
        image->palette[3 * i] = image->palette[3 * i + 1] = image->palette[3 * i + 2] = (uint8_t)i;
    *out = image;
    return JACLIP_OK;
}

void jaclip_image_free(jaclip_image *image)
{
    if (!image)
        return;
    free(image->pixels);
    free(image);
}

uint32_t jaclip_image_width(const jaclip_image *image) { return image ? image->width : 0; }

uint32_t jaclip_image_height(const jaclip_image *image) { return image ? image->height : 0; }

const char *jaclip_image_mode(const jaclip_image *image)
{
    if (!image)
        return NULL;
    switch (image->mode) {
    case JC_MODE_1: return "1";
    case JC_MODE_L: return "L";
    case JC_MODE_LA: return "LA";
    case JC_MODE_RGB: return "RGB";
    case JC_MODE_RGBA: return "RGBA";
    case JC_MODE_P: return "P";
    case JC_MODE_I: return "I";
    case JC_MODE_CMYK: return "CMYK";
    }
    return NULL;
}

jaclip_status jaclip_image_from_pixels(jaclip_image **out, const void *pixels, uint32_t width, uint32_t height,
                                       size_t stride, jaclip_pixel_format format)
{
    jc_image_mode mode;
    size_t row_bytes;
    jaclip_image *image;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!pixels)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "pixels is NULL");
    switch (format) {
    case JACLIP_PIXEL_GRAY8: mode = JC_MODE_L; break;
    case JACLIP_PIXEL_RGB8: mode = JC_MODE_RGB; break;
    case JACLIP_PIXEL_RGBA8: mode = JC_MODE_RGBA; break;
    case JACLIP_PIXEL_GRAYA8: mode = JC_MODE_LA; break;
    default: return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown pixel format %d", (int)format);
    }
    if (width == 0 || height == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "image size %ux%u has a zero side", width, height);
    row_bytes = (size_t)width * jc_image_mode_pixel_bytes(mode);
    if (stride == 0)
        stride = row_bytes;
    if (stride < row_bytes)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "stride %zu is less than a row of %zu bytes", stride, row_bytes);
    st = jc_image_new(&image, width, height, mode, 0);
    if (st != JACLIP_OK)
        return st;
    /* The last row starts (height - 1) * stride bytes in: refuse a stride that wraps around. */
    if (height > 1 && stride > (SIZE_MAX - row_bytes) / (height - 1)) {
        jaclip_image_free(image);
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "stride %zu over %u rows overflows", stride, height);
    }
    for (uint32_t y = 0; y < height; y++)
        memcpy(image->pixels + (size_t)y * row_bytes, (const uint8_t *)pixels + (size_t)y * stride, row_bytes);
    *out = image;
    return JACLIP_OK;
}

/* ---- format detection ------------------------------------------------------------------------ */

/* The signatures PIL 9.4's plugins accept (HEIF: the ISO-BMFF brands libheif reads). */
jc_image_format jc_image_sniff(const uint8_t *d, size_t n)
{
    static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const char heif_brands[][5] = {"heic", "heix", "hevc", "hevx", "heim", "heis",
                                          "hevm", "hevs", "mif1", "msf1", "avif", "avis"};
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return JC_FORMAT_JPEG;
    if (n >= 8 && memcmp(d, png_signature, 8) == 0)
        return JC_FORMAT_PNG;
    if (n >= 16 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0 &&
        (memcmp(d + 12, "VP8 ", 4) == 0 || memcmp(d + 12, "VP8L", 4) == 0 || memcmp(d + 12, "VP8X", 4) == 0))
        return JC_FORMAT_WEBP;
    if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        return JC_FORMAT_GIF;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M')
        return JC_FORMAT_BMP;
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0 || memcmp(d, "II+\0", 4) == 0 ||
                   memcmp(d, "MM\0+", 4) == 0))
        return JC_FORMAT_TIFF;
    if (n >= 12 && memcmp(d + 4, "ftyp", 4) == 0)
        for (size_t i = 0; i < sizeof heif_brands / sizeof heif_brands[0]; i++)
            if (memcmp(d + 8, heif_brands[i], 4) == 0)
                return JC_FORMAT_HEIF;
    return JC_FORMAT_UNKNOWN;
}

jaclip_status jaclip_image_load_memory(jaclip_image **out, const void *data, size_t size, uint64_t max_pixels,
                                       uint32_t flags)
{
    static const jc_image_decoder decoders[] = {
        [JC_FORMAT_JPEG] = jc_image_decode_jpeg, [JC_FORMAT_PNG] = jc_image_decode_png,
        [JC_FORMAT_WEBP] = jc_image_decode_webp, [JC_FORMAT_GIF] = jc_image_decode_gif,
        [JC_FORMAT_BMP] = jc_image_decode_bmp,   [JC_FORMAT_TIFF] = jc_image_decode_tiff,
        [JC_FORMAT_HEIF] = jc_image_decode_heif,
    };
    const uint8_t *bytes = data;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!data && size > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data is NULL");
    if (flags & ~JACLIP_IMAGE_EXIF_TRANSPOSE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown image flags 0x%x", flags & ~JACLIP_IMAGE_EXIF_TRANSPOSE);
    if (size == 0)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "empty image data");
    jc_image_format format = jc_image_sniff(bytes, size);
    if (format == JC_FORMAT_UNKNOWN)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unknown image format (not JPEG, PNG, WebP, GIF, BMP, TIFF or HEIF)");
    return decoders[format](out, bytes, size, max_pixels, flags);
}
