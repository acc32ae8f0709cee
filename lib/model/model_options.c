/* Model options: device, threads, precision and the image limits, each set by its own function (the
 * ABI grows by setters, docs/abi.md). */
#include "model/model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jc_model_options_defaults(jaclip_model_options *o)
{
    memset(o, 0, sizeof *o);
    strcpy(o->device, "cpu");
    o->precision = JACLIP_PRECISION_DEFAULT;
}

jaclip_status jaclip_model_options_create(jaclip_model_options **out)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = malloc(sizeof **out);
    if (!*out)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory");
    jc_model_options_defaults(*out);
    return JACLIP_OK;
}

void jaclip_model_options_free(jaclip_model_options *options) { free(options); }

static bool valid_device(const char *device)
{
    if (strcmp(device, "cpu") == 0 || strcmp(device, "cuda") == 0)
        return true;
    if (strncmp(device, "cuda:", 5) != 0)
        return false;
    const char *digits = device + 5;
    size_t n = strlen(digits);
    if (n == 0 || n > 3)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)digits[i]))
            return false;
    return true;
}

jaclip_status jaclip_model_options_set_device(jaclip_model_options *options, const char *device)
{
    if (!options || !device)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options and device must not be NULL");
    if (!valid_device(device))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "device \"%.40s\" is not \"cpu\", \"cuda\" or \"cuda:N\"",
                       device);
    snprintf(options->device, sizeof options->device, "%s", device);
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_num_threads(jaclip_model_options *options, int32_t num_threads)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (num_threads < 0 || num_threads > 1024)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "num_threads must be 0..1024, got %d", (int)num_threads);
    options->num_threads = num_threads;
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_precision(jaclip_model_options *options, jaclip_precision precision)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (precision != JACLIP_PRECISION_DEFAULT && precision != JACLIP_PRECISION_FP32 &&
        precision != JACLIP_PRECISION_BF16 && precision != JACLIP_PRECISION_INT8 &&
        precision != JACLIP_PRECISION_AUTO && precision != JACLIP_PRECISION_INT8_WEIGHTS)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown precision %d", (int)precision);
    options->precision = precision;
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_max_image_pixels(jaclip_model_options *options, uint64_t max_pixels)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    options->max_image_pixels = max_pixels;
    return JACLIP_OK;
}

jaclip_status jaclip_model_options_set_image_flags(jaclip_model_options *options, uint32_t flags)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (flags & ~(uint32_t)JACLIP_IMAGE_EXIF_TRANSPOSE)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown image flags 0x%x", (unsigned)flags);
    options->image_flags = flags;
    return JACLIP_OK;
}
