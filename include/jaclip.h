/*
 * libjaclip: Japanese CLIP (rinna/japanese-cloob-vit-b-16) for C and every language with a C FFI.
 *
 * Conventions (the same for every function below):
 * - Functions that can fail return jaclip_status. JACLIP_OK is 0; every other value is an error whose
 *   detail is in jaclip_last_error() on the calling thread.
 * - Out-parameters come first and are called out / out_*. On failure *out is set to NULL, so freeing
 *   it is always safe. An object returned through **out belongs to the caller, who frees it with its
 *   _free function; every _free accepts NULL.
 * - A pointer returned by a getter (const char *, const jaclip_tokenizer *) is borrowed: it lives as
 *   long as the object it came from and must not be freed.
 * - Strings are UTF-8. Text that is not valid UTF-8 is refused with JACLIP_ERROR_INVALID_UTF8.
 * - No C++ exception ever leaves the library; allocation failure is reported as
 *   JACLIP_ERROR_OUT_OF_MEMORY.
 * - Threads: see each object. In short, a loaded model and a tokenizer may be shared by any number of
 *   threads encoding at once; a tensor, an image or an index is owned by one thread at a time unless
 *   only const functions are called on it. The libtorch thread count is process-wide.
 */
#ifndef JACLIP_H
#define JACLIP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(JACLIP_BUILDING_DLL)
#define JACLIP_API __declspec(dllexport)
#elif defined(__GNUC__) && defined(JACLIP_BUILDING)
#define JACLIP_API __attribute__((visibility("default")))
#else
#define JACLIP_API
#endif

/* ---- Versions ------------------------------------------------------------------------------- */

#define JACLIP_VERSION_MAJOR 0
#define JACLIP_VERSION_MINOR 1
#define JACLIP_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define JACLIP_VERSION_NUMBER (JACLIP_VERSION_MAJOR * 10000 + JACLIP_VERSION_MINOR * 100 + JACLIP_VERSION_PATCH)
/* "MAJOR.MINOR.PATCH"; the build (mk/lib.mk) and the bindings read the three numbers above. */
#define JACLIP_VERSION_QUOTE_(s) #s
#define JACLIP_VERSION_EXPAND_(a, b, c) JACLIP_VERSION_QUOTE_(a.b.c)
#define JACLIP_VERSION_STRING JACLIP_VERSION_EXPAND_(JACLIP_VERSION_MAJOR, JACLIP_VERSION_MINOR, JACLIP_VERSION_PATCH)

/* The version of the library actually loaded; compare with JACLIP_VERSION_NUMBER to catch a header /
 * library mismatch. */
JACLIP_API unsigned jaclip_version_number(void);
/* Static string "MAJOR.MINOR.PATCH" (JACLIP_VERSION_STRING of the library's own build). */
JACLIP_API const char *jaclip_version_string(void);

/* ---- Errors --------------------------------------------------------------------------------- */

/* Values never change between releases; new ones are only appended. */
typedef enum jaclip_status {
    JACLIP_OK = 0,
    JACLIP_ERROR_INVALID_ARGUMENT = 1, /* NULL where a value is required, option out of range */
    JACLIP_ERROR_OUT_OF_MEMORY = 2,
    JACLIP_ERROR_IO = 3,                 /* a file could not be opened, read or written */
    JACLIP_ERROR_MODEL_FORMAT = 4,       /* not a jaclip model, wrong format version, wrong methods */
    JACLIP_ERROR_DEVICE_UNAVAILABLE = 5, /* e.g. "cuda" asked of a libtorch without CUDA */
    JACLIP_ERROR_SHAPE = 6,              /* a tensor of the wrong shape or dtype */
    JACLIP_ERROR_IMAGE_DECODE = 7,       /* corrupt, truncated or unsupported image data */
    JACLIP_ERROR_IMAGE_TOO_LARGE = 8,    /* over the pixel limit; refused before allocating */
    JACLIP_ERROR_INVALID_UTF8 = 9,       /* the message names the byte offset */
    JACLIP_ERROR_TOKENIZER = 10,         /* the tokenizer model could not be loaded or used */
    JACLIP_ERROR_BACKEND = 11,           /* libtorch failed while running the model */
    JACLIP_ERROR_INDEX_FORMAT = 12,      /* truncated, corrupted or foreign index file */
    JACLIP_ERROR_NOT_FOUND = 13,         /* a looked-up item does not exist */
    JACLIP_ERROR_INTERNAL = 14,          /* a bug in libjaclip; please report it */
    JACLIP_ERROR_MODEL_MISMATCH = 15     /* data made by another model (e.g. an index's fingerprint) */
} jaclip_status;

/* Static English name of a status ("JACLIP_ERROR_IO: input/output error"); never NULL, also for
 * values this version does not know. */
JACLIP_API const char *jaclip_status_string(jaclip_status status);

/* Detail of the last failure on the calling thread ("truncated JPEG data", "missing key
 * text_projection.weight"); "" if none. Valid until the next failing libjaclip call on this thread. */
JACLIP_API const char *jaclip_last_error(void);

/* ---- Tensors -------------------------------------------------------------------------------- */

/* A dense, row-major (C-contiguous) array in host memory. Not thread-safe for writes; any number of
 * threads may read one tensor that nobody writes. */
typedef struct jaclip_tensor jaclip_tensor;

typedef enum jaclip_dtype { JACLIP_DTYPE_FLOAT32 = 0, JACLIP_DTYPE_INT64 = 1, JACLIP_DTYPE_UINT8 = 2 } jaclip_dtype;

#define JACLIP_TENSOR_MAX_DIMS 8

/* Creates a tensor of the given dtype and shape (ndim 1..JACLIP_TENSOR_MAX_DIMS, every dim >= 0) and
 * copies numel * element-size bytes from data; data == NULL gives zeros. Errors: INVALID_ARGUMENT
 * (NULL out or shape, bad dtype or ndim, negative dim, size overflow), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_tensor_create(jaclip_tensor **out, jaclip_dtype dtype, size_t ndim,
                                              const int64_t *shape, const void *data);
/* A deep copy. */
JACLIP_API jaclip_status jaclip_tensor_clone(jaclip_tensor **out, const jaclip_tensor *tensor);
JACLIP_API void jaclip_tensor_free(jaclip_tensor *tensor);

/* Accessors. On NULL they return 0 / -1 / NULL as noted. */
JACLIP_API jaclip_dtype jaclip_tensor_dtype(const jaclip_tensor *tensor); /* NULL: FLOAT32 */
JACLIP_API size_t jaclip_tensor_ndim(const jaclip_tensor *tensor);        /* NULL: 0 */
/* Size of one axis; -1 for NULL or axis >= ndim. */
JACLIP_API int64_t jaclip_tensor_dim(const jaclip_tensor *tensor, size_t axis);
JACLIP_API size_t jaclip_tensor_numel(const jaclip_tensor *tensor);  /* NULL: 0 */
JACLIP_API size_t jaclip_tensor_nbytes(const jaclip_tensor *tensor); /* NULL: 0 */
/* The elements, owned by the tensor (NULL for NULL or an empty tensor). */
JACLIP_API const void *jaclip_tensor_data(const jaclip_tensor *tensor);
JACLIP_API void *jaclip_tensor_data_mut(jaclip_tensor *tensor);

/* ---- Similarity (plain C, no model needed) -------------------------------------------------- */

typedef enum jaclip_similarity_kind {
    JACLIP_SIMILARITY_COSINE = 0, /* rows L2-normalised first (the reference evaluation) */
    JACLIP_SIMILARITY_DOT = 1     /* raw dot product (the reference README's example) */
} jaclip_similarity_kind;

/* out[i][j] = scale * sim(a[i], b[j]) as float32 [Na, Nb]. a is [Na, D], b is [Nb, D], both float32.
 * A zero row has cosine 0 with everything. Errors: INVALID_ARGUMENT (NULL, unknown kind, non-finite
 * scale), SHAPE (not 2-D float32, D differs). */
JACLIP_API jaclip_status jaclip_similarity(jaclip_tensor **out, const jaclip_tensor *a, const jaclip_tensor *b,
                                           jaclip_similarity_kind kind, float scale);
