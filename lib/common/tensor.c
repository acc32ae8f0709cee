/* Host tensors: plain malloc'd row-major arrays, independent of libtorch. */
#include "common/internal.h"

#include <stdlib.h>
#include <string.h>

bool jc_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

size_t jc_dtype_size(jaclip_dtype dtype)
{
    switch (dtype) {
    case JACLIP_DTYPE_FLOAT32: return 4;
    case JACLIP_DTYPE_INT64: return 8;
    case JACLIP_DTYPE_UINT8: return 1;
    }
    return 0;
}

jaclip_status jc_tensor_new(jaclip_tensor **out, jaclip_dtype dtype, size_t ndim, const int64_t *shape)
{
    size_t elem = jc_dtype_size(dtype), numel = 1, bytes;
    jaclip_tensor *t;
    *out = NULL;
    if (elem == 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown dtype %d", (int)dtype);
    if (ndim == 0 || ndim > JACLIP_TENSOR_MAX_DIMS)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "ndim must be 1..%d, got %zu", JACLIP_TENSOR_MAX_DIMS, ndim);
    for (size_t i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "dimension %zu is negative (%lld)", i, (long long)shape[i]);
        if ((uint64_t)shape[i] > SIZE_MAX || !jc_mul_size(numel, (size_t)shape[i], &numel))
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "tensor size overflows");
    }
    if (!jc_mul_size(numel, elem, &bytes))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "tensor size overflows");
    t = calloc(1, sizeof *t);
    if (!t)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory allocating a tensor");
    if (bytes > 0) {
        t->data = calloc(1, bytes);
        if (!t->data) {
            free(t);
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory allocating %zu bytes", bytes);
        }
    }
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, ndim * sizeof *shape);
    t->numel = numel;
    *out = t;
    return JACLIP_OK;
}

jaclip_status jc_tensor_new_2d(jaclip_tensor **out, jaclip_dtype dtype, int64_t rows, int64_t cols)
{
    const int64_t shape[2] = {rows, cols};
    return jc_tensor_new(out, dtype, 2, shape);
}

jaclip_status jc_check_2d(const jaclip_tensor *t, jaclip_dtype dtype, const char *name)
{
    static const char *const names[] = {"float32", "int64", "uint8"};
    if (!t)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", name);
    if (t->ndim != 2 || t->dtype != dtype)
        return jc_fail(JACLIP_ERROR_SHAPE, "%s must be a 2-D %s tensor, got %zu-D %s", name, names[dtype], t->ndim,
                       names[t->dtype]);
    return JACLIP_OK;
}

jaclip_status jaclip_tensor_create(jaclip_tensor **out, jaclip_dtype dtype, size_t ndim, const int64_t *shape,
                                   const void *data)
{
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!shape)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "shape is NULL");
    st = jc_tensor_new(out, dtype, ndim, shape);
    if (st == JACLIP_OK && data && (*out)->numel > 0)
        memcpy((*out)->data, data, (*out)->numel * jc_dtype_size(dtype));
    return st;
}

jaclip_status jaclip_tensor_clone(jaclip_tensor **out, const jaclip_tensor *tensor)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!tensor)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "tensor is NULL");
    return jaclip_tensor_create(out, tensor->dtype, tensor->ndim, tensor->shape, tensor->data);
}

void jaclip_tensor_free(jaclip_tensor *tensor)
{
    if (!tensor)
        return;
    free(tensor->data);
    free(tensor);
}

jaclip_dtype jaclip_tensor_dtype(const jaclip_tensor *t) { return t ? t->dtype : JACLIP_DTYPE_FLOAT32; }
size_t jaclip_tensor_ndim(const jaclip_tensor *t) { return t ? t->ndim : 0; }
int64_t jaclip_tensor_dim(const jaclip_tensor *t, size_t axis) { return t && axis < t->ndim ? t->shape[axis] : -1; }
size_t jaclip_tensor_numel(const jaclip_tensor *t) { return t ? t->numel : 0; }
size_t jaclip_tensor_nbytes(const jaclip_tensor *t) { return t ? t->numel * jc_dtype_size(t->dtype) : 0; }
const void *jaclip_tensor_data(const jaclip_tensor *t) { return t ? t->data : NULL; }
void *jaclip_tensor_data_mut(jaclip_tensor *t) { return t ? t->data : NULL; }

jaclip_status jc_outputs_begin(jaclip_tensor **a, jaclip_tensor **b, const char *names)
{
    if (a)
        *a = NULL;
    if (b)
        *b = NULL;
    if (!a && !b)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s are both NULL", names);
    return JACLIP_OK;
}

void jc_outputs_give(jaclip_tensor **a, jaclip_tensor *ta, jaclip_tensor **b, jaclip_tensor *tb)
{
    if (a)
        *a = ta;
    else
        jaclip_tensor_free(ta);
    if (b)
        *b = tb;
    else
        jaclip_tensor_free(tb);
}
