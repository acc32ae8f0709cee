/* TIFF through libtiff, the first page in the mode PIL 9.4 gives (its OPEN_INFO table): 1-, 2-, 4- and
 * 8-bit grey (min-is-white inverted), palettes, 8- and 16-bit RGB, RGBA (associated alpha undone, as
 * PIL's "RGBa" does), CMYK (16-bit samples keep their high byte, as PIL's ";16" raw modes do), LA, 32-bit
 * grey as I, JPEG-compressed YCbCr as RGB; strips or tiles, contiguous or (strips) planar. 16-bit grey is
 * refused: PIL opens it as I;16, which the reference's Resize cannot resample. The orientation tag is
 * applied on loading, as PIL 9.4 does. */
#include "image/image.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <tiffio.h>

struct tiff_source {
    const uint8_t *data;
    size_t size;
    uint64_t pos;
    char message[256];
};

static tmsize_t tiff_read(thandle_t h, void *buf, tmsize_t n)
{
    struct tiff_source *s = (struct tiff_source *)h;
    if (n < 0 || s->pos >= s->size)
        return 0;
    size_t take = (uint64_t)n < s->size - s->pos ? (size_t)n : (size_t)(s->size - s->pos);
    memcpy(buf, s->data + s->pos, take);
    s->pos += take;
    return (tmsize_t)take;
}
static tmsize_t tiff_write(thandle_t h, void *buf, tmsize_t n)
{
    (void)h, (void)buf, (void)n;
    return -1;
}
static toff_t tiff_seek(thandle_t h, toff_t off, int whence)
{
    struct tiff_source *s = (struct tiff_source *)h;
    uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? s->pos : s->size;
    s->pos = base + off;
    return s->pos;
}
static int tiff_close(thandle_t h)
{
    (void)h;
    return 0;
}
static toff_t tiff_size(thandle_t h) { return ((struct tiff_source *)h)->size; }
static int tiff_map(thandle_t h, void **base, toff_t *size)
{
    struct tiff_source *s = (struct tiff_source *)h;
    *base = (void *)s->data;
    *size = s->size;
    return 1;
}
static void tiff_unmap(thandle_t h, void *base, toff_t size) { (void)h, (void)base, (void)size; }

/* libtiff's messages go to the source (the first error is kept), never to stderr. */
static int tiff_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    struct tiff_source *s = user;
    (void)tif, (void)module;
    if (!s->message[0])
        vsnprintf(s->message, sizeof s->message, fmt, ap);
    return 1;
}
static int tiff_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1;
}

typedef enum { KIND_BILEVEL, KIND_GREY, KIND_PALETTE, KIND_LA, KIND_RGB, KIND_CMYK, KIND_I32 } tiff_kind;

struct tiff_layout {
    uint32_t width, height;
    uint16_t bits, spp, photometric, planar;
    int invert;    /* min-is-white */
    int alpha;     /* RGB: 0 none or ignored (X), 1 associated (PIL "RGBa"), 2 unassociated */
    int is_signed; /* signed integer samples (grey only) */
    tiff_kind kind;
    jc_image_mode mode;
};

static jaclip_status tiff_unknown(const struct tiff_layout *t)
{
    return jc_fail(JACLIP_ERROR_IMAGE_DECODE,
                   "unsupported TIFF layout (photometric %u, %u samples of %u bits), as in PIL 9.4", t->photometric,
                   t->spp, t->bits);
}

