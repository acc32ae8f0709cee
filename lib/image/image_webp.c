/* WebP through libwebp's animation decoder, which is how PIL 9.4 reads every WebP file (its
 * WebPAnimDecoder path): the first frame on a cleared canvas, RGBA if the file says it has alpha, else
 * RGB; the EXIF chunk's orientation as PIL's exif_transpose reads it. */
#include "image/image.h"

#include <string.h>

#include <webp/decode.h>
#include <webp/demux.h>

/* PIL's Exif.load takes the chunk with or without the JPEG-style "Exif\0\0" prefix. */
static int webp_orientation(const WebPDemuxer *demux)
{
    WebPChunkIterator chunk;
    int orientation = 0;
    if (!WebPDemuxGetChunk(demux, "EXIF", 1, &chunk))
        return 0;
    const uint8_t *exif = chunk.chunk.bytes;
    size_t size = chunk.chunk.size;
    if (size >= 6 && memcmp(exif, "Exif\0\0", 6) == 0) {
        exif += 6;
        size -= 6;
    }
    orientation = jc_exif_orientation(exif, size);
    WebPDemuxReleaseChunkIterator(&chunk);
    return orientation;
}

jaclip_status jc_image_decode_webp(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags)
{
    WebPBitstreamFeatures features;
    WebPAnimDecoderOptions options;
    WebPAnimInfo info;
    jaclip_image *image = NULL;
    uint8_t *frame;
    int timestamp, orientation = 0;
    jaclip_status st;

    *out = NULL;
    /* The canvas size, read before the decoder allocates a canvas of it. */
    VP8StatusCode vst = WebPGetFeatures(data, size, &features);
    if (vst != VP8_STATUS_OK)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid WebP data: %s",
                       vst == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated header" : "bad header");
    if ((st = jc_image_check_size((uint64_t)features.width, (uint64_t)features.height, max_pixels)))
        return st;
    if (!WebPAnimDecoderOptionsInit(&options))
        return jc_fail(JACLIP_ERROR_INTERNAL, "libwebp version mismatch");
    options.color_mode = MODE_RGBA; /* straight alpha, as PIL asks */
    options.use_threads = 0;
    WebPData webp = {data, size};
    WebPAnimDecoder *decoder = WebPAnimDecoderNew(&webp, &options);
    if (!decoder)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid WebP data (the container cannot be parsed)");
    if (!WebPAnimDecoderGetInfo(decoder, &info) || info.canvas_width != (uint32_t)features.width ||
        info.canvas_height != (uint32_t)features.height) {
        WebPAnimDecoderDelete(decoder);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid WebP data (inconsistent canvas size)");
    }
    /* Only the first frame is decoded, whatever the frame count. */
    if (!WebPAnimDecoderGetNext(decoder, &frame, &timestamp)) {
        WebPAnimDecoderDelete(decoder);
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid WebP data (the first frame cannot be decoded)");
    }
    jc_image_mode mode = features.has_alpha ? JC_MODE_RGBA : JC_MODE_RGB;
    st = jc_image_new(&image, info.canvas_width, info.canvas_height, mode, max_pixels);
    if (st == JACLIP_OK) {
        size_t pixels = (size_t)image->width * image->height;
        if (mode == JC_MODE_RGBA) {
            memcpy(image->pixels, frame, pixels * 4);
        } else {
            for (size_t i = 0; i < pixels; i++) /* PIL's "RGBX" raw mode: the fourth byte dropped */
                memcpy(image->pixels + 3 * i, frame + 4 * i, 3);
        }
        if (flags & JACLIP_IMAGE_EXIF_TRANSPOSE)
            orientation = webp_orientation(WebPAnimDecoderGetDemuxer(decoder));
    }
    WebPAnimDecoderDelete(decoder);
    if (st != JACLIP_OK)
        return st;
    return jc_image_finish(image, orientation, out);
}
