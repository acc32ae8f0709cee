#include "cli.h"

#include <fcntl.h>

/* ---- index build / sync: one writer keeps an index in step with folders ------------------------- */

static const char sync_usage[] =
    "usage: jaclip index sync --model MODEL DIR... -o INDEX [--root ROOT [--moved]] [--exif-transpose] [--batch N]\n"
    "                         [--wait] [--fp16] [--force]\n"
    "       jaclip index build --model MODEL DIR... -o INDEX [same options]\n"
    "\n"
    "sync   makes INDEX hold exactly the image files under the DIRs (recursively, skipping names that\n"
    "       start with '.'; images are files named .jpg .jpeg .jpe .jfif .mpo .png .webp .gif .bmp .dib\n"
    "       .tif .tiff .heic .heif .hif .avif, decoded by content): adds new files, removes the rows of files that are gone, re-embeds\n"
    "       files whose content changed (size and modification time, then a content hash when those\n"
    "       differ). Only rows under the DIRs are touched. Running it again changes nothing.\n"
    "build  adds the files INDEX lacks and leaves every existing row alone.\n"
    "\n"
    "Each batch is one durable commit, so an interruption (Ctrl-C, kill -9, a crash) at any moment\n"
    "loses nothing done before it and duplicates nothing: run the same command again to finish. One\n"
    "writer at a time: a second build or sync of the same INDEX is refused (or waits, with --wait).\n"
    "Labels are absolute paths, or paths relative to ROOT with --root. INDEX records which, with the\n"
    "root and the orientation rule, when it is created: a later sync uses the recorded root without\n"
    "--root and refuses options that contradict INDEX (another --root: add --moved if the folder moved\n"
    "there; --exif-transpose on an index embedded as stored). Files that cannot be read or decoded, and\n"
    "names that are not UTF-8, are skipped, warned about and counted. Rows under a folder that cannot be\n"
    "listed (no permission, too many open files) are kept, not removed, and counted as kept unverified.\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "  -o, --output INDEX    the index file to create or update\n"
    "      --root ROOT       store labels relative to ROOT (every DIR must be inside it); recorded\n"
    "      --moved           the folder moved to --root: record it as INDEX's new root\n"
    "      --exif-transpose  rotate photos by their EXIF orientation before embedding (phone photos);\n"
    "                        chosen when INDEX is created, recorded, and used by every later sync\n"
    "  -b, --batch N         images per batch (default: 16)\n"
    "      --wait            wait for another writer of INDEX instead of refusing\n"
    "      --fp16            store rows as float16 (when INDEX is created; half the size)\n"
    "      --force           use INDEX even though it records another model's fingerprint\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "      --precision P     default (as stored), fp32, bf16, int8, int8-weights or auto\n"
    "  -h, --help            this help\n";

enum { OPT_ROOT = OPT_COMMAND_BASE + 20, OPT_WAIT, OPT_FP16, OPT_FORCE, OPT_MOVED, OPT_EXIF_INDEX };

/* A file under the DIRs, as found. */
typedef struct {
    char *path;               /* absolute */
    char *label;              /* path, or relative to --root */
    jaclip_index_stamp stamp; /* size and mtime; content_hash filled when read */
    int64_t capture_ns;       /* EXIF capture time, filled when read (JACLIP_TIME_NONE: none) */
    bool in_index;
} found_file;

static int by_label(const void *a, const void *b)
{
    return strcmp(((const found_file *)a)->label, ((const found_file *)b)->label);
}

static found_file *find_file(found_file *files, size_t n, const char *label)
{
    found_file key = {.label = (char *)label};
    return bsearch(&key, files, n, sizeof *files, by_label);
}

