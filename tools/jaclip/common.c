#include "cli.h"

const char *command_name = "jaclip";

/* ---- messages --------------------------------------------------------------------------------- */

/* Messages quote file names, which may hold ESC sequences or newlines: escaped, they cannot drive the
 * terminal or forge a line. */
void cli_warn(const char *fmt, ...)
{
    char message[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    fputs("jaclip: ", stderr);
    print_escaped(stderr, message);
    fputc('\n', stderr);
}

_Noreturn void usage_error(const char *fmt, ...)
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
void report(const char *file, jaclip_status st)
{
    const char *msg = jaclip_last_error();
    if (!msg[0])
        msg = jaclip_status_string(st);
    size_t n = file ? strlen(file) : 0;
    if (!file || (strncmp(msg, file, n) == 0 && msg[n] == ':'))
        cli_warn("%s", msg);
    else
        cli_warn("%s: %s", file, msg);
}

_Noreturn void die(const char *file, jaclip_status st)
{
    report(file, st);
    exit(EXIT_RUNTIME);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        cli_warn("out of memory");
        exit(EXIT_RUNTIME);
    }
    return p;
}

char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        cli_warn("out of memory");
        exit(EXIT_RUNTIME);
    }
    return p;
}

/* ---- options shared by the commands ------------------------------------------------------------ */

long parse_long(const char *text, const char *option, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        usage_error("%s must be an integer from %ld to %ld, got '%s'", option, min, max, text);
    return v;
}

double parse_double(const char *text, const char *option)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v))
        usage_error("%s must be a finite number, got '%s'", option, text);
    return v;
}

/* The next option of argv (getopt_long) that is not --model, --device or --threads, which go to m;
 * -1 at the end. */
int next_option(int argc, char **argv, const char *shortopts, const struct option *longopts, model_args *m)
{
    int opt;
    while ((opt = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
        if (!model_option(m, opt))
            return opt;
    return -1;
}

static const char *const precision_words[] = {"default", "fp32", "bf16", "int8", "auto", "int8-weights"};

jaclip_precision parse_precision(const char *text)
{
    for (size_t i = 0; i < sizeof precision_words / sizeof *precision_words; i++)
        if (!strcmp(text, precision_words[i]))
            return (jaclip_precision)i;
    usage_error("--precision must be default, fp32, bf16, int8, int8-weights or auto, got '%s'", text);
}

const char *precision_word(jaclip_precision precision)
{
    return (unsigned)precision < sizeof precision_words / sizeof *precision_words ? precision_words[precision] : "?";
}

/* Handles --model, --device, --threads and --precision; false if opt is none of them. */
bool model_option(model_args *m, int opt)
{
    switch (opt) {
    case 'm': m->model_path = optarg; return true;
    case OPT_DEVICE: m->device = optarg; return true;
    case OPT_THREADS: m->threads = (int)parse_long(optarg, "--threads", 0, 1024); return true;
    case OPT_PRECISION: m->precision = parse_precision(optarg); return true;
    case OPT_EXIF: m->image_flags |= JACLIP_IMAGE_EXIF_TRANSPOSE; return true;
    }
    return false;
}

jaclip_model *load_model(model_args *m)
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
        (m->threads && (st = jaclip_model_options_set_num_threads(opts, m->threads))) ||
        (m->image_flags && (st = jaclip_model_options_set_image_flags(opts, m->image_flags))) ||
        (m->precision && (st = jaclip_model_options_set_precision(opts, m->precision)))) {
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
_Noreturn void bad_option(int opt, char **argv)
{
    const char *word = argv[optind - 1];
    if (opt == ':')
        usage_error("option '%s' needs a value", word);
    if (optopt && strncmp(word, "--", 2) != 0)
        usage_error("unknown option '-%c'", optopt);
    usage_error("unknown option '%s'", word);
}

int help_requested(const char *usage)
{
    fputs(usage, stdout);
    return 0;
}

/* ---- output helpers ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
size_t utf8_char_len(const unsigned char *s)
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

bool is_utf8(const char *s)
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
void cli_json_string(FILE *f, const char *s)
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

/* Shortest text that reads back as the same float32; JSON has no NaN or infinity, so those are null. */
void json_float(FILE *f, float v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", (double)v);
    else
        fputs("null", f);
}

/* Text for a terminal or a line-per-row format: control bytes (C0, DEL, and C1 such as CSI U+009B),
 * backslashes and bytes that are not UTF-8 become \xNN / \\; everything else is written as is. */
void print_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_char_len(p);
        bool c1 = n == 2 && p[0] == 0xC2 && p[1] < 0xA0;
        if (n == 0 || *p < 0x20 || *p == 0x7F || c1) {
            for (size_t i = 0; i < (n ? n : 1); i++)
                fprintf(f, "\\x%02x", p[i]);
            p += n ? n : 1;
        } else if (*p == '\\') {
            fputs("\\\\", f);
            p++;
        } else {
            fwrite(p, 1, n, f);
            p += n;
        }
    }
}

