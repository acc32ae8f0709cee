/* BMP by hand, as PIL 9.4's BmpImagePlugin reads it: no Debian library gives PIL's modes (P with the
 * palette's indices, which the resize needs; L or 1 for grey palettes) nor its choices of what to
 * refuse. Headers of 12, 40, 64, 108 and 124 bytes; 1, 4, 8 bits with a palette, 16 (5-5-5 or 5-6-5),
 * 24 and 32 bits; the bit-field layouts PIL knows; RLE8 and RLE4 with PIL's decoder's rules. */
#include "common/bytes.h"
#include "image/image.h"

#include <stdlib.h>
#include <string.h>

enum { BMP_RAW = 0, BMP_RLE8 = 1, BMP_RLE4 = 2, BMP_BITFIELDS = 3 };

/* PIL's raw modes: how a stored pixel becomes one of the image's. */
typedef enum {
    RAW_1,
    RAW_P1,
    RAW_P4,
    RAW_8,
    RAW_BGR15,
    RAW_BGR16,
    RAW_BGR,
    RAW_BGRX,
    RAW_XBGR,
    RAW_ABGR,
    RAW_RGBA,
    RAW_BGRA
} bmp_raw;
static const unsigned raw_bits[] = {1, 1, 4, 8, 16, 16, 24, 32, 32, 32, 32, 32};

struct bmp_info {
    uint32_t width, height;
    int top_down;
    unsigned bits;
    uint32_t compression, colors;
    jc_image_mode mode;
    bmp_raw raw;
};

static jaclip_status bmp_bad(const char *why)
{
    return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid BMP data: %s", why);
}

/* The 32-, 24- and 16-bit bit-field layouts PIL 9.4 supports. */
static jaclip_status bmp_bitfields(struct bmp_info *b, const uint32_t m[4])
{
    static const struct {
        unsigned bits;
        uint32_t mask[4];
        bmp_raw raw;
    } known[] = {
        {32, {0xFF0000, 0xFF00, 0xFF, 0}, RAW_BGRX},
        {32, {0xFF000000, 0xFF0000, 0xFF00, 0}, RAW_XBGR},
        {32, {0xFF000000, 0xFF0000, 0xFF00, 0xFF}, RAW_ABGR},
        {32, {0xFF, 0xFF00, 0xFF0000, 0xFF000000}, RAW_RGBA},
        {32, {0xFF0000, 0xFF00, 0xFF, 0xFF000000}, RAW_BGRA},
        {32, {0, 0, 0, 0}, RAW_BGRA},
        {24, {0xFF0000, 0xFF00, 0xFF, 0}, RAW_BGR},
        {16, {0xF800, 0x7E0, 0x1F, 0}, RAW_BGR16},
        {16, {0x7C00, 0x3E0, 0x1F, 0}, RAW_BGR15},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        /* 24 and 16 bits: PIL compares the RGB masks only. */
        if (known[i].bits != b->bits || m[0] != known[i].mask[0] || m[1] != known[i].mask[1] ||
            m[2] != known[i].mask[2] || (b->bits == 32 && m[3] != known[i].mask[3]))
            continue;
        b->raw = known[i].raw;
        b->mode = known[i].raw >= RAW_ABGR ? JC_MODE_RGBA : JC_MODE_RGB;
        return JACLIP_OK;
    }
    return bmp_bad("unsupported bit-field layout");
}

/* File header and info header; *pos is left after them (and the masks read after a 40-byte header). */
static jaclip_status bmp_header(const uint8_t *d, size_t n, struct bmp_info *b, size_t *pos)
{
    *pos = 0;
    if (n < 18)
        return bmp_bad("truncated header");
    uint32_t header = jc_get_u32le(d + 14);
    if (header != 12 && header != 40 && header != 64 && header != 108 && header != 124)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported BMP header type (%u)", header);
    if (n - 18 < header - 4)
        return bmp_bad("truncated header");
    const uint8_t *h = d + 18;
    *pos = 14 + header;
    memset(b, 0, sizeof *b);
    if (header == 12) {
        b->width = jc_get_u16le(h);
        b->height = jc_get_u16le(h + 2);
        b->bits = jc_get_u16le(h + 6);
        b->compression = BMP_RAW;
    } else {
        b->top_down = h[7] == 0xFF;
        b->width = jc_get_u32le(h);
        b->height = b->top_down ? (uint32_t)(0 - jc_get_u32le(h + 4)) : jc_get_u32le(h + 4);
        b->bits = jc_get_u16le(h + 10);
        b->compression = jc_get_u32le(h + 12);
        b->colors = jc_get_u32le(h + 28);
    }
    if (b->colors == 0)
        b->colors = b->bits < 32 ? 1u << b->bits : 0;
    switch (b->bits) {
    case 1: b->mode = JC_MODE_P, b->raw = RAW_P1; break;
    case 4: b->mode = JC_MODE_P, b->raw = RAW_P4; break;
    case 8: b->mode = JC_MODE_P, b->raw = RAW_8; break;
    case 16: b->mode = JC_MODE_RGB, b->raw = RAW_BGR15; break;
    case 24: b->mode = JC_MODE_RGB, b->raw = RAW_BGR; break;
    case 32: b->mode = JC_MODE_RGB, b->raw = RAW_BGRX; break;
    default: return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported BMP pixel depth (%u)", b->bits);
    }
    if (b->compression == BMP_BITFIELDS) {
        uint32_t mask[4] = {0, 0, 0, 0};
        const uint8_t *m = h + 36;
        if (header == 40) {
            if (n - *pos < 12)
                return bmp_bad("truncated bit-field masks");
            m = d + *pos;
            *pos += 12;
        }
        for (int i = 0; i < (header == 40 ? 3 : 4); i++)
            mask[i] = jc_get_u32le(m + 4 * i);
        return bmp_bitfields(b, mask);
    }
    if (b->compression != BMP_RAW && b->compression != BMP_RLE8 && b->compression != BMP_RLE4)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported BMP compression (%u)", b->compression);
    return JACLIP_OK;
}

