/* The zero-shot module's own header (lib/zeroshot/): a classifier's layout, shared by classifier.c
 * (presets, building, scoring) and classifier_file.c (its file format, docs/zeroshot.md). */
#ifndef JACLIP_ZEROSHOT_CLASSIFIER_H
#define JACLIP_ZEROSHOT_CLASSIFIER_H

#include "common/internal.h"

#define JC_CLASSIFIER_MAGIC "JACLIPZS"
#define JC_CLASSIFIER_VERSION 1
/* magic, version, dim, labels, templates, scale, fingerprint length, string bytes */
#define JC_CLASSIFIER_HEADER 40
#define JC_FINGERPRINT_MAX 63
/* Texts encoded per call while building: bounds the feature buffer, whatever the label count. */
#define JC_BUILD_CHUNK 1024

struct jaclip_classifier {
    size_t size, dim, ntemplates;
    float scale;
    char fingerprint[JC_FINGERPRINT_MAX + 1];
    char **labels;    /* size pointers into strings */
    char **templates; /* ntemplates pointers into strings */
    char *strings;    /* every label then every template, NUL-terminated */
    size_t strings_bytes;
    float *weights; /* [size, dim], unit rows */
};

/* Allocates c's arrays for size labels, ntemplates templates and strings_bytes of strings. */
jaclip_status jc_classifier_alloc(jaclip_classifier **out, size_t size, size_t dim, size_t ntemplates,
                                  size_t strings_bytes);
/* Points labels and templates at the NUL-terminated strings; false if they do not fill strings exactly. */
bool jc_classifier_index_strings(jaclip_classifier *c);

#endif
