/* EXIF orientation, read from a TIFF-structured block and applied as PIL's ImageOps.exif_transpose
 * does. */
#include "common/bytes.h"
#include "image/image.h"

#include <stdlib.h>
#include <string.h>

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
#define U16(p) (little ? (uint32_t)jc_get_u16le(p) : (uint32_t)(p)[0] << 8 | (uint32_t)(p)[1])
#define U32(p) (little ? jc_get_u32le(p) : jc_get_u32be(p))
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
            case 2:
                sx = w - 1 - x;
                sy = y;
                break; /* mirror left-right */
            case 3:
                sx = w - 1 - x;
                sy = h - 1 - y;
                break; /* rotate 180 */
            case 4:
                sx = x;
                sy = h - 1 - y;
                break; /* mirror top-bottom */
            case 5:
                sx = y;
                sy = x;
                break; /* transpose */
            case 6:
                sx = y;
                sy = h - 1 - x;
                break; /* rotate 90 clockwise */
            case 7:
                sx = w - 1 - y;
                sy = h - 1 - x;
                break; /* transverse */
            default:
                sx = w - 1 - y;
                sy = x;
                break; /* 8: rotate 90 counter-clockwise */
            }
            memcpy(rotated->pixels + ((size_t)y * rotated->width + x) * pb, in->pixels + ((size_t)sy * w + sx) * pb,
                   pb);
        }
    }
    jaclip_image_free(*image);
    *image = rotated;
    return JACLIP_OK;
}

jaclip_status jc_image_finish(jaclip_image *image, int orientation, jaclip_image **out)
{
    jaclip_image *result = image;
    if (orientation > 1) {
        jaclip_status st = jc_image_apply_orientation(&result, orientation);
        if (st != JACLIP_OK) {
            jaclip_image_free(result);
            return st;
        }
    }
    *out = result;
    return JACLIP_OK;
}
