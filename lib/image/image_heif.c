/* HEIF (HEIC, AVIF) through libheif: the primary image with its transformations (irot, imir, clap)
 * applied as libheif applies them, in 8-bit RGB (RGBA when it has an alpha image), which is what
 * Debian's heif-convert writes. PIL 9.4 has no HEIF reader, so heif-convert is the reference. An EXIF
 * orientation is not applied on top: HEIF's transformations are the orientation (ISO 23008-12). */
#include "common/bytes.h"
#include "image/image.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <libheif/heif.h>

static pthread_once_t heif_once = PTHREAD_ONCE_INIT;
/* libheif counts initialisations; this one lasts for the life of the process. */
static void heif_start(void) { heif_init(NULL); }

static jaclip_status heif_failure(struct heif_error error, const char *what)
{
    return jc_fail(error.code == heif_error_Memory_allocation_error ? JACLIP_ERROR_OUT_OF_MEMORY
                                                                    : JACLIP_ERROR_IMAGE_DECODE,
                   "invalid HEIF data (%s: %s)", what, error.message ? error.message : "unknown error");
}

/* AV1 goes to libaom, not dav1d (libheif's first choice): libheif 1.15's dav1d plugin leaks 40 bytes
 * for every item whose data is empty (its free skips a zero-size Dav1dData; libheif issue 1753), which a
 * hostile file repeats at will. Both decoders give the same pixels (AV1 decoding is normative). Other
 * formats ignore the name on libheif 1.15; a libheif that refuses it instead is asked again without. */
static struct heif_error heif_decode_av1_with_aom(struct heif_image_handle *handle, struct heif_image **decoded,
                                                  enum heif_chroma chroma)
{
    struct heif_decoding_options *options = heif_decoding_options_alloc();
    if (!options)
        return heif_decode_image(handle, decoded, heif_colorspace_RGB, chroma, NULL);
    options->decoder_id = "aom";
    struct heif_error error = heif_decode_image(handle, decoded, heif_colorspace_RGB, chroma, options);
    heif_decoding_options_free(options);
    if (error.code == heif_error_Plugin_loading_error)
        error = heif_decode_image(handle, decoded, heif_colorspace_RGB, chroma, NULL);
    return error;
}

jaclip_status jc_image_decode_heif(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags)
{
    struct heif_context *context;
    struct heif_image_handle *handle = NULL;
    struct heif_image *decoded = NULL;
    struct heif_error error;
    jaclip_image *image = NULL;
    jaclip_status st;
    (void)flags;

    *out = NULL;
    pthread_once(&heif_once, heif_start);
    context = heif_context_alloc();
    if (!context)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory creating a HEIF reader");
    /* libheif refuses a side over this before allocating (the pixel limit follows from the handle). */
    uint64_t limit = max_pixels ? max_pixels : JACLIP_DEFAULT_MAX_PIXELS;
    heif_context_set_maximum_image_size_limit(context, limit > 0x7fffffff ? 0x7fffffff : (int)limit);
    error = heif_context_read_from_memory_without_copy(context, data, size, NULL);
    if (error.code != heif_error_Ok) {
        st = heif_failure(error, "reading the file");
        goto done;
    }
    error = heif_context_get_primary_image_handle(context, &handle);
    if (error.code != heif_error_Ok) {
        st = heif_failure(error, "finding the primary image");
        goto done;
    }
    int width = heif_image_handle_get_width(handle), height = heif_image_handle_get_height(handle);
    if (width <= 0 || height <= 0) {
        st = jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid HEIF data (image of %dx%d pixels)", width, height);
        goto done;
    }
    if ((st = jc_image_check_size((uint64_t)width, (uint64_t)height, max_pixels)))
        goto done;
    int alpha = heif_image_handle_has_alpha_channel(handle);
    enum heif_chroma chroma = alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB;
    error = heif_decode_av1_with_aom(handle, &decoded, chroma);
    if (error.code != heif_error_Ok) {
        st = heif_failure(error, "decoding the primary image");
        goto done;
    }
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(decoded, heif_channel_interleaved, &stride);
    int out_w = heif_image_get_width(decoded, heif_channel_interleaved);
    int out_h = heif_image_get_height(decoded, heif_channel_interleaved);
    if (!plane || out_w <= 0 || out_h <= 0 ||
        heif_image_get_bits_per_pixel_range(decoded, heif_channel_interleaved) != 8) {
        st = jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid HEIF data (libheif gave no 8-bit RGB plane)");
        goto done;
    }
    if ((st = jc_image_new(&image, (uint32_t)out_w, (uint32_t)out_h, alpha ? JC_MODE_RGBA : JC_MODE_RGB, max_pixels)))
        goto done;
    size_t row = (size_t)out_w * image->pixel_bytes;
    if ((size_t)stride < row) {
        jaclip_image_free(image);
        image = NULL;
        st = jc_fail(JACLIP_ERROR_INTERNAL, "libheif gave rows of %d bytes for %zu", stride, row);
        goto done;
    }
    for (int y = 0; y < out_h; y++)
        memcpy(image->pixels + (size_t)y * row, plane + (size_t)y * (size_t)stride, row);
done:
    heif_image_release(decoded);
    heif_image_handle_release(handle);
    heif_context_free(context);
    if (st != JACLIP_OK)
        return st;
    *out = image;
    return JACLIP_OK;
}

bool jc_heif_exif(const uint8_t *data, size_t size, uint8_t **out, size_t *out_size)
{
    struct heif_context *context;
    struct heif_image_handle *handle = NULL;
    heif_item_id id;
    bool found = false;
    *out = NULL;
    pthread_once(&heif_once, heif_start);
    if (!(context = heif_context_alloc()))
        return false;
    if (heif_context_read_from_memory_without_copy(context, data, size, NULL).code == heif_error_Ok &&
        heif_context_get_primary_image_handle(context, &handle).code == heif_error_Ok &&
        heif_image_handle_get_list_of_metadata_block_IDs(handle, "Exif", &id, 1) == 1) {
        size_t n = heif_image_handle_get_metadata_size(handle, id);
        uint8_t *block = n >= 4 ? malloc(n) : NULL;
        if (block && heif_image_handle_get_metadata(handle, id, block).code == heif_error_Ok) {
            /* The item starts with a big-endian offset to the TIFF header (past an "Exif\0\0"). */
            uint32_t skip = jc_get_u32be(block);
            if (skip <= n - 4) {
                memmove(block, block + 4 + skip, n - 4 - skip);
                *out = block, *out_size = n - 4 - skip, found = true;
            }
        }
        if (!found)
            free(block);
    }
    heif_image_handle_release(handle);
    heif_context_free(context);
    return found;
}
