/* PIL-exact preprocessing: torchvision's Resize(size) (PIL 9.4's antialiased bilinear resample, or
 * nearest for "1"/"P"), CenterCrop(size), convert("RGB"), ToTensor and Normalize.
 *
 * Every output pixel of PIL's two-pass resample depends only on its own taps, so only the pixels that
 * survive the centre crop are computed: the result equals PIL's full resize followed by the crop. */
#include "image/image.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OUTPUT_SIZE 4096
/* PIL's fixed-point weights for 8-bit images: 32 bits minus 8 for the sample and 2 for headroom. */
#define PRECISION_BITS (32 - 8 - 2)

/* Filter taps of a run of output positions along one axis, as PIL's precompute_coeffs makes them. */
struct axis_taps {
    int ksize;
    int *first;      /* per output: first input index */
    int *count;      /* per output: number of taps */
    double *weights; /* per output: ksize normalised weights */
    int32_t *fixed;  /* per output: ksize weights in PRECISION_BITS fixed point */
};

static void axis_taps_free(struct axis_taps *taps)
{
    free(taps->first);
    free(taps->count);
    free(taps->weights);
    free(taps->fixed);
    memset(taps, 0, sizeof *taps);
}

static double triangle_filter(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Taps of outputs out_begin .. out_begin+n-1 of a resize from in_size to out_size. */
static jaclip_status axis_taps_compute(struct axis_taps *taps, uint32_t in_size, int out_size, int out_begin, int n)
{
    /* PIL passes the box as floats, so the input extent is rounded to float first. */
    double scale = (double)(float)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    double inverse_filterscale = 1.0 / filterscale;
    size_t cells;
    memset(taps, 0, sizeof *taps);
    if (ceil(support) * 2 + 1 > INT_MAX)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "resize filter too wide");
    taps->ksize = (int)ceil(support) * 2 + 1;
    if (!jc_mul_size((size_t)n, (size_t)taps->ksize, &cells) || cells > SIZE_MAX / sizeof(double))
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "resize filter too large");
    taps->first = malloc((size_t)n * sizeof *taps->first);
    taps->count = malloc((size_t)n * sizeof *taps->count);
    taps->weights = calloc(cells, sizeof *taps->weights);
    taps->fixed = calloc(cells, sizeof *taps->fixed);
    if (!taps->first || !taps->count || !taps->weights || !taps->fixed) {
        axis_taps_free(taps);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory computing resize weights");
    }
    for (int i = 0; i < n; i++) {
        int xx = out_begin + i;
        double center = (xx + 0.5) * scale;
        double total = 0.0;
        double *w = taps->weights + (size_t)i * taps->ksize;
        int32_t *fixed = taps->fixed + (size_t)i * taps->ksize;
        /* Truncating casts round the bounds exactly as PIL does. */
        int xmin = (int)(center - support + 0.5);
        int xmax = (int)(center + support + 0.5);
        if (xmin < 0)
            xmin = 0;
        if (xmax > (int64_t)in_size)
            xmax = (int)in_size;
        xmax -= xmin;
        if (xmax > taps->ksize)
            xmax = taps->ksize; /* cannot happen for the triangle filter; guards the buffer */
        for (int x = 0; x < xmax; x++) {
            double weight = triangle_filter((x + xmin - center + 0.5) * inverse_filterscale);
            w[x] = weight;
            total += weight;
        }
        for (int x = 0; x < xmax; x++) {
            if (total != 0.0)
                w[x] /= total;
            fixed[x] = w[x] < 0 ? (int32_t)(-0.5 + w[x] * (1 << PRECISION_BITS))
                                : (int32_t)(0.5 + w[x] * (1 << PRECISION_BITS));
        }
        taps->first[i] = xmin;
        taps->count[i] = xmax;
    }
    return JACLIP_OK;
}