/* Row-wise softmax of a 2-D float32 tensor (numerically stable). Errors: INVALID_ARGUMENT, SHAPE. */
JACLIP_API jaclip_status jaclip_softmax(jaclip_tensor **out, const jaclip_tensor *logits);
/* softmax(jaclip_similarity(a, b, kind, scale)) in one call: zero-shot probabilities of each row of a
 * over the rows of b. */
JACLIP_API jaclip_status jaclip_probabilities(jaclip_tensor **out, const jaclip_tensor *a, const jaclip_tensor *b,
                                              jaclip_similarity_kind kind, float scale);
/* Copy of a 2-D float32 tensor with every row scaled to unit L2 norm (zero rows stay zero). */
JACLIP_API jaclip_status jaclip_normalize(jaclip_tensor **out, const jaclip_tensor *x);
/* The k largest entries of each row of a 2-D float32 tensor, best first (ties: lower index first).
 * out_indices is int64 [N, k'], out_values float32 [N, k'] with k' = min(k, columns); either out may
 * be NULL if not wanted. Errors: INVALID_ARGUMENT (k == 0, both outs NULL), SHAPE. */
JACLIP_API jaclip_status jaclip_topk(jaclip_tensor **out_indices, jaclip_tensor **out_values,
                                     const jaclip_tensor *scores, size_t k);

/* ---- Images --------------------------------------------------------------------------------- */

/* A decoded image in the mode PIL would open it in (grey, grey+alpha, RGB, RGBA, palette, 1-bit,
 * 16-bit grey), ready for PIL-exact preprocessing. Immutable after creation: any number of threads
 * may use one image at once. */
typedef struct jaclip_image jaclip_image;

typedef enum jaclip_pixel_format {
    JACLIP_PIXEL_GRAY8 = 1, /* 1 byte per pixel */
    JACLIP_PIXEL_RGB8 = 2,  /* 3 bytes per pixel */
    JACLIP_PIXEL_RGBA8 = 3, /* 4 bytes per pixel, straight (not premultiplied) alpha */
    JACLIP_PIXEL_GRAYA8 = 4 /* 2 bytes per pixel */
} jaclip_pixel_format;

/* Flags for image loading (bitwise OR). */
#define JACLIP_IMAGE_DEFAULT 0u
/* Rotate/flip by the EXIF Orientation tag. Off by default because the reference does not. */
#define JACLIP_IMAGE_EXIF_TRANSPOSE 1u

/* Default pixel limit (width * height) used when a limit of 0 is given: 2 * PIL's
 * MAX_IMAGE_PIXELS, the size at which PIL refuses to open an image. */
#define JACLIP_DEFAULT_MAX_PIXELS ((uint64_t)178956970)

/* Decodes a JPEG, PNG, WebP, GIF (first frame), BMP, TIFF (first page) or HEIF/AVIF (primary image)
 * file, detected by content, not by name, into the mode PIL 9.4 opens it in (docs/images.md).
 * max_pixels bounds width * height and is checked from the header before any pixel buffer is
 * allocated (0 = JACLIP_DEFAULT_MAX_PIXELS, or the positive integer in the environment variable
 * JACLIP_MAX_IMAGE_PIXELS when it is set: a malformed value is INVALID_ARGUMENT).
 * Only regular files are read (a FIFO or device is IO, without blocking); the header is read first
 * and no more of the file than its image can need (16 MB plus the pixel data at its worst
 * compression), so trailing bytes past that are never read. A progressive JPEG of more than 500 scans
 * is IMAGE_DECODE. Errors: INVALID_ARGUMENT, IO, IMAGE_DECODE (corrupt, truncated, unknown format),
 * IMAGE_TOO_LARGE, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_image_load(jaclip_image **out, const char *path, uint64_t max_pixels, uint32_t flags);
/* Same from bytes in memory; the bytes are not kept. */
JACLIP_API jaclip_status jaclip_image_load_memory(jaclip_image **out, const void *data, size_t size,
                                                  uint64_t max_pixels, uint32_t flags);
/* Wraps caller-decoded pixels (copied). stride is the byte distance between rows (0 = packed).
 * Errors: INVALID_ARGUMENT (NULL, zero size, stride too small, unknown format), IMAGE_TOO_LARGE. */
JACLIP_API jaclip_status jaclip_image_from_pixels(jaclip_image **out, const void *pixels, uint32_t width,
                                                  uint32_t height, size_t stride, jaclip_pixel_format format);
JACLIP_API void jaclip_image_free(jaclip_image *image);
JACLIP_API uint32_t jaclip_image_width(const jaclip_image *image);  /* NULL: 0 */
JACLIP_API uint32_t jaclip_image_height(const jaclip_image *image); /* NULL: 0 */
/* PIL's name for the decoded mode: "1", "L", "LA", "I" (16-bit grey PNG, 32-bit or signed TIFF), "P",
 * "RGB", "RGBA" or "CMYK" (4-component JPEG, CMYK TIFF; converted to RGB after the crop, as PIL does).
 * NULL for NULL. */
JACLIP_API const char *jaclip_image_mode(const jaclip_image *image);

/* The model's view of one image before normalisation: resize (shorter side to size, PIL's antialiased
 * bilinear), centre crop, RGB conversion, as uint8 [size, size, 3]. Bit-exact with PIL + torchvision.
 * Errors: INVALID_ARGUMENT (NULL, size 0 or > 4096), IMAGE_TOO_LARGE (the resized long side would
 * not fit in an int, as in PIL), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_image_resize_crop(jaclip_tensor **out, const jaclip_image *image, uint32_t size);
/* Full preprocessing of n images into float32 [n, 3, size, size] (NCHW, RGB):
 * resize_crop, then (x / 255 - mean[c]) / std[c]. mean and std point to 3 floats. */
JACLIP_API jaclip_status jaclip_image_preprocess(jaclip_tensor **out, const jaclip_image *const *images, size_t n,
                                                 uint32_t size, const float *mean, const float *std);

/* A time that is not known (a photo without a capture date, a row without one). */
#define JACLIP_TIME_NONE INT64_MIN
/* When the photo in the encoded image file data[0..size) was taken, in ns since the epoch, from its
 * EXIF DateTimeOriginal (tag 0x9003 of the Exif directory; JPEG APP1, PNG eXIf, WebP EXIF, TIFF, HEIF
 * Exif item), read without decoding pixels. EXIF records the camera's wall clock: with
 * OffsetTimeOriginal (0x9011, "+09:00") it is moved to UTC by that offset, without it the wall
 * clock is read in this process's local time zone (TZ, as mktime), the zone the CLI's and serve's
 * --after / --before dates are read in. Seconds resolution; years 1800..2200. DateTime (0x0132) is
 * not used: editors rewrite it. *out_ns = JACLIP_TIME_NONE when there is no such date, or it is
 * malformed ("0000:00:00 00:00:00", out of range, offsets outside the block): never an error.
 * Errors: INVALID_ARGUMENT (NULL out_ns, NULL data with size > 0). Thread-safe. */
JACLIP_API jaclip_status jaclip_image_capture_time(int64_t *out_ns, const void *data, size_t size);

/* ---- Tokenizer ------------------------------------------------------------------------------ */

/* rinna's Japanese tokenizer: per-character lower-casing, special-token splitting, SentencePiece,
 * then [CLS] + ids + [PAD] framing. Immutable after loading: share it between threads freely. */
typedef struct jaclip_tokenizer jaclip_tokenizer;

/* Pass as a length to mean "NUL-terminated". */
#define JACLIP_NUL_TERMINATED ((size_t)-1)
/* The reference context length. */
#define JACLIP_DEFAULT_MAX_LENGTH 77
/* Bounds on what the tokenizer reads (SentencePiece's time grows with the square of a run of unknown
 * characters, its memory by ~100-250 bytes per byte): at most JACLIP_TOKENIZER_MAX_RUN bytes without
 * a space, tab, CR or LF, and JACLIP_TOKENIZER_MAX_SPAN bytes between two special tokens. encode reads
 * of a text only a prefix, cut at whitespace, that gives max_length-1 ids (the same ids as the whole
 * text), so what lies beyond is never read; text over a bound that must be read is INVALID_ARGUMENT. */