/* realpath of each DIR, sorted, without repeats and without any DIR inside another one. */
static string_list distinct_roots(char **dirs, int n)
{
    string_list roots = {0};
    for (int i = 0; i < n; i++) {
        struct stat sb;
        char *root = realpath(dirs[i], NULL);
        if (!root || stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            cli_warn("%s: %s", dirs[i], root ? "not a directory" : strerror(errno));
            exit(EXIT_RUNTIME);
        }
        list_push(&roots, root);
    }
    qsort(roots.items, roots.count, sizeof *roots.items, by_bytes);
    size_t kept = 0;
    for (size_t i = 0; i < roots.count; i++) {
        bool inside = false;
        for (size_t j = 0; j < kept && !inside; j++) {
            size_t len = strlen(roots.items[j]);
            inside = strncmp(roots.items[i], roots.items[j], len) == 0 &&
                     (roots.items[i][len] == '\0' || roots.items[i][len] == '/' || len == 1);
        }
        if (inside)
            free(roots.items[i]);
        else
            roots.items[kept++] = roots.items[i];
    }
    roots.count = kept;
    return roots;
}

static bool under_roots(const string_list *roots, const char *path)
{
    for (size_t i = 0; i < roots->count; i++) {
        size_t len = strlen(roots->items[i]);
        if (strncmp(path, roots->items[i], len) == 0 && (path[len] == '/' || len == 1))
            return true;
    }
    return false;
}

/* Commits one batch: removes every row of the batch's labels and appends what was embedded. */
static void commit(const char *output, const char *const *remove, size_t nremove, const jaclip_tensor *emb,
                   const char *const *labels, const jaclip_index_stamp *stamps, const int64_t *captures,
                   size_t *removed)
{
    size_t r = 0;
    jaclip_status st = jaclip_index_replace_file_timed(output, remove, nremove, emb, labels, stamps, captures, &r);
    if (st)
        die(output, st);
    if (removed)
        *removed += r;
}

/* Features of n preprocessed images, each [1, 3, S, S]: one batch through the model. */
static jaclip_status encode_preprocessed(jaclip_tensor **out, const jaclip_model *model, jaclip_tensor **pixels,
                                         size_t n)
{
    size_t one = jaclip_tensor_nbytes(pixels[0]);
    int64_t shape[4] = {(int64_t)n, 3, jaclip_tensor_dim(pixels[0], 2), jaclip_tensor_dim(pixels[0], 3)};
    jaclip_tensor *batch = NULL;
    jaclip_status st = jaclip_tensor_create(&batch, JACLIP_DTYPE_FLOAT32, 4, shape, NULL);
    if (st)
        return st;
    for (size_t i = 0; i < n; i++)
        memcpy((char *)jaclip_tensor_data_mut(batch) + i * one, jaclip_tensor_data(pixels[i]), one);
    st = jaclip_model_encode_pixel_values(out, model, batch);
    jaclip_tensor_free(batch);
    return st;
}

/* The options of index build / sync. */
typedef struct {
    model_args m;
    const char *output;
    index_settings settings; /* --root, --moved, --exif-transpose and what INDEX records */
    size_t batch;
    bool wait, fp16, force;
} update_options;

/* One build or sync: what was found, the plan, and the counts reported at the end. */
typedef struct {
    bool sync;
    const char *output;
    char *root; /* --root (or the recorded root), resolved; NULL without */
    uint32_t image_flags; /* JACLIP_IMAGE_EXIF_TRANSPOSE when the index says so */
    size_t root_len;
    string_list roots;
    found_file *files; /* sorted by label */
    size_t nfiles, skipped;
    jaclip_model *model;
    jaclip_index *index;
    string_list gone;          /* labels of rows whose file is gone */
    string_list unverified;    /* folders not listed, entries not examined: sorted, rows under them kept */
    size_t *restamp, nrestamp; /* files touched but unchanged */
    bool *redo;
    size_t *old_row;     /* the file's row in the index */
    size_t *todo, ntodo; /* files to embed */
    size_t unchanged, removed, added, reembedded, restamped, kept;
} update_run;