/* PIL's OPEN_INFO, for the layouts handled here: (photometric, samples, bits, extra samples) -> mode. */
static jaclip_status tiff_choose_mode(TIFF *tif, struct tiff_layout *t)
{
    uint16_t format = SAMPLEFORMAT_UINT, extras = 0, *extra = NULL;
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extras, &extra);
    /* Signed 16- and 32-bit grey is PIL's mode I (I;16S, I;32S); other signed or float samples are not
     * read here (PIL's F cannot be converted to RGB by the reference either). */
    t->is_signed = format == SAMPLEFORMAT_INT;
    if (format != SAMPLEFORMAT_UINT && !(t->is_signed && t->spp == 1 && extras == 0 &&
                                         (t->bits == 16 || t->bits == 32) && t->photometric == PHOTOMETRIC_MINISBLACK))
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "unsupported TIFF sample format %u with %u-bit samples", format,
                       t->bits);
    /* Extra samples past the first must be unspecified (PIL's "X" bytes). */
    for (uint16_t i = 1; i < extras; i++)
        if (extra[i] != EXTRASAMPLE_UNSPECIFIED)
            return tiff_unknown(t);
    switch (t->photometric) {
    case PHOTOMETRIC_MINISWHITE:
    case PHOTOMETRIC_MINISBLACK:
        t->invert = t->photometric == PHOTOMETRIC_MINISWHITE;
        if (t->spp == 1 && extras == 0 && t->bits == 1) {
            t->kind = KIND_BILEVEL, t->mode = JC_MODE_1;
        } else if (t->spp == 1 && extras == 0 && (t->bits == 2 || t->bits == 4 || t->bits == 8)) {
            t->kind = KIND_GREY, t->mode = JC_MODE_L;
        } else if (t->spp == 1 && t->is_signed) {
            t->kind = KIND_I32, t->mode = JC_MODE_I;
        } else if (t->spp == 1 && extras == 0 && (t->bits == 12 || t->bits == 16)) {
            return jc_fail(JACLIP_ERROR_IMAGE_DECODE,
                           "unsupported %u-bit greyscale TIFF: PIL 9.4 opens it as "
                           "I;16, which the reference pipeline cannot resize",
                           t->bits);
        } else if (t->spp == 1 && extras == 0 && t->bits == 32 && !t->invert) {
            t->kind = KIND_I32, t->mode = JC_MODE_I;
        } else if (t->spp == 2 && extras == 1 && extra[0] == EXTRASAMPLE_UNASSALPHA && t->bits == 8 && !t->invert) {
            t->kind = KIND_LA, t->mode = JC_MODE_LA;
        } else {
            return tiff_unknown(t);
        }
        return JACLIP_OK;
    case PHOTOMETRIC_PALETTE:
        if (t->spp != 1 || extras != 0 || (t->bits != 1 && t->bits != 2 && t->bits != 4 && t->bits != 8))
            return tiff_unknown(t);
        t->kind = KIND_PALETTE, t->mode = JC_MODE_P;
        return JACLIP_OK;
    case PHOTOMETRIC_YCBCR: {
        uint16_t compression = COMPRESSION_NONE;
        TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
        /* PIL has libtiff convert JPEG's YCbCr to RGB; other YCbCr goes through TIFFReadRGBA there. */
        if (compression != COMPRESSION_JPEG || t->spp != 3 || t->bits != 8 || extras != 0)
            return tiff_unknown(t);
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        t->kind = KIND_RGB, t->mode = JC_MODE_RGB;
        return JACLIP_OK;
    }
    case PHOTOMETRIC_RGB:
        if ((t->bits != 8 && t->bits != 16) || t->spp < 3 || t->spp > (t->bits == 8 ? 6 : 4))
            return tiff_unknown(t);
        if (t->spp == 3 && extras == 0) {
            t->alpha = 0;
        } else if (t->spp == 4 && extras == 0) {
            t->alpha = 2; /* PIL reads four samples without ExtraSamples as RGBA */
        } else if (extras == t->spp - 3 && extra[0] <= EXTRASAMPLE_UNASSALPHA) {
            t->alpha = extra[0];
        } else {
            return tiff_unknown(t);
        }
        t->kind = KIND_RGB, t->mode = t->alpha ? JC_MODE_RGBA : JC_MODE_RGB;
        return JACLIP_OK;
    case PHOTOMETRIC_SEPARATED:
        if ((t->bits == 8 && t->spp >= 4 && t->spp <= 6 && extras == t->spp - 4) ||
            (t->bits == 16 && t->spp == 4 && extras == 0)) {
            uint16_t inkset = INKSET_CMYK;
            TIFFGetFieldDefaulted(tif, TIFFTAG_INKSET, &inkset);
            t->kind = KIND_CMYK, t->mode = JC_MODE_CMYK;
            return JACLIP_OK;
        }
        return tiff_unknown(t);
    default: return tiff_unknown(t);
    }
}