#define JACLIP_TOKENIZER_MAX_RUN 65536
#define JACLIP_TOKENIZER_MAX_SPAN (1 << 20)

/* Loads a SentencePiece .model file (a regular file of at most 1 GB; a FIFO or device is IO, without
 * blocking). Errors: INVALID_ARGUMENT, IO, TOKENIZER. */
JACLIP_API jaclip_status jaclip_tokenizer_load(jaclip_tokenizer **out, const char *path);
JACLIP_API jaclip_status jaclip_tokenizer_load_memory(jaclip_tokenizer **out, const void *data, size_t size);
JACLIP_API void jaclip_tokenizer_free(jaclip_tokenizer *tokenizer);
/* Number of pieces in the vocabulary (32000 for rinna's); 0 for NULL. */
JACLIP_API int64_t jaclip_tokenizer_vocab_size(const jaclip_tokenizer *tokenizer);
/* The piece of an id ("▁", "犬"); NULL for NULL or an id out of range. Borrowed. */
JACLIP_API const char *jaclip_tokenizer_id_to_piece(const jaclip_tokenizer *tokenizer, int64_t id);

/* Frames n texts as the model reads them: out_ids and out_mask are int64 [n, max_length]; row i is
 * [CLS] + the first max_length-1 ids of text i + [PAD]... ; mask 1 for [CLS] and real ids, 0 for
 * padding. lengths may be NULL (all NUL-terminated) or give each text's byte length
 * (JACLIP_NUL_TERMINATED allowed per entry). max_length 0 means 77; otherwise 2..4096.
 * out_mask may be NULL. Only as much of a text as gives max_length-1 ids is tokenized (the ids are
 * those of the whole text); all of it is checked as UTF-8. Errors: INVALID_ARGUMENT (also text over
 * JACLIP_TOKENIZER_MAX_RUN / _MAX_SPAN that must be read), INVALID_UTF8 (message names the text and
 * byte offset), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_tokenizer_encode(jaclip_tensor **out_ids, jaclip_tensor **out_mask,
                                                 const jaclip_tokenizer *tokenizer, const char *const *texts,
                                                 const size_t *lengths, size_t n, size_t max_length);
/* Every id of one text before framing and truncation (no [CLS], no padding) as int64 [count]; a count
 * over max_length-1 means the model will see a truncated text. Pieces via _id_to_piece. Errors as
 * _encode; it reads the whole text, so a run or span over the bounds anywhere is INVALID_ARGUMENT. */
JACLIP_API jaclip_status jaclip_tokenizer_tokenize(jaclip_tensor **out_ids, const jaclip_tokenizer *tokenizer,
                                                   const char *text, size_t length);

/* ---- Model ---------------------------------------------------------------------------------- */

/* A loaded model. After loading it is safe to share between threads: any number of threads may call
 * the encode functions on one model at once. Free it only when no call is running. */
typedef struct jaclip_model jaclip_model;
/* Load-time options; grows by new setters, never by changing a layout. One thread at a time. */
typedef struct jaclip_model_options jaclip_model_options;

typedef enum jaclip_precision {
    /* As stored in the model file, except that a bf16 file runs in fp32 (weights widened at load) on a
     * CPU without native bf16 (AVX512_BF16 or AMX-BF16), where bf16 is many times slower than fp32.
     * jaclip_model_precision() says what runs, jaclip_model_precision_reason() why. */
    JACLIP_PRECISION_DEFAULT = 0,
    JACLIP_PRECISION_FP32 = 1,
    /* bfloat16 weights and activations: faster where bf16 is native, slightly different features.
     * Asked for explicitly it runs bf16 on any CPU, slow ones included. */
    JACLIP_PRECISION_BF16 = 2,
    /* int8 Linear layers (dynamic quantization, oneDNN), CPU only: only for a file converted with
     * jaclip-convert --dtype int8, which is also what DEFAULT runs for such a file. */
    JACLIP_PRECISION_INT8 = 3,
    /* The fastest precision measured on this kind of device whose features stay at cosine >= 0.999 to
     * fp32 (docs/precision.md): INT8_WEIGHTS on a CPU with AVX512-VNNI and no AMX (cosine 0.9996), else
     * bf16 on a CPU with native bf16 (AVX512_BF16 or AMX-BF16: 1.4-3.6x fp32, cosine 0.9998), else as
     * DEFAULT (fp32 files stay fp32; int8 files, below that bar, run int8 only because that is all they
     * hold). Never reported by jaclip_model_precision(), which says what runs. */
    JACLIP_PRECISION_AUTO = 4,
    /* Every Linear layer's weights quantized to int8 at load (per output channel) and its input per
     * row, multiplied in exact int32 arithmetic by libjaclip's own kernel (AVX512-VNNI where the CPU has
     * it, portable C elsewhere: the same numbers, many times slower); everything else in fp32, except
     * large attention products: bf16 on oneDNN where bf16 is native. From an fp32 or bf16 file, CPU
     * only. The Linear layers treat each row alone and keep no state, so a new input costs what a
     * repeated one does (docs/precision.md: speed and cosine to fp32). */
    JACLIP_PRECISION_INT8_WEIGHTS = 5
} jaclip_precision;

/* Options with every default: device "cpu", threads 0 (all cores this process may use), precision
 * as stored, pixel limit JACLIP_DEFAULT_MAX_PIXELS, image flags JACLIP_IMAGE_DEFAULT. */
JACLIP_API jaclip_status jaclip_model_options_create(jaclip_model_options **out);
JACLIP_API void jaclip_model_options_free(jaclip_model_options *options);
/* "cpu", "cuda" or "cuda:N" (copied). Errors: INVALID_ARGUMENT for anything else. Whether the device
 * exists is checked at load (JACLIP_ERROR_DEVICE_UNAVAILABLE). */
JACLIP_API jaclip_status jaclip_model_options_set_device(jaclip_model_options *options, const char *device);
/* How many cores the model's computation may use: 0 = the cores this process may use, else 1..1024.
 * Each encode call applies the model's setting to libtorch's thread pool for the calling thread. Where
 * libtorch's BLAS is OpenBLAS (Debian), fp32 runs one torch thread over OpenBLAS's own pool, and a
 * non-zero value also sizes that pool: PROCESS-WIDE, for every model and every other OpenBLAS user in
 * the process (numpy included). */
JACLIP_API jaclip_status jaclip_model_options_set_num_threads(jaclip_model_options *options, int32_t num_threads);
JACLIP_API jaclip_status jaclip_model_options_set_precision(jaclip_model_options *options, jaclip_precision precision);
/* Pixel limit for images the model decodes itself (0 = default). */
JACLIP_API jaclip_status jaclip_model_options_set_max_image_pixels(jaclip_model_options *options, uint64_t max_pixels);
/* JACLIP_IMAGE_* flags for images the model decodes itself. Errors: INVALID_ARGUMENT on unknown bits. */
JACLIP_API jaclip_status jaclip_model_options_set_image_flags(jaclip_model_options *options, uint32_t flags);

/* Loads a model file written by tools/jaclip-convert; options may be NULL (defaults). The file is
 * mapped once: the archive is checked and libtorch reads those same bytes (a file replaced meanwhile is
 * never read). Errors: INVALID_ARGUMENT, IO (missing or unreadable file, not a regular file),
 * MODEL_FORMAT (not a jaclip model, a format version this library does not read, methods with the
 * wrong signature, a damaged archive, an image_mean / image_std that would normalise pixels beyond
 * +-1e4, e.g. a std of 1e-40), DEVICE_UNAVAILABLE, TOKENIZER, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_model_load(jaclip_model **out, const char *path, const jaclip_model_options *options);
/* Same from a model file's bytes in memory (copied while loading; not kept). */
JACLIP_API jaclip_status jaclip_model_load_memory(jaclip_model **out, const void *data, size_t size,
                                                  const jaclip_model_options *options);
JACLIP_API void jaclip_model_free(jaclip_model *model);

