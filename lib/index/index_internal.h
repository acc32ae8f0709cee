/* The index module's own header (lib/index/): the in-memory layout of a jaclip_index, the constants of
 * the file format (docs/index-format.md) and the functions its files share. Never installed; other
 * modules read an index through index_rows.h or the public API. */
#ifndef JACLIP_INDEX_INTERNAL_H
#define JACLIP_INDEX_INTERNAL_H

#include "common/bytes.h"
#include "common/internal.h"
#include "index/index_rows.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define JC_INDEX_HOST_LE 0
#else
#define JC_INDEX_HOST_LE 1
#endif

#define JC_FILE_MAGIC "JACLIPIX"
#define JC_SEGMENT_MAGIC "JSEG"
#define JC_TOMBSTONE_MAGIC "JDEL"
#define JC_META_MAGIC "JMET"
#define JC_FORMAT_VERSION 2u
/* Written only by files that record metadata, so that files without any stay readable by older
 * libraries. */
#define JC_FORMAT_VERSION_META 3u
/* Written only by files whose row segments record capture times (JC_SEGMENT_TIMES). */
#define JC_FORMAT_VERSION_TIMES 4u
/* Row segment header flag (u32 at offset 36, version 4): the payload holds an int64 capture time per
 * row after the stamps. */
#define JC_SEGMENT_TIMES 1u
#define JC_TIME_BYTES 8u
#define JC_META_MAX_ENTRIES 64
#define JC_META_MAX_KEY 64
#define JC_META_MAX_VALUE 4096
#define JC_HEADER_SIZE_V1 64u
#define JC_HEADER_SIZE 128u
#define JC_SEGMENT_HEADER_SIZE 64u
#define JC_ALIGN 64u
#define JC_STAMP_BYTES 24u
/* File header flag of version 2: rows are IEEE float16. */
#define JC_FLAG_FLOAT16 1u
/* Room for the fingerprint in the version 2 header, NUL-padded. */
#define JC_FINGERPRINT_FIELD 56u
/* Above this many row-floats a search is split across threads. */
#define JC_PARALLEL_MIN_WORK ((size_t)1 << 20)
#define JC_MAX_THREADS 8
/* Queries scored per pass over the rows: 8 x 512 floats stay in L1 while rows stream past. */
#define JC_QUERY_BLOCK 8
/* float16 rows are widened this many at a time before being scored. */
#define JC_F16_CHUNK 64

/* A run of consecutive live rows that lie together in memory (part of one file segment, or the added
 * rows). */
typedef struct {
    const void *vectors;           /* float or uint16_t [count, dim], per index->row_format */
    const uint64_t *label_offsets; /* into labels; label i ends at its NUL */
    const char *labels;
    const unsigned char *stamps; /* JC_STAMP_BYTES per row (little-endian), or NULL: none recorded */
    size_t count;
    size_t first; /* row id of the run's first row */
    /* the first row's number among the file's stored rows (tombstones name these); UINT64_MAX for
     * added rows */
    uint64_t file_row;
    /* JC_TIME_BYTES per row: capture time in ns, little-endian, INT64_MIN = none; NULL: none recorded */
    const unsigned char *times;
} jc_run;

/* Index metadata: key = value strings (malloc'd), in the order set. */
typedef struct {
    char *keys[JC_META_MAX_ENTRIES];
    char *values[JC_META_MAX_ENTRIES];
    size_t count;
} jc_meta;

struct jaclip_index {
    size_t dim;
    size_t count;
    uint32_t row_format; /* JACLIP_INDEX_ROWS_* */
    char fingerprint[JC_FINGERPRINT_FIELD];
    jc_meta meta;
    /* The loaded file: mapped, or read into malloc'd memory. Runs point into it. */
    void *file_data;
    size_t file_size;
    bool file_mapped;
    jc_run *runs;
    size_t nruns;
    size_t file_rows; /* live rows from the file: rows 0..file_rows-1 */
    size_t file_deleted; /* rows the loaded file's tombstones delete (space compaction frees) */
    /* Rows added in memory, after the file's rows. */
    void *added_vectors;
    uint64_t *added_offsets;
    char *added_labels;
    unsigned char *added_stamps;
    size_t added_count, added_cap, added_label_bytes, added_label_cap;
    /* Open-addressing table of row + 1 (0 = empty slot), one slot per distinct label (its lowest row);
     * capacity a power of two, at most half full. */
    size_t *label_slots;
    size_t label_cap;
};

