/* Writing files safely, for every format the library writes (index, ANN and classifier files): a new
 * file is written under a temporary name beside its destination, synced, renamed over it and the
 * rename made durable by syncing the directory, so a reader sees the old file or the new one, never
 * a part. The new file gets mode 0666 less the umask, as any new file, or the mode of the file it
 * replaces, so an existing 0600 file is never widened. A writer killed before its rename leaves its
 * temporary behind; the next writer of the same path removes those of dead processes. */
#include "common/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

jaclip_status jc_io_fail(const char *what, const char *path)
{
    return jc_fail(JACLIP_ERROR_IO, "%s: %s: %s", path, what, strerror(errno));
}

jaclip_status jc_write_at(int fd, const void *buf, size_t size, uint64_t offset, const char *path)
{
    const unsigned char *p = buf;
    while (size > 0) {
        ssize_t n = pwrite(fd, p, size, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return jc_io_fail("cannot write", path);
        p += n, size -= (size_t)n, offset += (uint64_t)n;
    }
    return JACLIP_OK;
}

void jc_sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the data itself is synced before the rename */
        close(fd);
    }
}

/* The writer's process id from a temporary's name "<base>.tmp-PID-XXXXXXXX"; 0 if name is not one. */
static pid_t temp_owner(const char *name, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) != 0 || strncmp(name + n, ".tmp-", 5) != 0)
        return 0;
    const char *p = name + n + 5;
    long pid = 0;
    for (; *p >= '0' && *p <= '9' && pid < 1L << 30; p++)
        pid = pid * 10 + (*p - '0');
    if (*p != '-' || strlen(p + 1) != 8 || strspn(p + 1, "0123456789abcdef") != 8)
        return 0;
    return (pid_t)pid;
}

/* Removes the temporaries beside path left by killed writers: those whose process is gone (kill(pid, 0)
 * says ESRCH) and whose file no process holds locked (each writer flocks its own, which also covers a
 * writer in another PID namespace sharing the folder). Best effort: errors leave a file in place. */
static void remove_stale_temporaries(const char *path)
{
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        pid_t pid = temp_owner(e->d_name, base);
        if (pid <= 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat sb;
        if (fd < 0)
            continue;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

jaclip_status jc_temp_open(jc_temp_file *t, const char *path)
{
    static unsigned counter;
    struct stat sb;
    size_t size = strlen(path) + 40;
    t->fd = -1;
    t->path = path;
    t->tmp = malloc(size);
    if (!t->tmp)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory writing %s", path);
    bool keep_mode = stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
    remove_stale_temporaries(path);
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 2654435761u;
        snprintf(t->tmp, size, "%s.tmp-%d-%08x", path, (int)getpid(), r);
        t->fd = open(t->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (t->fd < 0 && errno == EEXIST)
            continue;
        if (t->fd >= 0)
            flock(t->fd, LOCK_EX | LOCK_NB); /* "in use" to remove_stale_temporaries; released at exit */
        if (t->fd >= 0 && keep_mode && fchmod(t->fd, sb.st_mode & 07777) != 0) {
            int e = errno;
            close(t->fd);
            unlink(t->tmp);
            t->fd = -1;
            errno = e;
        }
        break;
    }
    if (t->fd < 0) {
        jaclip_status st = jc_io_fail("cannot create a temporary file beside", path);
        free(t->tmp);
        t->tmp = NULL;
        return st;
    }
    return JACLIP_OK;
}

jaclip_status jc_temp_commit(jc_temp_file *t, jaclip_status st, const char *what)
{
    if (!t->tmp)
        return st;
    if (!st && fdatasync(t->fd) != 0)
        st = jc_io_fail("cannot sync", t->tmp);
    if (close(t->fd) != 0 && !st)
        st = jc_io_fail("cannot close", t->tmp);
    if (!st && rename(t->tmp, t->path) != 0) {
        char message[64];
        snprintf(message, sizeof message, "cannot rename the new %s over it", what);
        st = jc_io_fail(message, t->path);
    }
    if (st)
        unlink(t->tmp);
    else
        jc_sync_parent_dir(t->path);
    free(t->tmp);
    t->tmp = NULL;
    t->fd = -1;
    return st;
}