/* Introspection; 0 / NULL for NULL. */
JACLIP_API int64_t jaclip_model_embedding_dim(const jaclip_model *model);      /* 512 for rinna's */
JACLIP_API int64_t jaclip_model_image_size(const jaclip_model *model);         /* 224 */
JACLIP_API int64_t jaclip_model_max_text_length(const jaclip_model *model);    /* 77 */
JACLIP_API const char *jaclip_model_device(const jaclip_model *model);         /* "cpu", "cuda:0" */
JACLIP_API jaclip_precision jaclip_model_precision(const jaclip_model *model); /* what runs: FP32, BF16, INT8 */
/* The image mean and std the model normalises with (3 floats each, borrowed). */
JACLIP_API const float *jaclip_model_image_mean(const jaclip_model *model);
JACLIP_API const float *jaclip_model_image_std(const jaclip_model *model);
/* The tokenizer stored in the model file (borrowed; lives as long as the model). */
JACLIP_API const jaclip_tokenizer *jaclip_model_tokenizer(const jaclip_model *model);

/* Image features from preprocessed pixels: pixel_values float32 [N, 3, S, S] (S = image size, N >= 1)
 * → out float32 [N, D]. Errors: INVALID_ARGUMENT, SHAPE, BACKEND, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_model_encode_pixel_values(jaclip_tensor **out, const jaclip_model *model,
                                                          const jaclip_tensor *pixel_values);
/* Text features from framed ids: input_ids and attention_mask int64 [N, L] (2 <= L <= the model's
 * position limit), as jaclip_tokenizer_encode gives them → out float32 [N, D]. Ids must be in
 * 0..vocab-1 and mask values 0 or 1. Errors: INVALID_ARGUMENT, SHAPE, BACKEND. */
JACLIP_API jaclip_status jaclip_model_encode_token_ids(jaclip_tensor **out, const jaclip_model *model,
                                                       const jaclip_tensor *input_ids,
                                                       const jaclip_tensor *attention_mask);
/* Tokenise (with the model's tokenizer and context length) and encode n texts → [n, D]. lengths as in
 * jaclip_tokenizer_encode. */
JACLIP_API jaclip_status jaclip_model_encode_texts(jaclip_tensor **out, const jaclip_model *model,
                                                   const char *const *texts, const size_t *lengths, size_t n);
/* Preprocess with the model's size, mean and std, and encode n images → [n, D]. */
JACLIP_API jaclip_status jaclip_model_encode_images(jaclip_tensor **out, const jaclip_model *model,
                                                    const jaclip_image *const *images, size_t n);
/* Decode (with the model's pixel limit and flags), preprocess and encode n files → [n, D]. The
 * message of a failure names the file. Headers are read first: an image too elongated to resize to
 * the model's size is IMAGE_TOO_LARGE before decoding. Decoders run in parallel within a memory budget
 * (1 GB by the headers' estimates; a larger image is decoded alone), each image reduced to model size
 * at once, so peak memory is about max(1 GB, one image) whatever n is. */
JACLIP_API jaclip_status jaclip_model_encode_image_files(jaclip_tensor **out, const jaclip_model *model,
                                                         const char *const *paths, size_t n);
/* Same from n encoded images in memory. */
JACLIP_API jaclip_status jaclip_model_encode_image_buffers(jaclip_tensor **out, const jaclip_model *model,
                                                           const void *const *data, const size_t *sizes, size_t n);
/* Hears of each image a *_skipping encoder leaves out, in input order, on the calling thread: its
 * index, its status (JACLIP_ERROR_IO, JACLIP_ERROR_IMAGE_DECODE or JACLIP_ERROR_IMAGE_TOO_LARGE) and
 * the library's message, valid only during the call. */
typedef void (*jaclip_skip_callback)(void *user, size_t index, jaclip_status status, const char *message);
/* jaclip_model_encode_image_files, but an image that cannot be read, cannot be decoded or is over the
 * pixel limit is left out instead of failing the call (a photo folder with one broken file): *out is
 * float32 [k, D], a row per image that encoded, in input order; *out_kept (if not NULL) int64 [k],
 * their indices in paths. on_skip (may be NULL) is called for each image left out. Any other failure
 * fails the call (OUT_OF_MEMORY, BACKEND, INVALID_ARGUMENT for NULL arguments). Where images were left
 * out, the others are encoded in other batches than the plain call's, so their rows may differ from it
 * in the last bits (docs/determinism.md). Threads: as jaclip_model_encode_image_files. */
JACLIP_API jaclip_status jaclip_model_encode_image_files_skipping(jaclip_tensor **out, jaclip_tensor **out_kept,
                                                                  const jaclip_model *model, const char *const *paths,
                                                                  size_t n, jaclip_skip_callback on_skip, void *user);
/* Same from n encoded images in memory. */
JACLIP_API jaclip_status jaclip_model_encode_image_buffers_skipping(jaclip_tensor **out, jaclip_tensor **out_kept,
                                                                    const jaclip_model *model,
                                                                    const void *const *data, const size_t *sizes,
                                                                    size_t n, jaclip_skip_callback on_skip,
                                                                    void *user);
/* The float32 [n, 3, S, S] input the model would see for these images (for checking parity). */
JACLIP_API jaclip_status jaclip_model_preprocess_images(jaclip_tensor **out, const jaclip_model *model,
                                                        const jaclip_image *const *images, size_t n);

/* ---- Index ---------------------------------------------------------------------------------- */

/* An exact cosine-similarity index: rows of embeddings, each with a UTF-8 label (an image's path, an
 * id). Rows are stored L2-normalised (a zero row stays zero), so a search scores cos(query, row).
 * Threads: const functions (size, dim, label, find_label, embeddings, search, save) may run on one
 * index from any number of threads at once; add and free need the index to themselves. The file format
 * is docs/index-format.md: versioned, little-endian, CRC32-checked, and appendable in place. */
typedef struct jaclip_index jaclip_index;

/* Flags for jaclip_index_load (bitwise OR). */
#define JACLIP_INDEX_DEFAULT 0u
/* Map the file instead of reading it: the rows are used where they lie in the page cache, not copied.
 * The file must not be truncated or rewritten in place while mapped (jaclip_index_save replaces it by
 * rename and jaclip_index_append_file only writes past the loaded part, so both are safe). */
#define JACLIP_INDEX_MMAP 1u
/* Skip the CRC32 of the vector data (for opening a large trusted file quickly). Lengths, labels and
 * every header are still checked, so a damaged file can give wrong scores but never a crash. */
#define JACLIP_INDEX_NO_CHECKSUM 2u

/* Largest embedding width an index accepts. */
#define JACLIP_INDEX_MAX_DIM 65536

/* An empty index of dim-wide rows (1..JACLIP_INDEX_MAX_DIM). Errors: INVALID_ARGUMENT, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_create(jaclip_index **out, size_t dim);
/* Frees the index and, for a mapped one, unmaps the file. NULL is a no-op. */
JACLIP_API void jaclip_index_free(jaclip_index *index);

/* Appends the N rows of embeddings (float32 [N, dim], copied and L2-normalised) with labels[0..N-1]
 * (copied; need not be unique). Nothing is added on failure. Invalidates pointers from
 * jaclip_index_label. Errors: INVALID_ARGUMENT (NULL index, embeddings or labels, a NULL label, a
 * non-finite value: the message names the row), SHAPE (not 2-D float32, width != dim), INVALID_UTF8,
 * OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_add(jaclip_index *index, const jaclip_tensor *embeddings,
                                          const char *const *labels);

/* Number of rows; 0 for NULL. */
JACLIP_API size_t jaclip_index_size(const jaclip_index *index);
/* Row width; 0 for NULL. */
JACLIP_API size_t jaclip_index_dim(const jaclip_index *index);
/* The label of row i, borrowed: valid until the next jaclip_index_add on this index or its free.
 * NULL for NULL or i >= size. */
JACLIP_API const char *jaclip_index_label(const jaclip_index *index, size_t i);
/* The lowest row whose label equals label (byte for byte), in constant expected time; for resuming an
 * interrupted build. Errors: INVALID_ARGUMENT (NULL), NOT_FOUND (no such label; *out is SIZE_MAX). */
