/* The registry of served indexes: loaded at start, shared by reference with the requests using them,
 * and reloaded when their file changes (checked at each use: device, inode, size, mtime). A request
 * holds the view it started with; a changed file that fails to load leaves the old view serving and is
 * logged and counted in /metrics. */
#include "engine_internal.h"

static atomic_ulong next_id = 1;

static file_stamp stamp_of(const char *path)
{
    struct stat st;
    if (stat(path, &st))
        return (file_stamp){0};
    return (file_stamp){st.st_dev, st.st_ino, st.st_size, st.st_mtim, true};
}

static bool same_stamp(const file_stamp *a, const file_stamp *b)
{
    return a->known == b->known && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The rows' common parent folder ("" when it is "/"), and its resolved path; NULL, NULL when no label is
 * an absolute path. */
static void find_root(engine_index *x)
{
    const char *recorded = jaclip_index_root(x->index);
    if (recorded) { /* built with --root: labels are relative to it (issue 25, "Roots and links") */
        x->recorded_root = true;
        if ((x->root = strdup(recorded)))
            x->resolved_root = realpath(recorded, NULL);
        return;
    }
    const char *first = NULL;
    size_t len = 0, n = jaclip_index_size(x->index);
    for (size_t i = 0; i < n; i++) {
        const char *label = jaclip_index_label(x->index, i);
        if (label[0] != '/')
            continue;
        if (!first) {
            first = label;
            len = (size_t)(strrchr(label, '/') - label);
            continue;
        }
        size_t j = 0;
        while (j < len && label[j] == first[j])
            j++;
        while (j > 0 && !(first[j] == '/' && label[j] == '/')) /* back to a folder of both */
            j--;
        len = j;
    }
    if (!first)
        return;
    if (!(x->root = strndup(first, len)))
        return;
    char *resolved = realpath(len ? x->root : "/", NULL);
    if (resolved) {
        if (!strcmp(resolved, "/"))
            resolved[0] = '\0';
        x->resolved_root = resolved;
    }
}

static char *ann_path(const char *path)
{
    size_t n = strlen(path) + 5;
    char *p = xcalloc(n, 1);
    snprintf(p, n, "%s.ann", path);
    return p;
}

/* INDEX.ann beside path, as `jaclip search` takes it: used when present and current for x's rows; a
 * stale or damaged one is logged and x is searched exactly. */
static void load_ann(engine_index *x, const char *path)
{
    char *p = ann_path(path);
    if (access(p, F_OK) == 0 && jaclip_ann_load(&x->ann, p, x->index, 0))
        fprintf(stderr, "jaclip serve: index '%s': %s: %s; searching exactly (jaclip index ann build %s)\n", x->name, p,
                jaclip_last_error(), path);
    free(p);
}

static engine_index *load_index(const engine *e, const char *name, const char *path, jaclip_status *st)
{
    jaclip_index *index = NULL;
    if ((*st = jaclip_index_load(&index, path, JACLIP_INDEX_DEFAULT)))
        return NULL;
    engine_index *x = xcalloc(1, sizeof *x);
    *x = (engine_index){.name = name, .index = index, .id = atomic_fetch_add(&next_id, 1), .refs = 1,
                        .dupes = engine_dupes_cache_new()};
    find_root(x);
    if (!e->exact)
        load_ann(x, path);
    return x;
}

static void free_index(engine_index *x)
{
    jaclip_ann_free(x->ann); /* it borrows the index */
    engine_dupes_cache_free(x->dupes);
    jaclip_index_free(x->index);
    free(x->root);
    free(x->resolved_root);
    free(x);
}

/* Whether the engine may serve x: the model's width, and jaclip search's fingerprint rule (an index
 * recording another model's fingerprint is refused unless --force; one recording none passes). false
 * with message set. */
static bool fits_model(const engine *e, const engine_index *x, const char *path, char *message, size_t size)
{
    if (jaclip_index_dim(x->index) != e->dim) {
        snprintf(message, size, "holds %zu-wide embeddings, the model makes %zu-wide ones", jaclip_index_dim(x->index),
                 e->dim);
        return false;
    }
    jaclip_status st = jaclip_index_check_fingerprint(x->index, jaclip_model_fingerprint(e->model),
                                                      JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN);
    if (!st)
        return true;
    if (e->force) {
        fprintf(stderr, "jaclip serve: %s: %s (served anyway: --force)\n", path, jaclip_last_error());
        return true;
    }
    snprintf(message, size, "%s (start with --force to serve it with this model anyway)", jaclip_last_error());
    return false;
}

/* "NAME=PATH" or "PATH" (NAME: the base name without its extension). */
static void open_entry(const engine *e, index_entry *entry, const char *arg)
{
    const char *eq = strchr(arg, '=');
    const char *path = eq ? eq + 1 : arg;
    char *name;
    if (eq) {
        name = strndup(arg, (size_t)(eq - arg));
    } else {
        const char *base = strrchr(path, '/');
        name = xstrdup(base ? base + 1 : path);
        char *dot = strrchr(name, '.');
        if (dot && dot != name)
            *dot = '\0';
    }
    if (!name || !*name ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(name))
        usage_error("--index name '%s' must be letters, digits, '.', '_' or '-' (use NAME=FILE)", name ? name : "");
    entry->name = name;
    entry->path = xstrdup(path);
    entry->loaded = stamp_of(path);
    char *ap = ann_path(path);
    entry->ann_loaded = stamp_of(ap);
    free(ap);
    jaclip_status st;
    if (!(entry->current = load_index(e, name, path, &st)))
        die(path, st);
    char message[768];
    if (!fits_model(e, entry->current, path, message, sizeof message)) {
        cli_warn("%s: %s", path, message);
        exit(EXIT_RUNTIME);
    }
}

void engine_indexes_open(engine *e, const char *const *args, size_t n)
{
    e->indexes = xcalloc(n ? n : 1, sizeof *e->indexes);
    for (size_t i = 0; i < n; i++) {
        open_entry(e, &e->indexes[i], args[i]);
        e->nindexes = i + 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(e->indexes[i].name, e->indexes[j].name))
                usage_error("two indexes are named '%s': use NAME=FILE", e->indexes[i].name);
    }
}

