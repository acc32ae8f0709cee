/* Encoding through the model: pixel values and token ids checked before the plugin sees them, texts
 * tokenised and trimmed to the longest attended length, images decoded and preprocessed a chunk at a
 * time by the image module's batch pool (lib/image/image_batch.c). */
#include "image/image.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static jaclip_status check_model_out(jaclip_tensor **out, const jaclip_model *model)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!model)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "model is NULL");
    return JACLIP_OK;
}

jaclip_status jaclip_model_encode_pixel_values(jaclip_tensor **out, const jaclip_model *model,
                                               const jaclip_tensor *pixel_values)
{
    jaclip_status st;
    const jaclip_tensor *px = pixel_values;
    if ((st = check_model_out(out, model)))
        return st;
    if (!px)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "pixel_values is NULL");
    if (px->dtype != JACLIP_DTYPE_FLOAT32 || px->ndim != 4 || px->shape[1] != 3 || px->shape[2] != model->image_size ||
        px->shape[3] != model->image_size)
        return jc_fail(JACLIP_ERROR_SHAPE, "pixel_values must be float32 [N, 3, %lld, %lld]",
                       (long long)model->image_size, (long long)model->image_size);
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, px->shape[0], model->embedding_dim)))
        return st;
    if (px->shape[0] == 0)
        return JACLIP_OK;
    st = model->api->encode_image(model->torch, px->data, px->shape[0], model->image_size, (*out)->data,
                                  model->embedding_dim);
    if (st) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

/* Columns past the last one any row attends to change nothing (their keys get zero weight), so they
 * are not computed: a batch of short labels runs at its own length, not at 77. */
static int64_t attended_length(const int64_t *mask, int64_t rows, int64_t cols)
{
    int64_t length = 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = cols - 1; c >= length; c--)
            if (mask[r * cols + c]) {
                length = c + 1;
                break;
            }
    return length;
}

static jaclip_status encode_ids(jaclip_tensor *out, const jaclip_model *model, const int64_t *ids, const int64_t *mask,
                                int64_t rows, int64_t cols)
{
    for (int64_t first = 0; first < rows; first += JC_TEXT_CHUNK) {
        int64_t n = rows - first < JC_TEXT_CHUNK ? rows - first : JC_TEXT_CHUNK;
        int64_t length = attended_length(mask + first * cols, n, cols);
        jaclip_status st =
            model->api->encode_text(model->torch, ids + first * cols, mask + first * cols, n, length, cols,
                                    (float *)out->data + first * model->embedding_dim, model->embedding_dim);
        if (st)
            return st;
    }
    return JACLIP_OK;
}

jaclip_status jaclip_model_encode_token_ids(jaclip_tensor **out, const jaclip_model *model,
                                            const jaclip_tensor *input_ids, const jaclip_tensor *attention_mask)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)) || (st = jc_check_2d(input_ids, JACLIP_DTYPE_INT64, "input_ids")) ||
        (st = jc_check_2d(attention_mask, JACLIP_DTYPE_INT64, "attention_mask")))
        return st;
    int64_t rows = input_ids->shape[0], cols = input_ids->shape[1];
    if (attention_mask->shape[0] != rows || attention_mask->shape[1] != cols)
        return jc_fail(JACLIP_ERROR_SHAPE, "attention_mask is [%lld, %lld] but input_ids is [%lld, %lld]",
                       (long long)attention_mask->shape[0], (long long)attention_mask->shape[1], (long long)rows,
                       (long long)cols);
    if (cols < 2 || cols > model->max_positions)
        return jc_fail(JACLIP_ERROR_SHAPE, "sequence length %lld is not in 2..%lld", (long long)cols,
                       (long long)model->max_positions);
    const int64_t *ids = input_ids->data, *mask = attention_mask->data;
    for (size_t i = 0; i < input_ids->numel; i++) {
        if (ids[i] < 0 || ids[i] >= model->vocab_size)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                           "input_ids[%zu][%zu] = %lld is outside the vocabulary 0..%lld", i / (size_t)cols,
                           i % (size_t)cols, (long long)ids[i], (long long)model->vocab_size - 1);
        if (mask[i] != 0 && mask[i] != 1)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "attention_mask[%zu][%zu] = %lld is not 0 or 1",
                           i / (size_t)cols, i % (size_t)cols, (long long)mask[i]);
    }
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, rows, model->embedding_dim)))
        return st;
    if ((st = encode_ids(*out, model, ids, mask, rows, cols))) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