JACLIP_API jaclip_status jaclip_index_find_label(size_t *out, const jaclip_index *index, const char *label);
/* A copy of rows first..first+count-1 as stored (L2-normalised), float32 [count, dim].
 * Errors: INVALID_ARGUMENT (NULL, range past the end), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_embeddings(jaclip_tensor **out, const jaclip_index *index, size_t first,
                                                 size_t count);

/* Exact top-k by cosine similarity for each row of queries (float32 [Q, dim]; each query is
 * L2-normalised first). out_indices is int64 [Q, k'], out_scores float32 [Q, k'] with
 * k' = min(k, size), best first, ties to the lower row; either out may be NULL if not wanted. Scans
 * with up to one thread per core on large indexes. Errors: INVALID_ARGUMENT (NULL index or queries,
 * both outs NULL, k == 0, a non-finite query value), SHAPE (not 2-D float32, width != dim),
 * OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_search(jaclip_tensor **out_indices, jaclip_tensor **out_scores,
                                             const jaclip_index *index, const jaclip_tensor *queries, size_t k);

/* Writes the whole index to path atomically and durably: a temporary file beside it is written,
 * synced and renamed over path, so readers see the old file or the new one, never a mix.
 * Errors: INVALID_ARGUMENT, IO (the message names the file and the system error). */
JACLIP_API jaclip_status jaclip_index_save(const jaclip_index *index, const char *path);
/* Appends rows (as jaclip_index_add takes them) to an existing index file in place, durably: the new
 * segment is written and synced before the header that commits it, so an interruption at any moment
 * leaves the file holding either the old rows or the old rows plus these. Holds an exclusive flock()
 * while writing, so concurrent appenders queue instead of interleaving. An empty embeddings [0, dim]
 * is a no-op. Errors: INVALID_ARGUMENT, SHAPE (width differs from the file's dim), INVALID_UTF8,
 * IO, INDEX_FORMAT (path is not a usable index file). */
JACLIP_API jaclip_status jaclip_index_append_file(const char *path, const jaclip_tensor *embeddings,
                                                  const char *const *labels);
/* Loads an index file written by jaclip_index_save / _append_file. flags: JACLIP_INDEX_*. Every length
 * is checked against the file size before use, and every header and (unless NO_CHECKSUM) all data
 * against its CRC32. The result may be added to; added rows live in memory until saved.
 * Errors: INVALID_ARGUMENT (NULL, unknown flag), IO, INDEX_FORMAT (foreign, truncated or corrupted
 * file, or a format version this library does not read; the message says which and where),
 * OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_load(jaclip_index **out, const char *path, uint32_t flags);

/* ---- model identity ------------------------------------------------------------------------------ */

/* A short ASCII string naming the model's weights: "FAMILY-DIM-DIGEST", e.g. "cloob-512-1f0e…" (16 hex
 * digits: a 64-bit digest of every entry of the model file, weights included, read from its directory
 * without reading the weights). Equal for the same model file loaded on any device or precision;
 * different for another checkpoint or another conversion of it (fp32 and bf16 files differ). Files
 * derived from a model (indexes, classifiers) store it so that another model is refused. Borrowed:
 * lives as long as the model. NULL for NULL. Thread-safe. */
JACLIP_API const char *jaclip_model_fingerprint(const jaclip_model *model);

/* ---- precision and the CPU ----------------------------------------------------------------------- */

/* One sentence saying why the model computes in jaclip_model_precision(): as stored, asked for, or a
 * bf16 file widened to fp32 because bf16 is not native here. Starts with "fp32: ", "bf16: " or
 * "int8: ". Borrowed: lives as long as the model. NULL for NULL. Thread-safe. */
JACLIP_API const char *jaclip_model_precision_reason(const jaclip_model *model);
/* The CPU features that choose precision and kernels, detected once per process with cpuid: a space-
 * separated list from "avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8" (empty on other
 * architectures). Environment: JACLIP_NATIVE_BF16=0 or 1 overrides the bf16 decision (not this list).
 * Static storage; thread-safe. */
JACLIP_API const char *jaclip_cpu_features(void);

/* ---- index merge (shards of a distributed run) --------------------------------------------------- */

/* Flags for jaclip_index_merge (bitwise OR). */
#define JACLIP_INDEX_MERGE_DEFAULT 0u
/* Refuse the merge if any label occurs more than once over all the shards (a shard given twice, two
 * runs over the same files); the message names the label and the shards that hold it. */
#define JACLIP_INDEX_MERGE_UNIQUE_LABELS 1u

/* Writes one index file at path holding the rows of the n index files shards[0..n-1] (n >= 1), in
 * that order, each with its label. Every shard is read with its checksums verified and all must have
 * the same dim. The output is built beside path under a temporary name and renamed over path only
 * when complete, so on any failure path is left as it was (absent or the old file) and nothing else
 * remains; path may be one of the shards. Memory: one block of rows at a time, not the whole output.
 * The output records what the shards record: their model fingerprint, the first shard's row format
 * and each row's stamp (jaclip_index_stamp_of), so it syncs like the shards would.
 * Errors: INVALID_ARGUMENT (NULL path or shards, a NULL shard, n == 0, an unknown flag, a duplicate
 * label under JACLIP_INDEX_MERGE_UNIQUE_LABELS), IO, INDEX_FORMAT (a damaged, truncated or foreign
 * shard), SHAPE (a shard's dim differs from the first's), MODEL_MISMATCH (a shard records another
 * fingerprint than the first, or none where the first records one), OUT_OF_MEMORY; the message names
 * the shard.
 * Thread-safe for distinct paths. */
JACLIP_API jaclip_status jaclip_index_merge(const char *path, const char *const *shards, size_t n, uint32_t flags);

/* ---- Index: deletion, file stamps, model fingerprint, float16 rows --------------------------------- */

/* Row storage of an index (jaclip_index_set_row_format). float16 halves memory and file size; scores
 * differ from float32 rows by about 1e-3 (docs/search-guide.md has the recall measured). */
#define JACLIP_INDEX_ROWS_FLOAT32 0u
#define JACLIP_INDEX_ROWS_FLOAT16 1u

/* What a row was made from, for keeping an index in step with a folder (jaclip index sync): the
 * file's size, modification time (ns since the epoch) and a 64-bit hash of its content. All zero when
 * not recorded. Layout fixed: three 8-byte fields. */
typedef struct jaclip_index_stamp {
    uint64_t size;
    int64_t mtime_ns;
    uint64_t content_hash;
} jaclip_index_stamp;

/* Removes every row whose label equals one of labels[0..n-1] (byte for byte) from the index in
 * memory; the rows after them move down (row ids change, as after a reload). *out_removed (may be
 * NULL) gets the number of rows removed; labels not present are not an error. The file is untouched:
 * save, or use jaclip_index_remove_file. Invalidates pointers from jaclip_index_label. Needs the index
 * to itself, like add. Errors: INVALID_ARGUMENT (NULL index, NULL labels with n > 0, a NULL label),
 * OUT_OF_MEMORY (then nothing is removed). */
JACLIP_API jaclip_status jaclip_index_remove(jaclip_index *index, const char *const *labels, size_t n,
                                             size_t *out_removed);
/* The stamp of row i (zeros if none was recorded). Errors: INVALID_ARGUMENT (NULL, i >= size). */
JACLIP_API jaclip_status jaclip_index_stamp_of(jaclip_index_stamp *out, const jaclip_index *index, size_t i);

/* Where a row's time (jaclip_index_row_time) comes from. */
#define JACLIP_ROW_TIME_NONE 0  /* nothing recorded: no capture time and no stamp */
#define JACLIP_ROW_TIME_EXIF 1  /* the capture time recorded with the row (jaclip_image_capture_time) */
#define JACLIP_ROW_TIME_MTIME 2 /* the file's modification time from its stamp (no capture time) */
/* The time of row i that date filters (jaclip_search_options_set_time_range) compare: its recorded
 * capture time, else its stamp's mtime_ns (rows of files without EXIF dates, and rows written before
 * capture times were stored), else none (*out_ns = JACLIP_TIME_NONE). *out_source (may be NULL) gets
 * JACLIP_ROW_TIME_*. Errors: INVALID_ARGUMENT (NULL out_ns or index, i >= size). Thread-safe like
 * the other const functions. */
