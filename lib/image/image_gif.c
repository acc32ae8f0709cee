/* GIF through giflib, the first frame as PIL 9.4 opens it: mode P with the frame's colour table (its
 * own, else the global one), or L when that table is absent or the identity grey ramp; the canvas
 * grown to hold the frame, and what the frame does not cover filled with its transparent index (else
 * 0). Nothing after the first frame is read, so an animation costs its first frame only. */
#include "image/image.h"

#include <string.h>

#include <gif_lib.h>

struct gif_source {
    const uint8_t *data;
    size_t size, pos;
};

static int gif_read(GifFileType *gif, GifByteType *out, int n)
{
    struct gif_source *source = gif->UserData;
    size_t left = source->size - source->pos, take = n < 0 ? 0 : (size_t)n;
    if (take > left)
        take = left;
    memcpy(out, source->data + source->pos, take);
    source->pos += take;
    return (int)take;
}

/* PIL drops a colour table that maps every index i to (i, i, i): the image is then L. */
static bool gif_palette_needed(const ColorMapObject *map)
{
    for (int i = 0; i < map->ColorCount; i++)
        if (map->Colors[i].Red != i || map->Colors[i].Green != i || map->Colors[i].Blue != i)
            return true;
    return false;
}

static jaclip_status gif_error(const GifFileType *gif, int code, const char *what)
{
    const char *reason = GifErrorString(gif ? gif->Error : code);
    return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid GIF data (%s: %s)", what, reason ? reason : "unknown error");
}

/* Reads records up to the first image descriptor, keeping the transparent index of a graphic
 * control extension as PIL does (the last one that sets it). */
static jaclip_status gif_find_first_image(GifFileType *gif, int *transparency)
{
    for (;;) {
        GifRecordType type;
        if (DGifGetRecordType(gif, &type) == GIF_ERROR)
            return gif_error(gif, 0, "reading a record");
        if (type == IMAGE_DESC_RECORD_TYPE)
            return DGifGetImageDesc(gif) == GIF_ERROR ? gif_error(gif, 0, "reading the image descriptor") : JACLIP_OK;
        if (type == TERMINATE_RECORD_TYPE)
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid GIF data (no image before the trailer)");
        if (type != EXTENSION_RECORD_TYPE)
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid GIF data (unknown record)");
        int code;
        GifByteType *block;
        if (DGifGetExtension(gif, &code, &block) == GIF_ERROR)
            return gif_error(gif, 0, "reading an extension");
        if (code == GRAPHICS_EXT_FUNC_CODE) {
            /* PIL indexes the block's bytes 0 and 3: a shorter block is an error there too. */
            if (!block || block[0] < 1 || ((block[1] & 1) && block[0] < 4))
                return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid GIF data (short graphic control extension)");
            if (block[1] & 1)
                *transparency = block[4];
        }
        while (block)
            if (DGifGetExtensionNext(gif, &block) == GIF_ERROR)
                return gif_error(gif, 0, "reading an extension");
    }
}

jaclip_status jc_image_decode_gif(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                  uint32_t flags)
{
    struct gif_source source = {data, size, 0};
    jaclip_image *image = NULL;
    int error = 0, transparency = -1;
    jaclip_status st;
    (void)flags; /* GIF has no EXIF that PIL 9.4 reads */

    *out = NULL;
    GifFileType *gif = DGifOpen(&source, gif_read, &error);
    if (!gif)
        return gif_error(NULL, error, "reading the header");
    if ((st = gif_find_first_image(gif, &transparency)))
        goto done;
    const GifImageDesc *frame = &gif->Image;
    uint32_t x0 = (uint32_t)frame->Left, y0 = (uint32_t)frame->Top;
    uint32_t fw = (uint32_t)frame->Width, fh = (uint32_t)frame->Height;
    uint32_t width = (uint32_t)gif->SWidth, height = (uint32_t)gif->SHeight;
    if (fw == 0 || fh == 0) { /* PIL: "tile cannot extend outside image" */
        st = jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid GIF data (first frame of %ux%u pixels)", fw, fh);
        goto done;
    }
    if (x0 + fw > width)
        width = x0 + fw;
    if (y0 + fh > height)
        height = y0 + fh;
    const ColorMapObject *map = frame->ColorMap ? frame->ColorMap : gif->SColorMap;
    bool palette = map && gif_palette_needed(map);
    /* A local table that is a grey ramp hides the global one, as in PIL. */
    if (frame->ColorMap && !gif_palette_needed(frame->ColorMap))
        palette = false;
    if ((st = jc_image_new(&image, width, height, palette ? JC_MODE_P : JC_MODE_L, max_pixels)))
        goto done;
    if (palette)
        for (int i = 0; i < map->ColorCount && i < 256; i++) {
            image->palette[3 * i] = map->Colors[i].Red;
            image->palette[3 * i + 1] = map->Colors[i].Green;
            image->palette[3 * i + 2] = map->Colors[i].Blue;
        }
    memset(image->pixels, transparency >= 0 ? transparency : 0, (size_t)width * height);
    /* Rows in file order: one pass, or the four passes of an interlaced frame. */
    static const uint32_t pass_start[4] = {0, 4, 2, 1}, pass_step[4] = {8, 8, 4, 2};
    for (int pass = 0; pass < (frame->Interlace ? 4 : 1); pass++) {
        uint32_t start = frame->Interlace ? pass_start[pass] : 0, step = frame->Interlace ? pass_step[pass] : 1;
        for (uint32_t y = start; y < fh; y += step) {
            uint8_t *row = image->pixels + (size_t)(y0 + y) * width + x0;
            if (DGifGetLine(gif, row, (int)fw) != GIF_ERROR)
                continue;
            /* PIL keeps what an early end code leaves (the canvas fill); giflib reports it as an error.
             * Data cut short is refused, as PIL does (also when only the blocks' terminator is missing,
             * which PIL alone accepts). */
            if (gif->Error == D_GIF_ERR_EOF_TOO_SOON)
                goto decoded;
            st = gif_error(gif, 0, "decoding the first frame");
            goto done;
        }
    }
decoded:
    st = JACLIP_OK;
done:
    DGifCloseFile(gif, &error);
    if (st != JACLIP_OK) {
        jaclip_image_free(image);
        return st;
    }
    *out = image;
    return JACLIP_OK;
}
