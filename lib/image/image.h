/* Internal image representation shared by decoding and preprocessing. Pixels are stored the way PIL
 * stores the mode PIL would open the image in, so preprocessing can follow PIL step by step. */
#ifndef JACLIP_IMAGE_H
#define JACLIP_IMAGE_H

#include "common/internal.h"

#include <stdint.h>

typedef enum jc_image_mode {
    JC_MODE_1,  /* 1-bit, stored as one byte 0 or 255 per pixel (PIL "1") */
    JC_MODE_L,  /* 8-bit grey */
    JC_MODE_LA, /* grey + alpha, 2 bytes per pixel */
    JC_MODE_RGB,
    JC_MODE_RGBA, /* straight alpha */
    JC_MODE_P,    /* 8-bit palette index; palette in jaclip_image.palette */
    JC_MODE_I,    /* int32 per pixel, native byte order (16-bit grey PNG: 0..65535) */
    JC_MODE_CMYK  /* 4 bytes per pixel, already un-inverted as PIL's "CMYK;I" raw mode leaves it */
} jc_image_mode;

struct jaclip_image {
    uint32_t width;
    uint32_t height;
    jc_image_mode mode;
    size_t pixel_bytes;       /* bytes per pixel: 1, 2, 3 or 4 */
    uint8_t *pixels;          /* width * height * pixel_bytes, rows packed */
    uint8_t palette[256 * 3]; /* mode P: RGB entries; unused entries form a grey ramp, as in PIL */
};

size_t jc_image_mode_pixel_bytes(jc_image_mode mode);

/* Allocates an image with uninitialised pixels after checking width * height against max_pixels
 * (0 = JACLIP_DEFAULT_MAX_PIXELS). Errors: IMAGE_TOO_LARGE, OUT_OF_MEMORY. */
jaclip_status jc_image_new(jaclip_image **out, uint32_t width, uint32_t height, jc_image_mode mode,
                           uint64_t max_pixels);
/* IMAGE_TOO_LARGE unless width * height fits under max_pixels (0 = default); checked from headers. */
jaclip_status jc_image_check_size(uint64_t width, uint64_t height, uint64_t max_pixels);

/* The formats, told apart by their first bytes (jc_image_sniff). */
typedef enum jc_image_format {
    JC_FORMAT_UNKNOWN,
    JC_FORMAT_JPEG,
    JC_FORMAT_PNG,
    JC_FORMAT_WEBP,
    JC_FORMAT_GIF,
    JC_FORMAT_BMP,
    JC_FORMAT_TIFF,
    JC_FORMAT_HEIF
} jc_image_format;
/* The format whose signature the first n bytes hold; JC_FORMAT_UNKNOWN also when n is too short. */
jc_image_format jc_image_sniff(const uint8_t *data, size_t n);
/* The most bytes jc_image_sniff needs to decide. */
#define JC_IMAGE_SNIFF_BYTES 16

/* Format decoders over a complete in-memory file. Each one gives the mode and pixel values PIL 9.4
 * gives (HEIF, which PIL 9.4 cannot read: libheif's RGB, as heif-convert writes it). */
typedef jaclip_status (*jc_image_decoder)(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                          uint32_t flags);
jaclip_status jc_image_decode_jpeg(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags);
jaclip_status jc_image_decode_png(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                  uint32_t flags);
jaclip_status jc_image_decode_webp(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags);
jaclip_status jc_image_decode_gif(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                  uint32_t flags);
jaclip_status jc_image_decode_bmp(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                  uint32_t flags);
jaclip_status jc_image_decode_tiff(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags);
jaclip_status jc_image_decode_heif(jaclip_image **out, const uint8_t *data, size_t size, uint64_t max_pixels,
                                   uint32_t flags);