jaclip_status jaclip_model_encode_texts(jaclip_tensor **out, const jaclip_model *model, const char *const *texts,
                                        const size_t *lengths, size_t n)
{
    jaclip_tensor *ids = NULL, *mask = NULL;
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if (!texts && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "texts is NULL");
    if (n == 0)
        return jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, 0, model->embedding_dim);
    st = jaclip_tokenizer_encode(&ids, &mask, model->tokenizer, texts, lengths, n, (size_t)model->max_text_length);
    if (st == JACLIP_OK)
        st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)n, model->embedding_dim);
    if (st == JACLIP_OK)
        st = encode_ids(*out, model, ids->data, mask->data, (int64_t)n, ids->shape[1]);
    if (st != JACLIP_OK) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);
    return st;
}

jaclip_status jaclip_model_preprocess_images(jaclip_tensor **out, const jaclip_model *model,
                                             const jaclip_image *const *images, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    return jaclip_image_preprocess(out, images, n, (uint32_t)model->image_size, model->mean, model->std);
}

/* The model's decoding and preprocessing settings on a batch whose source the caller set. */
static void use_model_preprocessing(jc_image_batch *batch, const jaclip_model *model)
{
    batch->max_pixels = model->max_image_pixels;
    batch->flags = model->image_flags;
    batch->size = (uint32_t)model->image_size;
    batch->mean = model->mean;
    batch->std = model->std;
}

