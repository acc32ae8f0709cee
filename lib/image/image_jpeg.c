/* JPEG through libjpeg(-turbo), into the mode and pixel values PIL 9.4 gives when it opens the same
 * file (libjpeg chooses the colour transform, CMYK is read inverted), within a scan limit. */
#include "image/image.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

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

/* PIL picks its mode from the number of components and lets libjpeg pick the colour transform. */
static bool jpeg_choose_mode(j_decompress_ptr cinfo, jc_image_mode *mode)
{
    switch (cinfo->num_components) {
    case 1:
        *mode = JC_MODE_L;
        cinfo->out_color_space = JCS_GRAYSCALE;
        return true;
    case 3:
        *mode = JC_MODE_RGB;
        cinfo->out_color_space = JCS_RGB;
        return true;
    case 4:
        *mode = JC_MODE_CMYK;
        cinfo->out_color_space = JCS_CMYK;
        return true;
    default: return false;
    }
}

/* The EXIF orientation of a header read with its APP1 markers saved; like PIL, only the first Exif
 * APP1 segment counts. */
static int jpeg_orientation(j_decompress_ptr cinfo)
{
    for (jpeg_saved_marker_ptr marker = cinfo->marker_list; marker; marker = marker->next)
        if (marker->marker == JPEG_APP0 + 1 && marker->data_length >= 6 && memcmp(marker->data, "Exif\0\0", 6) == 0)
            return jc_exif_orientation(marker->data + 6, marker->data_length - 6);
    return 0;
}

jaclip_status jc_image_decode_jpeg(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags)
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
    if (!jpeg_choose_mode(&cinfo, &mode)) {
        jpeg_destroy_decompress(&cinfo);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "cannot handle %d-component JPEG images", cinfo.num_components);
    }
    if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE)
        orientation = jpeg_orientation(&cinfo);
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
    return jc_image_finish(image, orientation, out);
}
