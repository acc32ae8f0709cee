/* jaclip: zero-shot classification, embedding, photo indexing and search from the command line.
 * Exit status: 0 success, 1 runtime error, 2 usage error, 128+N when stopped by signal N (index build
 * stops cleanly between batches). Errors go to stderr as "jaclip: FILE: reason". */
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

#ifndef JACLIP_CONVERT_INSTALLED
#define JACLIP_CONVERT_INSTALLED "/usr/local/lib/jaclip/jaclip-convert"
#endif
#ifndef JACLIP_DEFAULT_PYTHON
#define JACLIP_DEFAULT_PYTHON "/usr/bin/python3"
#endif

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static const char *command_name = "jaclip";

/* ---- messages --------------------------------------------------------------------------------- */

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
    va_list ap;
    fputs("jaclip: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("jaclip: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", command_name);
    exit(EXIT_USAGE);
}

/* "jaclip: FILE: reason" from the library's last error, which may already start with FILE. */
static void report(const char *file, jaclip_status st)
{
    const char *msg = jaclip_last_error();
    if (!msg[0])
        msg = jaclip_status_string(st);
    size_t n = file ? strlen(file) : 0;
    if (!file || (strncmp(msg, file, n) == 0 && msg[n] == ':'))
        warn("%s", msg);
    else
        warn("%s: %s", file, msg);
}

static _Noreturn void die(const char *file, jaclip_status st)
{
    report(file, st);
    exit(EXIT_RUNTIME);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        warn("out of memory");
        exit(EXIT_RUNTIME);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        warn("out of memory");
        exit(EXIT_RUNTIME);
    }
    return p;
}

/* ---- options shared by the commands ------------------------------------------------------------ */

static long parse_long(const char *text, const char *option, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        usage_error("%s must be an integer from %ld to %ld, got '%s'", option, min, max, text);
    return v;
}

static double parse_double(const char *text, const char *option)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v))
        usage_error("%s must be a finite number, got '%s'", option, text);
    return v;
}

typedef struct {
    const char *model_path, *device;
    int threads;
} model_args;

enum { OPT_DEVICE = 1000, OPT_THREADS, OPT_JSON, OPT_TEMPLATE, OPT_SCALE, OPT_IMAGE, OPT_TEXT, OPT_FORMAT,
       OPT_NORMALIZE, OPT_INDEX };

/* Handles --model, --device and --threads; false if opt is none of them. */
static bool model_option(model_args *m, int opt)
{
    switch (opt) {
    case 'm': m->model_path = optarg; return true;
    case OPT_DEVICE: m->device = optarg; return true;
    case OPT_THREADS: m->threads = (int)parse_long(optarg, "--threads", 0, 1024); return true;
    }
    return false;
}

static jaclip_model *load_model(model_args *m)
{
    if (!m->model_path)
        m->model_path = getenv("JACLIP_MODEL");
    if (!m->model_path || !*m->model_path)
        usage_error("no model: pass --model FILE (a file made by 'jaclip convert') or set JACLIP_MODEL");
    jaclip_model_options *opts = NULL;
    jaclip_model *model = NULL;
    jaclip_status st;
    if ((st = jaclip_model_options_create(&opts)) ||
        (m->device && (st = jaclip_model_options_set_device(opts, m->device))) ||
        (m->threads && (st = jaclip_model_options_set_num_threads(opts, m->threads)))) {
        jaclip_model_options_free(opts);
        die(m->model_path, st);
    }
    st = jaclip_model_load(&model, m->model_path, opts);
    jaclip_model_options_free(opts);
    if (st)
        die(m->model_path, st);
    return model;
}

/* getopt reported opt ('?' unknown, ':' missing argument) for the option just read. */
static _Noreturn void bad_option(int opt, char **argv)
{
    const char *word = argv[optind - 1];
    if (opt == ':')
        usage_error("option '%s' needs a value", word);
    if (optopt && strncmp(word, "--", 2) != 0)
        usage_error("unknown option '-%c'", optopt);
    usage_error("unknown option '%s'", word);
}

static int help_requested(const char *usage)
{
    fputs(usage, stdout);
    return 0;
}

