/* Read access to an index's live rows for other parts of the library (the ANN plugin builds on it).
 * Internal and never installed, but stable: the live rows are a list of spans, each a pointer to
 * `count` consecutive rows of `dim` values (float32, or IEEE float16 as uint16_t when row_format is
 * JACLIP_INDEX_ROWS_FLOAT16), whose row ids are first..first+count-1: the ids jaclip_index_search,
 * jaclip_index_label and jaclip_index_embeddings use. Deleted rows are in no span. Spans are in
 * increasing id order and cover 0..jaclip_index_size-1 without gaps. Pointers stay valid until the
 * next add, remove or free of the index (same rule as jaclip_index_label). */
#ifndef JACLIP_INDEX_ROWS_H
#define JACLIP_INDEX_ROWS_H

#include "common/internal.h"

typedef struct {
    const void *vectors;
    uint32_t row_format;
    size_t dim;
    size_t first;
    size_t count;
} jc_index_rows;

/* Number of spans (0 for NULL or an empty index). */
size_t jc_index_span_count(const jaclip_index *index);
/* Span i into *out; false when i >= jc_index_span_count. */
bool jc_index_span(const jaclip_index *index, size_t i, jc_index_rows *out);

#endif