static inline uint8_t clip8_fixed(int32_t sum)
{
    int32_t v = sum >> PRECISION_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

static inline uint8_t clip8(int v) { return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v; }

/* (a * b) / 255 rounded, PIL's MULDIV255. */
static inline uint8_t muldiv255(unsigned a, unsigned b)
{
    unsigned t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

/* PIL's RGBA -> RGBa (and LA -> La): colour scaled by alpha with MULDIV255. */
static void premultiply_row(uint8_t *dst, const uint8_t *src, size_t n, int channels)
{
    for (size_t i = 0; i < n; i++, src += channels, dst += channels) {
        unsigned alpha = src[channels - 1];
        for (int c = 0; c < channels - 1; c++)
            dst[c] = muldiv255(src[c], alpha);
        dst[channels - 1] = (uint8_t)alpha;
    }
}

static inline void horizontal_8bpc(uint8_t *out, const uint8_t *row, const struct axis_taps *taps, int n,
                                   const int channels)
{
    for (int i = 0; i < n; i++) {
        const int32_t *k = taps->fixed + (size_t)i * taps->ksize;
        const uint8_t *p = row + (size_t)taps->first[i] * channels;
        int32_t acc[4] = {1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1), 1 << (PRECISION_BITS - 1),
                          1 << (PRECISION_BITS - 1)};
        for (int x = 0; x < taps->count[i]; x++, p += channels)
            for (int c = 0; c < channels; c++)
                acc[c] += p[c] * k[x];
        for (int c = 0; c < channels; c++)
            out[(size_t)i * channels + c] = clip8_fixed(acc[c]);
    }
}

/* The source range [begin, end) one axis of the crop reads: its taps' span when that axis is resized,
 * else the crop itself. */
static jaclip_status axis_span(struct axis_taps *taps, int resized, uint32_t in_size, int out_size, int offset,
                               int size, int *begin, int *end)
{
    if (!resized) {
        *begin = offset;
        *end = offset + size;
        return JACLIP_OK;
    }
    jaclip_status st = axis_taps_compute(taps, in_size, out_size, offset, size);
    if (st == JACLIP_OK) {
        *begin = taps->first[0];
        *end = taps->first[size - 1] + taps->count[size - 1];
    }
    return st;
}

/* Resample of 8-bit modes (1 to 4 bytes per pixel) into the size x size window at (left, top) of the
 * new_w x new_h image; optionally in premultiplied alpha, as PIL does for RGBA and LA. */
static jaclip_status resample_8bpc(uint8_t *window, const jaclip_image *image, int new_w, int new_h, int left, int top,
                                   int size, int premultiply)
{
    const int channels = (int)image->pixel_bytes;
    const int need_horizontal = new_w != (int64_t)image->width;
    const int need_vertical = new_h != (int64_t)image->height;
    const size_t src_row_bytes = (size_t)image->width * channels;
    const size_t win_row_bytes = (size_t)size * channels;
    struct axis_taps htaps = {0}, vtaps = {0};
    uint8_t *rows = NULL, *scratch = NULL;
    int row_begin, row_end, col_begin, col_end;
    jaclip_status st = JACLIP_OK;

    if ((st = axis_span(&htaps, need_horizontal, image->width, new_w, left, size, &col_begin, &col_end)) ||
        (st = axis_span(&vtaps, need_vertical, image->height, new_h, top, size, &row_begin, &row_end)))
        goto done;
    if (row_end < row_begin)
        row_end = row_begin;
    /* Rows after the horizontal pass (uint8, as PIL clips between the passes). */
    rows = malloc((size_t)(row_end - row_begin) * win_row_bytes + 1);
    scratch = premultiply ? malloc(src_row_bytes) : NULL;
    if (!rows || (premultiply && !scratch)) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory resizing an image");
        goto done;
    }
    for (int y = row_begin; y < row_end; y++) {
        const uint8_t *src = image->pixels + (size_t)y * src_row_bytes;
        uint8_t *dst = rows + (size_t)(y - row_begin) * win_row_bytes;
        const uint8_t *row = src;
        if (premultiply) {
            /* Only the columns the taps read are converted. */
            premultiply_row(scratch + (size_t)col_begin * channels, src + (size_t)col_begin * channels,
                            (size_t)(col_end - col_begin), channels);
            row = scratch;
        }
        if (!need_horizontal) {
            memcpy(dst, row + (size_t)left * channels, win_row_bytes);
            continue;
        }
        switch (channels) {
        case 1: horizontal_8bpc(dst, row, &htaps, size, 1); break;
        case 2: horizontal_8bpc(dst, row, &htaps, size, 2); break;
        case 3: horizontal_8bpc(dst, row, &htaps, size, 3); break;
        default: horizontal_8bpc(dst, row, &htaps, size, 4); break;
        }
    }
    if (!need_vertical) {
        memcpy(window, rows, (size_t)size * win_row_bytes);
        goto done;
    }
    for (int i = 0; i < size; i++) {
        const int32_t *k = vtaps.fixed + (size_t)i * vtaps.ksize;
        const uint8_t *base = rows + (size_t)(vtaps.first[i] - row_begin) * win_row_bytes;
        uint8_t *out = window + (size_t)i * win_row_bytes;
        for (size_t x = 0; x < win_row_bytes; x++) {
            int32_t acc = 1 << (PRECISION_BITS - 1);
            const uint8_t *p = base + x;
            for (int y = 0; y < vtaps.count[i]; y++, p += win_row_bytes)
                acc += *p * k[y];
            out[x] = clip8_fixed(acc);
        }
    }
done:
    axis_taps_free(&htaps);
    axis_taps_free(&vtaps);
    free(rows);
    free(scratch);
    return st;
}