/* ---- output helpers ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static size_t utf8_char_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp, min;
    if (c < 0x80)
        return 1;
    if ((c & 0xE0) == 0xC0)
        len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    return cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : len;
}

static bool is_utf8(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_char_len(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* A JSON string; bytes that are not UTF-8 (possible in file names) become U+FFFD. */
static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_char_len(p);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
        } else if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p++);
        } else if (*p < 0x20) {
            fprintf(f, "\\u%04x", *p++);
        } else {
            fwrite(p, 1, n, f);
            p += n;
        }
    }
    fputc('"', f);
}

/* Shortest text that reads back as the same float32. */
static void json_float(FILE *f, float v) { fprintf(f, "%.9g", (double)v); }

/* ---- classify ---------------------------------------------------------------------------------- */

static const char classify_usage[] =
    "usage: jaclip classify --model MODEL --labels LABEL,LABEL,... [options] IMAGE...\n"
    "\n"
    "Zero-shot classification: ranks the labels for each image by softmax(scale * cosine) between the\n"
    "image's embedding and each label's text embedding (the reference evaluation).\n"
    "\n"
    "  -m, --model FILE      model file made by 'jaclip convert' (default: $JACLIP_MODEL)\n"
    "  -l, --labels LIST     comma-separated labels, e.g. 犬,猫,象\n"
    "  -t, --template TEXT   text around each label, {} marks the label (default: {}), e.g. '{}の写真'\n"
    "      --scale S         logit scale before the softmax (default: 100)\n"
    "      --json            JSON instead of a table\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "  -h, --help            this help\n";

typedef struct {
    size_t label;
    float prob;
} ranked_label;

static int by_probability(const void *a, const void *b)
{
    const ranked_label *x = a, *y = b;
    if (x->prob != y->prob)
        return x->prob < y->prob ? 1 : -1;
    return x->label < y->label ? -1 : x->label > y->label;
}

static char *apply_template(const char *template_text, const char *label)
{
    const char *mark = strstr(template_text, "{}");
    size_t n = strlen(template_text) - 2 + strlen(label) + 1;
    char *s = xcalloc(n, 1);
    snprintf(s, n, "%.*s%s%s", (int)(mark - template_text), template_text, label, mark + 2);
    return s;
}

/* Splits a comma-separated list, trimming ASCII spaces; empty items are a usage error. */
static char **split_labels(const char *list, size_t *count)
{
    char *copy = xstrdup(list);
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **items = xcalloc(n, sizeof *items);
    *count = 0;
    for (char *item = copy, *next; item; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        while (*item == ' ')
            item++;
        size_t len = strlen(item);
        while (len > 0 && item[len - 1] == ' ')
            item[--len] = '\0';
        if (!*item)
            usage_error("--labels has an empty label in '%s'", list);
        items[(*count)++] = item;
    }
    return items;
}