static void parse_update_args(update_options *o, int argc, char **argv, bool sync)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"output", required_argument, NULL, 'o'},
        {"batch", required_argument, NULL, 'b'},       {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"precision", required_argument, NULL, OPT_PRECISION}, {"root", required_argument, NULL, OPT_ROOT},
        {"wait", no_argument, NULL, OPT_WAIT},         {"fp16", no_argument, NULL, OPT_FP16},
        {"force", no_argument, NULL, OPT_FORCE},       {"help", no_argument, NULL, 'h'},
        {"moved", no_argument, NULL, OPT_MOVED},       {"exif-transpose", no_argument, NULL, OPT_EXIF_INDEX},
        {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    o->batch = 16;
    while ((opt = next_option(argc, argv, ":m:o:b:h", options, &o->m)) != -1)
        switch (opt) {
        case 'o': o->output = optarg; break;
        case 'b': o->batch = (size_t)parse_long(optarg, "--batch", 1, 4096); break;
        case OPT_ROOT: o->settings.root_arg = optarg; break;
        case OPT_MOVED: o->settings.moved = true; break;
        case OPT_EXIF_INDEX: o->settings.exif_given = true; break;
        case OPT_WAIT: o->wait = true; break;
        case OPT_FP16: o->fp16 = true; break;
        case OPT_FORCE: o->force = true; break;
        case 'h': exit(help_requested(sync_usage));
        default: bad_option(opt, argv);
        }
    if (!o->output)
        usage_error("-o INDEX is required");
    if (optind >= argc)
        usage_error("no DIR given");
}

static void catch_stop_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second Ctrl-C stops at once; the file stays valid either way */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The DIRs, deduplicated, and --root resolved; false (after saying why) if a DIR is outside it. */
static bool resolve_roots(update_run *u, const char *root_arg, char **dirs, int ndirs)
{
    if (root_arg && !(u->root = realpath(root_arg, NULL))) {
        cli_warn("%s: %s", root_arg, strerror(errno));
        return false;
    }
    u->root_len = u->root ? strlen(u->root) : 0;
    u->roots = distinct_roots(dirs, ndirs);
    if (!u->root)
        return true;
    string_list top = {0};
    list_push(&top, u->root);
    for (size_t i = 0; i < u->roots.count; i++)
        if (strcmp(u->roots.items[i], u->root) != 0 && !under_roots(&top, u->roots.items[i])) {
            cli_warn("%s: not inside --root %s", u->roots.items[i], u->root);
            return false;
        }
    free(top.items);
    return true;
}

/* Every file under the DIRs, once, stamped and sorted by label. */
static void find_files(update_run *u)
{
    string_list paths = {0};
    for (size_t i = 0; i < u->roots.count; i++)
        walk_checked(u->roots.items[i], &paths, &u->skipped, &u->unverified);
    qsort(u->unverified.items, u->unverified.count, sizeof *u->unverified.items, by_bytes);
    u->files = xcalloc(paths.count, sizeof *u->files);
    for (size_t i = 0; i < paths.count; i++) {
        char *p = paths.items[i];
        if (!is_utf8(p)) {
            cli_warn("%s: skipped: the file name is not valid UTF-8", p);
            u->skipped++;
            free(p);
            continue;
        }
        found_file *f = &u->files[u->nfiles++];
        f->path = p;
        f->label = u->root ? p + u->root_len + (u->root_len > 1) : p;
        path_stamp(p, &f->stamp);
    }
    free(paths.items);
    qsort(u->files, u->nfiles, sizeof *u->files, by_label);
}

/* The index, created if missing; its fingerprint must be this model's. false (after saying why) when
 * it cannot take this model's rows. */