/* One row of samples (interleaved, native byte order) into the image's row. */
static void tiff_convert_row(const struct tiff_layout *t, const uint8_t *in, uint8_t *out)
{
    const uint32_t w = t->width;
    const uint16_t *in16 = (const uint16_t *)(const void *)in;
    if (t->bits < 8) {
        unsigned max = (1u << t->bits) - 1, per_byte = 8 / t->bits;
        for (uint32_t x = 0; x < w; x++) {
            unsigned v = (in[x / per_byte] >> (8 - t->bits * (x % per_byte + 1))) & max;
            if (t->invert && t->kind != KIND_PALETTE)
                v = max - v;
            out[x] = (uint8_t)(t->kind == KIND_PALETTE ? v : v * (255 / max));
        }
        return;
    }
    if (t->kind == KIND_I32) {
        for (uint32_t x = 0; x < w; x++) {
            int32_t v;
            if (t->bits == 16)
                v = t->is_signed ? (int32_t)(int16_t)in16[x] : (int32_t)in16[x];
            else
                memcpy(&v, in + 4 * (size_t)x, 4);
            memcpy(out + 4 * (size_t)x, &v, 4);
        }
        return;
    }
    size_t channels = t->kind == KIND_RGB ? (t->alpha ? 4 : 3) : t->kind == KIND_CMYK ? 4 : t->kind == KIND_LA ? 2 : 1;
    if (t->bits == 8 && !t->invert && channels == t->spp && t->alpha != EXTRASAMPLE_ASSOCALPHA) {
        memcpy(out, in, (size_t)w * channels); /* the common case: samples as they are */
        return;
    }
    for (uint32_t x = 0; x < w; x++) {
        uint8_t *o = out + x * channels;
        for (size_t c = 0; c < channels; c++) {
            size_t i = (size_t)x * t->spp + c;
            unsigned v = t->bits == 16 ? in16[i] >> 8 : in[i];
            o[c] = (uint8_t)(t->invert ? 255 - v : v);
        }
        if (t->kind == KIND_RGB && t->alpha == EXTRASAMPLE_ASSOCALPHA) {
            /* PIL's RGBa -> RGBA: colour * 255 / alpha, clipped; alpha 0 leaves black */
            unsigned a = o[3];
            for (int c = 0; c < 3; c++)
                o[c] = a == 0 ? 0 : a == 255 ? o[c] : (uint8_t)(o[c] * 255u / a > 255 ? 255 : o[c] * 255u / a);
        }
    }
}

/* Reads the first page's samples row by row into image (strips: scanlines, planar ones interleaved;
 * tiles: one row of tiles at a time). */