static int cmd_classify(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"labels", required_argument, NULL, 'l'},
        {"template", required_argument, NULL, 't'},    {"scale", required_argument, NULL, OPT_SCALE},
        {"json", no_argument, NULL, OPT_JSON},         {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    model_args m = {0};
    const char *labels_arg = NULL, *template_text = "{}";
    double scale = 100;
    bool json = false;
    int opt;
    command_name = "jaclip classify";
    while ((opt = getopt_long(argc, argv, ":m:l:t:h", options, NULL)) != -1) {
        if (model_option(&m, opt))
            continue;
        switch (opt) {
        case 'l': labels_arg = optarg; break;
        case 't': template_text = optarg; break;
        case OPT_SCALE: scale = parse_double(optarg, "--scale"); break;
        case OPT_JSON: json = true; break;
        case 'h': return help_requested(classify_usage);
        default: bad_option(opt, argv);
        }
    }
    if (!labels_arg)
        usage_error("--labels is required (e.g. --labels 犬,猫,象)");
    if (!strstr(template_text, "{}"))
        usage_error("--template must contain {} where the label goes");
    if (optind >= argc)
        usage_error("no IMAGE given");
    if (!is_utf8(labels_arg) || !is_utf8(template_text))
        usage_error("--labels and --template must be UTF-8");
    size_t nlabels, nimages = (size_t)(argc - optind);
    char **labels = split_labels(labels_arg, &nlabels);
    char **texts = xcalloc(nlabels, sizeof *texts);
    for (size_t i = 0; i < nlabels; i++)
        texts[i] = apply_template(template_text, labels[i]);

    jaclip_model *model = load_model(&m);
    jaclip_tensor *text_emb = NULL, *image_emb = NULL, *probs = NULL;
    jaclip_status st = jaclip_model_encode_texts(&text_emb, model, (const char *const *)texts, NULL, nlabels);
    if (st)
        die(NULL, st);
    const char *const *images = (const char *const *)argv + optind;
    if ((st = jaclip_model_encode_image_files(&image_emb, model, images, nimages)))
        die(NULL, st);
    if ((st = jaclip_probabilities(&probs, image_emb, text_emb, JACLIP_SIMILARITY_COSINE, (float)scale)))
        die(NULL, st);

    const float *p = jaclip_tensor_data(probs);
    ranked_label *ranked = xcalloc(nlabels, sizeof *ranked);
    if (json)
        fputs("[\n", stdout);
    for (size_t i = 0; i < nimages; i++) {
        for (size_t j = 0; j < nlabels; j++)
            ranked[j] = (ranked_label){j, p[i * nlabels + j]};
        qsort(ranked, nlabels, sizeof *ranked, by_probability);
        if (json) {
            fputs("  {\"image\": ", stdout);
            json_string(stdout, images[i]);
            fputs(", \"labels\": [", stdout);
            for (size_t j = 0; j < nlabels; j++) {
                fputs(j ? ", {\"label\": " : "{\"label\": ", stdout);
                json_string(stdout, labels[ranked[j].label]);
                fputs(", \"probability\": ", stdout);
                json_float(stdout, ranked[j].prob);
                fputc('}', stdout);
            }
            fputs(i + 1 < nimages ? "]},\n" : "]}\n", stdout);
        } else {
            printf("%s%s\n", i ? "\n" : "", images[i]);
            for (size_t j = 0; j < nlabels; j++)
                printf("  %7.2f%%  %s\n", 100.0 * ranked[j].prob, labels[ranked[j].label]);
        }
    }
    if (json)
        fputs("]\n", stdout);

    free(ranked);
    jaclip_tensor_free(probs);
    jaclip_tensor_free(image_emb);
    jaclip_tensor_free(text_emb);
    jaclip_model_free(model);
    for (size_t i = 0; i < nlabels; i++)
        free(texts[i]);
    free(texts);
    free(labels[0]); /* the copy every label points into */
    free(labels);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

/* ---- embed ------------------------------------------------------------------------------------- */

static const char embed_usage[] =
    "usage: jaclip embed --model MODEL (--image FILE... | --text TEXT...) [options]\n"
    "\n"
    "Writes one embedding per input, in input order: float32 [N, D] as .npy (default) or JSON.\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "      --image           the inputs are JPEG or PNG files\n"
    "      --text            the inputs are UTF-8 texts\n"
    "  -f, --format FMT      npy (default) or json\n"
    "  -o, --output FILE     write there instead of to standard output\n"
    "      --normalize       L2-normalise each embedding\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "  -h, --help            this help\n"
    "\n"
    "Texts that start with '-' go after '--'.\n";

static bool write_npy(FILE *f, const float *data, size_t rows, size_t cols)
{
    uint16_t one = 1;
    bool little = *(const unsigned char *)&one == 1;
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '%cf4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                     little ? '<' : '>', rows, cols);
    /* Magic, version 1.0, header length; the header is space-padded so the data starts 64-aligned. */
    size_t header = (size_t)n + 1, total = 10 + header;
    size_t pad = (64 - total % 64) % 64;
    header += pad;
    unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header & 0xFF),
                                (unsigned char)(header >> 8)};
    fwrite(prefix, 1, sizeof prefix, f);
    fwrite(dict, 1, (size_t)n, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof(float), rows * cols, f);
    return !ferror(f);
}

static void write_embeddings_json(FILE *f, char **inputs, const char *kind, const float *data, size_t rows,
                                  size_t cols)
{
    fputs("[\n", f);
    for (size_t r = 0; r < rows; r++) {
        fprintf(f, "  {\"%s\": ", kind);
        json_string(f, inputs[r]);
        fputs(", \"embedding\": [", f);
        for (size_t c = 0; c < cols; c++) {
            if (c)
                fputs(", ", f);
            json_float(f, data[r * cols + c]);
        }
        fputs(r + 1 < rows ? "]},\n" : "]}\n", f);
    }
    fputs("]\n", f);
}