static bool open_index(update_run *u, bool fp16, bool force)
{
    const char *output = u->output, *fingerprint = jaclip_model_fingerprint(u->model);
    size_t dim = (size_t)jaclip_model_embedding_dim(u->model);
    jaclip_status st;
    if (access(output, F_OK) != 0) {
        if ((st = jaclip_index_create(&u->index, dim)) || (st = jaclip_index_set_fingerprint(u->index, fingerprint)) ||
            (fp16 && (st = jaclip_index_set_row_format(u->index, JACLIP_INDEX_ROWS_FLOAT16))) ||
            (st = jaclip_index_save(u->index, output)))
            die(output, st);
        return true;
    }
    if ((st = jaclip_index_load(&u->index, output, JACLIP_INDEX_MMAP)))
        die(output, st);
    if (jaclip_index_dim(u->index) != dim) {
        cli_warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", output, jaclip_index_dim(u->index),
                 dim);
        return false;
    }
    if ((st = jaclip_index_check_fingerprint(u->index, fingerprint, JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN))) {
        report(output, st);
        if (!force) {
            cli_warn("%s: refusing to mix two models' embeddings; pass --force to add to it anyway", output);
            return false;
        }
    } else if (!jaclip_index_fingerprint(u->index)[0]) {
        /* An index from before fingerprints: record this model's from now on. */
        jaclip_index_free(u->index);
        if ((st = jaclip_index_compact_file(output, fingerprint)) ||
            (st = jaclip_index_load(&u->index, output, JACLIP_INDEX_MMAP)))
            die(output, st);
    }
    return true;
}

/* Matches the index's rows to the files found: rows of gone files (under the DIRs, sync only) go to
 * u->gone, a file's row to u->old_row, doubled rows mark their file for embedding again. */
static void match_rows(update_run *u)
{
    size_t rows = jaclip_index_size(u->index);
    size_t *seen = xcalloc(u->nfiles, sizeof *seen);
    for (size_t r = 0; r < rows; r++) {
        const char *label = jaclip_index_label(u->index, r);
        found_file *f = find_file(u->files, u->nfiles, label);
        if (!f) {
            char *abs = NULL;
            if (u->root) {
                size_t n = u->root_len + strlen(label) + 2;
                abs = xcalloc(n, 1);
                snprintf(abs, n, "%s/%s", u->root_len > 1 ? u->root : "", label);
            }
            if (u->sync && under_roots(&u->roots, abs ? abs : label)) {
                if (path_under_any(&u->unverified, abs ? abs : label))
                    u->kept++; /* its folder could not be listed: the file may still be there */
                else
                    list_push(&u->gone, (char *)label);
            }
            free(abs);
            continue;
        }
        size_t i = (size_t)(f - u->files);
        f->in_index = true;
        u->old_row[i] = r;
        if (++seen[i] > 1 && u->sync)
            u->redo[i] = true; /* doubled rows (from before the writer lock): embedded again, once */
    }
    free(seen);
}

/* The plan: rows of gone files go, changed files are re-embedded, touched files are re-stamped. */
static void plan_update(update_run *u)
{
    jaclip_status st;
    u->restamp = xcalloc(u->nfiles, sizeof *u->restamp);
    u->redo = xcalloc(u->nfiles, sizeof *u->redo);
    u->old_row = xcalloc(u->nfiles, sizeof *u->old_row);
    match_rows(u);
    for (size_t i = 0; i < u->nfiles && u->sync; i++) {
        found_file *f = &u->files[i];
        if (!f->in_index || u->redo[i])
            continue;
        jaclip_index_stamp old;
        if ((st = jaclip_index_stamp_of(&old, u->index, u->old_row[i])))
            die(u->output, st);
        if (old.size == f->stamp.size && old.mtime_ns == f->stamp.mtime_ns && old.content_hash) {
            u->unchanged++;
            continue;
        }
        /* Size or time differ: the content decides. */
        size_t size = 0;
        jaclip_index_stamp now;
        int64_t capture;
        unsigned char *bytes = old.content_hash ? read_stamped(f->path, &size, &now, &capture) : NULL;
        if (bytes && now.content_hash == old.content_hash) {
            f->stamp = now;
            f->capture_ns = capture; /* also for a row written before capture times were recorded */
            u->restamp[u->nrestamp++] = i;
            u->unchanged++;
        } else {
            u->redo[i] = true;
        }
        free(bytes);
    }
    if (!u->sync)
        for (size_t i = 0; i < u->nfiles; i++)
            u->unchanged += u->files[i].in_index;
    u->todo = xcalloc(u->nfiles, sizeof *u->todo);
    for (size_t i = 0; i < u->nfiles; i++)
        if (!u->files[i].in_index || u->redo[i])
            u->todo[u->ntodo++] = i;
}