static int tiff_read_pixels(TIFF *tif, const struct tiff_layout *t, jaclip_image *image)
{
    const size_t out_row = (size_t)t->width * image->pixel_bytes;
    const size_t sample_bytes = t->bits / 8 ? t->bits / 8 : 1;
    int ok = 0;
    if (TIFFIsTiled(tif)) {
        uint32_t tw = 0, th = 0;
        if (!TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) || !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th) || tw == 0 ||
            th == 0 || tw > 65536 || th > 65536)
            return 0;
        /* Tiles of each plane (one plane when contiguous) are gathered into a band of contiguous rows. */
        int separate = t->planar == PLANARCONFIG_SEPARATE && t->spp > 1;
        if (separate && t->bits % 8)
            return 0;
        size_t pixel_bits = (size_t)(separate ? 1 : t->spp) * t->bits;
        size_t tile_row = (size_t)tw * pixel_bits / 8, row_size = ((size_t)t->width * t->spp * t->bits + 7) / 8;
        tmsize_t tile_size = TIFFTileSize(tif);
        /* A tile (and the band of rows it spans) is bounded like libtiff's own buffers. */
        if (tile_size <= 0 || (size_t)tile_size < tile_row * th || tile_size > ((tmsize_t)256 << 20) ||
            row_size > ((size_t)256 << 20) / th)
            return 0;
        uint8_t *tile = malloc((size_t)tile_size), *band = malloc(row_size * th);
        if (!tile || !band)
            goto tiles_done;
        for (uint32_t y0 = 0; y0 < t->height; y0 += th) {
            for (uint16_t s = 0; s < (separate ? t->spp : 1); s++)
                for (uint32_t x0 = 0; x0 < t->width; x0 += tw) {
                    if (TIFFReadTile(tif, tile, x0, y0, 0, s) < 0)
                        goto tiles_done;
                    uint32_t cols = t->width - x0 < tw ? t->width - x0 : tw;
                    for (uint32_t r = 0; r < th; r++) {
                        const uint8_t *from = tile + (size_t)r * tile_row;
                        uint8_t *to = band + (size_t)r * row_size;
                        if (!separate) {
                            size_t offset = (size_t)x0 * pixel_bits / 8;
                            memcpy(to + offset, from, ((size_t)cols * pixel_bits + 7) / 8);
                            continue;
                        }
                        for (uint32_t x = 0; x < cols; x++)
                            memcpy(to + ((size_t)(x0 + x) * t->spp + s) * sample_bytes, from + (size_t)x * sample_bytes,
                                   sample_bytes);
                    }
                }
            for (uint32_t r = 0; r < th && y0 + r < t->height; r++)
                tiff_convert_row(t, band + (size_t)r * row_size, image->pixels + (size_t)(y0 + r) * out_row);
        }
        ok = 1;
    tiles_done:
        free(tile);
        free(band);
        return ok;
    }
    tmsize_t scanline = TIFFScanlineSize(tif);
    size_t contig_row = (size_t)t->width * t->spp * sample_bytes;
    if (scanline <= 0 || (t->planar == PLANARCONFIG_CONTIG && (size_t)scanline < (t->bits < 8 ? 1 : contig_row)))
        return 0;
    int separate = t->planar == PLANARCONFIG_SEPARATE && t->spp > 1;
    if (separate && (t->bits % 8 || (size_t)scanline < (size_t)t->width * sample_bytes))
        return 0;
    uint8_t *line = malloc((size_t)scanline), *row = separate ? malloc(contig_row) : NULL;
    if (!line || (separate && !row))
        goto strips_done;
    if (!separate) {
        /* Whole strips (one libtiff call each, as PIL reads them), then their rows. */
        uint32_t rows_per_strip = t->height;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rows_per_strip);
        if (rows_per_strip == 0 || rows_per_strip > t->height)
            rows_per_strip = t->height;
        tmsize_t strip_size = TIFFStripSize(tif);
        /* Strips over 64 MB (a whole large image in one) or sized otherwise by libtiff: row by row, so
         * memory stays within the batch budget's estimate. */
        if (strip_size <= 0 || strip_size > ((tmsize_t)64 << 20) ||
            (uint64_t)strip_size < (uint64_t)rows_per_strip * (uint64_t)scanline) {
            for (uint32_t y = 0; y < t->height; y++) {
                if (TIFFReadScanline(tif, line, y, 0) < 0)
                    goto strips_done;
                tiff_convert_row(t, line, image->pixels + (size_t)y * out_row);
            }
        } else {
            uint8_t *strip = malloc((size_t)strip_size);
            if (!strip)
                goto strips_done;
            for (uint32_t y0 = 0, s = 0; y0 < t->height; y0 += rows_per_strip, s++) {
                uint32_t rows = t->height - y0 < rows_per_strip ? t->height - y0 : rows_per_strip;
                tmsize_t got = TIFFReadEncodedStrip(tif, s, strip, (tmsize_t)rows * scanline);
                if (got < (tmsize_t)rows * scanline) {
                    free(strip);
                    goto strips_done;
                }
                for (uint32_t r = 0; r < rows; r++)
                    tiff_convert_row(t, strip + (size_t)r * (size_t)scanline,
                                     image->pixels + (size_t)(y0 + r) * out_row);
            }
            free(strip);
        }
    } else {
        /* Planes are stored one after another: read each plane whole, one row at a time. */
        size_t plane_row = (size_t)t->width * sample_bytes, image_rows = t->height;
        uint8_t *all = malloc(plane_row * image_rows * t->spp);
        if (!all)
            goto strips_done;
        for (uint16_t s = 0; s < t->spp; s++)
            for (uint32_t y = 0; y < t->height; y++) {
                if (TIFFReadScanline(tif, line, y, s) < 0) {
                    free(all);
                    goto strips_done;
                }
                memcpy(all + ((size_t)s * image_rows + y) * plane_row, line, plane_row);
            }
        for (uint32_t y = 0; y < t->height; y++) {
            for (uint16_t s = 0; s < t->spp; s++)
                for (uint32_t x = 0; x < t->width; x++)
                    memcpy(row + ((size_t)x * t->spp + s) * sample_bytes,
                           all + ((size_t)s * image_rows + y) * plane_row + (size_t)x * sample_bytes, sample_bytes);
            tiff_convert_row(t, row, image->pixels + (size_t)y * out_row);
        }
        free(all);
    }
    ok = 1;