/* A set of labels (pointers into the caller's array), for one removal. */
typedef struct {
    const char **slots;
    size_t cap;
} jc_label_set;

/* The file header (docs/index-format.md). */
typedef struct {
    uint32_t version, dim, flags;
    uint64_t committed, rows, segments, sequence, deleted;
    char fingerprint[JC_FINGERPRINT_FIELD];
} jc_file_header;

/* Layout of a row segment's payload: vectors, label offsets (8-aligned), stamps (version 2), capture
 * times (JC_SEGMENT_TIMES), labels, padding. */
typedef struct {
    uint64_t vector_bytes, offsets_at, stamps_at, times_at, labels_at, payload_bytes;
} jc_segment_layout;

static inline size_t jc_row_bytes(uint32_t row_format) { return row_format == JACLIP_INDEX_ROWS_FLOAT16 ? 2 : 4; }

static inline uint64_t jc_align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/* Checked a * b + c in 64 bits. */
static inline bool jc_mul_add_u64(uint64_t a, uint64_t b, uint64_t c, uint64_t *out)
{
    if (b != 0 && a > (UINT64_MAX - c) / b)
        return false;
    *out = a * b + c;
    return true;
}

static inline const char *jc_run_label(const jc_run *run, size_t j) { return run->labels + run->label_offsets[j]; }

/* The capture time of the run's row j, INT64_MIN when none is recorded. */
static inline int64_t jc_run_capture(const jc_run *run, size_t j)
{
    return run->times ? (int64_t)jc_get_u64le(run->times + j * JC_TIME_BYTES) : INT64_MIN;
}

/* The time date filters compare for the run's row j (jaclip_index_row_time): the capture time, else
 * the stamp's mtime, else none (source JACLIP_ROW_TIME_NONE). */
static inline int64_t jc_run_time(const jc_run *run, size_t j, int *source)
{
    int64_t t = jc_run_capture(run, j);
    if (t != INT64_MIN) {
        *source = JACLIP_ROW_TIME_EXIF;
        return t;
    }
    const unsigned char *s = run->stamps ? run->stamps + j * JC_STAMP_BYTES : NULL;
    /* A stamp of all zeros was never recorded. */
    if (s && (jc_get_u64le(s) | jc_get_u64le(s + 8) | jc_get_u64le(s + 16)) != 0) {
        *source = JACLIP_ROW_TIME_MTIME;
        return (int64_t)jc_get_u64le(s + 8);
    }
    *source = JACLIP_ROW_TIME_NONE;
    return INT64_MIN;
}

/* ---- index.c: rows in memory ---- */
/* The added rows as a run (row ids file_rows..count-1). */
jc_run jc_index_added_run(const jaclip_index *index);
/* Every run of the index, file runs then the added rows, into runs[nruns + 1]; returns how many. */
size_t jc_index_build_runs(const jaclip_index *index, jc_run *runs);
const char *jc_index_label_at(const jaclip_index *index, size_t i);
/* The live parts of run (dead[j] flags its row j; NULL: none dead) appended to out[*n], numbered from *next. */
void jc_index_split_run(jc_run *out, size_t *n, const jc_run *run, const unsigned char *dead, size_t row_bytes,
                        size_t *next);
/* A fingerprint is 1..JC_FINGERPRINT_FIELD-1 printable ASCII characters without spaces. */
bool jc_index_valid_fingerprint(const char *fp, size_t len);
/* INVALID_ARGUMENT unless labels[0..n) are all non-NULL (labels may be NULL when n is 0). */
jaclip_status jc_index_check_label_list(const char *const *labels, size_t n);

/* ---- index_labels.c: the label table and label sets ---- */
void jc_label_table_insert(const jaclip_index *index, size_t *slots, size_t cap, const char *label, size_t row);
/* Slots for a table at most half full with rows rows; 0 if too large. */
size_t jc_label_table_capacity(size_t rows);
void jc_label_table_adopt(jaclip_index *index, size_t *slots, size_t cap);
jaclip_status jc_label_table_reserve(jaclip_index *index, size_t rows);
/* The row whose label is label, or SIZE_MAX. */
size_t jc_label_table_find(const jaclip_index *index, const char *label);
jaclip_status jc_label_set_build(jc_label_set *set, const char *const *labels, size_t n);
bool jc_label_set_has(const jc_label_set *set, const char *label);

