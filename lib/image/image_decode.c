/* Image objects and decoding: JPEG through libjpeg(-turbo), PNG through libpng, into the mode and
 * pixel values PIL 9.4 gives when it opens the same file. */
#include "image/image.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <zlib.h>

/* ---- image objects --------------------------------------------------------------------------- */

size_t jc_image_mode_pixel_bytes(jc_image_mode mode)
{
    switch (mode) {
    case JC_MODE_1: case JC_MODE_L: case JC_MODE_P: return 1;
    case JC_MODE_LA: return 2;
    case JC_MODE_RGB: return 3;
    case JC_MODE_RGBA: case JC_MODE_I: case JC_MODE_CMYK: return 4;
    }
    return 0;
}

jaclip_status jc_image_check_size(uint64_t width, uint64_t height, uint64_t max_pixels)
{
    if (max_pixels == 0)
        max_pixels = JACLIP_DEFAULT_MAX_PIXELS;
    if (width == 0 || height == 0)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "image has zero size (%llux%llu)",
                       (unsigned long long)width, (unsigned long long)height);
    /* width and height are at most 2^32 each, so compare by division to avoid overflow. */
    if (width > max_pixels || height > max_pixels / width)
        return jc_fail(JACLIP_ERROR_IMAGE_TOO_LARGE, "image of %llux%llu pixels exceeds the limit of %llu pixels",
                       (unsigned long long)width, (unsigned long long)height, (unsigned long long)max_pixels);
    return JACLIP_OK;
}

jaclip_status jc_image_new(jaclip_image **out, uint32_t width, uint32_t height, jc_image_mode mode,
                           uint64_t max_pixels)
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

jaclip_status jaclip_image_from_pixels(jaclip_image **out, const void *pixels, uint32_t width,
                                       uint32_t height, size_t stride, jaclip_pixel_format format)
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

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

jaclip_status jaclip_image_load_memory(jaclip_image **out, const void *data, size_t size,
                                       uint64_t max_pixels, uint32_t flags)
{
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
    /* The same signatures PIL's plugins accept. */
    if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return jc_image_decode_jpeg(out, bytes, size, max_pixels, flags);
    if (size >= 8 && memcmp(bytes, png_signature, 8) == 0)
        return jc_image_decode_png(out, bytes, size, max_pixels, flags);
    return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unknown image format (neither JPEG nor PNG)");
}

/* ---- JPEG -------------------------------------------------------------------------------------- */

/* A progressive JPEG may hold any number of scans, and each costs a pass over the whole image: 500
 * (libjpeg-turbo's fuzzers' and tjDecompress's scan limit; cameras write about 10) bounds the work. */
#define JC_JPEG_MAX_SCANS 500

struct jpeg_failure {
    struct jpeg_error_mgr manager;
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    int hit_end_of_data; /* libjpeg reached the end of the input and invented an EOI marker */
    char message[JMSG_LENGTH_MAX];
};

static void jpeg_fail_exit(j_common_ptr cinfo)
{
    struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
    cinfo->err->format_message(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

/* Warnings stay quiet; running out of data is remembered because PIL refuses truncated JPEGs. */
static void jpeg_quiet_message(j_common_ptr cinfo, int level)
{
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF)
        ((struct jpeg_failure *)cinfo->err)->hit_end_of_data = 1;
}

static void jpeg_quiet_output(j_common_ptr cinfo) { (void)cinfo; }

/* Called by libjpeg between passes and scans, before the work of the next one. */
static void jpeg_limit_scans(j_common_ptr cinfo)
{
    struct jpeg_failure *failure = (struct jpeg_failure *)cinfo->err;
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > JC_JPEG_MAX_SCANS) {
        snprintf(failure->message, sizeof failure->message, "more than %d progressive scans", JC_JPEG_MAX_SCANS);
        longjmp(failure->jump, 1);
    }
}

