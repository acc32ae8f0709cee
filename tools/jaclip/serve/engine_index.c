/* The registry of served indexes: loaded at start, shared by reference with the requests using them. */
#include "engine_internal.h"

static atomic_ulong next_id = 1;

/* "NAME=PATH" or "PATH" (NAME: the base name without its extension). */
static engine_index *load_served_index(const char *arg, size_t dim)
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
    jaclip_index *index = load_index_or_die(path);
    if (jaclip_index_dim(index) != dim) {
        cli_warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", path, jaclip_index_dim(index), dim);
        exit(EXIT_RUNTIME);
    }
    engine_index *x = xcalloc(1, sizeof *x);
    *x = (engine_index){.name = name, .index = index, .id = atomic_fetch_add(&next_id, 1), .refs = 1};
    return x;
}

static void free_index(engine_index *x)
{
    jaclip_index_free(x->index);
    free(x->name);
    free(x);
}

void engine_indexes_open(engine *e, const char *const *args, size_t n)
{
    e->indexes = xcalloc(n ? n : 1, sizeof *e->indexes);
    for (size_t i = 0; i < n; i++) {
        e->indexes[i] = load_served_index(args[i], e->dim);
        e->nindexes = i + 1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(e->indexes[i]->name, e->indexes[j]->name))
                usage_error("two indexes are named '%s': use NAME=FILE", e->indexes[i]->name);
    }
}

void engine_indexes_close(engine *e)
{
    for (size_t i = 0; i < e->nindexes; i++)
        engine_index_put(e, e->indexes[i]);
    free(e->indexes);
}

size_t engine_index_count(const engine *e) { return e->nindexes; }
const char *engine_index_name(const engine_index *x) { return x->name; }
const jaclip_index *engine_index_handle(const engine_index *x) { return x->index; }

engine_index *engine_index_get_at(engine *e, size_t i)
{
    pthread_mutex_lock(&e->index_lock);
    engine_index *x = i < e->nindexes ? e->indexes[i] : NULL;
    if (x)
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
        if (!strcmp(e->indexes[i]->name, name))
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
