/* jaclip search's filters (--folder, --after, --before, --type), --offset and --threshold, turned into
 * the library's jaclip_search_options (filter-then-rank lives there, once). */
#include "cli.h"

#include <time.h>

/* DATE as YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], local time, in ns since the epoch. */
static int64_t parse_date(const char *text, const char *option)
{
    struct tm tm = {0};
    const char *end = strptime(text, "%Y-%m-%d", &tm);
    if (end && *end == 'T') {
        const char *more = strptime(end + 1, "%H:%M:%S", &tm);
        end = more ? more : strptime(end + 1, "%H:%M", &tm);
    }
    if (!end || *end)
        usage_error("%s: '%s' is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS], local time)", option, text);
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    return (int64_t)t * 1000000000;
}

/* The folder as labels store it: an existing folder is resolved, then made relative to the index's
 * root when it records one; anything else is taken as written. */
static char *folder_as_label(const char *folder, const jaclip_index *index)
{
    char *full = realpath(folder, NULL);
    const char *root = jaclip_index_root(index);
    if (!full)
        return xstrdup(folder);
    size_t rl = root ? strlen(root) : 0;
    if (root && !strncmp(full, root, rl) && (full[rl] == '/' || full[rl] == '\0')) {
        char *rel = xstrdup(full[rl] ? full + rl + 1 : "");
        free(full);
        return rel;
    }
    return full;
}

void search_filter_option(search_filter *f, int opt, const char *arg)
{
    switch (opt) {
    case OPT_SEARCH_FOLDER: f->folder = arg; break;
    case OPT_SEARCH_AFTER: f->after = parse_date(arg, "--after"), f->has_after = true; break;
    case OPT_SEARCH_BEFORE: f->before = parse_date(arg, "--before"), f->has_before = true; break;
    case OPT_SEARCH_TYPE: list_push(&f->types, (char *)arg); break;
    case OPT_SEARCH_OFFSET: f->offset = (size_t)parse_long(arg, "--offset", 0, 1000000000); break;
    case OPT_SEARCH_THRESHOLD:
        f->threshold = parse_double(arg, "--threshold");
        if (!(f->threshold >= -1 && f->threshold <= 1))
            usage_error("--threshold is a cosine in [-1, 1], not %s", arg);
        f->has_threshold = true;
        break;
    }
}

bool search_filter_used(const search_filter *f)
{
    return f->folder || f->has_after || f->has_before || f->types.count || f->offset || f->has_threshold;
}

jaclip_search_options *search_filter_options(const search_filter *f, const jaclip_index *index)
{
    jaclip_search_options *o = NULL;
    jaclip_status st = jaclip_search_options_create(&o);
    char *folder = f->folder ? folder_as_label(f->folder, index) : NULL;
    if (!st && folder)
        st = jaclip_search_options_set_folder(o, folder);
    if (!st && (f->has_after || f->has_before))
        st = jaclip_search_options_set_time_range(o, f->has_after ? f->after : INT64_MIN,
                                                  f->has_before ? f->before : INT64_MAX);
    for (size_t i = 0; i < f->types.count && !st; i++) {
        /* --type jpg,png as well as --type jpg --type png */
        char *list = xstrdup(f->types.items[i]), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t && !st; t = strtok_r(NULL, ",", &save))
            st = jaclip_search_options_add_file_type(o, t);
        free(list);
    }
    if (!st)
        st = jaclip_search_options_set_offset(o, f->offset);
    if (!st && f->has_threshold)
        st = jaclip_search_options_set_threshold(o, (float)f->threshold);
    free(folder);
    if (st) {
        report(NULL, st);
        exit(EXIT_USAGE);
    }
    return o;
}
