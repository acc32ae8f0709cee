/* libFuzzer harness: any bytes through the image loader and, when they decode, through resize_crop
 * and preprocess. The whole input is the image (so real files work as seeds); the input length picks
 * the EXIF flag and a second output size. Decoding is capped at 2 megapixels to keep runs fast. */
#include "jaclip.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float stdev[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    jaclip_image *image = NULL;
    jaclip_tensor *tensor = NULL;
    uint32_t flags = (size & 1) ? JACLIP_IMAGE_EXIF_TRANSPOSE : JACLIP_IMAGE_DEFAULT;
    jaclip_status st = jaclip_image_load_memory(&image, data, size, (uint64_t)1 << 21, flags);
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