/* PIL's ROUND_UP for the 32-bit resampler. */
static inline int32_t round_up(double f) { return (int32_t)(f >= 0.0 ? f + 0.5F : f - 0.5F); }

/* Resample of mode "I" (int32): floating weights, rounded, no clipping between the passes. */
static jaclip_status resample_int32(int32_t *window, const jaclip_image *image, int new_w, int new_h, int left, int top,
                                    int size)
{
    const int need_horizontal = new_w != (int64_t)image->width;
    const int need_vertical = new_h != (int64_t)image->height;
    const int32_t *src = (const int32_t *)(const void *)image->pixels;
    struct axis_taps htaps = {0}, vtaps = {0};
    int32_t *rows = NULL;
    int row_begin, row_end;
    jaclip_status st = JACLIP_OK;

    if (need_horizontal && (st = axis_taps_compute(&htaps, image->width, new_w, left, size)) != JACLIP_OK)
        goto done;
    if (need_vertical) {
        if ((st = axis_taps_compute(&vtaps, image->height, new_h, top, size)) != JACLIP_OK)
            goto done;
        row_begin = vtaps.first[0];
        row_end = vtaps.first[size - 1] + vtaps.count[size - 1];
    } else {
        row_begin = top;
        row_end = top + size;
    }
    if (row_end < row_begin)
        row_end = row_begin;
    rows = malloc(((size_t)(row_end - row_begin) * size + 1) * sizeof *rows);
    if (!rows) {
        st = jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory resizing an image");
        goto done;
    }
    for (int y = row_begin; y < row_end; y++) {
        const int32_t *row = src + (size_t)y * image->width;
        int32_t *dst = rows + (size_t)(y - row_begin) * size;
        if (!need_horizontal) {
            memcpy(dst, row + left, (size_t)size * sizeof *dst);
            continue;
        }
        for (int i = 0; i < size; i++) {
            const double *k = htaps.weights + (size_t)i * htaps.ksize;
            const int32_t *p = row + htaps.first[i];
            double sum = 0.0;
            for (int x = 0; x < htaps.count[i]; x++)
                sum += p[x] * k[x];
            dst[i] = round_up(sum);
        }
    }
    if (!need_vertical) {
        memcpy(window, rows, (size_t)size * size * sizeof *window);
        goto done;
    }
    for (int i = 0; i < size; i++) {
        const double *k = vtaps.weights + (size_t)i * vtaps.ksize;
        const int32_t *base = rows + (size_t)(vtaps.first[i] - row_begin) * size;
        for (int x = 0; x < size; x++) {
            double sum = 0.0;
            for (int y = 0; y < vtaps.count[i]; y++)
                sum += base[(size_t)y * size + x] * k[y];
            window[(size_t)i * size + x] = round_up(sum);
        }
    }
done:
    axis_taps_free(&htaps);
    axis_taps_free(&vtaps);
    free(rows);
    return st;
}

/* Source index of each of the first `end` outputs of PIL's nearest-neighbour scale (ImagingScaleAffine):
 * the position is accumulated in double from the first pixel, so the same rounding drift is kept;
 * -1 marks an output PIL fills with 0. */
static void nearest_positions(int *positions, uint32_t in_size, int out_size, int begin, int n)
{
    double step = (double)(float)in_size / out_size;
    double position = 0.0 + step * 0.5;
    for (int x = 0; x < begin + n; x++) {
        int index = position < 0.0 ? -1 : (int)position;
        if (x >= begin)
            positions[x - begin] = index >= 0 && (int64_t)index < (int64_t)in_size ? index : -1;
        position += step;
    }
}

