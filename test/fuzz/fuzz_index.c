/* libFuzzer harness for index files: any bytes written to a file and opened by jaclip_index_load in
 * each mode (read, mmap, without the data checksum); what loads is searched, listed, has rows removed,
 * and its file is appended to, replaced in, and compacted (version 2: tombstones, stamps, fingerprint,
 * float16 rows).
 * Every failure must be a documented status with a message and leave *out NULL. */
#include "jaclip.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void write_input(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
        abort();
}

static void exercise(jaclip_index *index)
{
    size_t dim = jaclip_index_dim(index), rows = jaclip_index_size(index);
    if (dim == 0 || dim > JACLIP_INDEX_MAX_DIM)
        abort();
    for (size_t i = 0; i < rows && i < 4; i++) {
        const char *label = jaclip_index_label(index, i);
        size_t found = 0;
        if (!label || jaclip_index_find_label(&found, index, label) != JACLIP_OK || found > i)
            abort();
    }
    int64_t shape[2] = {1, (int64_t)dim};
    jaclip_tensor *query = NULL, *idx = NULL, *scores = NULL;
    if (jaclip_tensor_create(&query, JACLIP_DTYPE_FLOAT32, 2, shape, NULL) != JACLIP_OK)
        abort();
    ((float *)jaclip_tensor_data_mut(query))[0] = 1.0f;
    jaclip_status st = jaclip_index_search(&idx, &scores, index, query, 3);
    if (st != JACLIP_OK && st != JACLIP_ERROR_OUT_OF_MEMORY)
        abort();
    jaclip_tensor_free(idx);
    jaclip_tensor_free(scores);
    /* Stamps, fingerprint and in-memory removal of whatever loaded. */
    jaclip_index_stamp stamp;
    if (rows > 0 && jaclip_index_stamp_of(&stamp, index, rows - 1) != JACLIP_OK)
        abort();
    const char *fp = jaclip_index_fingerprint(index);
    if (!fp || (fp[0] && jaclip_index_check_fingerprint(index, fp, 0) != JACLIP_OK))
        abort();
    /* Appending to whatever loaded, deleting from it and compacting it must keep the file loadable or
     * fail cleanly. */
    const char *labels[1] = {"appended"};
    st = jaclip_index_append_file(path, query, labels);
    if (st != JACLIP_OK && jaclip_last_error()[0] == '\0')
        abort();
    if (rows > 0) {
        const char *first[1] = {jaclip_index_label(index, 0)};
        size_t removed = 0;
        st = jaclip_index_replace_file(path, first, 1, query, labels, &stamp, &removed);
        if (st != JACLIP_OK && jaclip_last_error()[0] == '\0')
            abort();
        if (jaclip_index_remove(index, first, 1, &removed) != JACLIP_OK || removed == 0 ||
            jaclip_index_size(index) != rows - removed)
            abort();
    }
    st = jaclip_index_compact_file(path, NULL);
    if (st != JACLIP_OK && jaclip_last_error()[0] == '\0')
        abort();
    jaclip_tensor_free(query);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t modes[3] = {JACLIP_INDEX_DEFAULT, JACLIP_INDEX_MMAP, JACLIP_INDEX_NO_CHECKSUM};
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/jaclip-fuzz-index-%d.jci", (int)getpid());
    for (int m = 0; m < 3; m++) {
        jaclip_index *index = (jaclip_index *)1;
        write_input(data, size);
        jaclip_status st = jaclip_index_load(&index, path, modes[m]);
        if (st != JACLIP_OK) {
            if (index != NULL || jaclip_last_error()[0] == '\0' ||
                (st != JACLIP_ERROR_INDEX_FORMAT && st != JACLIP_ERROR_OUT_OF_MEMORY && st != JACLIP_ERROR_IO))
                abort();
            continue;
        }
        exercise(index);
        jaclip_index_free(index);
    }
    unlink(path);
    return 0;
}
