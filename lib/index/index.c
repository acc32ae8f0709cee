/* The embedding index in memory (lib/index/): L2-normalised float32 or float16 rows with UTF-8 labels,
 * their getters, fingerprints and deletion. The module's other files: index_labels.c (the label table),
 * index_vectors.c (rows as stored), index_search.c (exact top-k), index_format.c (reading files of
 * docs/index-format.md), index_write.c (writing them), index_merge.c (merging files), index_meta.c
 * (metadata: root, label style, orientation). Plain C; no
 * libtorch. */
#include "index/index_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

jc_run jc_index_added_run(const jaclip_index *index)
{
    return (jc_run){index->added_vectors, index->added_offsets, index->added_labels, index->added_stamps,
                    index->added_count,   index->file_rows,     UINT64_MAX,           NULL};
}

size_t jc_index_build_runs(const jaclip_index *index, jc_run *runs)
{
    size_t n = 0;
    for (size_t i = 0; i < index->nruns; i++)
        runs[n++] = index->runs[i];
    if (index->added_count > 0)
        runs[n++] = jc_index_added_run(index);
    return n;
}

/* The run holding row i (i < count). */
static jc_run run_of(const jaclip_index *index, size_t i)
{
    if (i >= index->file_rows)
        return jc_index_added_run(index);
    size_t lo = 0, hi = index->nruns;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (index->runs[mid].first <= i)
            lo = mid;
        else
            hi = mid;
    }
    return index->runs[lo];
}

const char *jc_index_label_at(const jaclip_index *index, size_t i)
{
    jc_run run = run_of(index, i);
    return jc_run_label(&run, i - run.first);
}

static jaclip_status grow(void **buf, size_t *cap, size_t need, size_t elem, const char *what)
{
    if (need <= *cap)
        return JACLIP_OK;
    size_t n = *cap ? *cap : 16, bytes;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    if (!jc_mul_size(n, elem, &bytes))
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index %s too large", what);
    void *p = realloc(*buf, bytes);
    if (!p)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory growing the index %s", what);
    *buf = p;
    *cap = n;
    return JACLIP_OK;
}

jaclip_status jaclip_index_create(jaclip_index **out, size_t dim)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (dim == 0 || dim > JACLIP_INDEX_MAX_DIM)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index dim must be 1..%d, got %zu", JACLIP_INDEX_MAX_DIM, dim);
    jaclip_index *index = calloc(1, sizeof *index);
    if (!index)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory creating an index");
    index->dim = dim;
    index->row_format = JACLIP_INDEX_ROWS_FLOAT32;
    *out = index;
    return JACLIP_OK;
}

void jaclip_index_free(jaclip_index *index)
{
    if (!index)
        return;
    if (index->file_mapped)
        munmap(index->file_data, index->file_size);
    else
        free(index->file_data);
    free(index->runs);
    free(index->added_vectors);
    free(index->added_offsets);
    free(index->added_labels);
    free(index->added_stamps);
    free(index->label_slots);
    jc_index_meta_clear(&index->meta);
    free(index);
}