static jaclip_status resample_nearest(uint8_t *window, const jaclip_image *image, int new_w, int new_h, int left,
                                      int top, int size)
{
    int *xs = malloc((size_t)size * sizeof *xs), *ys = malloc((size_t)size * sizeof *ys);
    if (!xs || !ys) {
        free(xs);
        free(ys);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory resizing an image");
    }
    nearest_positions(xs, image->width, new_w, left, size);
    nearest_positions(ys, image->height, new_h, top, size);
    for (int i = 0; i < size; i++) {
        uint8_t *out = window + (size_t)i * size;
        const uint8_t *row = ys[i] >= 0 ? image->pixels + (size_t)ys[i] * image->width : NULL;
        for (int x = 0; x < size; x++)
            out[x] = row && xs[x] >= 0 ? row[xs[x]] : 0;
    }
    free(xs);
    free(ys);
    return JACLIP_OK;
}

static jaclip_status resized_dimensions(uint32_t width, uint32_t height, uint32_t size, int *new_w, int *new_h);

jaclip_status jc_image_check_resizable(uint32_t width, uint32_t height, uint32_t size)
{
    int new_w, new_h;
    return resized_dimensions(width, height, size, &new_w, &new_h);
}

/* torchvision's Resize(size) target: shorter side = size, longer side int(size * long / short). */
static jaclip_status resized_dimensions(uint32_t width, uint32_t height, uint32_t size, int *new_w, int *new_h)
{
    uint32_t shorter = width <= height ? width : height;
    uint32_t longer = width <= height ? height : width;
    /* Both operands are exact in double, so the quotient rounds exactly as Python's int / int. */
    double longer_scaled = (double)((uint64_t)size * longer) / (double)shorter;
    if (longer_scaled >= (double)INT_MAX)
        return jc_fail(JACLIP_ERROR_IMAGE_TOO_LARGE, "image of %ux%u is too elongated to resize to %u", width, height,
                       size);
    if (width <= height) {
        *new_w = (int)size;
        *new_h = (int)longer_scaled;
    } else {
        *new_w = (int)longer_scaled;
        *new_h = (int)size;
    }
    return JACLIP_OK;
}

/* round((extent - size) / 2) with Python's half-to-even rounding. */
static int centre_offset(int extent, int size)
{
    int excess = extent - size;
    int half = excess / 2;
    if (excess % 2 != 0 && half % 2 != 0)
        half++;
    return half;
}

/* Converts the window (in the image's mode, or premultiplied alpha undone first) to RGB. */
static void window_to_rgb(uint8_t *rgb, const uint8_t *window, const jaclip_image *image, size_t pixels,
                          int premultiplied)
{
    switch (image->mode) {
    case JC_MODE_1:
        for (size_t i = 0; i < pixels; i++)
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = window[i] ? 255 : 0;
        break;
    case JC_MODE_L:
        for (size_t i = 0; i < pixels; i++)
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = window[i];
        break;
    case JC_MODE_P:
        for (size_t i = 0; i < pixels; i++)
            memcpy(rgb + 3 * i, image->palette + 3 * (size_t)window[i], 3);
        break;
    case JC_MODE_LA:
    case JC_MODE_RGBA: {
        const int channels = (int)image->pixel_bytes;
        for (size_t i = 0; i < pixels; i++) {
            const uint8_t *p = window + i * channels;
            unsigned alpha = p[channels - 1];
            uint8_t colour[3];
            for (int c = 0; c < 3; c++) {
                unsigned v = p[channels == 2 ? 0 : c];
                /* PIL's RGBa->RGBA leaves alpha 0 and 255 untouched. */
                colour[c] = premultiplied && alpha != 0 && alpha != 255 ? clip8((int)(255 * v / alpha)) : (uint8_t)v;
            }
            memcpy(rgb + 3 * i, colour, 3);
        }
        break;
    }
    case JC_MODE_RGB: memcpy(rgb, window, pixels * 3); break;
    case JC_MODE_I: {
        const int32_t *values = (const int32_t *)(const void *)window;
        for (size_t i = 0; i < pixels; i++) {
            int32_t v = values[i];
            rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
        }
        break;
    }
    case JC_MODE_CMYK:
        for (size_t i = 0; i < pixels; i++) {
            const uint8_t *p = window + 4 * i;
            int not_black = 255 - p[3];
            for (int c = 0; c < 3; c++)
                rgb[3 * i + c] = clip8(not_black - muldiv255(p[c], (unsigned)not_black));
        }
        break;
    }
}

