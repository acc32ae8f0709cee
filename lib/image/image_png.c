/* PNG through libpng, into the mode and pixel values PIL 9.4 gives when it opens the same file: its
 * header-chunk CRC policy, its modes, and the orientation its exif_transpose finds (eXIf or XMP). */
#include "common/bytes.h"
#include "image/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <zlib.h>

static int is_chunk_name_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* PIL checks the CRC of every chunk before the first IDAT and of none after, so it opens files with a
 * bad IDAT CRC and refuses a bad header CRC. Do the same checks here; libpng then ignores CRCs. */
static jaclip_status png_check_header_chunks(const uint8_t *data, size_t size)
{
    size_t pos = 8;
    for (;;) {
        if (size - pos < 8)
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated PNG data (no IDAT chunk)");
        uint32_t length = jc_get_u32be(data + pos);
        const uint8_t *name = data + pos + 4;
        for (int i = 0; i < 4; i++)
            if (!is_chunk_name_char(name[i]))
                return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "broken PNG file (bad chunk name at byte %zu)", pos + 4);
        if (memcmp(name, "IDAT", 4) == 0)
            return JACLIP_OK;
        if (length > size - pos - 8 || size - pos - 8 - length < 4)
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated PNG data (chunk %.4s)", (const char *)name);
        uint32_t crc = jc_crc32(0, name, 4 + (size_t)length);
        if (crc != jc_get_u32be(data + pos + 8 + length))
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "broken PNG file (bad checksum in chunk %.4s)",
                           (const char *)name);
        pos += 12 + (size_t)length;
    }
}

struct png_source {
    const uint8_t *data;
    size_t size;
    size_t pos;
    char message[256];
    int max_pixels_exceeded;
};

static void png_read_from_memory(png_structp png, png_bytep out, size_t n)
{
    struct png_source *source = png_get_io_ptr(png);
    if (n > source->size - source->pos)
        png_error(png, "truncated PNG data");
    memcpy(out, source->data + source->pos, n);
    source->pos += n;
}

static void png_fail(png_structp png, png_const_charp message)
{
    struct png_source *source = png_get_error_ptr(png);
    snprintf(source->message, sizeof source->message, "%s", message);
    png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp message)
{
    (void)png;
    (void)message;
}

/* The orientation of an XMP packet as PIL 9.4 reads it: re.search(r'tiff:Orientation(="|>)([0-9])'). */
static int xmp_orientation(const uint8_t *text, size_t n)
{
    static const char key[] = "tiff:Orientation";
    const size_t k = sizeof key - 1;
    for (size_t i = 0; i + k < n; i++) {
        if (memcmp(text + i, key, k) != 0)
            continue;
        const uint8_t *p = text + i + k;
        size_t left = n - i - k;
        if (left >= 3 && p[0] == '=' && p[1] == '"' && p[2] >= '0' && p[2] <= '9')
            return p[2] - '0';
        if (left >= 2 && p[0] == '>' && p[1] >= '0' && p[1] <= '9')
            return p[1] - '0';
    }
    return -1;
}

/* The text of a tEXt / zTXt / iTXt chunk keyed "XML:com.adobe.xmp" (PIL's key for XMP), inflated into
 * *owned when compressed; NULL if the chunk is another one or unreadable. */