/* Appends rows (checked) to the in-memory part; stamps may be NULL. */
static jaclip_status add_rows(jaclip_index *index, const jaclip_tensor *embeddings, const char *const *labels,
                              const jaclip_index_stamp *stamps)
{
    jaclip_status st;
    size_t rows, label_bytes, values;
    if ((st = jc_index_check_rows(embeddings, labels, index->dim, &rows, &label_bytes)))
        return st;
    if (rows == 0)
        return JACLIP_OK;
    size_t dim = index->dim, base = index->added_count, need = base + rows, es = jc_row_bytes(index->row_format);
    if (need < base || !jc_mul_size(need, dim, &values) || index->added_label_bytes > SIZE_MAX - label_bytes)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "index too large");
    float *scratch = malloc(dim * sizeof *scratch);
    if (!scratch)
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory adding rows");
    /* Grow everything first, so a failure leaves the index as it was. */
    size_t vec_cap = index->added_cap, off_cap = index->added_cap, stamp_cap = index->added_cap;
    if ((st = grow(&index->added_vectors, &vec_cap, need, dim * es, "rows")) ||
        (st = grow((void **)&index->added_offsets, &off_cap, need, sizeof(uint64_t), "labels")) ||
        (st = grow((void **)&index->added_stamps, &stamp_cap, need, JC_STAMP_BYTES, "stamps")) ||
        (st = grow((void **)&index->added_labels, &index->added_label_cap, index->added_label_bytes + label_bytes, 1,
                   "labels")) ||
        (st = jc_label_table_reserve(index, index->count + rows))) {
        free(scratch);
        return st;
    }
    index->added_cap = vec_cap < off_cap ? vec_cap : off_cap;
    if (stamp_cap < index->added_cap)
        index->added_cap = stamp_cap;
    const float *src = embeddings->data;
    for (size_t r = 0; r < rows; r++) {
        jc_index_store_row(index->added_vectors, base + r, src + r * dim, dim, index->row_format, scratch);
        jc_index_put_stamp(index->added_stamps + (base + r) * JC_STAMP_BYTES, stamps ? &stamps[r] : NULL);
        size_t len = strlen(labels[r]) + 1;
        index->added_offsets[base + r] = index->added_label_bytes;
        memcpy(index->added_labels + index->added_label_bytes, labels[r], len);
        index->added_label_bytes += len;
    }
    free(scratch);
    index->added_count = need;
    for (size_t r = 0; r < rows; r++)
        jc_label_table_insert(index, index->label_slots, index->label_cap, labels[r], index->count + r);
    index->count += rows;
    return JACLIP_OK;
}

jaclip_status jaclip_index_add(jaclip_index *index, const jaclip_tensor *embeddings, const char *const *labels)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    return add_rows(index, embeddings, labels, NULL);
}

size_t jaclip_index_size(const jaclip_index *index) { return index ? index->count : 0; }

size_t jaclip_index_dim(const jaclip_index *index) { return index ? index->dim : 0; }

const char *jaclip_index_label(const jaclip_index *index, size_t i)
{
    return index && i < index->count ? jc_index_label_at(index, i) : NULL;
}

jaclip_status jaclip_index_find_label(size_t *out, const jaclip_index *index, const char *label)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = SIZE_MAX;
    if (!index || !label)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "label" : "index");
    if ((*out = jc_label_table_find(index, label)) != SIZE_MAX)
        return JACLIP_OK;
    return jc_fail(JACLIP_ERROR_NOT_FOUND, "no row is labelled \"%.200s\"", label);
}

jaclip_status jaclip_index_embeddings(jaclip_tensor **out, const jaclip_index *index, size_t first, size_t count)
{
    jaclip_status st;
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (first > index->count || count > index->count - first)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "rows %zu..+%zu are past the end of an index of %zu rows", first,
                       count, index->count);
    if ((st = jc_tensor_new_2d(out, JACLIP_DTYPE_FLOAT32, (int64_t)count, (int64_t)index->dim)))
        return st;
    float *dst = (*out)->data;
    for (size_t r = first; r < first + count;) {
        jc_run run = run_of(index, r);
        size_t n = run.first + run.count - r;
        if (n > first + count - r)
            n = first + count - r;
        jc_index_copy_rows_f32(dst, &run, r - run.first, n, index->dim, index->row_format);
        dst += n * index->dim;
        r += n;
    }
    return JACLIP_OK;
}

/* A row argument of the per-row getters: the index exists and holds row i. */
static jaclip_status check_row(const jaclip_index *index, size_t i)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (i >= index->count)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "row %zu is past the end of an index of %zu rows", i,
                       index->count);
    return JACLIP_OK;
}

jaclip_status jaclip_index_stamp_of(jaclip_index_stamp *out, const jaclip_index *index, size_t i)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    memset(out, 0, sizeof *out);
    jaclip_status st = check_row(index, i);
    if (st)
        return st;
    jc_run run = run_of(index, i);
    if (!run.stamps)
        return JACLIP_OK;
    const unsigned char *p = run.stamps + (i - run.first) * JC_STAMP_BYTES;
    out->size = jc_get_u64le(p);
    out->mtime_ns = (int64_t)jc_get_u64le(p + 8);
    out->content_hash = jc_get_u64le(p + 16);
    return JACLIP_OK;
}