/* resize + centre crop + RGB into rgb (size * size * 3 bytes). */
static jaclip_status resize_crop_rgb(uint8_t *rgb, const jaclip_image *image, uint32_t size)
{
    int new_w = 0, new_h = 0, left, top;
    size_t pixels = (size_t)size * size;
    int premultiplied = 0;
    uint8_t *window;
    jaclip_status st = resized_dimensions(image->width, image->height, size, &new_w, &new_h);
    if (st != JACLIP_OK)
        return st;
    left = centre_offset(new_w, (int)size);
    top = centre_offset(new_h, (int)size);
    window = malloc(pixels * image->pixel_bytes);
    if (!window)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory preprocessing an image");
    if (new_w == (int64_t)image->width && new_h == (int64_t)image->height) {
        /* PIL returns a copy: crop only. */
        size_t row = (size_t)size * image->pixel_bytes;
        for (uint32_t y = 0; y < size; y++)
            memcpy(window + y * row,
                   image->pixels + (((size_t)(top + y)) * image->width + (size_t)left) * image->pixel_bytes, row);
    } else if (image->mode == JC_MODE_1 || image->mode == JC_MODE_P) {
        st = resample_nearest(window, image, new_w, new_h, left, top, (int)size);
    } else if (image->mode == JC_MODE_I) {
        st = resample_int32((int32_t *)(void *)window, image, new_w, new_h, left, top, (int)size);
    } else {
        premultiplied = image->mode == JC_MODE_RGBA || image->mode == JC_MODE_LA;
        st = resample_8bpc(window, image, new_w, new_h, left, top, (int)size, premultiplied);
    }
    if (st == JACLIP_OK)
        window_to_rgb(rgb, window, image, pixels, premultiplied);
    free(window);
    return st;
}

static jaclip_status check_size_argument(uint32_t size)
{
    if (size == 0 || size > MAX_OUTPUT_SIZE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "size must be 1..%d, got %u", MAX_OUTPUT_SIZE, size);
    return JACLIP_OK;
}

jaclip_status jaclip_image_resize_crop(jaclip_tensor **out, const jaclip_image *image, uint32_t size)
{
    jaclip_tensor *tensor;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!image)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "image is NULL");
    if ((st = check_size_argument(size)) != JACLIP_OK)
        return st;
    const int64_t shape[3] = {size, size, 3};
    if ((st = jc_tensor_new(&tensor, JACLIP_DTYPE_UINT8, 3, shape)) != JACLIP_OK)
        return st;
    st = resize_crop_rgb(tensor->data, image, size);
    if (st != JACLIP_OK) {
        jaclip_tensor_free(tensor);
        return st;
    }
    *out = tensor;
    return JACLIP_OK;
}

jaclip_status jaclip_image_preprocess(jaclip_tensor **out, const jaclip_image *const *images, size_t n, uint32_t size,
                                      const float *mean, const float *std)
{
    jaclip_tensor *tensor;
    uint8_t *rgb;
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!images || !mean || !std)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", !images ? "images" : !mean ? "mean" : "std");
    if (n == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "no images given (n is 0)");
    if ((st = check_size_argument(size)) != JACLIP_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        if (!images[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "images[%zu] is NULL", i);
    for (int c = 0; c < 3; c++)
        if (!isfinite(mean[c]) || !isfinite(std[c]) || std[c] == 0.0f)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "mean and std must be finite and std non-zero (channel %d)",
                           c);
    if (n > (size_t)INT64_MAX / 3)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "too many images");
    const int64_t shape[4] = {(int64_t)n, 3, size, size};
    if ((st = jc_tensor_new(&tensor, JACLIP_DTYPE_FLOAT32, 4, shape)) != JACLIP_OK)
        return st;
    const size_t plane = (size_t)size * size;
    rgb = malloc(plane * 3);
    if (!rgb) {
        jaclip_tensor_free(tensor);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory preprocessing images");
    }
    float *values = tensor->data;
    for (size_t i = 0; i < n; i++) {
        st = resize_crop_rgb(rgb, images[i], size);
        if (st != JACLIP_OK) {
            free(rgb);
            jaclip_tensor_free(tensor);
            return jc_fail_prefix(st, "images[%zu]: ", i);
        }
        for (int c = 0; c < 3; c++) {
            float *dst = values + (i * 3 + (size_t)c) * plane;
            /* torch: ToTensor divides by 255, Normalize subtracts then divides, each rounded to float. */
            for (size_t p = 0; p < plane; p++) {
                float x = (float)rgb[3 * p + (size_t)c] / 255.0f;
                x = x - mean[c];
                dst[p] = x / std[c];
            }
        }
    }
    free(rgb);
    *out = tensor;
    return JACLIP_OK;
}