strips_done:
    free(line);
    free(row);
    return ok;
}

static void tiff_copy_palette(TIFF *tif, const struct tiff_layout *t, jaclip_image *image)
{
    uint16_t *r, *g, *b;
    if (!TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b))
        return;
    /* PIL keeps each 16-bit entry's high byte (value // 256). */
    for (unsigned i = 0; i < (1u << t->bits) && i < 256; i++) {
        image->palette[3 * i] = (uint8_t)(r[i] >> 8);
        image->palette[3 * i + 1] = (uint8_t)(g[i] >> 8);
        image->palette[3 * i + 2] = (uint8_t)(b[i] >> 8);
    }
}

jaclip_status jc_image_decode_tiff(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags)
{
    struct tiff_source source = {data, size, 0, ""};
    struct tiff_layout t = {0};
    jaclip_image *image = NULL;
    jaclip_status st = JACLIP_OK;
    uint16_t orientation = 0;

    *out = NULL;
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory creating a TIFF reader");
    TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_on_error, &source);
    TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_on_warning, &source);
    /* No single libtiff buffer beyond what a strip or tile of the largest allowed image needs. */
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, (tmsize_t)256 << 20);
    TIFF *tif = TIFFClientOpenExt("image", "rm", (thandle_t)&source, tiff_read, tiff_write, tiff_seek, tiff_close,
                                  tiff_size, tiff_map, tiff_unmap, options);
    TIFFOpenOptionsFree(options);
    if (!tif)
        return jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid TIFF data (%s)",
                       source.message[0] ? source.message : "unreadable");
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &t.bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &t.spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &t.planar);
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &t.width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &t.height) ||
        !TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &t.photometric)) {
        st = jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid TIFF data (no image size or photometric interpretation)");
        goto done;
    }
    if ((st = jc_image_check_size(t.width, t.height, max_pixels)) || (st = tiff_choose_mode(tif, &t)))
        goto done;
    if ((st = jc_image_new(&image, t.width, t.height, t.mode, max_pixels)))
        goto done;
    if (t.kind == KIND_PALETTE)
        tiff_copy_palette(tif, &t, image);
    if (!tiff_read_pixels(tif, &t, image)) {
        st = jc_fail(JACLIP_ERROR_IMAGE_DECODE, "invalid TIFF data (%s)",
                     source.message[0] ? source.message : "the pixel data cannot be read");
        goto done;
    }
    /* PIL 9.4 turns a TIFF by its orientation tag when it loads it (TiffImageFile.load_end), whatever
     * the flag; its exif_transpose then turns it a second time, which is not repeated here. */
    (void)flags;
    TIFFGetField(tif, TIFFTAG_ORIENTATION, &orientation);
done:
    TIFFClose(tif);
    if (st != JACLIP_OK) {
        jaclip_image_free(image);
        return st;
    }
    return jc_image_finish(image, orientation <= 8 ? orientation : 0, out);
}