JACLIP_API jaclip_status jaclip_index_row_time(int64_t *out_ns, int *out_source, const jaclip_index *index, size_t i);

/* JACLIP_INDEX_ROWS_* of the index (FLOAT32 for NULL). A loaded index has its file's format. */
JACLIP_API uint32_t jaclip_index_row_format(const jaclip_index *index);
/* Chooses how rows are stored (before any row is added: INVALID_ARGUMENT otherwise). Rows are
 * normalised in float32, then rounded to nearest. Saved files and their appends keep the format. */
JACLIP_API jaclip_status jaclip_index_set_row_format(jaclip_index *index, uint32_t row_format);

/* The fingerprint of the model that made the rows (jaclip_model_fingerprint), saved in the file; ""
 * when none is recorded (files written before format version 2, or never set). Borrowed. NULL for
 * NULL. */
JACLIP_API const char *jaclip_index_fingerprint(const jaclip_index *index);
/* Records fingerprint (1..55 printable ASCII characters; NULL or "" clears it), copied. Errors:
 * INVALID_ARGUMENT. */
JACLIP_API jaclip_status jaclip_index_set_fingerprint(jaclip_index *index, const char *fingerprint);
/* Flag for jaclip_index_check_fingerprint: an index that records no fingerprint passes. */
#define JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN 1u
/* Whether queries from the model of this fingerprint may search the index: OK when the index
 * records the same fingerprint. MODEL_MISMATCH (naming both) when it records another, or none
 * (unless JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN). Searching anyway is the caller's choice ("forced":
 * jaclip_index_search itself does not know the model). Errors: INVALID_ARGUMENT (NULL, unknown flag),
 * MODEL_MISMATCH. Thread-safe like the other const functions. */
JACLIP_API jaclip_status jaclip_index_check_fingerprint(const jaclip_index *index, const char *fingerprint,
                                                        uint32_t flags);

/* In one durable commit on the file at path: deletes every live row whose label is one of
 * remove_labels[0..nremove-1] (recorded as a tombstone segment), then appends the rows of embeddings
 * (NULL: none) with labels and stamps (NULL: none recorded), normalised as add does and stored in the
 * file's row format. An interruption at any moment leaves the file as it was before or after the
 * whole call, never between (so a re-embedded file is never lost or doubled). Holds the file's
 * exclusive flock() while writing, like jaclip_index_append_file; a version 1 file is first rewritten
 * as version 2 (atomically). *out_removed (may be NULL) gets the rows deleted. Readers and mappings of
 * the file stay valid. Errors: as jaclip_index_append_file. */
JACLIP_API jaclip_status jaclip_index_replace_file(const char *path, const char *const *remove_labels, size_t nremove,
                                                   const jaclip_tensor *embeddings, const char *const *labels,
                                                   const jaclip_index_stamp *stamps, size_t *out_removed);
/* jaclip_index_replace_file that also records each appended row's capture time: capture_ns[0..N-1]
 * in ns since the epoch (jaclip_image_capture_time; JACLIP_TIME_NONE: none, the row's date is then
 * its stamp's mtime), or capture_ns NULL for none. A file that records any capture time becomes index
 * format version 4 (older libraries refuse it by its version; docs/index-format.md); rows without
 * one are written as before. Errors: as jaclip_index_replace_file. */
JACLIP_API jaclip_status jaclip_index_replace_file_timed(const char *path, const char *const *remove_labels,
                                                         size_t nremove, const jaclip_tensor *embeddings,
                                                         const char *const *labels, const jaclip_index_stamp *stamps,
                                                         const int64_t *capture_ns, size_t *out_removed);
/* jaclip_index_replace_file with nothing appended. */
JACLIP_API jaclip_status jaclip_index_remove_file(const char *path, const char *const *labels, size_t n,
                                                  size_t *out_removed);
/* Rewrites the file at path with only its live rows (dropping deleted rows and tombstones), as format
 * version 2, atomically (temporary file + rename, keeping the file's permissions) under its flock();
 * fingerprint (NULL: keep the file's) is recorded. Errors: INVALID_ARGUMENT, IO, INDEX_FORMAT,
 * OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_compact_file(const char *path, const char *fingerprint);

/* Metadata of an index: up to 64 key = value strings saying how its rows were made, saved in the file
 * (format version 3, written only by files that hold some, so files without stay readable by older
 * libraries) and kept by append, removal, compaction and merge. Keys: 1..64 characters of a-z 0-9 _ . -;
 * values: UTF-8, at most 4096 bytes. The keys the jaclip command writes (docs/index-format.md): */
#define JACLIP_INDEX_META_ROOT "root"               /* absolute folder that relative labels start from */
#define JACLIP_INDEX_META_LABELS "labels"           /* "absolute" or "relative" (to root) */
#define JACLIP_INDEX_META_ORIENTATION "orientation" /* "exif-transpose" or "as-stored" */
/* The value of key, borrowed (valid until the next set_metadata of that key or the free); NULL when
 * absent, or for NULL. Thread-safe like the other const functions. */
JACLIP_API const char *jaclip_index_metadata(const jaclip_index *index, const char *key);
/* Sets key to value (copied) in memory, or removes it (value NULL); saved by jaclip_index_save. Needs
 * the index to itself, like add. Errors: INVALID_ARGUMENT (NULL index or key, a bad key, a value over
 * 4096 bytes, a 65th key), INVALID_UTF8, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_set_metadata(jaclip_index *index, const char *key, const char *value);
/* Sets or removes key in the index file at path in one durable commit under the file's flock() (as
 * jaclip_index_replace_file; a version 1 or 2 file becomes version 3, its rows untouched). Setting
 * the value it already has writes nothing. Errors: those of jaclip_index_set_metadata, IO,
 * INDEX_FORMAT. */
JACLIP_API jaclip_status jaclip_index_set_metadata_file(const char *path, const char *key, const char *value);
/* jaclip_index_metadata(index, JACLIP_INDEX_META_ROOT): the folder that the labels are relative to,
 * recorded by `jaclip index build --root`; NULL when labels are absolute or nothing is recorded. */
JACLIP_API const char *jaclip_index_root(const jaclip_index *index);
/* Rows deleted in the file the index was loaded from but still stored there (tombstoned; they take
 * space and load time until jaclip_index_compact_file drops them); 0 for an index not loaded from a
 * file, and for NULL. */
JACLIP_API size_t jaclip_index_deleted_rows(const jaclip_index *index);

/* Search options: which rows a search may return and which ranks it returns. Filters are applied
 * before ranking, so k results come back whenever k rows pass. Scores are cosines in [-1, 1].
 * Created with no filter, offset 0 and no threshold; free(NULL) is a no-op. An options object may be
 * used by any number of concurrent searches while nobody sets it. */
typedef struct jaclip_search_options jaclip_search_options;
JACLIP_API jaclip_status jaclip_search_options_create(jaclip_search_options **out);
JACLIP_API void jaclip_search_options_free(jaclip_search_options *options);
/* Skip the offset best results (pagination: page p of size k is offset p * k). */
JACLIP_API jaclip_status jaclip_search_options_set_offset(jaclip_search_options *options, size_t offset);
/* Results scoring below min_score (a cosine; -INFINITY: none) come back as row -1, score -INFINITY,
 * after the results above it. Errors: INVALID_ARGUMENT (NaN, above 1). */
JACLIP_API jaclip_status jaclip_search_options_set_threshold(jaclip_search_options *options, float min_score);
/* Only rows whose label lies in folder: the label starts with folder followed by '/' (a trailing '/'
 * of folder is ignored; "/" is every absolute label), so "a/b" holds "a/b/c.jpg" and "a/b/d/e.jpg"
 * but not "a/bc.jpg". Compared as labels are stored (absolute, or relative to the index's root).
 * NULL or "" removes the filter. Errors: INVALID_ARGUMENT, INVALID_UTF8, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_search_options_set_folder(jaclip_search_options *options, const char *folder);
/* Only rows whose time (jaclip_index_row_time: the photo's EXIF capture time recorded by jaclip index
 * build/sync, else its file stamp's modification time) is in [from_ns, to_ns); rows with neither
 * never pass. INT64_MIN, INT64_MAX removes the filter. Errors: INVALID_ARGUMENT (from_ns >= to_ns). */
