/* What index build/sync records about a file besides its embedding: its stamp (size, modification
 * time, SHA-256 prefix of its content) and its EXIF capture time, from one read of the file. */
#include "cli.h"

#include <fcntl.h>
#include <openssl/evp.h>

static uint64_t hash_bytes(const unsigned char *data, size_t size)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    uint64_t h = 0;
    if (!EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) || len < 8) {
        cli_warn("SHA-256 failed");
        exit(EXIT_RUNTIME);
    }
    for (int i = 0; i < 8; i++)
        h = h << 8 | md[i];
    return h ? h : 1; /* 0 means "not recorded" */
}

unsigned char *read_stamped(const char *path, size_t *size, jaclip_index_stamp *stamp, int64_t *capture_ns)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat sb;
    unsigned char *buf = NULL;
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (!S_ISREG(sb.st_mode))
            errno = EINVAL;
        goto fail;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    buf = malloc(n ? n : 1);
    if (!buf)
        goto fail;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            goto fail;
        }
        got += (size_t)r;
    }
    close(fd);
    *size = n;
    stamp->size = (uint64_t)sb.st_size;
    stamp->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    stamp->content_hash = hash_bytes(buf, n);
    if (jaclip_image_capture_time(capture_ns, buf, n))
        *capture_ns = JACLIP_TIME_NONE;
    return buf;
fail:
    free(buf);
    close(fd);
    return NULL;
}

void path_stamp(const char *path, jaclip_index_stamp *stamp)
{
    struct stat sb;
    memset(stamp, 0, sizeof *stamp);
    if (stat(path, &sb) == 0) {
        stamp->size = (uint64_t)sb.st_size;
        stamp->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    }
}

