/* Thumbnails of index rows: the row's file read safely, decoded and cropped by the library, encoded as
 * JPEG by libjpeg-turbo, and kept in a small direct-mapped cache. */
#include "engine_internal.h"

#include <turbojpeg.h>

/* The largest source file read, and its pixel limit (below the library's default). */
#define THUMB_MAX_FILE ((off_t)64 << 20)
#define THUMB_MAX_PIXELS ((uint64_t)64 << 20)

void engine_thumbs_close(engine *e)
{
    for (size_t i = 0; i < THUMB_SLOTS; i++)
        free(e->thumbs[i].jpeg);
}

/* The file of a row, read whole if it is a regular file below the index's root (engine_files.c) and not
 * over THUMB_MAX_FILE. */
static char *read_row_file(const engine_index *x, const char *label, size_t *len, engine_result *why)
{
    struct stat st;
    int fd = engine_open_row_file(x, label, &st, why);
    if (fd < 0)
        return NULL;
    if (st.st_size > THUMB_MAX_FILE) {
        close(fd);
        fail(why, ENGINE_NOT_FOUND, "this row's file cannot be served (over %lld bytes)", (long long)THUMB_MAX_FILE);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf || got != (size_t)st.st_size) {
        free(buf);
        fail(why, ENGINE_LIBRARY, "this row's file could not be read");
        why->st = JACLIP_ERROR_IO;
        return NULL;
    }
    *len = got;
    return buf;
}

/* A JPEG of the row's image: shorter side resized to size and centre-cropped by the library. */
static unsigned char *make_thumbnail(const engine_index *x, const char *path, unsigned size, size_t *len,
                                     engine_result *why)
{
    size_t file_len;
    char *file = read_row_file(x, path, &file_len, why);
    if (!file)
        return NULL;
    jaclip_image *image = NULL;
    jaclip_tensor *pixels = NULL;
    jaclip_status st = jaclip_image_load_memory(&image, file, file_len, THUMB_MAX_PIXELS, JACLIP_IMAGE_EXIF_TRANSPOSE);
    free(file);
    if (!st)
        st = jaclip_image_resize_crop(&pixels, image, size);
    jaclip_image_free(image);
    if (st) {
        fail_library(why, st);
        return NULL;
    }
    unsigned long cap = tjBufSize((int)size, (int)size, TJSAMP_420), jpeg_len = cap;
    unsigned char *jpeg = malloc(cap);
    tjhandle tj = tjInitCompress();
    if (!jpeg || !tj ||
        tjCompress2(tj, jaclip_tensor_data(pixels), (int)size, 0, (int)size, TJPF_RGB, &jpeg, &jpeg_len, TJSAMP_420, 85,
                    TJFLAG_NOREALLOC)) {
        free(jpeg);
        jpeg = NULL;
        fail(why, ENGINE_LIBRARY, "JPEG encoding failed");
        why->st = JACLIP_ERROR_INTERNAL;
    }
    if (tj)
        tjDestroy(tj);
    jaclip_tensor_free(pixels);
    *len = jpeg_len;
    return jpeg;
}

bool engine_thumbnail(engine *e, engine_index *x, size_t row, unsigned size, unsigned char **jpeg, size_t *len,
                      engine_result *why)
{
    *jpeg = NULL;
    if (row >= jaclip_index_size(x->index))
        return fail(why, ENGINE_NOT_FOUND, "no row %zu in '%s'", row, x->name);
    size_t slot = (x->id * 1000003u + row * 31u + size) % THUMB_SLOTS;
    pthread_mutex_lock(&e->thumb_lock);
    thumb_slot *t = &e->thumbs[slot];
    if (t->jpeg && t->index_id == x->id && t->row == row && t->size == size && (*jpeg = malloc(t->len))) {
        memcpy(*jpeg, t->jpeg, t->len);
        *len = t->len;
    }
    pthread_mutex_unlock(&e->thumb_lock);
    if (*jpeg) {
        atomic_fetch_add(&e->thumb_hits, 1);
        return true;
    }
    atomic_fetch_add(&e->thumb_misses, 1);
    if (!take_slot(e, why))
        return false;
    *jpeg = make_thumbnail(x, jaclip_index_label(x->index, row), size, len, why);
    give_slot(e);
    if (!*jpeg)
        return false;
    unsigned char *copy = malloc(*len);
    if (copy) {
        memcpy(copy, *jpeg, *len);
        pthread_mutex_lock(&e->thumb_lock);
        free(t->jpeg);
        *t = (thumb_slot){x->id, row, size, copy, *len};
        pthread_mutex_unlock(&e->thumb_lock);
    }
    return true;
}
