/* Shared by the implementation files only; never installed. Internal symbols use the jc_ prefix so the
 * version script (global: jaclip_*) can never export them. */
#ifndef JACLIP_INTERNAL_H
#define JACLIP_INTERNAL_H

#define JACLIP_BUILDING 1
#include "jaclip.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define JC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define JC_PRINTF(f, a)
#endif

/* Records the detail for jaclip_last_error() on this thread and returns status, so error paths read
 * `return jc_fail(JACLIP_ERROR_IO, "cannot open %s", path);`. */
jaclip_status jc_fail(jaclip_status status, const char *fmt, ...) JC_PRINTF(2, 3);
jaclip_status jc_vfail(jaclip_status status, const char *fmt, va_list ap);
/* Prefixes the current message of this thread ("dog.jpg: " + detail) and returns status. */
jaclip_status jc_fail_prefix(jaclip_status status, const char *fmt, ...) JC_PRINTF(2, 3);

struct jaclip_tensor {
    jaclip_dtype dtype;
    size_t ndim;
    int64_t shape[JACLIP_TENSOR_MAX_DIMS];
    size_t numel;
    void *data;
};

size_t jc_dtype_size(jaclip_dtype dtype);
/* A zero-filled tensor; shorthand for the 1-D / 2-D cases used everywhere. */
jaclip_status jc_tensor_new(jaclip_tensor **out, jaclip_dtype dtype, size_t ndim, const int64_t *shape);
jaclip_status jc_tensor_new_2d(jaclip_tensor **out, jaclip_dtype dtype, int64_t rows, int64_t cols);
/* A pair of optional outputs (top-k style): both set to NULL; INVALID_ARGUMENT naming them ("out_a and
 * out_b") when both are NULL. */
jaclip_status jc_outputs_begin(jaclip_tensor **a, jaclip_tensor **b, const char *names);
/* Hands ta and tb to the outputs that were asked for and frees the others. */
void jc_outputs_give(jaclip_tensor **a, jaclip_tensor *ta, jaclip_tensor **b, jaclip_tensor *tb);
/* SHAPE error unless t is a 2-D tensor of dtype; name appears in the message. */
jaclip_status jc_check_2d(const jaclip_tensor *t, jaclip_dtype dtype, const char *name);

/* Overflow-checked size arithmetic: false when a * b (+ c) does not fit. */
bool jc_mul_size(size_t a, size_t b, size_t *out);

/* Bounds of every zip entry and the CRC32 of every entry but the tensor storages, before libtorch
 * reads the archive (model_archive.c says why). MODEL_FORMAT naming the entry, or IO. On success
 * *digest (if not NULL) is a 64-bit digest of every entry's name, size and CRC32: the model's identity. */
jaclip_status jc_check_model_archive(const void *bytes, size_t size, const char *where, uint64_t *digest);
/* Maps a model file (refusing anything but a regular file) and checks it as jc_check_model_archive
 * does; on success the caller reads the model from *out_map and munmaps it. */
jaclip_status jc_map_model_file(const char *path, void **out_map, size_t *out_size, uint64_t *digest);

/* Opens path read-only without blocking (a FIFO without a writer would wait forever) and refuses
 * anything but a regular file with IO; what names the file's role in messages ("image"). */
jaclip_status jc_open_regular(const char *path, const char *what, int *out_fd, uint64_t *out_size);
/* Reads up to n bytes (fewer at end of file); *got says how many. IO on a read error. */
jaclip_status jc_read_fd(int fd, void *buf, size_t n, size_t *got, const char *what, const char *path);
/* The whole of a regular file of at most max_bytes, malloc'd. IO (not regular, too large, unreadable),
 * OUT_OF_MEMORY. */
jaclip_status jc_read_regular_file(const char *path, const char *what, size_t max_bytes, char **out, size_t *out_size);

/* Writing (lib/common/file_output.c). IO "path: what: strerror(errno)", returned. */
jaclip_status jc_io_fail(const char *what, const char *path);
/* All of buf at offset (pwrite, retried); IO naming path. */
jaclip_status jc_write_at(int fd, const void *buf, size_t size, uint64_t offset, const char *path);
/* Syncs the directory holding path, so that a rename into it survives a crash (best effort). */
void jc_sync_parent_dir(const char *path);
/* A file written whole under a temporary name beside path, then renamed over it: jc_temp_open creates
 * it (mode 0666 less the umask, or the mode of the file it will replace), the caller writes to fd, and
 * jc_temp_commit syncs, closes and renames it, or (st already an error, or a step failing) removes it.
 * what names the file in messages ("index"). */
typedef struct {
    int fd;
    char *tmp;
    const char *path;
} jc_temp_file;
jaclip_status jc_temp_open(jc_temp_file *t, const char *path);
jaclip_status jc_temp_commit(jc_temp_file *t, jaclip_status st, const char *what);

/* CRC-32 of zlib's polynomial (zip, PNG, the library's file formats), by zlib; start crc at 0. */
uint32_t jc_crc32(uint32_t crc, const void *data, size_t size);
/* UTF-8 check (lib/common/utf8.c): offset of the first invalid byte, or SIZE_MAX if s[0..n) is valid
 * UTF-8 (no surrogates, no overlongs, nothing above U+10FFFF). */
size_t jc_utf8_invalid_at(const unsigned char *s, size_t n);

/* The CPU's native capabilities (lib/common/cpu.c), detected once; thread-safe. native_bf16 is
 * avx512_bf16 || amx_bf16 unless JACLIP_NATIVE_BF16=0/1 overrides it (native_bf16_overridden).
 * int8_kernel: lib/qlinear's AVX512-VNNI kernel runs here (avx512_vnni, unless JACLIP_Q8_PORTABLE=1
 * forces the portable code, as qlinear.c reads it too). */
typedef struct jc_cpu_features {
    bool avx2, fma, avx512f, avx512_vnni, avx512_bf16, amx_bf16, amx_int8;
    bool native_bf16, native_bf16_overridden, int8_kernel;
} jc_cpu_features;
const jc_cpu_features *jc_cpu(void);
/* The cores this thread may run on (its affinity mask), at least 1. */
size_t jc_usable_cores(void);

/* dst = src / |src| over d floats, the norm summed in double (as jaclip_normalize does); a zero row
 * stays zero. dst may be src. */
void jc_normalize_row(float *dst, const float *src, size_t d);
/* The k best (value, index) of one row, best first; ties go to the lower index. */
void jc_topk_row(const float *row, int64_t cols, size_t k, int64_t *out_idx, float *out_val);

#ifdef __cplusplus
}
#endif

#endif
