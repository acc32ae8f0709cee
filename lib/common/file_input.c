/* Opening input files without trusting them: a FIFO or device would block open() or read() forever
 * (or, like /dev/zero, never end), so every input file is opened non-blocking and must be a regular
 * file before a byte is read. */
#include "common/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

jaclip_status jc_open_regular(const char *path, const char *what, int *out_fd, uint64_t *out_size)
{
    struct stat st;
    *out_fd = -1;
    /* O_NONBLOCK: opening a FIFO without a writer returns at once instead of waiting for one. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return jc_fail(JACLIP_ERROR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        int err = errno;
        close(fd);
        return jc_fail(JACLIP_ERROR_IO, "cannot stat %s %s: %s", what, path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return jc_fail(JACLIP_ERROR_IO, "%s %s is %s, not a regular file", what, path, file_kind(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    *out_fd = fd;
    *out_size = (uint64_t)st.st_size;
    return JACLIP_OK;
}

jaclip_status jc_read_fd(int fd, void *buf, size_t n, size_t *got, const char *what, const char *path)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return jc_fail(JACLIP_ERROR_IO, "cannot read %s %s: %s", what, path, strerror(errno));
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return JACLIP_OK;
}

jaclip_status jc_read_regular_file(const char *path, const char *what, size_t max_bytes, char **out, size_t *out_size)
{
    int fd;
    uint64_t size;
    size_t got;
    *out = NULL;
    *out_size = 0;
    jaclip_status st = jc_open_regular(path, what, &fd, &size);
    if (st)
        return st;
    if (size > max_bytes) {
        close(fd);
        return jc_fail(JACLIP_ERROR_IO, "%s %s is %llu bytes, over the limit of %zu", what, path,
                       (unsigned long long)size, max_bytes);
    }
    /* One byte more than fstat says, to notice a file that grew while being read. */
    char *data = malloc((size_t)size + 1);
    if (!data) {
        close(fd);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory reading %s %s", what, path);
    }
    st = jc_read_fd(fd, data, (size_t)size + 1, &got, what, path);
    close(fd);
    if (st == JACLIP_OK && got > size)
        st = jc_fail(JACLIP_ERROR_IO, "%s %s grew while being read", what, path);
    if (st) {
        free(data);
        return st;
    }
    *out = data;
    *out_size = got;
    return JACLIP_OK;
}