jaclip_status jaclip_index_row_time(int64_t *out_ns, int *out_source, const jaclip_index *index, size_t i)
{
    int source = JACLIP_ROW_TIME_NONE;
    if (out_source)
        *out_source = source;
    if (!out_ns)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out_ns is NULL");
    *out_ns = JACLIP_TIME_NONE;
    jaclip_status st = check_row(index, i);
    if (st)
        return st;
    jc_run run = run_of(index, i);
    *out_ns = jc_run_time(&run, i - run.first, &source);
    if (out_source)
        *out_source = source;
    return JACLIP_OK;
}

uint32_t jaclip_index_row_format(const jaclip_index *index)
{
    return index ? index->row_format : JACLIP_INDEX_ROWS_FLOAT32;
}

jaclip_status jaclip_index_set_row_format(jaclip_index *index, uint32_t row_format)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (row_format != JACLIP_INDEX_ROWS_FLOAT32 && row_format != JACLIP_INDEX_ROWS_FLOAT16)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown row format %u", (unsigned)row_format);
    if (row_format != index->row_format && (index->count > 0 || index->nruns > 0 || index->added_count > 0))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "the row format can only be changed on an empty index (this one has %zu rows)", index->count);
    index->row_format = row_format;
    return JACLIP_OK;
}

/* A fingerprint is 1..JC_FINGERPRINT_FIELD-1 printable ASCII characters without spaces. */
bool jc_index_valid_fingerprint(const char *fp, size_t len)
{
    if (len == 0 || len >= JC_FINGERPRINT_FIELD)
        return false;
    for (size_t i = 0; i < len; i++)
        if (fp[i] < 0x21 || fp[i] > 0x7E)
            return false;
    return true;
}

const char *jaclip_index_fingerprint(const jaclip_index *index) { return index ? index->fingerprint : NULL; }

jaclip_status jaclip_index_set_fingerprint(jaclip_index *index, const char *fingerprint)
{
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if (!fingerprint || !fingerprint[0]) {
        index->fingerprint[0] = '\0';
        return JACLIP_OK;
    }
    size_t len = strnlen(fingerprint, JC_FINGERPRINT_FIELD);
    if (!jc_index_valid_fingerprint(fingerprint, len))
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "a fingerprint is 1..%u printable ASCII characters without spaces", JC_FINGERPRINT_FIELD - 1);
    memcpy(index->fingerprint, fingerprint, len + 1);
    return JACLIP_OK;
}

jaclip_status jaclip_index_check_fingerprint(const jaclip_index *index, const char *fingerprint, uint32_t flags)
{
    if (!index || !fingerprint)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "%s is NULL", index ? "fingerprint" : "index");
    if (flags & ~JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "unknown fingerprint check flags 0x%x", (unsigned)flags);
    if (!index->fingerprint[0]) {
        if (flags & JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN)
            return JACLIP_OK;
        return jc_fail(JACLIP_ERROR_MODEL_MISMATCH,
                       "the index does not record which model built it (written before fingerprints, or "
                       "by a program that did not set one); this model is %.60s",
                       fingerprint);
    }
    if (strcmp(index->fingerprint, fingerprint) != 0)
        return jc_fail(JACLIP_ERROR_MODEL_MISMATCH,
                       "the index was built by model %s, this model is %.60s: its scores would be meaningless",
                       index->fingerprint, fingerprint);
    return JACLIP_OK;
}