void engine_indexes_close(engine *e)
{
    for (size_t i = 0; i < e->nindexes; i++) {
        engine_index_put(e, e->indexes[i].current);
        free(e->indexes[i].name);
        free(e->indexes[i].path);
    }
    free(e->indexes);
}

size_t engine_index_count(const engine *e) { return e->nindexes; }
const char *engine_index_name(const engine_index *x) { return x->name; }
const jaclip_index *engine_index_handle(const engine_index *x) { return x->index; }
bool engine_index_has_ann(const engine_index *x) { return x->ann != NULL; }
const char *engine_index_ann_kind(const engine_index *x) { return jaclip_ann_kind_name(jaclip_ann_kind_of(x->ann)); }

/* Loads entry's file again when it changed since it was loaded (always: in any case) and swaps it in
 * (in this thread; requests holding the old view finish on it), or logs why not (message, when given).
 * A request finding the file changed while another thread reloads it waits for that reload, so that no
 * request starting after the file changed is answered from the old one. true when a new view went in. */
static bool reload_entry(engine *e, index_entry *entry, bool always, char *why, size_t why_size)
{
    char *ap = e->exact ? NULL : ann_path(entry->path);
    file_stamp now = stamp_of(entry->path), ann_now = ap ? stamp_of(ap) : (file_stamp){0};
    bool go;
    pthread_mutex_lock(&e->index_lock);
    for (;;) {
        /* A new INDEX.ann beside an unchanged index is a change too (not for a failed index file). */
        bool changed = (!same_stamp(&now, &entry->loaded) && !same_stamp(&now, &entry->failed)) ||
                       (same_stamp(&now, &entry->loaded) && !same_stamp(&ann_now, &entry->ann_loaded));
        go = always || changed;
        if (!go || !entry->reloading)
            break;
        pthread_cond_wait(&e->reload_done, &e->index_lock);
        now = stamp_of(entry->path);
        ann_now = ap ? stamp_of(ap) : (file_stamp){0};
        always = false; /* the reload waited for read the file as it is now, unless it changed again */
    }
    if (go)
        entry->reloading = true;
    pthread_mutex_unlock(&e->index_lock);
    free(ap);
    if (!go)
        return false;
    jaclip_status st = JACLIP_OK;
    engine_index *x = now.known ? load_index(e, entry->name, entry->path, &st) : NULL;
    char message[768] = "";
    if (!now.known)
        snprintf(message, sizeof message, "%s", strerror(errno));
    else if (!x)
        snprintf(message, sizeof message, "%s", jaclip_last_error());
    else
        fits_model(e, x, entry->path, message, sizeof message);
    if (message[0] && x) {
        free_index(x);
        x = NULL;
    }
    engine_index *old = NULL;
    pthread_mutex_lock(&e->index_lock);
    if (x) {
        old = entry->current;
        entry->current = x;
        entry->loaded = now;
        entry->ann_loaded = ann_now;
    } else {
        entry->failed = now;
    }
    entry->reloading = false;
    pthread_cond_broadcast(&e->reload_done);
    pthread_mutex_unlock(&e->index_lock);
    if (x) {
        atomic_fetch_add(&e->reloads, 1);
        fprintf(stderr, "jaclip serve: index '%s' reloaded from %s (%zu rows)\n", entry->name, entry->path,
                jaclip_index_size(x->index));
        engine_index_put(e, old);
    } else {
        atomic_fetch_add(&e->reload_failures, 1);
        fprintf(stderr, "jaclip serve: index '%s' was not reloaded, serving the rows loaded before: %s: %s\n",
                entry->name, entry->path, message);
    }
    if (why)
        snprintf(why, why_size, "%s", message);
    return x != NULL;
}