/* ---- index_vectors.c: rows as stored ---- */
void jc_index_widen_f16(float *dst, const uint16_t *src, size_t n);
void jc_index_store_row(void *dst, size_t r, const float *src, size_t dim, uint32_t row_format, float *scratch);
void jc_index_copy_rows_f32(float *dst, const jc_run *run, size_t r0, size_t n, size_t dim, uint32_t row_format);
jaclip_status jc_index_check_finite(const float *data, size_t rows, size_t dim, const char *name);
size_t jc_index_first_bad_value(const void *vectors, size_t n, uint32_t row_format);
jaclip_status jc_index_check_rows(const jaclip_tensor *embeddings, const char *const *labels, size_t dim, size_t *rows,
                                  size_t *label_bytes);
void jc_index_put_stamp(unsigned char *p, const jaclip_index_stamp *s);

/* ---- index_meta.c: metadata (format version 3) ---- */
void jc_index_meta_clear(jc_meta *m);
jaclip_status jc_index_meta_copy(jc_meta *dst, const jc_meta *src);
/* Checked like jaclip_index_set_metadata; value NULL removes key. */
jaclip_status jc_index_meta_set_checked(jc_meta *m, const char *key, const char *value);
/* Bytes of the entries' text ("key\0value\0" each) and of the segment payload holding them. */
uint64_t jc_index_meta_bytes(const jc_meta *m);
uint64_t jc_index_meta_payload_bytes(uint64_t text_bytes);
/* Replaces *m by the count entries of a JMET payload of bytes text bytes (checked). */
jaclip_status jc_index_meta_parse(jc_meta *m, const unsigned char *payload, uint64_t count, uint64_t bytes,
                                  const char *path, size_t seg);
/* Writes a JMET segment of m at offset. */
jaclip_status jc_index_meta_write(int fd, uint64_t offset, const jc_meta *m, const char *path, uint64_t *segment_bytes);

/* ---- index_filter.c: search options ---- */
size_t jc_search_offset(const jaclip_search_options *o);
float jc_search_threshold(const jaclip_search_options *o);
/* Whether o (may be NULL) restricts the rows at all. */
bool jc_search_filters(const jaclip_search_options *o);
/* The ids of the rows that o lets a search return, increasing (malloc'd). */
jaclip_status jc_search_passing_rows(const jaclip_index *index, const jaclip_search_options *o, size_t **out_rows,
                                     size_t *out_n);

/* ---- index_segments.c: writing segments ---- */
/* Whether any row of runs[0..nruns) records a capture time (its segment then needs JC_SEGMENT_TIMES). */
bool jc_index_runs_have_times(const jc_run *runs, size_t nruns);
/* Writes one row segment of the rows of runs (labels re-based into one blob) at offset; capture times
 * too when times (the file must then be version 4). */
jaclip_status jc_index_write_segment(int fd, uint64_t offset, const jc_run *runs, size_t nruns, size_t rows,
                                     const jc_file_header *fh, bool times, uint64_t label_bytes, const char *path,
                                     uint64_t *segment_bytes);
/* Writes a tombstone segment deleting the stored rows ids[0..n) (increasing) at offset. */
jaclip_status jc_index_write_tombstones(int fd, uint64_t offset, const uint64_t *ids, size_t n, const char *path,
                                        uint64_t *segment_bytes);
uint64_t jc_index_run_label_bytes(const jc_run *runs, size_t nruns);

/* ---- index_format.c: reading files ---- */
uint32_t jc_index_header_size(uint32_t version);
void jc_index_encode_file_header(unsigned char *h, const jc_file_header *fh);
uint32_t jc_index_row_format_of(const jc_file_header *fh);
bool jc_index_segment_layout(jc_segment_layout *l, uint64_t rows, uint64_t dim, uint64_t value_bytes, bool stamps,
                             bool times, uint64_t label_bytes);
void jc_index_encode_segment_header(unsigned char *h, const char *magic, uint64_t rows, uint64_t label_bytes,
                                    uint64_t payload_bytes, uint32_t payload_crc, uint32_t segment_flags);
jaclip_status jc_index_read_header(int fd, jc_file_header *fh, const char *path);
jaclip_status jc_index_load_fd(jaclip_index **out, int fd, const char *path, uint32_t flags, jc_file_header *fh);

#endif