/* What a file's first bytes say about its image, before any pixel is decoded. */
typedef struct jc_image_header {
    jc_image_format format;
    uint64_t tiff_directory; /* TIFF: where the first directory starts, when past the bytes peeked */
    uint32_t width, height;
    unsigned components;  /* samples per pixel as stored */
    unsigned sample_bits; /* bits per sample as stored */
} jc_image_header;

/* Reads the JPEG or PNG header of bytes in memory and checks the pixel limit and, if target_size > 0,
 * that the image can be resized to it (jc_image_check_resizable). IMAGE_DECODE, IMAGE_TOO_LARGE. */
jaclip_status jc_image_check_header(const uint8_t *data, size_t size, uint64_t max_pixels, uint32_t target_size,
                                    jc_image_header *header);
/* Reads an image file header first: refuses non-regular files (IO) and images the header shows to be
 * over the limits (as jc_image_check_header) before reading the rest, and reads at most
 * jc_image_header_data_bound bytes. *out is malloc'd. */
jaclip_status jc_image_read_file(const char *path, uint64_t max_pixels, uint32_t target_size, uint8_t **out,
                                 size_t *out_size, jc_image_header *header);
/* The most file bytes the header's image can need (pixel data at its worst compression + 16 MB). */
uint64_t jc_image_header_data_bound(const jc_image_header *header);
/* An upper estimate of the memory that decoding and resizing the header's image takes. */
uint64_t jc_image_header_decode_bytes(const jc_image_header *header);
/* IMAGE_TOO_LARGE when resizing the shorter side to size would make the longer one overflow an int. */
jaclip_status jc_image_check_resizable(uint32_t width, uint32_t height, uint32_t size);

/* EXIF: orientation 1..8 from a TIFF-structured EXIF block (without the "Exif\0\0" prefix); 0 if
 * absent or unreadable. */
int jc_exif_orientation(const uint8_t *tiff, size_t size);
/* EXIF: DateTimeOriginal of the Exif directory in ns since the epoch, moved to UTC by
 * OffsetTimeOriginal when it is there, else read in the process's local time zone (mktime); years
 * JC_EXIF_MIN_YEAR..JC_EXIF_MAX_YEAR. JACLIP_TIME_NONE if absent, malformed or out of range. */
#define JC_EXIF_MIN_YEAR 1800
#define JC_EXIF_MAX_YEAR 2200
int64_t jc_exif_capture_time(const uint8_t *tiff, size_t size);
/* The EXIF block of a HEIF file's primary image, malloc'd into *out (TIFF-structured, prefix
 * dropped); false when there is none or libheif cannot read the file. */
bool jc_heif_exif(const uint8_t *data, size_t size, uint8_t **out, size_t *out_size);
/* Replaces *image with a copy transposed as PIL's ImageOps.exif_transpose does for orientation. */
jaclip_status jc_image_apply_orientation(jaclip_image **image, int orientation);
/* A decoder's last step: *out = image turned by orientation (1 or less: as it is); frees image on error. */
jaclip_status jc_image_finish(jaclip_image *image, int orientation, jaclip_image **out);

/* Images for the model, from exactly one source: paths, or data + sizes, or decoded images; decoded
 * (within the pixel limit and flags) and preprocessed to size x size with mean and std. */
typedef struct jc_image_batch {
    const char *const *paths;
    const void *const *data;
    const size_t *sizes;
    const jaclip_image *const *images;
    uint64_t max_pixels;
    uint32_t flags;
    uint32_t size;
    const float *mean, *std;
    /* Optional, [count] each: with them every image's status (and a malloc'd message where it failed,
     * NULL if out of memory) is recorded, and preprocessing returns OK; the failed images' pixels are
     * left unset. */
    jaclip_status *item_status;
    char **item_message;
} jc_image_batch;
/* Images first..first+count-1 of batch into pixels [count, 3, size, size], one decoder thread per
 * usable core within a memory budget (image_batch.c). Without item_status, the failure of the lowest
 * index is reported. */
jaclip_status jc_image_batch_preprocess(const jc_image_batch *batch, size_t first, size_t count, float *pixels);

#endif