/* Gone files' rows removed, in chunks (each one commit); touched but unchanged files keep their
 * embedding under a new stamp. */
static void remove_and_restamp(update_run *u)
{
    jaclip_status st;
    for (size_t first = 0; first < u->gone.count && !stop_signal; first += 4096) {
        size_t n = u->gone.count - first < 4096 ? u->gone.count - first : 4096;
        commit(u->output, (const char *const *)u->gone.items + first, n, NULL, NULL, NULL, NULL, &u->removed);
    }
    for (size_t i = 0; i < u->nrestamp && !stop_signal; i++) {
        found_file *f = &u->files[u->restamp[i]];
        jaclip_tensor *e = NULL;
        if ((st = jaclip_index_embeddings(&e, u->index, u->old_row[u->restamp[i]], 1)))
            die(u->output, st);
        const char *label[1] = {f->label};
        commit(u->output, label, 1, e, label, &f->stamp, &f->capture_ns, NULL);
        jaclip_tensor_free(e);
        u->restamped++;
    }
}

/* A batch's buffers: each image is preprocessed (reduced to model size) as soon as it is decoded, so
 * memory holds one full-size image at a time, not a batch of them. */
typedef struct {
    jaclip_tensor **pixels;
    const char **labels;       /* of the images that decoded */
    const char **batch_labels; /* of every file of the batch */
    jaclip_index_stamp *stamps;
    int64_t *captures;
} update_batch;

/* Reads, decodes and preprocesses file f into slot n of b; false (after saying why) if it is skipped. */
static bool prepare_file(update_run *u, update_batch *b, size_t n, found_file *f, progress *prog)
{
    size_t size = 0;
    unsigned char *bytes = read_stamped(f->path, &size, &b->stamps[n], &b->captures[n]);
    jaclip_image *image = NULL;
    jaclip_status st = bytes ? jaclip_image_load_memory(&image, bytes, size, 0, u->image_flags) : JACLIP_ERROR_IO;
    int err = errno;
    free(bytes);
    if (st == JACLIP_OK) {
        const jaclip_image *one[1] = {image};
        st = jaclip_model_preprocess_images(&b->pixels[n], u->model, one, 1);
    }
    jaclip_image_free(image);
    if (st) {
        progress_clear(prog);
        const char *why = bytes ? jaclip_last_error() : strerror(err);
        cli_warn("%s: skipped: %s", f->path, why[0] ? why : jaclip_status_string(st));
        u->skipped++;
        return false;
    }
    return true;
}

/* Embeds u->todo, batch at a time, each batch one commit. */
static void embed_files(update_run *u, size_t batch)
{
    jaclip_status st;
    progress prog = {isatty(STDERR_FILENO) != 0, u->ntodo, 0, now_seconds(), 0};
    update_batch b = {xcalloc(batch, sizeof *b.pixels), xcalloc(batch, sizeof *b.labels),
                      xcalloc(batch, sizeof *b.batch_labels), xcalloc(batch, sizeof *b.stamps),
                      xcalloc(batch, sizeof *b.captures)};
    if (u->ntodo > 0)
        progress_show(&prog, false);
    for (size_t first = 0; first < u->ntodo && !stop_signal; first += batch) {
        size_t n = 0, nb = 0, end = first + batch < u->ntodo ? first + batch : u->ntodo;
        for (size_t i = first; i < end; i++) {
            found_file *f = &u->files[u->todo[i]];
            b.batch_labels[nb++] = f->label;
            if (!prepare_file(u, &b, n, f, &prog))
                continue;
            b.labels[n++] = f->label;
            if (f->in_index)
                u->reembedded++;
            else
                u->added++;
        }
        jaclip_tensor *emb = NULL;
        if (n > 0 && (st = encode_preprocessed(&emb, u->model, b.pixels, n))) {
            progress_clear(&prog);
            die(u->output, st);
        }
        for (size_t i = 0; i < n; i++) {
            jaclip_tensor_free(b.pixels[i]);
            b.pixels[i] = NULL;
        }
        /* Old rows of every file of the batch go in the same commit as the new ones (a changed file
         * that no longer decodes leaves no stale row behind). */
        commit(u->output, b.batch_labels, u->sync ? nb : 0, emb, b.labels, b.stamps, b.captures, NULL);
        jaclip_tensor_free(emb);
        prog.done = end;
        progress_show(&prog, end == u->ntodo);
    }
    if (stop_signal)
        progress_clear(&prog);
    free(b.pixels);
    free(b.labels);
    free(b.batch_labels);
    free(b.stamps);
    free(b.captures);
}