JACLIP_API jaclip_status jaclip_search_options_set_time_range(jaclip_search_options *options, int64_t from_ns,
                                                              int64_t to_ns);
/* Adds a file type: rows whose label ends in "." extension (letter case ignored; a leading '.' of
 * extension is dropped) pass; with several, any of them. Errors: INVALID_ARGUMENT (NULL, empty, over
 * 15 characters, a 33rd type). */
JACLIP_API jaclip_status jaclip_search_options_add_file_type(jaclip_search_options *options, const char *extension);
/* jaclip_index_search restricted and paged by options (NULL: jaclip_index_search itself). k' =
 * min(k, rows passing - offset), 0 when none are left; rows below the threshold are -1 / -INFINITY.
 * Errors: those of jaclip_index_search, OUT_OF_MEMORY. Thread-safe like jaclip_index_search. */
JACLIP_API jaclip_status jaclip_index_search_with(jaclip_tensor **out_indices, jaclip_tensor **out_scores,
                                                  const jaclip_index *index, const jaclip_tensor *queries, size_t k,
                                                  const jaclip_search_options *options);
/* Duplicates (docs/duplicates.md): groups of rows that are exact duplicates (their file stamps record
 * the same nonzero content hash and size, as jaclip index build/sync write them) or near duplicates
 * (cosine at or above a threshold, default 0.95), joined transitively. Near pairs are found by
 * locality-sensitive hashing (24 tables of 16 random-hyperplane bits, up to 39 of 20 bits for more
 * rows) and then scored exactly, never
 * by scoring all pairs (1 M rows: 0.2 % of an all-rows k-NN; docs/duplicates.md); a pair at cosine
 * 0.95 is found with probability 0.992, at 0.97 above 0.9995. Groups come in a stable order (by their lowest row), rows increasing; the
 * options choose a page of them. Options: created with threshold 0.95, exact and near, every group;
 * usable by concurrent calls while nobody sets them; free(NULL) is a no-op. */
typedef struct jaclip_dupes_options jaclip_dupes_options;
typedef struct jaclip_dupes jaclip_dupes;
JACLIP_API jaclip_status jaclip_dupes_options_create(jaclip_dupes_options **out);
JACLIP_API void jaclip_dupes_options_free(jaclip_dupes_options *options);
/* The near-duplicate cosine (in [0.5, 1]). Errors: INVALID_ARGUMENT (NULL, NaN, out of range). */
JACLIP_API jaclip_status jaclip_dupes_options_set_threshold(jaclip_dupes_options *options, float min_cosine);
/* Nonzero: exact duplicates only (no cosine is computed). */
JACLIP_API jaclip_status jaclip_dupes_options_set_exact_only(jaclip_dupes_options *options, int exact_only);
/* Groups offset .. offset + limit - 1 of the stable order (limit 0: all from offset). */
JACLIP_API jaclip_status jaclip_dupes_options_set_page(jaclip_dupes_options *options, size_t offset, size_t limit);
/* The duplicate groups of index (options NULL: the defaults) into *out (free with jaclip_dupes_free;
 * it does not borrow the index). Reads the index like a search: any number of calls and searches may
 * run at once while nobody adds to or removes from it. Keys the rows on up to the usable cores (as a
 * search scans them); uses at most about 190 bytes a row of working memory.
 * Errors: INVALID_ARGUMENT (NULL out or index), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_index_duplicates(jaclip_dupes **out, const jaclip_index *index,
                                                 const jaclip_dupes_options *options);
JACLIP_API void jaclip_dupes_free(jaclip_dupes *dupes);
/* Groups in all pages / in this one (0 for NULL). */
JACLIP_API size_t jaclip_dupes_total(const jaclip_dupes *dupes);
JACLIP_API size_t jaclip_dupes_count(const jaclip_dupes *dupes);
/* Rows in group g of this page (0 when out of range); 1 when every row records one content hash. */
JACLIP_API size_t jaclip_dupes_group_size(const jaclip_dupes *dupes, size_t group);
JACLIP_API int jaclip_dupes_group_exact(const jaclip_dupes *dupes, size_t group);
/* Member j of group g: its row id and its cosine to the group's first row (1 for the first). Either
 * out may be NULL. Errors: INVALID_ARGUMENT (NULL dupes, g or j out of range). */
JACLIP_API jaclip_status jaclip_dupes_member(size_t *out_row, float *out_score, const jaclip_dupes *dupes, size_t group,
                                             size_t j);
/* ---- Approximate search (ANN) over an index -------------------------------------------------- */

/* A faiss structure (lib/ann/ann.c; faiss itself lives in the plugin libjaclip-faiss.so.1, beside
 * libjaclip.so or named by $JACLIP_FAISS_PLUGIN) built over the rows of one jaclip_index, scoring by
 * inner product on the stored L2-normalised rows, i.e. cosine as jaclip_index_search. Results are
 * re-scored against the index's exact rows, so scores are exact cosines; only which rows are found is
 * approximate. The ANN borrows its index: the index must outlive it and must not be added to meanwhile
 * (a search then fails). Threads: search may run from any number of threads at once; set_params, save
 * and free need the ANN to themselves. File format: docs/ann.md (its own checksummed header naming
 * the row count and a fingerprint of the rows, so a stale or damaged file is refused). */
typedef struct jaclip_ann jaclip_ann;

/* Values never change; new ones are only appended. */
typedef enum jaclip_ann_kind {
    JACLIP_ANN_AUTO = 0,     /* by size: EXACT below JACLIP_ANN_EXACT_BELOW rows, IVF_FLAT below
                                JACLIP_ANN_PQ_FROM, IVF_PQ from there */
    JACLIP_ANN_EXACT = 1,    /* no structure: search is jaclip_index_search */
    JACLIP_ANN_IVF_FLAT = 2, /* inverted lists of full vectors (a second copy of the rows) */
    JACLIP_ANN_IVF_PQ = 3,   /* inverted lists of 8-bit product codes (dim/16 bytes a row), re-ranked */
    JACLIP_ANN_HNSW = 4      /* HNSW graph over full vectors (slow to build, chosen only on request) */
} jaclip_ann_kind;

#define JACLIP_ANN_EXACT_BELOW 20000
#define JACLIP_ANN_PQ_FROM 200000

/* Builds the ANN of kind over every row of index (the kind's minimum rows: IVF_FLAT 64, IVF_PQ
 * 10000, HNSW 2; AUTO never asks for more than there are). flags must be 0. Takes seconds per 100 k
 * rows for IVF kinds, several times that for HNSW, using every core. Errors: INVALID_ARGUMENT (NULL, unknown kind or flag, too few rows for the kind),
 * BACKEND (faiss plugin missing or faiss failed; the message says which), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_ann_build(jaclip_ann **out, const jaclip_index *index, jaclip_ann_kind kind,
                                          uint32_t flags);
/* Loads an ANN file written by jaclip_ann_save for index. The header is checked (magic, version,
 * CRC32 of itself and of the faiss data) and must name index's dim, row count and row fingerprint
 * (a digest of every row and label, recomputed here: a pass over the index), and the faiss data
 * must then pass a check of every field faiss trusts (sizes, counts, ids, links, finite floats: a
 * forged file with valid CRCs is refused too), before any byte reaches faiss; flags must be 0.
 * Errors: INVALID_ARGUMENT, IO, INDEX_FORMAT (damaged, forged or foreign file, or stale: built from
 * other rows; the message says which, so a caller may rebuild), BACKEND, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_ann_load(jaclip_ann **out, const char *path, const jaclip_index *index, uint32_t flags);
/* Writes the ANN to path atomically (temporary file, fsync, rename). Errors: INVALID_ARGUMENT, IO,
 * BACKEND, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_ann_save(const jaclip_ann *ann, const char *path);
/* NULL is a no-op. Never frees the index. */
JACLIP_API void jaclip_ann_free(jaclip_ann *ann);

