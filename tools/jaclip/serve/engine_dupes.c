/* Duplicate groups of a served index, grouped once per view and setting: a page of /v1/duplicates then
 * costs a copy, not a grouping of the whole index (about 30 s at a million rows, docs/duplicates.md). */
#include "engine_internal.h"

#include <stdlib.h>

struct engine_dupes_cache {
    pthread_mutex_t lock; /* held while grouping: one grouping of a view at a time */
    struct {
        float threshold;
        bool exact_only;
        jaclip_dupes *groups; /* every group; NULL: slot unused */
    } kept[ENGINE_DUPES_KEPT];
};

engine_dupes_cache *engine_dupes_cache_new(void)
{
    engine_dupes_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void engine_dupes_cache_free(engine_dupes_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < ENGINE_DUPES_KEPT; i++)
        jaclip_dupes_free(c->kept[i].groups);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static jaclip_status group(jaclip_dupes **out, const jaclip_index *index, float threshold, bool exact_only)
{
    jaclip_dupes_options *o = NULL;
    jaclip_status st = jaclip_dupes_options_create(&o);
    if (!st)
        st = jaclip_dupes_options_set_threshold(o, threshold);
    if (!st)
        st = jaclip_dupes_options_set_exact_only(o, exact_only);
    if (!st)
        st = jaclip_index_duplicates(out, index, o);
    jaclip_dupes_options_free(o);
    return st;
}

const jaclip_dupes *engine_dupes(engine_index *x, float threshold, bool exact_only, jaclip_dupes **owned,
                                 engine_result *why)
{
    engine_dupes_cache *c = x->dupes;
    const jaclip_dupes *found = NULL;
    *owned = NULL;
    pthread_mutex_lock(&c->lock);
    size_t free_slot = ENGINE_DUPES_KEPT;
    for (size_t i = 0; i < ENGINE_DUPES_KEPT && !found; i++) {
        if (!c->kept[i].groups) {
            free_slot = free_slot < i ? free_slot : i;
            continue;
        }
        if (c->kept[i].threshold == threshold && c->kept[i].exact_only == exact_only)
            found = c->kept[i].groups;
    }
    if (!found) {
        jaclip_dupes *d = NULL;
        jaclip_status st = group(&d, x->index, threshold, exact_only);
        if (st) {
            pthread_mutex_unlock(&c->lock);
            fail_library(why, st);
            return NULL;
        }
        if (free_slot < ENGINE_DUPES_KEPT) /* kept until the view goes: readers never see it freed */
            c->kept[free_slot].threshold = threshold, c->kept[free_slot].exact_only = exact_only,
            c->kept[free_slot].groups = d;
        else
            *owned = d; /* a setting past the kept ones: the caller frees it */
        found = d;
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}
