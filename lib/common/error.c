/* Status names and the thread-local last-error message. */
#include "common/internal.h"

#include <stdio.h>
#include <string.h>

#define JC_ERROR_CAPACITY 1024

static _Thread_local char last_error[JC_ERROR_CAPACITY];

const char *jaclip_last_error(void) { return last_error; }

jaclip_status jc_vfail(jaclip_status status, const char *fmt, va_list ap)
{
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    return status;
}

jaclip_status jc_fail(jaclip_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    jc_vfail(status, fmt, ap);
    va_end(ap);
    return status;
}

jaclip_status jc_fail_prefix(jaclip_status status, const char *fmt, ...)
{
    char detail[JC_ERROR_CAPACITY];
    char prefix[JC_ERROR_CAPACITY];
    va_list ap;
    memcpy(detail, last_error, sizeof detail);
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(last_error, sizeof last_error, "%s%s", prefix, detail);
    return status;
}

const char *jaclip_status_string(jaclip_status status)
{
    switch (status) {
    case JACLIP_OK: return "JACLIP_OK: success";
    case JACLIP_ERROR_INVALID_ARGUMENT: return "JACLIP_ERROR_INVALID_ARGUMENT: invalid argument";
    case JACLIP_ERROR_OUT_OF_MEMORY: return "JACLIP_ERROR_OUT_OF_MEMORY: out of memory";
    case JACLIP_ERROR_IO: return "JACLIP_ERROR_IO: input/output error";
    case JACLIP_ERROR_MODEL_FORMAT: return "JACLIP_ERROR_MODEL_FORMAT: not a usable jaclip model file";
    case JACLIP_ERROR_DEVICE_UNAVAILABLE: return "JACLIP_ERROR_DEVICE_UNAVAILABLE: device not available";
    case JACLIP_ERROR_SHAPE: return "JACLIP_ERROR_SHAPE: wrong tensor shape or dtype";
    case JACLIP_ERROR_IMAGE_DECODE: return "JACLIP_ERROR_IMAGE_DECODE: image could not be decoded";
    case JACLIP_ERROR_IMAGE_TOO_LARGE: return "JACLIP_ERROR_IMAGE_TOO_LARGE: image exceeds the pixel limit";
    case JACLIP_ERROR_INVALID_UTF8: return "JACLIP_ERROR_INVALID_UTF8: text is not valid UTF-8";
    case JACLIP_ERROR_TOKENIZER: return "JACLIP_ERROR_TOKENIZER: tokenizer error";
    case JACLIP_ERROR_BACKEND: return "JACLIP_ERROR_BACKEND: model execution failed";
    case JACLIP_ERROR_INDEX_FORMAT: return "JACLIP_ERROR_INDEX_FORMAT: not a usable index file";
    case JACLIP_ERROR_NOT_FOUND: return "JACLIP_ERROR_NOT_FOUND: not found";
    case JACLIP_ERROR_INTERNAL: return "JACLIP_ERROR_INTERNAL: internal error";
    case JACLIP_ERROR_MODEL_MISMATCH: return "JACLIP_ERROR_MODEL_MISMATCH: made by another model";
    }
    return "JACLIP_ERROR_UNKNOWN: unknown status";
}

unsigned jaclip_version_number(void) { return JACLIP_VERSION_NUMBER; }

const char *jaclip_version_string(void) { return JACLIP_VERSION_STRING; }