static const uint8_t *xmp_text(const uint8_t *name, const uint8_t *body, uint32_t length, uint8_t **owned,
                               size_t *text_size)
{
    static const char key[] = "XML:com.adobe.xmp";
    const size_t k = sizeof key; /* with its NUL */
    bool text = memcmp(name, "tEXt", 4) == 0, ztxt = memcmp(name, "zTXt", 4) == 0, itxt = memcmp(name, "iTXt", 4) == 0;
    *owned = NULL;
    if (!(text || ztxt || itxt) || length < k || memcmp(body, key, k) != 0)
        return NULL;
    const uint8_t *p = body + k, *end = body + length;
    bool compressed = ztxt;
    if (ztxt)
        p++; /* compression method */
    if (itxt) {
        if (end - p < 2)
            return NULL;
        compressed = p[0] != 0;
        p += 2;
        for (int field = 0; field < 2; field++) { /* language tag, translated keyword */
            const uint8_t *nul = memchr(p, 0, (size_t)(end - p));
            if (!nul)
                return NULL;
            p = nul + 1;
        }
    }
    if (p > end)
        return NULL;
    if (!compressed) {
        *text_size = (size_t)(end - p);
        return p;
    }
    /* PIL inflates text chunks up to its MAX_TEXT_CHUNK (1 MB) and drops larger ones. */
    uLongf out_size = 1 << 20;
    uint8_t *out = malloc(out_size);
    if (!out || uncompress(out, &out_size, p, (uLong)(end - p)) != Z_OK) {
        free(out);
        return NULL;
    }
    *owned = out;
    *text_size = out_size;
    return out;
}

/* What PIL's exif_transpose finds in a PNG it has loaded (PIL reads every chunk up to IEND): the last
 * eXIf chunk's Orientation, else tiff:Orientation in the last XMP text chunk. */
static int png_orientation(const uint8_t *data, size_t size)
{
    const uint8_t *exif = NULL;
    uint32_t exif_size = 0;
    int xmp_value = 0;
    for (size_t pos = 8; size - pos >= 12;) {
        uint32_t length = jc_get_u32be(data + pos);
        const uint8_t *name = data + pos + 4, *body = data + pos + 8;
        if (length > size - pos - 12 || memcmp(name, "IEND", 4) == 0)
            break;
        if (memcmp(name, "eXIf", 4) == 0) {
            exif = body;
            exif_size = length;
        }
        uint8_t *owned;
        size_t text_size;
        const uint8_t *xmp = xmp_text(name, body, length, &owned, &text_size);
        if (xmp) {
            xmp_value = xmp_orientation(xmp, text_size);
            free(owned);
        }
        pos += 12 + (size_t)length;
    }
    int from_exif = exif ? jc_exif_orientation(exif, exif_size) : 0;
    return from_exif > 0 ? from_exif : xmp_value;
}

/* PIL 9.4's PNG modes: 16-bit samples keep their high byte except 16-bit grey ("I"), and 16-bit
 * grey + alpha becomes RGBA. Sets libpng's transformations to match; png_error on an unknown type. */
static jc_image_mode png_choose_mode(png_structp png, int color_type, int bit_depth)
{
    jc_image_mode mode = JC_MODE_L;
    switch (color_type) {
    case PNG_COLOR_TYPE_GRAY:
        if (bit_depth == 1) {
            mode = JC_MODE_1;
            png_set_packing(png);
        } else if (bit_depth < 8) {
            mode = JC_MODE_L;
            png_set_expand_gray_1_2_4_to_8(png);
        } else if (bit_depth == 8) {
            mode = JC_MODE_L;
        } else {
            mode = JC_MODE_I;
        }
        break;
    case PNG_COLOR_TYPE_RGB:
        mode = JC_MODE_RGB;
        png_set_strip_16(png);
        break;
    case PNG_COLOR_TYPE_PALETTE:
        mode = JC_MODE_P;
        png_set_packing(png);
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA:
        if (bit_depth == 16) {
            mode = JC_MODE_RGBA;
            png_set_strip_16(png);
            png_set_gray_to_rgb(png);
        } else {
            mode = JC_MODE_LA;
        }
        break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
        mode = JC_MODE_RGBA;
        png_set_strip_16(png);
        break;
    default: png_error(png, "unknown PNG colour type");
    }
    return mode;
}