jaclip_status jc_index_check_label_list(const char *const *labels, size_t n)
{
    if (n > 0 && !labels)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels is NULL");
    for (size_t i = 0; i < n; i++)
        if (!labels[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "labels[%zu] is NULL", i);
    return JACLIP_OK;
}

/* Appends to out[*n] the parts of run whose rows dead[] does not flag (dead[j] for the run's row j;
 * NULL: none), numbered on from *next; row_bytes is one stored row. */
void jc_index_split_run(jc_run *out, size_t *n, const jc_run *run, const unsigned char *dead, size_t row_bytes,
                        size_t *next)
{
    size_t j = 0;
    while (j < run->count) {
        while (dead && j < run->count && dead[j])
            j++;
        size_t start = j;
        while (j < run->count && !(dead && dead[j]))
            j++;
        if (j > start) {
            out[(*n)++] = (jc_run){.vectors = (const unsigned char *)run->vectors + start * row_bytes,
                                   .label_offsets = run->label_offsets + start,
                                   .labels = run->labels,
                                   .stamps = run->stamps ? run->stamps + start * JC_STAMP_BYTES : NULL,
                                   .count = j - start,
                                   .first = *next,
                                   .file_row = run->file_row + start,
                                   .times = run->times ? run->times + start * JC_TIME_BYTES : NULL};
            *next += j - start;
        }
    }
}

/* Drops the rows whose dead[] flag is set: file runs are split around them, added rows are moved
 * down, and rows are renumbered in order. Allocates before changing anything. */
static jaclip_status drop_rows(jaclip_index *index, const unsigned char *dead, size_t ndead)
{
    if (ndead == 0)
        return JACLIP_OK;
    size_t max_runs = index->nruns + ndead + 1, cap = jc_label_table_capacity(index->count - ndead);
    jc_run *runs = calloc(max_runs, sizeof *runs);
    size_t *slots = cap ? calloc(cap, sizeof *slots) : NULL;
    if (!runs || !slots) {
        free(runs);
        free(slots);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory removing rows");
    }
    size_t nruns = 0, next = 0, es = jc_row_bytes(index->row_format) * index->dim;
    for (size_t i = 0; i < index->nruns; i++)
        jc_index_split_run(runs, &nruns, &index->runs[i], dead + index->runs[i].first, es, &next);
    size_t file_rows = next;
    /* Added rows: compact in place (labels keep their bytes; only offsets move). */
    size_t kept = 0;
    for (size_t r = 0; r < index->added_count; r++) {
        if (dead[index->file_rows + r])
            continue;
        if (kept != r) {
            memmove((unsigned char *)index->added_vectors + kept * es, (unsigned char *)index->added_vectors + r * es,
                    es);
            memmove(index->added_stamps + kept * JC_STAMP_BYTES, index->added_stamps + r * JC_STAMP_BYTES,
                    JC_STAMP_BYTES);
            index->added_offsets[kept] = index->added_offsets[r];
        }
        kept++;
    }
    free(index->runs);
    index->runs = runs;
    index->nruns = nruns;
    index->file_rows = file_rows;
    index->added_count = kept;
    index->count = file_rows + kept;
    /* The table holds row numbers, which have moved: refill it. */
    jc_label_table_adopt(index, slots, cap);
    return JACLIP_OK;
}

jaclip_status jaclip_index_remove(jaclip_index *index, const char *const *labels, size_t n, size_t *out_removed)
{
    jaclip_status st;
    if (out_removed)
        *out_removed = 0;
    if (!index)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "index is NULL");
    if ((st = jc_index_check_label_list(labels, n)))
        return st;
    if (n == 0 || index->count == 0)
        return JACLIP_OK;
    jc_label_set set;
    if ((st = jc_label_set_build(&set, labels, n)))
        return st;
    unsigned char *dead = calloc(index->count, 1);
    if (!dead) {
        free(set.slots);
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory removing rows");
    }
    size_t ndead = 0;
    for (size_t r = 0; r < index->count; r++)
        if (jc_label_set_has(&set, jc_index_label_at(index, r)))
            dead[r] = 1, ndead++;
    free(set.slots);
    st = drop_rows(index, dead, ndead);
    free(dead);
    if (!st && out_removed)
        *out_removed = ndead;
    return st;
}

size_t jc_index_span_count(const jaclip_index *index) { return index ? index->nruns + (index->added_count > 0) : 0; }

bool jc_index_span(const jaclip_index *index, size_t i, jc_index_rows *out)
{
    if (!index || i >= jc_index_span_count(index))
        return false;
    jc_run run = i < index->nruns ? index->runs[i] : jc_index_added_run(index);
    *out = (jc_index_rows){run.vectors, index->row_format, index->dim, run.first, run.count};
    return true;
}
