/* Search options (jaclip_search_options): which rows a search may return (a folder, a time range of
 * the row's capture time or else its file stamp's mtime, file types), from which rank (offset) and above which score (threshold). The
 * rows that pass are chosen before ranking, so k results come back whenever k rows pass. */
#include "index/index_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define JC_MAX_TYPES 32
#define JC_MAX_TYPE_LEN 15

struct jaclip_search_options {
    size_t offset;
    float threshold; /* -INFINITY: none */
    char *prefix;    /* a folder of labels, without its trailing '/'; NULL: any */
    bool has_time;
    int64_t time_from, time_to; /* [from, to) in ns since the epoch */
    char types[JC_MAX_TYPES][JC_MAX_TYPE_LEN + 1];
    size_t ntypes;
};

jaclip_status jaclip_search_options_create(jaclip_search_options **out)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = calloc(1, sizeof **out);
    if (!*out)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for search options");
    (*out)->threshold = -INFINITY;
    return JACLIP_OK;
}

void jaclip_search_options_free(jaclip_search_options *options)
{
    if (!options)
        return;
    free(options->prefix);
    free(options);
}

jaclip_status jaclip_search_options_set_offset(jaclip_search_options *options, size_t offset)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    options->offset = offset;
    return JACLIP_OK;
}

jaclip_status jaclip_search_options_set_threshold(jaclip_search_options *options, float min_score)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (isnan(min_score) || min_score > 1.0f)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "a threshold is a cosine at most 1 (or -INFINITY for none), not %g",
                       (double)min_score);
    options->threshold = min_score;
    return JACLIP_OK;
}

jaclip_status jaclip_search_options_set_folder(jaclip_search_options *options, const char *folder)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    char *copy = NULL;
    if (folder && folder[0]) {
        size_t n = strlen(folder);
        if (jc_utf8_invalid_at((const unsigned char *)folder, n) != SIZE_MAX)
            return jc_fail(JACLIP_ERROR_INVALID_UTF8, "the folder is not valid UTF-8");
        while (n > 1 && folder[n - 1] == '/')
            n--; /* "a/b/" and "a/b" are the same folder; "/" stays "/" */
        if (!(copy = strndup(folder, n)))
            return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for search options");
    }
    free(options->prefix);
    options->prefix = copy;
    return JACLIP_OK;
}

jaclip_status jaclip_search_options_set_time_range(jaclip_search_options *options, int64_t from_ns, int64_t to_ns)
{
    if (!options)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "options is NULL");
    if (from_ns == INT64_MIN && to_ns == INT64_MAX) {
        options->has_time = false;
        return JACLIP_OK;
    }
    if (from_ns >= to_ns)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "the time range is empty: from %lld ns is not before to %lld ns",
                       (long long)from_ns, (long long)to_ns);
    options->has_time = true;
    options->time_from = from_ns;
    options->time_to = to_ns;
    return JACLIP_OK;
}

jaclip_status jaclip_search_options_add_file_type(jaclip_search_options *options, const char *extension)
{
    if (!options || !extension)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", options ? "extension" : "options");
    if (extension[0] == '.')
        extension++;
    size_t n = strlen(extension);
    if (n == 0 || n > JC_MAX_TYPE_LEN || strchr(extension, '/'))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "a file type is an extension of 1..%d characters, like \"jpg\"",
                       JC_MAX_TYPE_LEN);
    if (options->ntypes == JC_MAX_TYPES)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "at most %d file types", JC_MAX_TYPES);
    memcpy(options->types[options->ntypes++], extension, n + 1);
    return JACLIP_OK;
}

size_t jc_search_offset(const jaclip_search_options *o) { return o ? o->offset : 0; }
float jc_search_threshold(const jaclip_search_options *o) { return o ? o->threshold : -INFINITY; }

bool jc_search_filters(const jaclip_search_options *o) { return o && (o->prefix || o->has_time || o->ntypes); }

static bool in_folder(const char *label, const char *prefix)
{
    size_t n = strlen(prefix);
    if (n == 1 && prefix[0] == '/')
        return label[0] == '/';
    return strncmp(label, prefix, n) == 0 && label[n] == '/';
}

static bool of_type(const char *label, const jaclip_search_options *o)
{
    const char *slash = strrchr(label, '/'), *dot = strrchr(label, '.');
    if (!dot || (slash && dot < slash))
        return false;
    for (size_t i = 0; i < o->ntypes; i++)
        if (strcasecmp(dot + 1, o->types[i]) == 0)
            return true;
    return false;
}

static bool passes(const jc_run *run, size_t j, const jaclip_search_options *o)
{
    const char *label = jc_run_label(run, j);
    if (o->prefix && !in_folder(label, o->prefix))
        return false;
    if (o->ntypes && !of_type(label, o))
        return false;
    if (o->has_time) {
        /* The capture time, else the stamp's mtime; a row with neither is outside every range. */
        int source;
        int64_t t = jc_run_time(run, j, &source);
        if (source == JACLIP_ROW_TIME_NONE || t < o->time_from || t >= o->time_to)
            return false;
    }
    return true;
}

jaclip_status jc_search_passing_rows(const jaclip_index *index, const jaclip_search_options *o, size_t **out_rows,
                                     size_t *out_n)
{
    jc_run *runs = malloc((index->nruns + 1) * sizeof *runs);
    size_t *rows = malloc((index->count ? index->count : 1) * sizeof *rows), n = 0;
    if (!runs || !rows) {
        free(runs);
        free(rows);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory filtering %zu rows", index->count);
    }
    size_t nruns = jc_index_build_runs(index, runs);
    for (size_t i = 0; i < nruns; i++)
        for (size_t j = 0; j < runs[i].count; j++)
            if (passes(&runs[i], j, o))
                rows[n++] = runs[i].first + j;
    free(runs);
    *out_rows = rows;
    *out_n = n;
    return JACLIP_OK;
}