jaclip_status jc_image_decode_jpeg(jaclip_image **out, const uint8_t *data, size_t size,
                                   uint64_t max_pixels, uint32_t flags)
{
    struct jpeg_decompress_struct cinfo;
    struct jpeg_failure failure;
    jaclip_image *volatile image = NULL;
    volatile int orientation = 0;
    jc_image_mode mode;
    jaclip_status st;

    *out = NULL;
    memset(&failure, 0, sizeof failure);
    cinfo.err = jpeg_std_error(&failure.manager);
    failure.manager.error_exit = jpeg_fail_exit;
    failure.manager.emit_message = jpeg_quiet_message;
    failure.manager.output_message = jpeg_quiet_output;
    if (setjmp(failure.jump)) {
        jpeg_destroy_decompress(&cinfo);
        jaclip_image_free(image);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid JPEG data: %s", failure.message);
    }
    jpeg_create_decompress(&cinfo);
    failure.progress.progress_monitor = jpeg_limit_scans;
    cinfo.progress = &failure.progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE)
        jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    if (failure.hit_end_of_data) {
        jpeg_destroy_decompress(&cinfo);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated JPEG data (ends inside the header)");
    }
    if (cinfo.data_precision != 8) {
        jpeg_destroy_decompress(&cinfo);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported JPEG data precision %d (only 8-bit JPEGs are read)",
                       cinfo.data_precision);
    }
    /* PIL picks its mode from the number of components and lets libjpeg pick the colour transform. */
    switch (cinfo.num_components) {
    case 1: mode = JC_MODE_L; cinfo.out_color_space = JCS_GRAYSCALE; break;
    case 3: mode = JC_MODE_RGB; cinfo.out_color_space = JCS_RGB; break;
    case 4: mode = JC_MODE_CMYK; cinfo.out_color_space = JCS_CMYK; break;
    default:
        jpeg_destroy_decompress(&cinfo);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "cannot handle %d-component JPEG images", cinfo.num_components);
    }
    if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE) {
        /* Like PIL, only the first Exif APP1 segment counts. */
        for (jpeg_saved_marker_ptr marker = cinfo.marker_list; marker; marker = marker->next) {
            if (marker->marker == JPEG_APP0 + 1 && marker->data_length >= 6 &&
                memcmp(marker->data, "Exif\0\0", 6) == 0) {
                orientation = jc_exif_orientation(marker->data + 6, marker->data_length - 6);
                break;
            }
        }
    }
    /* Refuse before libjpeg allocates anything image-sized. */
    st = jc_image_check_size(cinfo.image_width, cinfo.image_height, max_pixels);
    if (st != JACLIP_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    jaclip_image *allocated;
    st = jc_image_new(&allocated, cinfo.image_width, cinfo.image_height, mode, max_pixels);
    if (st != JACLIP_OK) {
        jpeg_destroy_decompress(&cinfo);
        return st;
    }
    image = allocated;
    jpeg_start_decompress(&cinfo);
    if ((size_t)cinfo.output_components != image->pixel_bytes || cinfo.output_width != image->width ||
        cinfo.output_height != image->height) {
        jpeg_destroy_decompress(&cinfo);
        jaclip_image_free(image);
        return jc_fail(JACLIP_ERROR_INTERNAL, "libjpeg produced an unexpected output layout");
    }
    size_t row_bytes = (size_t)image->width * image->pixel_bytes;
    while (cinfo.output_scanline < cinfo.output_height && !failure.hit_end_of_data) {
        JSAMPROW row = image->pixels + (size_t)cinfo.output_scanline * row_bytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    /* Whatever follows the last scanline (EOI, trailing bytes) is not needed, as in PIL. */
    int truncated = failure.hit_end_of_data;
    jpeg_destroy_decompress(&cinfo);
    if (truncated) {
        jaclip_image_free(image);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated JPEG data");
    }
    if (mode == JC_MODE_CMYK) {
        /* PIL reads every 4-component JPEG with Adobe's inverted convention ("CMYK;I"). */
        size_t total = (size_t)image->width * image->height * 4;
        for (size_t i = 0; i < total; i++)
            image->pixels[i] = (uint8_t)(255 - image->pixels[i]);
    }
    jaclip_image *result = image;
    if (orientation > 1) {
        st = jc_image_apply_orientation(&result, orientation);
        if (st != JACLIP_OK) {
            jaclip_image_free(result);
            return st;
        }
    }
    *out = result;
    return JACLIP_OK;
}

/* ---- PNG ----------------------------------------------------------------------------------------- */

static uint32_t read_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc_table[256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_fill(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* The CRC-32 of PNG chunks (zlib's polynomial). */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    pthread_once(&crc_table_once, crc_table_fill);
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

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
        uint32_t length = read_be32(data + pos);
        const uint8_t *name = data + pos + 4;
        for (int i = 0; i < 4; i++)
            if (!is_chunk_name_char(name[i]))
                return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "broken PNG file (bad chunk name at byte %zu)", pos + 4);
        if (memcmp(name, "IDAT", 4) == 0)
            return JACLIP_OK;
        if (length > size - pos - 8 || size - pos - 8 - length < 4)
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "truncated PNG data (chunk %.4s)", (const char *)name);
        uint32_t crc = crc32_update(0, name, 4 + (size_t)length);
        if (crc != read_be32(data + pos + 8 + length))
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "broken PNG file (bad checksum in chunk %.4s)", (const char *)name);
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
        uint32_t length = read_be32(data + pos);
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

jaclip_status jc_image_decode_png(jaclip_image **out, const uint8_t *data, size_t size,
                                  uint64_t max_pixels, uint32_t flags)
{
    struct png_source source = {data, size, 0, "", 0};
    png_structp png;
    png_infop info = NULL;
    jaclip_image *volatile image = NULL;
    png_bytep *volatile rows = NULL;
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
        free(rows);
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
    /* PIL 9.4's PNG modes: 16-bit samples keep their high byte except 16-bit grey ("I"), and 16-bit
     * grey + alpha becomes RGBA. */
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
    default:
        png_error(png, "unknown PNG colour type");
    }
    png_set_interlace_handling(png);
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
    if (mode == JC_MODE_P) {
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
    rows = malloc((size_t)height * sizeof *rows);
    if (!rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++)
        rows[y] = image->pixels + (size_t)y * row_bytes;
    png_read_image(png, rows);
    /* Like PIL, nothing after the image data is decoded (IEND may be missing or damaged); the
     * orientation is looked for in the chunks as PIL's exif_transpose finds it. */
    if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE)
        orientation = png_orientation(data, size);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    rows = NULL;

    jaclip_image *result = image;
    size_t pixels = (size_t)width * height;
    if (mode == JC_MODE_1) {
        for (size_t i = 0; i < pixels; i++)
            result->pixels[i] = result->pixels[i] ? 255 : 0;
    } else if (mode == JC_MODE_I) {
        for (png_uint_32 y = 0; y < height; y++) {
            uint8_t *row = result->pixels + (size_t)y * row_bytes;
            /* Backwards, because each int32 overwrites the big-endian pair it came from and more. */
            for (size_t x = width; x-- > 0;) {
                int32_t v = (int32_t)row[2 * x] << 8 | row[2 * x + 1];
                memcpy(row + 4 * x, &v, 4);
            }
        }
    }
    if (orientation > 1) {
        st = jc_image_apply_orientation(&result, orientation);
        if (st != JACLIP_OK) {
            jaclip_image_free(result);
            return st;
        }
    }
    *out = result;
    return JACLIP_OK;
}

