/* The check of an ANN file's faiss data before faiss reads it (ann_faiss_check.c). Read by lib/ann/ only. */
#ifndef JACLIP_ANN_FAISS_CHECK_H
#define JACLIP_ANN_FAISS_CHECK_H

#include "backend/faiss/faiss_bridge.h"

/* What the faiss data must describe: the structure the ANN header names, over the index's rows. */
typedef struct jc_ann_faiss_shape {
    jc_faiss_family family;
    size_t dim;     /* the index's row width, 1..JACLIP_INDEX_MAX_DIM */
    uint64_t rows;  /* the index's row count */
    uint64_t nlist; /* IVF lists, from the ANN header; unused for HNSW */
} jc_ann_faiss_shape;

/* Walks data (faiss 1.7.3's write_index output) field by field without faiss: JACLIP_OK when it is
 * exactly what this library writes for shape and every size, count, id and float in it agrees, so that
 * faiss::read_index and the searches after it cannot be led astray. Otherwise INDEX_FORMAT naming the
 * first bad field, the message prefixed by where (OUT_OF_MEMORY if a row bitmap cannot be had).
 * Reads data only; thread-safe. */
jaclip_status jc_ann_check_faiss_stream(const unsigned char *data, size_t size, const jc_ann_faiss_shape *shape,
                                        const char *where);

#endif