size_t engine_reload_all(engine *e, engine_reload_fn each, void *ctx)
{
    size_t failed = 0;
    for (size_t i = 0; i < e->nindexes; i++) {
        char message[768] = "";
        bool ok = reload_entry(e, &e->indexes[i], true, message, sizeof message);
        failed += !ok;
        if (each) {
            engine_index *x = engine_index_get_at(e, i);
            each(ctx, x, ok, message);
            engine_index_put(e, x);
        }
    }
    return failed;
}

engine_index *engine_index_get_at(engine *e, size_t i)
{
    if (i >= e->nindexes)
        return NULL;
    reload_entry(e, &e->indexes[i], false, NULL, 0);
    pthread_mutex_lock(&e->index_lock);
    engine_index *x = e->indexes[i].current;
    x->refs++;
    pthread_mutex_unlock(&e->index_lock);
    return x;
}

engine_index *engine_index_get(engine *e, const char *name, engine_result *why)
{
    if (!name) {
        if (e->nindexes == 1)
            return engine_index_get_at(e, 0);
        if (e->nindexes == 0)
            fail(why, ENGINE_NOT_FOUND, "no index is loaded (start with --index)");
        else
            fail(why, ENGINE_INVALID, "%zu indexes are loaded: name one with \"index\"", e->nindexes);
        return NULL;
    }
    for (size_t i = 0; i < e->nindexes; i++)
        if (!strcmp(e->indexes[i].name, name))
            return engine_index_get_at(e, i);
    fail(why, ENGINE_NOT_FOUND, "no index named '%.64s'", name);
    return NULL;
}

void engine_index_put(engine *e, engine_index *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&e->index_lock);
    bool last = --x->refs == 0;
    pthread_mutex_unlock(&e->index_lock);
    if (last)
        free_index(x);
}