/* ---- EXIF orientation ---------------------------------------------------------------------------- */

int jc_exif_orientation(const uint8_t *tiff, size_t size)
{
    int little;
    uint32_t ifd, count;
    if (size < 8)
        return 0;
    if (tiff[0] == 'I' && tiff[1] == 'I')
        little = 1;
    else if (tiff[0] == 'M' && tiff[1] == 'M')
        little = 0;
    else
        return 0;
#define U16(p) (little ? (uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 : (uint32_t)(p)[0] << 8 | (uint32_t)(p)[1])
#define U32(p) (little ? (uint32_t)(p)[0] | (uint32_t)(p)[1] << 8 | (uint32_t)(p)[2] << 16 | (uint32_t)(p)[3] << 24 \
                       : read_be32(p))
    ifd = U32(tiff + 4);
    if (ifd > size || size - ifd < 2)
        return 0;
    count = U16(tiff + ifd);
    for (uint32_t i = 0; i < count; i++) {
        size_t entry = (size_t)ifd + 2 + (size_t)i * 12;
        if (entry + 12 > size)
            return 0;
        if (U16(tiff + entry) == 0x0112) {
            uint32_t type = U16(tiff + entry + 2);
            uint32_t value = type == 3 ? U16(tiff + entry + 8) : type == 4 ? U32(tiff + entry + 8) : 0;
            return value >= 1 && value <= 8 ? (int)value : 0;
        }
    }
    return 0;
#undef U16
#undef U32
}

jaclip_status jc_image_apply_orientation(jaclip_image **image, int orientation)
{
    const jaclip_image *in = *image;
    jaclip_image *rotated;
    jaclip_status st;
    uint32_t w = in->width, h = in->height;
    int swaps = orientation >= 5;
    size_t pb = in->pixel_bytes;
    if (orientation < 2 || orientation > 8)
        return JACLIP_OK;
    st = jc_image_new(&rotated, swaps ? h : w, swaps ? w : h, in->mode, (uint64_t)w * h);
    if (st != JACLIP_OK)
        return st;
    memcpy(rotated->palette, in->palette, sizeof rotated->palette);
    for (uint32_t y = 0; y < rotated->height; y++) {
        for (uint32_t x = 0; x < rotated->width; x++) {
            uint32_t sx, sy;
            switch (orientation) {
            case 2: sx = w - 1 - x; sy = y; break;           /* mirror left-right */
            case 3: sx = w - 1 - x; sy = h - 1 - y; break;   /* rotate 180 */
            case 4: sx = x; sy = h - 1 - y; break;           /* mirror top-bottom */
            case 5: sx = y; sy = x; break;                   /* transpose */
            case 6: sx = y; sy = h - 1 - x; break;           /* rotate 90 clockwise */
            case 7: sx = w - 1 - y; sy = h - 1 - x; break;   /* transverse */
            default: sx = w - 1 - y; sy = x; break;          /* 8: rotate 90 counter-clockwise */
            }
            memcpy(rotated->pixels + ((size_t)y * rotated->width + x) * pb,
                   in->pixels + ((size_t)sy * w + sx) * pb, pb);
        }
    }
    jaclip_image_free(*image);
    *image = rotated;
    return JACLIP_OK;
}
