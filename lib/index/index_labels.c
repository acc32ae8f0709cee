/* An index's labels: the open-addressing table from label to its lowest row (keyed per process, so a
 * crafted file cannot line its labels up on one chain), and the label sets of a removal. */
#include "index/index_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* A per-process random key, so a crafted file cannot line its labels up on one chain. */
static uint64_t hash_key;
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void make_hash_key(void)
{
    uint64_t k = 0;
    if (getrandom(&k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
    }
    hash_key = k | 1;
}

static uint64_t label_hash(const char *s)
{
    pthread_once(&hash_key_once, make_hash_key);
    uint64_t h = 1469598103934665603ull ^ hash_key; /* FNV-1a from a keyed basis, then a full mix */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    h ^= hash_key;
    h ^= h >> 33, h *= 0xFF51AFD7ED558CCDull, h ^= h >> 33, h *= 0xC4CEB9FE1A85EC53ull, h ^= h >> 33;
    return h;
}

/* Records row under label unless an equal label is there already (rows are inserted in increasing
 * order, so the slot keeps the lowest row). Equal labels stop the probe at once: one slot per distinct
 * label keeps a file of one repeated label linear to load. */
void jc_label_table_insert(const jaclip_index *index, size_t *slots, size_t cap, const char *label, size_t row)
{
    size_t i = (size_t)label_hash(label) & (cap - 1);
    while (slots[i]) {
        if (strcmp(jc_index_label_at(index, slots[i] - 1), label) == 0)
            return;
        i = (i + 1) & (cap - 1);
    }
    slots[i] = row + 1;
}

size_t jc_label_table_find(const jaclip_index *index, const char *label)
{
    if (index->label_cap == 0)
        return SIZE_MAX;
    size_t i = (size_t)label_hash(label) & (index->label_cap - 1);
    for (; index->label_slots[i]; i = (i + 1) & (index->label_cap - 1)) {
        size_t row = index->label_slots[i] - 1;
        if (strcmp(jc_index_label_at(index, row), label) == 0)
            return row;
    }
    return SIZE_MAX;
}

size_t jc_label_table_capacity(size_t rows)
{
    size_t cap = 64;
    while (cap / 2 < rows && cap <= SIZE_MAX / 4 / sizeof(size_t))
        cap *= 2;
    return cap / 2 < rows ? 0 : cap;
}

/* Fills the empty table slots[cap] with every row and makes it the index's. */
void jc_label_table_adopt(jaclip_index *index, size_t *slots, size_t cap)
{
    for (size_t r = 0; r < index->count; r++)
        jc_label_table_insert(index, slots, cap, jc_index_label_at(index, r), r);
    free(index->label_slots);
    index->label_slots = slots;
    index->label_cap = cap;
}

/* Keeps the table at most half full for `rows` rows. */
jaclip_status jc_label_table_reserve(jaclip_index *index, size_t rows)
{
    size_t cap = jc_label_table_capacity(rows);
    if (!cap)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index label table too large");
    if (cap <= index->label_cap)
        return JACLIP_OK;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for the index label table");
    jc_label_table_adopt(index, slots, cap);
    return JACLIP_OK;
}

jaclip_status jc_label_set_build(jc_label_set *set, const char *const *labels, size_t n)
{
    set->cap = jc_label_table_capacity(n);
    set->slots = set->cap ? calloc(set->cap, sizeof *set->slots) : NULL;
    if (!set->slots)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory for %zu labels", n);
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)label_hash(labels[i]) & (set->cap - 1);
        while (set->slots[s] && strcmp(set->slots[s], labels[i]) != 0)
            s = (s + 1) & (set->cap - 1);
        set->slots[s] = labels[i];
    }
    return JACLIP_OK;
}

bool jc_label_set_has(const jc_label_set *set, const char *label)
{
    size_t s = (size_t)label_hash(label) & (set->cap - 1);
    for (; set->slots[s]; s = (s + 1) & (set->cap - 1))
        if (strcmp(set->slots[s], label) == 0)
            return true;
    return false;
}