bool has_non_finite(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return true;
    return false;
}

bool write_npy(FILE *f, const float *data, size_t rows, size_t cols)
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
    unsigned char prefix[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(header & 0xFF), (unsigned char)(header >> 8)};
    fwrite(prefix, 1, sizeof prefix, f);
    fwrite(dict, 1, (size_t)n, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, sizeof(float), rows * cols, f);
    return !ferror(f);
}

volatile sig_atomic_t stop_signal;

void on_stop_signal(int sig) { stop_signal = sig; }

void list_push(string_list *l, char *s)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->items, l->cap * sizeof *p);
        if (!p) {
            cli_warn("out of memory");
            exit(EXIT_RUNTIME);
        }
        l->items = p;
    }
    l->items[l->count++] = s;
}

/* The names of the formats libjaclip decodes (it detects the format by content; the walker picks files
 * by name, so a photo with another extension is not looked at, and a named one that cannot be decoded
 * is counted as skipped with its reason). */
bool has_image_extension(const char *name)
{
    static const char *const extensions[] = {".jpg", ".jpeg", ".jpe", ".jfif", ".mpo",  ".png",  ".webp", ".gif",
                                             ".bmp", ".dib",  ".tif", ".tiff", ".heic", ".heif", ".hif",  ".avif"};
    const char *dot = strrchr(name, '.');
    if (!dot)
        return false;
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++)
        if (!strcasecmp(dot, extensions[i]))
            return true;
    return false;
}

/* Appends dir's image files (recursively) to out. Symbolic links to files are followed, to directories
 * not (no cycles). Entries that cannot be examined (a path too long, a broken link, no permission) are
 * warned about and counted in *skipped (unless NULL); unless unverified is NULL, the paths of folders
 * that could not be listed (whole or to the end) and of entries that could not be examined are pushed
 * on it (malloc'd), so that sync knows what it could not see. */
void walk_checked(const char *dir, string_list *out, size_t *skipped, string_list *unverified)
{
    /* The folder's names are read whole and it is closed before recursing: one descriptor at a time
     * whatever the depth, so a deep tree does not run out of them (EMFILE). */
    string_list names = {0};
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((errno = 0, e = readdir(d)))
            if (e->d_name[0] != '.')
                list_push(&names, xstrdup(e->d_name));
    }
    if (!d || errno) {
        cli_warn("%s: cannot read directory%s: %s", dir, d ? " to its end" : "", strerror(errno));
        if (skipped)
            ++*skipped;
        if (unverified)
            list_push(unverified, xstrdup(dir));
    }
    if (d)
        closedir(d);
    for (size_t i = 0; i < names.count; i++) {
        const char *name = names.items[i];
        size_t n = strlen(dir) + strlen(name) + 2;
        char *path = xcalloc(n, 1);
        snprintf(path, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
        struct stat sb, lsb;
        if (lstat(path, &lsb) != 0 || stat(path, &sb) != 0) {
            int err = errno;
            if (has_image_extension(name) || err != ENOENT) {
                cli_warn("%s: skipped: %s", path, strerror(err));
                if (skipped)
                    ++*skipped;
            }
            if (unverified && err != ENOENT) /* ENOENT: gone, or a broken link */
                list_push(unverified, path);
            else
                free(path);
        } else if (S_ISDIR(sb.st_mode) && !S_ISLNK(lsb.st_mode)) {
            walk_checked(path, out, skipped, unverified);
            free(path);
        } else if (S_ISREG(sb.st_mode) && has_image_extension(name)) {
            list_push(out, path);
        } else {
            free(path);
        }
        free(names.items[i]);
    }
    free(names.items);
}

void walk(const char *dir, string_list *out, size_t *skipped) { walk_checked(dir, out, skipped, NULL); }

bool path_under_any(const string_list *sorted, const char *path)
{
    char *p = xstrdup(path);
    bool found = false;
    while (sorted->count > 0 && p[0]) {
        const char *key = p;
        if ((found = bsearch(&key, sorted->items, sorted->count, sizeof key, by_bytes) != NULL))
            break;
        char *slash = strrchr(p, '/');
        if (!slash || (slash == p && !p[1]))
            break;
        slash[slash == p] = '\0'; /* the parent; "/x" to "/" */
    }
    free(p);
    return found;
}

int by_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void format_duration(char *buf, size_t size, double seconds)
{
    long s = seconds < 0 || !isfinite(seconds) ? 0 : (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%ld:%02ld", s / 60, s % 60);
}

void progress_clear(const progress *p)
{
    if (p->tty)
        fputs("\r\033[K", stderr);
}

void progress_show(progress *p, bool final)
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

jaclip_index *load_index_or_die(const char *path)
{
    jaclip_index *index = NULL;
    jaclip_status st = jaclip_index_load(&index, path, JACLIP_INDEX_MMAP);
    if (st)
        die(path, st);
    return index;
}