static void png_copy_palette(png_structp png, png_infop info, jaclip_image *image)
{
    png_colorp palette;
    int entries = 0;
    if (png_get_PLTE(png, info, &palette, &entries) == 0)
        png_error(png, "palette image without a PLTE chunk");
    for (int i = 0; i < entries && i < 256; i++) {
        image->palette[3 * i] = palette[i].red;
        image->palette[3 * i + 1] = palette[i].green;
        image->palette[3 * i + 2] = palette[i].blue;
    }
}

/* Decoded rows to PIL's values: 1-bit samples to 0/255, 16-bit grey pairs to native int32. */
static void png_widen_rows(jaclip_image *image, jc_image_mode mode, size_t row_bytes)
{
    size_t pixels = (size_t)image->width * image->height;
    if (mode == JC_MODE_1) {
        for (size_t i = 0; i < pixels; i++)
            image->pixels[i] = image->pixels[i] ? 255 : 0;
    } else if (mode == JC_MODE_I) {
        for (uint32_t y = 0; y < image->height; y++) {
            uint8_t *row = image->pixels + (size_t)y * row_bytes;
            /* Backwards, because each int32 overwrites the big-endian pair it came from and more. */
            for (size_t x = image->width; x-- > 0;) {
                int32_t v = (int32_t)row[2 * x] << 8 | row[2 * x + 1];
                memcpy(row + 4 * x, &v, 4);
            }
        }
    }
}

jaclip_status jc_image_decode_png(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                  uint32_t flags)
{
    struct png_source source = {data, size, 0, "", 0};
    png_structp png;
    png_infop info = NULL;
    jaclip_image *volatile image = NULL;
    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    jc_image_mode mode;
    jaclip_status st;
    volatile int orientation = 0;

    *out = NULL;
    st = png_check_header_chunks(data, size);
    if (st != JACLIP_OK)
        return st;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, png_fail, png_quiet_warning);
    if (!png)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory creating a PNG reader");
    info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory creating a PNG reader");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        jaclip_image_free(image);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid PNG data: %s", source.message);
    }
    png_set_read_fn(png, &source, png_read_from_memory);
    /* Header CRCs were checked above; IDAT CRCs are not checked by PIL either. */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    /* PIL has no per-side limit; the pixel limit is checked below. */
    png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
    /* Ancillary chunks cannot change PIL's pixels (no gamma, no ICC), so skip them, except eXIf. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE)
        png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, (png_const_bytep) "eXIf", 1);
    png_read_info(png, info);
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    st = jc_image_check_size(width, height, max_pixels);
    if (st != JACLIP_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return st;
    }
    mode = png_choose_mode(png, color_type, bit_depth);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    jaclip_image *allocated;
    st = jc_image_new(&allocated, width, height, mode, max_pixels);
    if (st != JACLIP_OK) {
        png_destroy_read_struct(&png, &info, NULL);
        return st;
    }
    image = allocated;
    size_t row_bytes = (size_t)width * image->pixel_bytes;
    size_t decoded_row_bytes = png_get_rowbytes(png, info);
    /* 16-bit grey rows (2 bytes a pixel) are decoded into the int32 rows and widened in place. */
    if (decoded_row_bytes > row_bytes)
        png_error(png, "unexpected PNG row size");
    if (mode == JC_MODE_P)
        png_copy_palette(png, info, image);
    /* What png_read_image does, without its array of row pointers (8 bytes a row: 1.43 GB beside the
     * 179 MB of a 1 x 178956970 image). */
    for (int pass = 0; pass < passes; pass++)
        for (png_uint_32 y = 0; y < height; y++)
            png_read_row(png, image->pixels + (size_t)y * row_bytes, NULL);
    /* Like PIL, nothing after the image data is decoded (IEND may be missing or damaged); the
     * orientation is looked for in the chunks as PIL's exif_transpose finds it. */
    if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE)
        orientation = png_orientation(data, size);
    png_destroy_read_struct(&png, &info, NULL);

    png_widen_rows(image, mode, row_bytes);
    return jc_image_finish(image, orientation, out);
}