/* The closing line; the exit status (128 + signal when interrupted). */
static int report_update(const update_run *u, double start)
{
    int rc = 0;
    if (stop_signal) {
        cli_warn("%s: interrupted: %zu of %zu images embedded; run the same command again to finish", u->output,
                 u->added + u->reembedded, u->ntodo);
        rc = 128 + stop_signal;
    } else if (u->sync) {
        cli_warn("%s: %zu added, %zu re-embedded, %zu removed, %zu unchanged (%zu re-stamped), %zu skipped, in %.1f s",
                 u->output, u->added, u->reembedded, u->removed, u->unchanged, u->restamped, u->skipped,
                 now_seconds() - start);
        if (u->kept)
            cli_warn("%s: %zu rows kept unverified: they lie under folders or entries that could not be read "
                     "(named above); sync again once they can be",
                     u->output, u->kept);
    } else {
        cli_warn("%s: %zu images added, %zu already indexed, %zu skipped, in %.1f s", u->output, u->added, u->unchanged,
                 u->skipped, now_seconds() - start);
    }
    if (u->nfiles == 0)
        cli_warn("no image files found");
    return rc;
}

static void free_update(update_run *u)
{
    for (size_t i = 0; i < u->nfiles; i++)
        free(u->files[i].path);
    free(u->files);
    for (size_t i = 0; i < u->roots.count; i++)
        free(u->roots.items[i]);
    free(u->roots.items);
    free(u->gone.items);
    for (size_t i = 0; i < u->unverified.count; i++)
        free(u->unverified.items[i]);
    free(u->unverified.items);
    free(u->restamp);
    free(u->todo);
    free(u->redo);
    free(u->old_row);
    free(u->root);
    jaclip_index_free(u->index);
    jaclip_model_free(u->model);
}

int index_update(int argc, char **argv, bool sync)
{
    update_options o;
    update_run u = {.sync = sync};
    command_name = sync ? "jaclip index sync" : "jaclip index build";
    parse_update_args(&o, argc, argv, sync);
    u.output = o.output;
    catch_stop_signals();
    if (!index_settings_settle(u.output, &o.settings) ||
        !resolve_roots(&u, o.settings.root_arg, argv + optind, argc - optind))
        return EXIT_RUNTIME;
    u.image_flags = o.settings.exif ? JACLIP_IMAGE_EXIF_TRANSPOSE : JACLIP_IMAGE_DEFAULT;
    find_files(&u);
    u.model = load_model(&o.m);
    int lock_fd = index_writer_lock(u.output, o.wait);
    (void)lock_fd;
    if (!open_index(&u, o.fp16, o.force))
        return EXIT_RUNTIME;
    index_settings_record(u.output, u.root, o.settings.exif);
    plan_update(&u);
    double start = now_seconds();
    remove_and_restamp(&u);
    embed_files(&u, o.batch);
    int rc = report_update(&u, start);
    if (rc == 0 && u.added + u.reembedded + u.removed > 0)
        refresh_ann_of_file(u.output);
    free_update(&u);
    return rc;
}