static int cmd_embed(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},      {"image", no_argument, NULL, OPT_IMAGE},
        {"text", no_argument, NULL, OPT_TEXT},        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},     {"normalize", no_argument, NULL, OPT_NORMALIZE},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0}};
    model_args m = {0};
    const char *format = "npy", *output = NULL;
    bool images = false, texts = false, normalize = false;
    int opt;
    command_name = "jaclip embed";
    while ((opt = getopt_long(argc, argv, ":m:f:o:h", options, NULL)) != -1) {
        if (model_option(&m, opt))
            continue;
        switch (opt) {
        case OPT_IMAGE: images = true; break;
        case OPT_TEXT: texts = true; break;
        case 'f': format = optarg; break;
        case 'o': output = optarg; break;
        case OPT_NORMALIZE: normalize = true; break;
        case 'h': return help_requested(embed_usage);
        default: bad_option(opt, argv);
        }
    }
    if (images == texts)
        usage_error("give exactly one of --image and --text");
    if (strcmp(format, "npy") != 0 && strcmp(format, "json") != 0)
        usage_error("--format must be npy or json, got '%s'", format);
    if (optind >= argc)
        usage_error("no %s given", images ? "image FILE" : "TEXT");
    if (!output && strcmp(format, "npy") == 0 && isatty(STDOUT_FILENO))
        usage_error("not writing binary .npy to a terminal: pass -o FILE or --format json");
    size_t n = (size_t)(argc - optind);
    char **inputs = argv + optind;
    for (size_t i = 0; texts && i < n; i++)
        if (!is_utf8(inputs[i]))
            usage_error("text %zu is not valid UTF-8", i + 1);

    jaclip_model *model = load_model(&m);
    jaclip_tensor *emb = NULL, *normed = NULL;
    jaclip_status st = texts ? jaclip_model_encode_texts(&emb, model, (const char *const *)inputs, NULL, n)
                             : jaclip_model_encode_image_files(&emb, model, (const char *const *)inputs, n);
    if (st)
        die(NULL, st);
    if (normalize) {
        if ((st = jaclip_normalize(&normed, emb)))
            die(NULL, st);
        jaclip_tensor_free(emb);
        emb = normed;
    }
    FILE *f = output ? fopen(output, "wb") : stdout;
    if (!f) {
        warn("%s: cannot create: %s", output, strerror(errno));
        return EXIT_RUNTIME;
    }
    size_t cols = (size_t)jaclip_tensor_dim(emb, 1);
    if (strcmp(format, "npy") == 0)
        write_npy(f, jaclip_tensor_data(emb), n, cols);
    else
        write_embeddings_json(f, inputs, texts ? "text" : "image", jaclip_tensor_data(emb), n, cols);
    int rc = 0;
    if (ferror(f) || (output ? fclose(f) : fflush(f)) != 0) {
        warn("%s: cannot write: %s", output ? output : "standard output", strerror(errno));
        rc = EXIT_RUNTIME;
    }
    jaclip_tensor_free(emb);
    jaclip_model_free(model);
    return rc;
}

/* ---- index build ------------------------------------------------------------------------------- */

static const char index_usage[] =
    "usage: jaclip index build --model MODEL DIR... -o INDEX [--batch N]\n"
    "       jaclip index info INDEX [--json]\n"
    "       jaclip index list INDEX\n"
    "\n"
    "build  embeds every JPEG and PNG file under each DIR (recursively, in byte order of path, skipping\n"
    "       names that start with '.') into INDEX, labelled with its absolute path. Each batch is\n"
    "       appended to INDEX and synced, so an interruption (Ctrl-C, SIGTERM, a crash) keeps what was\n"
    "       done; running the same command again adds only the files INDEX lacks. Unreadable files are\n"
    "       skipped with a warning.\n"
    "info   prints the number of rows and their width.\n"
    "list   prints the labels, one per line, in row order.\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "  -o, --output INDEX    the index file to create or extend\n"
    "  -b, --batch N         images per batch (default: 16)\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "  -h, --help            this help\n";

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) { stop_signal = sig; }

typedef struct {
    char **items;
    size_t count, cap;
} string_list;