/* Encodes the n images of batch (its source fields set by the caller) JC_IMAGE_CHUNK at a time. */
static jaclip_status encode_batch(jaclip_tensor **out, const jaclip_model *model, jc_image_batch *batch, size_t n)
{
    jaclip_tensor *pixels = NULL;
    jaclip_status st;
    const int64_t s = model->image_size;
    use_model_preprocessing(batch, model);
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)n, model->embedding_dim)))
        return st;
    if (n > 0) {
        const int64_t shape[4] = {n < JC_IMAGE_CHUNK ? (int64_t)n : JC_IMAGE_CHUNK, 3, s, s};
        st = jc_tensor_new(&pixels, JACLIP_DTYPE_FLOAT32, 4, shape);
    }
    for (size_t first = 0; first < n && st == JACLIP_OK; first += JC_IMAGE_CHUNK) {
        size_t count = n - first < JC_IMAGE_CHUNK ? n - first : JC_IMAGE_CHUNK;
        st = jc_image_batch_preprocess(batch, first, count, pixels->data);
        if (st == JACLIP_OK)
            st = model->api->encode_image(model->torch, pixels->data, (int64_t)count, s,
                                          (float *)(*out)->data + first * (size_t)model->embedding_dim,
                                          model->embedding_dim);
    }
    jaclip_tensor_free(pixels);
    if (st) {
        jaclip_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

static jaclip_status check_buffer_args(const void *const *data, const size_t *sizes, size_t n)
{
    if ((!data || !sizes) && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data or sizes is NULL");
    return JACLIP_OK;
}

/* A failure that belongs to the image (not to the model or the machine): what the skipping encoders
 * leave out. */
static bool image_failure(jaclip_status st)
{
    return st == JACLIP_ERROR_IO || st == JACLIP_ERROR_IMAGE_DECODE || st == JACLIP_ERROR_IMAGE_TOO_LARGE;
}

/* encode_batch, leaving out the images whose decoding fails as image_failure says: each chunk is decoded
 * with per-image statuses, the images that decoded are packed together and encoded in one call. */
static jaclip_status encode_batch_skipping(jaclip_tensor **out, jaclip_tensor **out_kept, const jaclip_model *model,
                                           jc_image_batch *batch, size_t n, jaclip_skip_callback on_skip, void *user)
{
    const int64_t s = model->image_size, dim = model->embedding_dim;
    const size_t image_floats = (size_t)(3 * s * s);
    jaclip_tensor *pixels = NULL, *rows = NULL, *kept = NULL;
    jaclip_status item_status[JC_IMAGE_CHUNK];
    char *item_message[JC_IMAGE_CHUNK] = {0};
    size_t nkept = 0;
    jaclip_status st;
    use_model_preprocessing(batch, model);
    batch->item_status = item_status;
    batch->item_message = item_message;
    if ((st = jc_tensor_new_2d(&rows, JACLIP_DTYPE_FLOAT32, (int64_t)n, dim)) ||
        (st = jc_tensor_new_2d(&kept, JACLIP_DTYPE_INT64, 1, (int64_t)n)))
        goto done;
    if (n > 0) {
        const int64_t shape[4] = {n < JC_IMAGE_CHUNK ? (int64_t)n : JC_IMAGE_CHUNK, 3, s, s};
        st = jc_tensor_new(&pixels, JACLIP_DTYPE_FLOAT32, 4, shape);
    }
    for (size_t first = 0; first < n && st == JACLIP_OK; first += JC_IMAGE_CHUNK) {
        size_t count = n - first < JC_IMAGE_CHUNK ? n - first : JC_IMAGE_CHUNK, good = 0;
        float *px = pixels->data;
        if ((st = jc_image_batch_preprocess(batch, first, count, px)))
            break;
        for (size_t k = 0; k < count; k++) {
            jaclip_status item = item_status[k];
            if (item == JACLIP_OK) {
                if (good != k)
                    memmove(px + good * image_floats, px + k * image_floats, image_floats * sizeof(float));
                ((int64_t *)kept->data)[nkept + good++] = (int64_t)(first + k);
            } else if (!image_failure(item) && st == JACLIP_OK) {
                st = jc_fail(item, "%s", item_message[k] ? item_message[k] : jaclip_status_string(item));
            } else if (st == JACLIP_OK && on_skip) {
                on_skip(user, first + k, item, item_message[k] ? item_message[k] : jaclip_status_string(item));
            }
            free(item_message[k]);
            item_message[k] = NULL;
        }
        if (st == JACLIP_OK && good > 0)
            st = model->api->encode_image(model->torch, px, (int64_t)good, s, (float *)rows->data + nkept * (size_t)dim,
                                          dim);
        nkept += good;
    }
    if (st == JACLIP_OK) {
        const int64_t rows_shape[2] = {(int64_t)nkept, dim}, kept_shape[1] = {(int64_t)nkept};
        if (!(st = jaclip_tensor_create(out, JACLIP_DTYPE_FLOAT32, 2, rows_shape, nkept ? rows->data : NULL)) &&
            out_kept && (st = jaclip_tensor_create(out_kept, JACLIP_DTYPE_INT64, 1, kept_shape, nkept ? kept->data : NULL))) {
            jaclip_tensor_free(*out);
            *out = NULL;
        }
    }
done:
    jaclip_tensor_free(pixels);
    jaclip_tensor_free(rows);
    jaclip_tensor_free(kept);
    return st;
}

static jaclip_status check_skipping_outputs(jaclip_tensor **out, jaclip_tensor **out_kept, const jaclip_model *model)
{
    if (out_kept)
        *out_kept = NULL;
    return check_model_out(out, model);
}

jaclip_status jaclip_model_encode_image_files_skipping(jaclip_tensor **out, jaclip_tensor **out_kept,
                                                       const jaclip_model *model, const char *const *paths, size_t n,
                                                       jaclip_skip_callback on_skip, void *user)
{
    jaclip_status st;
    if ((st = check_skipping_outputs(out, out_kept, model)))
        return st;
    if (!paths && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "paths is NULL");
    for (size_t i = 0; i < n; i++)
        if (!paths[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "paths[%zu] is NULL", i);
    jc_image_batch batch = {.paths = paths};
    return encode_batch_skipping(out, out_kept, model, &batch, n, on_skip, user);
}

jaclip_status jaclip_model_encode_image_buffers_skipping(jaclip_tensor **out, jaclip_tensor **out_kept,
                                                         const jaclip_model *model, const void *const *data,
                                                         const size_t *sizes, size_t n, jaclip_skip_callback on_skip,
                                                         void *user)
{
    jaclip_status st;
    if ((st = check_skipping_outputs(out, out_kept, model)))
        return st;
    if ((st = check_buffer_args(data, sizes, n)))
        return st;
    for (size_t i = 0; i < n; i++)
        if (!data[i] && sizes[i] > 0)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data[%zu] is NULL", i);
    jc_image_batch batch = {.data = data, .sizes = sizes};
    return encode_batch_skipping(out, out_kept, model, &batch, n, on_skip, user);
}

jaclip_status jaclip_model_encode_image_files(jaclip_tensor **out, const jaclip_model *model, const char *const *paths,
                                              size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if (!paths && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "paths is NULL");
    jc_image_batch batch = {.paths = paths};
    return encode_batch(out, model, &batch, n);
}

jaclip_status jaclip_model_encode_image_buffers(jaclip_tensor **out, const jaclip_model *model, const void *const *data,
                                                const size_t *sizes, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if ((st = check_buffer_args(data, sizes, n)))
        return st;
    jc_image_batch batch = {.data = data, .sizes = sizes};
    return encode_batch(out, model, &batch, n);
}

jaclip_status jaclip_model_encode_images(jaclip_tensor **out, const jaclip_model *model,
                                         const jaclip_image *const *images, size_t n)
{
    jaclip_status st;
    if ((st = check_model_out(out, model)))
        return st;
    if (!images && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "images is NULL");
    for (size_t i = 0; i < n; i++)
        if (!images[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "images[%zu] is NULL", i);
    jc_image_batch batch = {.images = images};
    return encode_batch(out, model, &batch, n);
}