/* The palette right after the headers: grey ramps make the image L (or 1 for black and white). */
static jaclip_status bmp_palette(const uint8_t *d, size_t n, size_t pos, unsigned padding, struct bmp_info *b,
                                 uint8_t palette[256 * 3])
{
    if (b->colors == 0 || b->colors > 65536)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported BMP palette size (%u)", b->colors);
    if (b->colors > 256)
        return bmp_bad("palette of more than 256 colours"); /* PIL cannot set such a palette either */
    size_t have = pos < n ? (n - pos) / padding : 0;        /* a palette cut short keeps its whole entries */
    size_t entries = have < b->colors ? have : b->colors;
    bool grey = entries == b->colors;
    for (size_t i = 0; i < entries; i++) {
        const uint8_t *e = d + pos + i * padding;
        unsigned want = b->colors == 2 ? (i ? 255 : 0) : (unsigned)i;
        if (e[0] != want || e[1] != want || e[2] != want)
            grey = false;
        palette[3 * i] = e[2];
        palette[3 * i + 1] = e[1];
        palette[3 * i + 2] = e[0];
    }
    if (grey) {
        b->mode = b->colors == 2 ? JC_MODE_1 : JC_MODE_L;
        b->raw = b->colors == 2 ? RAW_1 : RAW_8;
    }
    return JACLIP_OK;
}

static void bmp_unpack_row(uint8_t *out, const uint8_t *in, uint32_t width, bmp_raw raw)
{
    for (uint32_t x = 0; x < width; x++) {
        const uint8_t *p = in + (size_t)x * (raw_bits[raw] / 8);
        uint32_t v;
        switch (raw) {
        case RAW_1: out[x] = (in[x / 8] >> (7 - x % 8)) & 1 ? 255 : 0; break;
        case RAW_P1: out[x] = (in[x / 8] >> (7 - x % 8)) & 1; break;
        case RAW_P4: out[x] = x % 2 ? in[x / 2] & 15 : in[x / 2] >> 4; break;
        case RAW_8: out[x] = in[x]; break;
        case RAW_BGR15:
        case RAW_BGR16:
            v = jc_get_u16le(p);
            out[3 * x] = (uint8_t)(raw == RAW_BGR15 ? ((v >> 10) & 31) * 255 / 31 : ((v >> 11) & 31) * 255 / 31);
            out[3 * x + 1] = (uint8_t)(raw == RAW_BGR15 ? ((v >> 5) & 31) * 255 / 31 : ((v >> 5) & 63) * 255 / 63);
            out[3 * x + 2] = (uint8_t)((v & 31) * 255 / 31);
            break;
        case RAW_BGR:
        case RAW_BGRX: out[3 * x] = p[2], out[3 * x + 1] = p[1], out[3 * x + 2] = p[0]; break;
        case RAW_XBGR: out[3 * x] = p[3], out[3 * x + 1] = p[2], out[3 * x + 2] = p[1]; break;
        case RAW_ABGR: out[4 * x] = p[3], out[4 * x + 1] = p[2], out[4 * x + 2] = p[1], out[4 * x + 3] = p[0]; break;
        case RAW_RGBA: memcpy(out + 4 * x, p, 4); break;
        case RAW_BGRA: out[4 * x] = p[2], out[4 * x + 1] = p[1], out[4 * x + 2] = p[0], out[4 * x + 3] = p[3]; break;
        }
    }
}

/* PIL's BmpRleDecoder, rule for rule: indices into a buffer of width * height (or a little more, as
 * PIL's last run may overshoot), stored bottom-up unless the header said otherwise. */
