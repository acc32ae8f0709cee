/* The files of index rows, opened under the index's folder only: for thumbnails (engine_thumb.c) and
 * for the original file itself (GET /v1/original). */
#include "engine_internal.h"

#include <fcntl.h>
#include <limits.h>

/* Whether the file open as fd is the row's file at path below the index's root: the path the kernel
 * opened (/proc/self/fd, so no race with a rename) must be the resolved root followed by the rest of the
 * path as the index records it. A folder under the root replaced by a symbolic link (to another tree)
 * resolves elsewhere and is refused. */
static bool under_root(const engine_index *x, const char *path, int fd)
{
    if (!x->root || !x->resolved_root)
        return false;
    size_t root_len = strlen(x->root);
    if (strncmp(path, x->root, root_len) || path[root_len] != '/')
        return false;
    char link[64], actual[PATH_MAX + 1];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, actual, sizeof actual - 1);
    if (n <= 0 || (size_t)n >= sizeof actual - 1)
        return false;
    actual[n] = '\0';
    size_t resolved_len = strlen(x->resolved_root);
    if (strncmp(actual, x->resolved_root, resolved_len) || actual[resolved_len] != '/')
        return false;
    /* A recorded root was chosen by whoever built the index: any file resolving below it may be served,
     * symbolic links included. Otherwise the root is only inferred from the labels: the path must resolve
     * to itself, so no link at all may lead elsewhere. */
    return x->recorded_root || !strcmp(actual + resolved_len, path + root_len);
}

int engine_open_row_file(const engine_index *x, const char *label, struct stat *st, engine_result *why)
{
    char joined[PATH_MAX];
    const char *path = label;
    if (x->recorded_root && label[0] != '/') { /* relative to the recorded root */
        if ((size_t)snprintf(joined, sizeof joined, "%s/%s", x->root, label) >= sizeof joined) {
            fail(why, ENGINE_NOT_FOUND, "this row's path is too long");
            return -1;
        }
        path = joined;
    }
    if (path[0] != '/') {
        fail(why, ENGINE_NOT_FOUND, "this row's label is not a file path");
        return -1;
    }
    /* Links are followed only below a recorded root (under_root then checks where they lead). */
    int fd = open(path, O_RDONLY | (x->recorded_root ? 0 : O_NOFOLLOW) | O_CLOEXEC | O_NONBLOCK);
    bool inside = fd >= 0 && under_root(x, path, fd);
    if (fd < 0 || !inside || fstat(fd, st) || !S_ISREG(st->st_mode)) {
        int err = fd < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        fail(why, ENGINE_NOT_FOUND, "this row's file cannot be served%s",
             err == ELOOP         ? " (a symbolic link)"
             : fd >= 0 && !inside ? " (it resolves outside the folder the index was built from)"
                                  : "");
        return -1;
    }
    return fd;
}

/* The media type of an image file from its first bytes (the formats the library decodes); anything
 * else is served as bytes to download, never as something a browser would render or run. */
static const char *image_type(int fd)
{
    unsigned char b[16] = {0};
    ssize_t n = pread(fd, b, sizeof b, 0);
    if (n >= 3 && !memcmp(b, "\xff\xd8\xff", 3))
        return "image/jpeg";
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
        return "image/png";
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6)))
        return "image/gif";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4))
        return "image/webp";
    if (n >= 2 && !memcmp(b, "BM", 2))
        return "image/bmp";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4)))
        return "image/tiff";
    if (n >= 12 && !memcmp(b + 4, "ftyp", 4)) {
        if (!memcmp(b + 8, "avif", 4))
            return "image/avif";
        if (!memcmp(b + 8, "heic", 4) || !memcmp(b + 8, "heix", 4) || !memcmp(b + 8, "mif1", 4) ||
            !memcmp(b + 8, "msf1", 4))
            return "image/heic";
    }
    return "application/octet-stream";
}

bool engine_original(engine *e, engine_index *x, size_t row, int *fd, size_t *size, const char **type,
                     engine_result *why)
{
    (void)e;
    if (row >= jaclip_index_size(x->index))
        return fail(why, ENGINE_NOT_FOUND, "no row %zu in '%s'", row, x->name);
    struct stat st;
    *fd = engine_open_row_file(x, jaclip_index_label(x->index, row), &st, why);
    if (*fd < 0)
        return false;
    *size = (size_t)st.st_size;
    *type = image_type(*fd);
    return true;
}
