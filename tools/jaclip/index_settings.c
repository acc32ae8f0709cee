/* How the index writers (build, sync, remove, compact) treat an index file: one writer at a time
 * (INDEX.lock), and what the index records about how its rows were made (docs/index-format.md,
 * metadata): the root its labels are relative to (or that they are absolute paths) and the orientation
 * rule. index build records them; index sync uses them and refuses options that would mix two ways of
 * labelling or embedding the same files (a forgotten --root used to add every photo a second time). */
#include "cli.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

int index_writer_lock(const char *index_path, bool wait)
{
    size_t n = strlen(index_path) + 6;
    char *lock_path = xcalloc(n, 1);
    snprintf(lock_path, n, "%s.lock", index_path);
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        cli_warn("%s: cannot open the writer lock: %s", lock_path, strerror(errno));
        exit(EXIT_RUNTIME);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            cli_warn("%s: cannot lock: %s", lock_path, strerror(errno));
            exit(EXIT_RUNTIME);
        }
        if (!wait) {
            cli_warn("%s: another jaclip is writing this index (it holds %s); try again when it is done, "
                     "or pass --wait",
                     index_path, lock_path);
            exit(EXIT_RUNTIME);
        }
        cli_warn("%s: waiting for another jaclip writing this index", index_path);
        while (flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR || stop_signal) {
                cli_warn("%s: stopped while waiting for the writer lock", index_path);
                exit(stop_signal ? 128 + stop_signal : EXIT_RUNTIME);
            }
        }
    }
    free(lock_path);
    return fd; /* held until exit */
}


static const char *meta_or(const jaclip_index *index, const char *key, const char *fallback)
{
    const char *v = jaclip_index_metadata(index, key);
    return v ? v : fallback;
}

/* "relative" or "absolute" from the labels of an index that records no style (written before labels
 * were recorded); NULL when it has no rows. */
static const char *infer_label_style(const jaclip_index *index)
{
    if (jaclip_index_size(index) == 0)
        return NULL;
    return jaclip_index_label(index, 0)[0] == '/' ? "absolute" : "relative";
}

bool index_settings_settle(const char *output, index_settings *s)
{
    if (access(output, F_OK) != 0) {
        s->exif = s->exif_given;
        return true; /* a new index: the options given are recorded */
    }
    jaclip_index *index = NULL;
    jaclip_status st = jaclip_index_load(&index, output, JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM);
    if (st)
        die(output, st);
    bool ok = true;
    const char *style = meta_or(index, JACLIP_INDEX_META_LABELS, infer_label_style(index));
    const char *recorded = jaclip_index_root(index);
    const char *orientation = meta_or(index, JACLIP_INDEX_META_ORIENTATION, "as-stored");
    if (style && !strcmp(style, "absolute") && s->root_arg) {
        cli_warn("%s: its labels are absolute paths; --root would add every file again under a relative label. "
                 "Drop --root (or build a new index with it)",
                 output);
        ok = false;
    } else if (style && !strcmp(style, "relative")) {
        char *given = s->root_arg ? realpath(s->root_arg, NULL) : NULL;
        if (!s->root_arg && !recorded) {
            cli_warn("%s: its labels are relative paths but it records no root (built before roots were "
                     "recorded): pass --root ROOT once, and it is recorded",
                     output);
            ok = false;
        } else if (!s->root_arg) {
            if (access(recorded, F_OK) != 0) {
                cli_warn("%s: its recorded root %s is gone (%s); if the folder moved, pass --root NEW --moved", output,
                         recorded, strerror(errno));
                ok = false;
            }
            s->root_arg = xstrdup(recorded); /* kept until exit */
        } else if (recorded && given && strcmp(given, recorded) != 0 && !s->moved) {
            cli_warn("%s: its labels are relative to %s (recorded at build), not to --root %s; syncing under "
                     "another root would remove and add every file. If the folder moved there, add --moved; "
                     "otherwise drop --root",
                     output, recorded, given);
            ok = false;
        }
        free(given);
    }
    if (s->moved && (!s->root_arg || !style || strcmp(style, "relative") != 0)) {
        cli_warn("%s: --moved needs --root and an index whose labels are relative to a root", output);
        ok = false;
    }
    bool exif_recorded = !strcmp(orientation, "exif-transpose");
    if (s->exif_given && !exif_recorded && jaclip_index_size(index) > 0) {
        cli_warn("%s: its rows were embedded as stored (orientation: %s); --exif-transpose would mix two "
                 "orientations in one index. Drop it, or build a new index with it",
                 output, orientation);
        ok = false;
    }
    s->exif = exif_recorded || s->exif_given;
    jaclip_index_free(index);
    return ok;
}

void index_settings_record(const char *output, const char *root, bool exif)
{
    jaclip_status st;
    /* Each call writes nothing when the file already says so. */
    if ((st = jaclip_index_set_metadata_file(output, JACLIP_INDEX_META_LABELS, root ? "relative" : "absolute")) ||
        (st = jaclip_index_set_metadata_file(output, JACLIP_INDEX_META_ROOT, root)) ||
        (st = jaclip_index_set_metadata_file(output, JACLIP_INDEX_META_ORIENTATION,
                                             exif ? "exif-transpose" : "as-stored")))
        die(output, st);
}