static void list_push(string_list *l, char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->items, l->cap * sizeof *p);
        if (!p) {
            warn("out of memory");
            exit(EXIT_RUNTIME);
        }
        l->items = p;
    }
    l->items[l->count++] = s;
}

static bool has_image_extension(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* Appends dir's image files (recursively) to out. Symbolic links to files are followed, to directories
 * not (no cycles). */
static void walk(const char *dir, string_list *out)
{
    DIR *d = opendir(dir);
    if (!d) {
        warn("%s: cannot read directory: %s", dir, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *path = xcalloc(n, 1);
        snprintf(path, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
        struct stat sb, lsb;
        if (lstat(path, &lsb) != 0 || stat(path, &sb) != 0) {
            free(path);
            continue;
        }
        if (S_ISDIR(sb.st_mode) && !S_ISLNK(lsb.st_mode)) {
            walk(path, out);
            free(path);
        } else if (S_ISREG(sb.st_mode) && has_image_extension(e->d_name)) {
            list_push(out, path);
        } else {
            free(path);
        }
    }
    closedir(d);
}

static int by_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void format_duration(char *buf, size_t size, double seconds)
{
    long s = seconds < 0 || !isfinite(seconds) ? 0 : (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

typedef struct {
    bool tty;
    size_t total, done;
    double start, last_log;
} progress;

static void progress_clear(const progress *p)
{
    if (p->tty)
        fputs("\r\033[K", stderr);
}

static void progress_show(progress *p, bool final)
{
    double t = now_seconds(), elapsed = t - p->start;
    double rate = elapsed > 0 ? p->done / elapsed : 0;
    char left[32] = "--:--";
    if (rate > 0)
        format_duration(left, sizeof left, (p->total - p->done) / rate);
    if (p->tty) {
        enum { WIDTH = 30 };
        size_t filled = p->total ? p->done * WIDTH / p->total : WIDTH;
        char bar[WIDTH + 1];
        for (size_t i = 0; i < WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[WIDTH] = '\0';
        fprintf(stderr, "\r\033[K[%s] %zu/%zu  %.1f images/s  %s left", bar, p->done, p->total, rate, left);
        if (final)
            fputc('\n', stderr);
    } else if (final || p->done == 0 || t - p->last_log >= 1.0 || p->last_log == 0) {
        /* One line a second at most when logging to a file. */
        fprintf(stderr, "jaclip: indexed %zu/%zu images (%.1f/s, %s left)\n", p->done, p->total, rate, left);
        p->last_log = t;
    }
    fflush(stderr);
}

static jaclip_index *open_or_create_index(const char *path, size_t dim)
{
    jaclip_index *index = NULL;
    jaclip_status st;
    if (access(path, F_OK) != 0) {
        if ((st = jaclip_index_create(&index, dim)) || (st = jaclip_index_save(index, path)))
            die(path, st);
        return index;
    }
    if ((st = jaclip_index_load(&index, path, JACLIP_INDEX_MMAP)))
        die(path, st);
    if (jaclip_index_dim(index) != dim) {
        warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", path, jaclip_index_dim(index), dim);
        exit(EXIT_RUNTIME);
    }
    return index;
}

static int index_build(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"output", required_argument, NULL, 'o'},
        {"batch", required_argument, NULL, 'b'},       {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    model_args m = {0};
    const char *output = NULL;
    size_t batch = 16;
    int opt;
    command_name = "jaclip index build";
    while ((opt = getopt_long(argc, argv, ":m:o:b:h", options, NULL)) != -1) {
        if (model_option(&m, opt))
            continue;
        switch (opt) {
        case 'o': output = optarg; break;
        case 'b': batch = (size_t)parse_long(optarg, "--batch", 1, 4096); break;
        case 'h': return help_requested(index_usage);
        default: bad_option(opt, argv);
        }
    }
    if (!output)
        usage_error("-o INDEX is required");
    if (optind >= argc)
        usage_error("no DIR given");

    /* Every file under every DIR, labelled by absolute path so the index works from any directory. */
    string_list files = {0};
    for (int i = optind; i < argc; i++) {
        struct stat sb;
        char *root = realpath(argv[i], NULL);
        if (!root || stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            warn("%s: %s", argv[i], root ? "not a directory" : strerror(errno));
            return EXIT_RUNTIME;
        }
        size_t before = files.count;
        walk(root, &files);
        qsort(files.items + before, files.count - before, sizeof *files.items, by_bytes);
        free(root);
    }

    jaclip_model *model = load_model(&m);
    size_t dim = (size_t)jaclip_model_embedding_dim(model);
    jaclip_index *existing = open_or_create_index(output, dim);
    string_list todo = {0};
    size_t already = 0, found;
    for (size_t i = 0; i < files.count; i++) {
        if (jaclip_index_find_label(&found, existing, files.items[i]) == JACLIP_OK)
            already++;
        else if (!is_utf8(files.items[i]))
            warn("%s: skipped: the file name is not valid UTF-8", files.items[i]);
        else
            list_push(&todo, files.items[i]);
    }
    jaclip_index_free(existing);
    if (files.count == 0)
        warn("no JPEG or PNG files found");

    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* a second Ctrl-C stops at once; the file stays valid either way */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    progress prog = {isatty(STDERR_FILENO) != 0, todo.count, 0, now_seconds(), 0};
    jaclip_image **images = xcalloc(batch, sizeof *images);
    const char **labels = xcalloc(batch, sizeof *labels);
    size_t added = 0, skipped = 0;
    if (todo.count > 0)
        progress_show(&prog, false);
    for (size_t first = 0; first < todo.count && !stop_signal; first += batch) {
        size_t n = 0, end = first + batch < todo.count ? first + batch : todo.count;
        for (size_t i = first; i < end; i++) {
            jaclip_status st = jaclip_image_load(&images[n], todo.items[i], 0, JACLIP_IMAGE_DEFAULT);
            if (st) {
                progress_clear(&prog);
                const char *why = jaclip_last_error();
                warn("%s: skipped: %s", todo.items[i], why[0] ? why : jaclip_status_string(st));
                skipped++;
                continue;
            }
            labels[n++] = todo.items[i];
        }
        if (n > 0) {
            jaclip_tensor *emb = NULL;
            jaclip_status st = jaclip_model_encode_images(&emb, model, (const jaclip_image *const *)images, n);
            if (!st)
                st = jaclip_index_append_file(output, emb, labels);
            jaclip_tensor_free(emb);
            for (size_t i = 0; i < n; i++) {
                jaclip_image_free(images[i]);
                images[i] = NULL;
            }
            if (st) {
                progress_clear(&prog);
                die(output, st);
            }
            added += n;
        }
        prog.done = end;
        progress_show(&prog, end == todo.count);
    }
    int rc = 0;
    if (stop_signal) {
        progress_clear(&prog);
        warn("%s: interrupted: %zu of %zu new images indexed; run the same command again to add the rest", output,
             added, todo.count);
        rc = 128 + stop_signal;
    } else {
        warn("%s: %zu images added, %zu already indexed, %zu skipped, in %.1f s", output, added, already, skipped,
             now_seconds() - prog.start);
    }
    free(images);
    free(labels);
    for (size_t i = 0; i < files.count; i++)
        free(files.items[i]);
    free(files.items);
    free(todo.items);
    jaclip_model_free(model);
    return rc;
}

static jaclip_index *load_index_or_die(const char *path)
{
    jaclip_index *index = NULL;
    jaclip_status st = jaclip_index_load(&index, path, JACLIP_INDEX_MMAP);
    if (st)
        die(path, st);
    return index;
}

static int index_info_or_list(int argc, char **argv, bool list)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, OPT_JSON}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int opt;
    command_name = list ? "jaclip index list" : "jaclip index info";
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = true; break;
        case 'h': return help_requested(index_usage);
        default: bad_option(opt, argv);
        }
    }
    if (argc - optind != 1)
        usage_error("give exactly one INDEX");
    jaclip_index *index = load_index_or_die(argv[optind]);
    size_t n = jaclip_index_size(index);
    if (list) {
        for (size_t i = 0; i < n; i++)
            puts(jaclip_index_label(index, i));
    } else if (json) {
        printf("{\"rows\": %zu, \"dim\": %zu}\n", n, jaclip_index_dim(index));
    } else {
        printf("rows: %zu\ndim: %zu\n", n, jaclip_index_dim(index));
    }
    jaclip_index_free(index);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

static int cmd_index(int argc, char **argv)
{
    command_name = "jaclip index";
    if (argc < 2)
        usage_error("missing subcommand: build, info or list");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return help_requested(index_usage);
    if (!strcmp(argv[1], "build"))
        return index_build(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info"))
        return index_info_or_list(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "list"))
        return index_info_or_list(argc - 1, argv + 1, true);
    usage_error("unknown subcommand '%s': build, info or list", argv[1]);
}

/* ---- search ------------------------------------------------------------------------------------ */

static const char search_usage[] =
    "usage: jaclip search --model MODEL --index INDEX [TEXT...] [--image FILE]... [-k N] [--json]\n"
    "\n"
    "Finds the k rows of INDEX most similar (cosine) to each query: each TEXT, and each --image.\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "  -i, --index INDEX     an index made by 'jaclip index build'\n"
    "      --image FILE      query by the image in FILE (repeatable)\n"
    "  -k N                  results per query (default: 10)\n"
    "      --json            JSON instead of a table\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "  -h, --help            this help\n";

static int cmd_search(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},    {"index", required_argument, NULL, 'i'},
        {"image", required_argument, NULL, OPT_IMAGE}, {"json", no_argument, NULL, OPT_JSON},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    model_args m = {0};
    const char *index_path = NULL;
    string_list query_images = {0};
    size_t k = 10;
    bool json = false;
    int opt;
    command_name = "jaclip search";
    while ((opt = getopt_long(argc, argv, ":m:i:k:h", options, NULL)) != -1) {
        if (model_option(&m, opt))
            continue;
        switch (opt) {
        case 'i': index_path = optarg; break;
        case OPT_IMAGE: list_push(&query_images, optarg); break;
        case 'k': k = (size_t)parse_long(optarg, "-k", 1, 1000000); break;
        case OPT_JSON: json = true; break;
        case 'h': return help_requested(search_usage);
        default: bad_option(opt, argv);
        }
    }
    if (!index_path)
        usage_error("--index INDEX is required");
    size_t ntexts = (size_t)(argc - optind), nimages = query_images.count, nq = ntexts + nimages;
    if (nq == 0)
        usage_error("no query: give a TEXT or --image FILE");
    char **texts = argv + optind;
    for (size_t i = 0; i < ntexts; i++)
        if (!is_utf8(texts[i]))
            usage_error("query text %zu is not valid UTF-8", i + 1);

    jaclip_index *index = load_index_or_die(index_path);
    jaclip_model *model = load_model(&m);
    size_t dim = (size_t)jaclip_model_embedding_dim(model);
    if (jaclip_index_dim(index) != dim) {
        warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", index_path, jaclip_index_dim(index), dim);
        return EXIT_RUNTIME;
    }
    /* Queries in one tensor: texts first, then images. */
    int64_t shape[2] = {(int64_t)nq, (int64_t)dim};
    jaclip_tensor *queries = NULL, *part = NULL, *idx = NULL, *scores = NULL;
    jaclip_status st = jaclip_tensor_create(&queries, JACLIP_DTYPE_FLOAT32, 2, shape, NULL);
    if (st)
        die(NULL, st);
    float *q = jaclip_tensor_data_mut(queries);
    if (ntexts) {
        if ((st = jaclip_model_encode_texts(&part, model, (const char *const *)texts, NULL, ntexts)))
            die(NULL, st);
        memcpy(q, jaclip_tensor_data(part), jaclip_tensor_nbytes(part));
        jaclip_tensor_free(part);
    }
    if (nimages) {
        if ((st = jaclip_model_encode_image_files(&part, model, (const char *const *)query_images.items, nimages)))
            die(NULL, st);
        memcpy(q + ntexts * dim, jaclip_tensor_data(part), jaclip_tensor_nbytes(part));
        jaclip_tensor_free(part);
    }
    if ((st = jaclip_index_search(&idx, &scores, index, queries, k)))
        die(index_path, st);
    size_t kk = (size_t)jaclip_tensor_dim(idx, 1);
    const int64_t *rows = jaclip_tensor_data(idx);
    const float *s = jaclip_tensor_data(scores);
    if (json)
        fputs("[\n", stdout);
    for (size_t i = 0; i < nq; i++) {
        const char *query = i < ntexts ? texts[i] : query_images.items[i - ntexts];
        if (json) {
            fputs("  {\"query\": ", stdout);
            json_string(stdout, query);
            printf(", \"kind\": \"%s\", \"results\": [", i < ntexts ? "text" : "image");
            for (size_t j = 0; j < kk; j++) {
                printf("%s{\"rank\": %zu, \"row\": %lld, \"score\": ", j ? ", " : "", j + 1,
                       (long long)rows[i * kk + j]);
                json_float(stdout, s[i * kk + j]);
                fputs(", \"label\": ", stdout);
                json_string(stdout, jaclip_index_label(index, (size_t)rows[i * kk + j]));
                fputc('}', stdout);
            }
            fputs(i + 1 < nq ? "]},\n" : "]}\n", stdout);
        } else {
            if (nq > 1)
                printf("%s%s: %s\n", i ? "\n" : "", i < ntexts ? "text" : "image", query);
            for (size_t j = 0; j < kk; j++)
                printf("%3zu  %.4f  %s\n", j + 1, (double)s[i * kk + j],
                       jaclip_index_label(index, (size_t)rows[i * kk + j]));
        }
    }
    if (json)
        fputs("]\n", stdout);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(queries);
    jaclip_model_free(model);
    jaclip_index_free(index);
    free(query_images.items);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

/* ---- convert ----------------------------------------------------------------------------------- */

/* tools/jaclip-convert: $JACLIP_CONVERT, else beside the build tree (build/jaclip → tools/), else the
 * installed copy. */
static const char *find_converter(char *buf, size_t size)
{
    const char *env = getenv("JACLIP_CONVERT");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, size, "%s/../tools/jaclip-convert", exe);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    return JACLIP_CONVERT_INSTALLED;
}

static int cmd_convert(int argc, char **argv)
{
    char buf[PATH_MAX + 64];
    const char *script = find_converter(buf, sizeof buf);
    const char *python = getenv("JACLIP_PYTHON");
    if (!python || !*python)
        python = access(JACLIP_DEFAULT_PYTHON, X_OK) == 0 ? JACLIP_DEFAULT_PYTHON : "python3";
    char **args = xcalloc((size_t)argc + 2, sizeof *args);
    args[0] = (char *)python;
    args[1] = (char *)script;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    execvp(python, args);
    warn("%s: cannot run %s: %s", script, python, strerror(errno));
    free(args);
    return EXIT_RUNTIME;
}

/* ---- main -------------------------------------------------------------------------------------- */

static const char main_usage[] =
    "usage: jaclip COMMAND [options]\n"
    "\n"
    "Japanese CLIP (rinna/japanese-cloob-vit-b-16) from the command line.\n"
    "\n"
    "  classify   zero-shot classification of images over Japanese labels\n"
    "  embed      image or text embeddings as .npy or JSON\n"
    "  index      build (or resume building) a searchable index of a photo folder; info, list\n"
    "  search     search an index by Japanese text or by an example image\n"
    "  convert    convert a Hugging Face checkpoint into a model file (runs jaclip-convert)\n"
    "\n"
    "'jaclip COMMAND --help' describes each; 'man jaclip' all of them. Options common to the commands\n"
    "that load a model: --model FILE (default: $JACLIP_MODEL), --device DEV, --threads N.\n"
    "Exit status: 0 success, 1 runtime error, 2 usage error.\n";

int main(int argc, char **argv)
{
    opterr = 0; /* bad_option words the messages */
    if (argc < 2)
        usage_error("missing COMMAND");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
        return help_requested(main_usage);
    if (!strcmp(cmd, "--version")) {
        printf("jaclip %s (libjaclip %s)\n", JACLIP_VERSION_STRING, jaclip_version_string());
        return 0;
    }
    if (jaclip_version_number() != JACLIP_VERSION_NUMBER) {
        warn("libjaclip %s is loaded, this command was built for %s", jaclip_version_string(), JACLIP_VERSION_STRING);
        return EXIT_RUNTIME;
    }
    if (!strcmp(cmd, "classify"))
        return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed"))
        return cmd_embed(argc - 1, argv + 1);
    if (!strcmp(cmd, "index"))
        return cmd_index(argc - 1, argv + 1);
    if (!strcmp(cmd, "search"))
        return cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc - 1, argv + 1);
    usage_error("unknown command '%s'", cmd);
}