static jaclip_status bmp_rle(const uint8_t *d, size_t n, size_t pos, const struct bmp_info *b, jaclip_image *image)
{
    const size_t w = b->width, total = (size_t)b->width * b->height;
    size_t len = 0, x = 0;
    uint8_t *out = image->pixels;
#define PUT(v)                       \
    do {                             \
        if (len < total)             \
            out[len] = (uint8_t)(v); \
        len++;                       \
    } while (0)
    int rle4 = b->compression == BMP_RLE4;
    while (len < total) {
        if (n - pos < 2 || pos >= n)
            break;
        unsigned count = d[pos], byte = d[pos + 1];
        pos += 2;
        if (count) {
            if (x + count > w)
                count = x < w ? (unsigned)(w - x) : 0;
            for (unsigned i = 0; i < count; i++)
                PUT(rle4 ? (i % 2 ? byte & 15 : byte >> 4) : byte);
            x += count;
        } else if (byte == 0) { /* end of line */
            while (len % w)
                PUT(0);
            x = 0;
        } else if (byte == 1) { /* end of bitmap */
            break;
        } else if (byte == 2) { /* delta: PIL reads two bytes, then the two after them */
            if (n - pos < 2)
                break;
            if (n - pos < 4)
                return bmp_bad("truncated RLE delta");
            size_t skip = d[pos + 2] + (size_t)d[pos + 3] * w;
            pos += 4;
            if (len < total)
                memset(out + len, 0, skip < total - len ? skip : total - len);
            len += skip;
            x = len % w;
        } else { /* absolute run */
            size_t bytes = rle4 ? byte / 2 : byte, got = n - pos < bytes ? n - pos : bytes;
            for (size_t i = 0; i < got; i++) {
                if (rle4) {
                    PUT(d[pos + i] >> 4);
                    PUT(d[pos + i] & 15);
                } else {
                    PUT(d[pos + i]);
                }
            }
            pos += got;
            if (got < bytes)
                break;
            x += byte;
            if (pos % 2)
                pos++;
        }
    }
#undef PUT
    if (len < total)
        return bmp_bad("not enough image data");
    if (!b->top_down) { /* flip the rows */
        for (size_t top = 0, bottom = b->height - 1; top < bottom; top++, bottom--)
            for (size_t i = 0; i < w; i++) {
                uint8_t t = out[top * w + i];
                out[top * w + i] = out[bottom * w + i];
                out[bottom * w + i] = t;
            }
    }
    return JACLIP_OK;
}

jaclip_status jc_image_decode_bmp(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                  uint32_t flags)
{
    struct bmp_info b;
    size_t pos;
    uint8_t palette[256 * 3];
    jaclip_image *image = NULL;
    jaclip_status st;
    (void)flags; /* BMP carries no EXIF */

    *out = NULL;
    for (int i = 0; i < 256; i++) /* entries a short palette lacks: PIL's grey ramp */
        palette[3 * i] = palette[3 * i + 1] = palette[3 * i + 2] = (uint8_t)i;
    if ((st = bmp_header(data, size, &b, &pos)))
        return st;
    uint32_t header = jc_get_u32le(data + 14);
    size_t offset = jc_get_u32le(data + 10);
    if (b.mode == JC_MODE_P) {
        if ((st = bmp_palette(data, size, pos, header == 12 ? 3 : 4, &b, palette)))
            return st;
        size_t palette_bytes = (size_t)(header == 12 ? 3 : 4) * b.colors;
        if (offset == 14 + (size_t)header)
            offset += 4 * (size_t)b.colors;
        pos += palette_bytes < size - pos ? palette_bytes : size - pos;
    }
    if (offset == 0)
        offset = pos;
    if ((st = jc_image_check_size(b.width, b.height, max_pixels)))
        return st;
    int rle = b.compression == BMP_RLE8 || b.compression == BMP_RLE4;
    if (rle && b.mode != JC_MODE_P && b.mode != JC_MODE_L)
        return bmp_bad("RLE compression for a mode without a palette");
    if ((st = jc_image_new(&image, b.width, b.height, b.mode, max_pixels)))
        return st;
    if (b.mode == JC_MODE_P)
        memcpy(image->palette, palette, 3 * (size_t)b.colors);
    if (rle) {
        st = offset <= size ? bmp_rle(data, size, offset, &b, image) : bmp_bad("pixel data beyond the file");
    } else {
        uint64_t stride = (((uint64_t)b.width * b.bits + 31) >> 3) & ~(uint64_t)3;
        uint64_t need = ((uint64_t)b.width * raw_bits[b.raw] + 7) / 8;
        if (stride < need)
            st = bmp_bad("rows shorter than the pixels they hold");
        else if (offset > size || (size - offset) / stride < b.height - 1 ||
                 (size - offset) - stride * (b.height - 1) < need)
            st = bmp_bad("truncated pixel data");
        for (uint32_t y = 0; st == JACLIP_OK && y < b.height; y++) {
            uint32_t row = b.top_down ? y : b.height - 1 - y;
            bmp_unpack_row(image->pixels + (size_t)row * b.width * image->pixel_bytes, data + offset + y * stride,
                           b.width, b.raw);
        }
    }
    if (st != JACLIP_OK) {
        jaclip_image_free(image);
        return st;
    }
    *out = image;
    return JACLIP_OK;
}
