/* Batches of image files for classify, embed and eval: directories expanded, unreadable files skipped
 * with one warning each (or, strict, an error), features encoded a chunk at a time. */
#include "cli.h"

/* Files to encode per library call: its decoder threads work on one call's files at once. */
#define BATCH_FILES 64

void expand_image_args(char **args, size_t n, string_list *out)
{
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        if (stat(args[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            size_t before = out->count;
            walk(args[i], out, NULL);
            qsort(out->items + before, out->count - before, sizeof *out->items, by_bytes);
            if (out->count == before)
                cli_warn("%s: no image files in this directory", args[i]);
        } else {
            list_push(out, xstrdup(args[i]));
        }
    }
}

typedef struct {
    char **paths; /* of the chunk */
    progress *prog;
} skip_context;

/* One warning per file the library left out (jaclip_model_encode_image_files_skipping). */
static void warn_skipped(void *user, size_t index, jaclip_status st, const char *why)
{
    skip_context *c = user;
    const char *path = c->paths[index];
    size_t len = strlen(path);
    if (c->prog)
        progress_clear(c->prog);
    if (strncmp(why, path, len) == 0 && why[len] == ':')
        why += len + (why[len + 1] == ' ' ? 2 : 1);
    cli_warn("%s: skipped: %s", path, why[0] ? why : jaclip_status_string(st));
}

jaclip_tensor *encode_image_batch(const jaclip_model *model, string_list *paths, bool strict, progress *prog)
{
    size_t dim = (size_t)jaclip_model_embedding_dim(model), kept = 0;
    float *rows = xcalloc(paths->count ? paths->count : 1, dim * sizeof(float));
    for (size_t first = 0; first < paths->count; first += BATCH_FILES) {
        size_t n = paths->count - first < BATCH_FILES ? paths->count - first : BATCH_FILES;
        jaclip_tensor *emb = NULL, *kept_rows = NULL;
        char **chunk = paths->items + first;
        skip_context context = {chunk, prog};
        jaclip_status st;
        if (strict)
            st = jaclip_model_encode_image_files(&emb, model, (const char *const *)chunk, n);
        else
            st = jaclip_model_encode_image_files_skipping(&emb, &kept_rows, model, (const char *const *)chunk, n,
                                                          warn_skipped, &context);
        if (st) {
            if (prog)
                progress_clear(prog);
            die(NULL, st);
        }
        size_t k = (size_t)jaclip_tensor_dim(emb, 0);
        memcpy(rows + kept * dim, jaclip_tensor_data(emb), k * dim * sizeof(float));
        /* Keep the paths of the rows, in order; free the others. */
        const int64_t *which = kept_rows ? jaclip_tensor_data(kept_rows) : NULL;
        for (size_t i = 0, next = 0; i < n; i++) {
            if (next < k && (which ? (size_t)which[next] == i : true)) {
                paths->items[kept++] = chunk[i];
                next++;
            } else {
                free(chunk[i]);
            }
        }
        jaclip_tensor_free(emb);
        jaclip_tensor_free(kept_rows);
        if (prog) {
            prog->done += n;
            progress_show(prog, prog->done == prog->total);
        }
    }
    paths->count = kept;
    jaclip_tensor *out = NULL;
    const int64_t shape[2] = {(int64_t)kept, (int64_t)dim};
    jaclip_status st = jaclip_tensor_create(&out, JACLIP_DTYPE_FLOAT32, 2, shape, kept ? rows : NULL);
    free(rows);
    if (st)
        die(NULL, st);
    return out;
}

/* ---- labels, templates and classifiers ------------------------------------------------------------ */

void read_lines(const char *path, string_list *out, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_warn("%s: cannot open %s: %s", path, what, strerror(errno));
        exit(EXIT_RUNTIME);
    }
    char *line = NULL;
    size_t cap = 0, number = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) != -1) {
        number++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *text = line;
        /* Editors on Windows start UTF-8 files with a BOM; it is not part of the first label. */
        if (number == 1 && len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
            text += 3;
        size_t lead = strspn(text, " \t");
        if (text[lead] == '\0' || text[lead] == '#')
            continue; /* blank lines and # comments */
        if ((size_t)len != strlen(line) || !is_utf8(text))
            usage_error("%s: line %zu is not UTF-8 text", path, number);
        list_push(out, xstrdup(text));
    }
    bool failed = ferror(f);
    free(line);
    fclose(f);
    if (failed) {
        cli_warn("%s: cannot read: %s", path, strerror(errno));
        exit(EXIT_RUNTIME);
    }
}

void add_template_preset(string_list *templates, const char *name)
{
    const char *const *items;
    size_t n;
    if (jaclip_preset_templates(&items, &n, name))
        usage_error("--templates: %s", jaclip_last_error());
    for (size_t i = 0; i < n; i++)
        list_push(templates, xstrdup(items[i]));
}

jaclip_classifier *build_or_load_classifier(const jaclip_model *model, const char *load_path, const string_list *labels,
                                            const string_list *templates, const char *save_path)
{
    jaclip_classifier *c = NULL;
    jaclip_status st;
    if (load_path) {
        if ((st = jaclip_classifier_load(&c, load_path, model)))
            die(load_path, st);
    } else {
        if (templates->count * labels->count > 2000)
            cli_warn("encoding %zu label texts for the classifier (save it with --save-classifier to do this once)",
                     templates->count * labels->count);
        if ((st = jaclip_classifier_create(&c, model, (const char *const *)labels->items, labels->count,
                                           (const char *const *)templates->items, templates->count)))
            die(NULL, st);
    }
    if (save_path && (st = jaclip_classifier_save(c, save_path)))
        die(save_path, st);
    return c;
}