/* The kind built (never AUTO); EXACT for NULL. */
JACLIP_API jaclip_ann_kind jaclip_ann_kind_of(const jaclip_ann *ann);
/* Stable name of a kind ("exact", "ivf-flat", "ivf-pq", "hnsw", "auto"); "unknown" otherwise. */
JACLIP_API const char *jaclip_ann_kind_name(jaclip_ann_kind kind);

/* Search knobs; 0 keeps the current value. nprobe: IVF lists visited (1..nlist; default about
 * nlist/16). ef_search: HNSW candidate list (1..65536; default 64). rerank: IVF_PQ candidates
 * fetched per wanted result and re-scored exactly (1..1024; default 50). Not saved in the file.
 * Errors: INVALID_ARGUMENT (NULL, out of range). */
JACLIP_API jaclip_status jaclip_ann_set_params(jaclip_ann *ann, size_t nprobe, size_t ef_search, size_t rerank);

/* Approximate top-k as jaclip_index_search gives it (same shapes, outs, query checks and errors),
 * with exact cosine scores, best first; k' = min(k, size). A row the structure misses is absent, so
 * rarely fewer than k' rows are found: the rest of the row is -1 with score -INFINITY. EXACT runs
 * jaclip_index_search itself. Errors: those of jaclip_index_search, INVALID_ARGUMENT (the index was
 * changed since the build), BACKEND. */
JACLIP_API jaclip_status jaclip_ann_search(jaclip_tensor **out_indices, jaclip_tensor **out_scores,
                                           const jaclip_ann *ann, const jaclip_tensor *queries, size_t k);
/* ---- Zero-shot classification (model family, presets, classifiers) -------------------------- */

/* The model's family as its file records it: "cloob" (rinna/japanese-cloob-vit-b-16) or "clip"
 * (rinna/japanese-clip-vit-b-16). Static string; NULL for NULL. */
JACLIP_API const char *jaclip_model_family(const jaclip_model *model);
/* The model's own probability scale: 100 for CLOOB (rinna's evaluation), exp(logit_scale) for CLIP
 * (its learned parameter, recorded in the model file). 0 for NULL. */
JACLIP_API float jaclip_model_default_scale(const jaclip_model *model);

/* Named presets shipped with the library. "imagenet": rinna's 1000 Japanese ImageNet class names (in
 * ImageNet's class-index order, i.e. sorted synset ids; 9 names occur twice) and its 37 Japanese
 * prompt templates, each with one {} (data/zeroshot, Apache-2.0, from rinnakk/japanese-clip).
 * *out is a static array of *out_count static strings (never freed). Errors: INVALID_ARGUMENT (NULL),
 * NOT_FOUND (unknown name; the message lists the known ones). Thread-safe. */
JACLIP_API jaclip_status jaclip_preset_labels(const char *const **out, size_t *out_count, const char *name);
JACLIP_API jaclip_status jaclip_preset_templates(const char *const **out, size_t *out_count, const char *name);

/* A zero-shot classifier: one unit-length text-feature row per label, built by rinna's ImageNet
 * protocol. Immutable after creation or loading: any number of threads may classify with one
 * classifier at once. Tied to the model it was built with by jaclip_model_fingerprint(). */
typedef struct jaclip_classifier jaclip_classifier;

/* Builds the classifier of n_labels labels: every template (each containing exactly one "{}") is filled
 * with every label, each filled text encoded by the model and L2-normalised, the T rows of a label
 * averaged and the mean L2-normalised again. templates NULL with n_templates 0 means the single
 * template "{}" (the label alone). Labels and templates are copied. Encodes n_labels * n_templates
 * texts (the ImageNet preset: 37 000). Errors: INVALID_ARGUMENT (NULL, no labels, an empty label, a
 * template without exactly one {}), INVALID_UTF8, BACKEND, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_classifier_create(jaclip_classifier **out, const jaclip_model *model,
                                                  const char *const *labels, size_t n_labels,
                                                  const char *const *templates, size_t n_templates);
JACLIP_API void jaclip_classifier_free(jaclip_classifier *classifier);

/* Introspection; 0 / NULL for NULL or an index out of range. Strings are borrowed from the classifier. */
JACLIP_API size_t jaclip_classifier_size(const jaclip_classifier *classifier); /* labels */
JACLIP_API size_t jaclip_classifier_dim(const jaclip_classifier *classifier);  /* D */
JACLIP_API size_t jaclip_classifier_template_count(const jaclip_classifier *classifier);
JACLIP_API const char *jaclip_classifier_label(const jaclip_classifier *classifier, size_t i);
JACLIP_API const char *jaclip_classifier_template(const jaclip_classifier *classifier, size_t i);
/* The scale classify uses when given 0: jaclip_model_default_scale() of the building model. */
JACLIP_API float jaclip_classifier_default_scale(const jaclip_classifier *classifier);
/* jaclip_model_fingerprint() of the model it was built with. */
JACLIP_API const char *jaclip_classifier_fingerprint(const jaclip_classifier *classifier);
/* A copy of the weights, float32 [size, dim], rows of unit length. Errors: INVALID_ARGUMENT, OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_classifier_weights(jaclip_tensor **out, const jaclip_classifier *classifier);

/* Writes the classifier to path atomically (temporary file beside it, synced, renamed over path).
 * The format (docs/zeroshot.md) is versioned, little-endian and CRC32-checked, and stores the
 * model's fingerprint. Errors: INVALID_ARGUMENT, IO (names the file and the system error). */
JACLIP_API jaclip_status jaclip_classifier_save(const jaclip_classifier *classifier, const char *path);
/* Loads a file written by jaclip_classifier_save for use with model, whose fingerprint must equal the
 * stored one. Errors: INVALID_ARGUMENT (NULL; a classifier built with another model: the message names
 * both fingerprints), IO, INDEX_FORMAT (foreign, truncated or corrupted file, a version this library
 * does not read, or a forged one: counts the size cannot hold, weights not finite or rows not of unit
 * length, strings not UTF-8, a template without exactly one {}), OUT_OF_MEMORY. */
JACLIP_API jaclip_status jaclip_classifier_load(jaclip_classifier **out, const char *path, const jaclip_model *model);

/* Cosine similarity of each row of features (float32 [N, dim], e.g. image features; L2-normalised
 * first, zero rows give 0) with each label: float32 [N, size]. Rank with jaclip_topk: unlike
 * probabilities, cosines do not saturate, so ties are real ties. Errors: INVALID_ARGUMENT, SHAPE. */
JACLIP_API jaclip_status jaclip_classifier_scores(jaclip_tensor **out, const jaclip_classifier *classifier,
                                                  const jaclip_tensor *features);
/* softmax(scale * scores) per row: float32 [N, size] probabilities, the same bytes as
 * jaclip_probabilities(features, weights, JACLIP_SIMILARITY_COSINE, scale). scale 0 means the
 * classifier's default scale; otherwise it must be finite and positive. Errors: INVALID_ARGUMENT, SHAPE. */
JACLIP_API jaclip_status jaclip_classifier_classify_features(jaclip_tensor **out, const jaclip_classifier *classifier,
                                                             const jaclip_tensor *features, float scale);
/* Encode n images with model (which must be the classifier's model: INVALID_ARGUMENT otherwise) and
 * classify them as _classify_features does. Errors: those of jaclip_model_encode_images /
 * _image_files / _image_buffers, and of _classify_features. */
JACLIP_API jaclip_status jaclip_classifier_classify_images(jaclip_tensor **out, const jaclip_classifier *classifier,
                                                           const jaclip_model *model, const jaclip_image *const *images,
                                                           size_t n, float scale);
JACLIP_API jaclip_status jaclip_classifier_classify_image_files(jaclip_tensor **out,
                                                                const jaclip_classifier *classifier,
                                                                const jaclip_model *model, const char *const *paths,
                                                                size_t n, float scale);
JACLIP_API jaclip_status jaclip_classifier_classify_image_buffers(jaclip_tensor **out,
                                                                  const jaclip_classifier *classifier,
                                                                  const jaclip_model *model, const void *const *data,
                                                                  const size_t *sizes, size_t n, float scale);

#ifdef __cplusplus
}
#endif

#endif /* JACLIP_H */
