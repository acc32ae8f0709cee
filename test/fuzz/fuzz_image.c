/* libFuzzer harness: any bytes through the image loader and, when they decode, through resize_crop
 * and preprocess. The whole input is the image (so real files work as seeds); the input length picks
 * the EXIF flag and a second output size. Decoding is capped at 2 megapixels to keep runs fast. Inputs
 * without the EXIF flag also go through a file (a memfd), for the header-first reader; progressive
 * JPEGs meet the scan limit on both paths. */
#define _GNU_SOURCE
#include "jaclip.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The header-first file reader (jaclip_image_load) must agree with decoding the same bytes from
 * memory: it reads at most what the header can need and never more than the file holds. */
static void check_file_path(const uint8_t *data, size_t size, jaclip_status from_memory)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_image", 0);
        if (fd < 0)
            abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    jaclip_image *image = NULL;
    jaclip_status st = jaclip_image_load(&image, path, (uint64_t)1 << 21, 0);
    /* The file reader refuses elongated or oversized images from the header, as memory decoding does
     * after its own header parse; a decoded image is the same either way. */
    if ((st == JACLIP_OK) != (from_memory == JACLIP_OK) || (st != JACLIP_OK && (image || !jaclip_last_error()[0])))
        abort();
    jaclip_image_free(image);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdev[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    jaclip_image *image = NULL;
    jaclip_tensor *tensor = NULL;
    uint32_t flags = (size & 1) ? JACLIP_IMAGE_EXIF_TRANSPOSE : JACLIP_IMAGE_DEFAULT;
    /* The capture time never fails on bytes: a date in range, or none. */
    int64_t taken = 0;
    if (jaclip_image_capture_time(&taken, data, size) != JACLIP_OK ||
        (taken != JACLIP_TIME_NONE && (taken < -6000000000000000000LL || taken > 8000000000000000000LL)))
        abort();
    jaclip_status st = jaclip_image_load_memory(&image, data, size, (uint64_t)1 << 21, flags);
    if (flags == JACLIP_IMAGE_DEFAULT)
        check_file_path(data, size, st);
    if (st != JACLIP_OK) {
        /* Every failure leaves *out NULL and explains itself. */
        if (image != NULL || jaclip_last_error()[0] == '\0')
            abort();
        return 0;
    }
    if (jaclip_image_width(image) == 0 || jaclip_image_height(image) == 0 || jaclip_image_mode(image) == NULL)
        abort();
    const uint32_t sizes[2] = {224, 1 + (uint32_t)(size % 61)};
    for (int i = 0; i < 2; i++) {
        st = jaclip_image_resize_crop(&tensor, image, sizes[i]);
        /* Very elongated images may be refused as too large to resize; nothing else may fail. */
        if (st != JACLIP_OK && st != JACLIP_ERROR_IMAGE_TOO_LARGE)
            abort();
        if (st == JACLIP_OK && jaclip_tensor_nbytes(tensor) != (size_t)sizes[i] * sizes[i] * 3)
            abort();
        jaclip_tensor_free(tensor);
    }
    const jaclip_image *batch[1] = {image};
    st = jaclip_image_preprocess(&tensor, batch, 1, sizes[1], mean, stdev);
    if (st == JACLIP_OK) {
        const float *v = jaclip_tensor_data(tensor);
        for (size_t i = 0; i < jaclip_tensor_numel(tensor); i++)
            if (!(v[i] > -3.0f && v[i] < 3.0f)) /* (0..1 - mean) / std stays within about -1.8..2.2 */
                abort();
    } else if (st != JACLIP_ERROR_IMAGE_TOO_LARGE) {
        abort();
    }
    jaclip_tensor_free(tensor);
    jaclip_image_free(image);
    return 0;
}
