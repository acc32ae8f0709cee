/* Shared by the jaclip command's files (one per command): messages, option parsing, model and index
 * loading, output formats, folder walking and progress. */
#ifndef JACLIP_CLI_H
#define JACLIP_CLI_H

#include "jaclip.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* The command being run, for usage messages ("jaclip index build"). */
extern const char *command_name;

/* ---- messages ---- */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void report(const char *file, jaclip_status st);
_Noreturn void die(const char *file, jaclip_status st);
void *xcalloc(size_t n, size_t size);
char *xstrdup(const char *s);

/* ---- options ---- */
long parse_long(const char *text, const char *option, long min, long max);
double parse_double(const char *text, const char *option);
/* --precision's words: default, fp32, bf16, int8, auto (the jaclip_precision values, in order). */
jaclip_precision parse_precision(const char *text);
const char *precision_word(jaclip_precision precision);
typedef struct {
    const char *model_path, *device;
    int threads;
    uint32_t image_flags;       /* JACLIP_IMAGE_*, e.g. from --exif-transpose */
    jaclip_precision precision; /* DEFAULT unless a command offers --precision */
} model_args;

/* Long-option codes shared by the commands; a command's own codes start at OPT_COMMAND_BASE. */
enum {
    OPT_DEVICE = 1000,
    OPT_THREADS,
    OPT_JSON,
    OPT_TEMPLATE,
    OPT_SCALE,
    OPT_IMAGE,
    OPT_TEXT,
    OPT_FORMAT,
    OPT_NORMALIZE,
    OPT_INDEX,
    OPT_PRECISION,
    OPT_COMMAND_BASE = 1100,
    /* zero-shot options shared by classify, embed and eval */
    OPT_EXIF = 1200,
    OPT_STRICT,
    OPT_TOP,
    OPT_LABELS_FILE,
    OPT_TEMPLATES,
    OPT_CLASSIFIER,
    OPT_SAVE_CLASSIFIER,
    OPT_CLASSES,
    OPT_MAPPING
};

bool model_option(model_args *m, int opt);
int next_option(int argc, char **argv, const char *shortopts, const struct option *longopts, model_args *m);
jaclip_model *load_model(model_args *m);
_Noreturn void bad_option(int opt, char **argv);
int help_requested(const char *usage);

/* ---- output ---- */
size_t utf8_char_len(const unsigned char *s);
bool is_utf8(const char *s);
void cli_json_string(FILE *f, const char *s);
void json_float(FILE *f, float v);
void print_escaped(FILE *f, const char *s);
bool has_non_finite(const float *v, size_t n);
bool write_npy(FILE *f, const float *data, size_t rows, size_t cols);

/* ---- files, signals, progress ---- */
extern volatile sig_atomic_t stop_signal;
void on_stop_signal(int sig);
typedef struct {
    char **items;
    size_t count, cap;
} string_list;
void list_push(string_list *l, char *s);
bool has_image_extension(const char *name);
void walk(const char *dir, string_list *out, size_t *skipped);
void walk_checked(const char *dir, string_list *out, size_t *skipped, string_list *unverified);
/* Whether path is one of sorted's paths (sorted by by_bytes) or lies under one of them. */
bool path_under_any(const string_list *sorted, const char *path);
int by_bytes(const void *a, const void *b);
double now_seconds(void);
void format_duration(char *buf, size_t size, double seconds);
typedef struct {
    bool tty;
    size_t total, done;
    double start, last_log;
} progress;
void progress_clear(const progress *p);
void progress_show(progress *p, bool final);
jaclip_index *load_index_or_die(const char *path);

/* ---- image batches, labels and classifiers (batch.c) ---- */
/* Directories become their JPEG/PNG files (recursively, byte order); other arguments stay as given. */
void expand_image_args(char **args, size_t n, string_list *out);
/* Features [kept, D] of paths in order; an unreadable file is warned about once and removed from paths
 * (strict: exit 1 instead). Other failures exit 1. prog (may be NULL) is advanced per chunk. */
jaclip_tensor *encode_image_batch(const jaclip_model *model, string_list *paths, bool strict, progress *prog);
/* The lines of a UTF-8 file (CR/LF stripped, a leading BOM dropped), less blank lines and lines
 * whose first non-blank character is '#' (comments). */
void read_lines(const char *path, string_list *out, const char *what);
void add_template_preset(string_list *templates, const char *name);
jaclip_classifier *build_or_load_classifier(const jaclip_model *model, const char *load_path, const string_list *labels,
                                            const string_list *templates, const char *save_path);

/* ---- the commands ---- */
int cmd_classify(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_index_merge(int argc, char **argv); /* merge.c */
int cmd_index_dupes(int argc, char **argv); /* dupes.c */
int cmd_search(int argc, char **argv);
/* jaclip search's filters, offset and threshold (tools/jaclip/search_filter.c). */
enum {
    OPT_SEARCH_FOLDER = OPT_COMMAND_BASE + 70,
    OPT_SEARCH_AFTER,
    OPT_SEARCH_BEFORE,
    OPT_SEARCH_TYPE,
    OPT_SEARCH_OFFSET,
    OPT_SEARCH_THRESHOLD
};
typedef struct {
    const char *folder;
    string_list types;
    int64_t after, before;
    size_t offset;
    double threshold;
    bool has_after, has_before, has_threshold;
} search_filter;
void search_filter_option(search_filter *f, int opt, const char *arg);
bool search_filter_used(const search_filter *f);
/* The options for jaclip_index_search_with (exits 2 on a bad value). */
jaclip_search_options *search_filter_options(const search_filter *f, const jaclip_index *index);
int cmd_convert(int argc, char **argv);
int cmd_info(int argc, char **argv);
/* index build (sync false) and index sync (tools/jaclip/sync.c). */
int index_update(int argc, char **argv, bool sync);
/* tools/jaclip/sync_read.c: the file's bytes (malloc'd), its stamp and its capture time
 * (jaclip_image_capture_time) from the same open file; NULL with errno on failure. path_stamp: size
 * and mtime only (hash 0), zeros when stat fails. */
unsigned char *read_stamped(const char *path, size_t *size, jaclip_index_stamp *stamp, int64_t *capture_ns);
void path_stamp(const char *path, jaclip_index_stamp *stamp);
/* Takes INDEX.lock, the lock every jaclip writer of INDEX holds for its whole run: refuses with a
 * message if another holds it, or waits when wait. Returns the descriptor (held until exit). */
int index_writer_lock(const char *index_path, bool wait);
/* How an index labels and embeds its files (tools/jaclip/index_settings.c). root_arg, moved and
 * exif_given are the options; settle reads what the index records (before anything is written),
 * replaces a missing root_arg by the recorded root, sets exif, and returns false after saying why when
 * the options contradict the index. record writes root (NULL: labels absolute) and exif into it. */
typedef struct {
    const char *root_arg;
    bool moved, exif_given, exif;
} index_settings;
bool index_settings_settle(const char *output, index_settings *s);
void index_settings_record(const char *output, const char *root, bool exif);
/* index ann (tools/jaclip/ann.c); load_ann_beside: INDEX.ann if present and current, else NULL with a
 * warning when it exists but is refused. */
int cmd_index_ann(int argc, char **argv);
jaclip_ann *load_ann_beside(const char *index_path, const jaclip_index *index);
/* After changing an index file: rebuilds INDEX.ann (same kind) if present. */
bool refresh_ann_beside(const char *index_path, const jaclip_index *index);
/* The same for the index file at index_path, loaded only if INDEX.ann exists. */
void refresh_ann_of_file(const char *index_path);
int cmd_serve(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
