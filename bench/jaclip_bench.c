/* Times libjaclip through its C API, for bench/bench_model.py, which runs the reference pipeline in the
 * same run and computes the ratios. Prints one JSON object; writes features as raw float32 files.
 *
 *   jaclip_bench MODEL PRECISION(fp32|bf16|default) REPEAT OUT_PREFIX LABELS_FILE IMAGE...
 *
 * JACLIP_BENCH_THREADS=N sets the libtorch thread count (default: every usable core).
 */
#include <jaclip.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (double)sysconf(_SC_PAGESIZE) / 1e6;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1e3;
}

static void die(const char *what, jaclip_status st)
{
    fprintf(stderr, "jaclip_bench: %s: %s (%s)\n", what, jaclip_last_error(), jaclip_status_string(st));
    exit(1);
}

static void save(const char *prefix, const char *name, const jaclip_tensor *t)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s.f32", prefix, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(jaclip_tensor_data(t), 1, jaclip_tensor_nbytes(t), f) != jaclip_tensor_nbytes(t))
        die(path, JACLIP_ERROR_IO);
    fclose(f);
}

static char **read_lines(const char *path, size_t *n)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    char **lines = NULL;
    *n = 0;
    if (!f)
        die(path, JACLIP_ERROR_IO);
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        lines = realloc(lines, (*n + 1) * sizeof *lines);
        lines[(*n)++] = strdup(buf);
    }
    fclose(f);
    return lines;
}

/* Indexed by jaclip_precision; the reason strings hold no quote or backslash, so they print as JSON. */
static const char *const precision_names[] = {"default", "fp32", "bf16", "int8"};

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s MODEL fp32|bf16|int8|default REPEAT OUT_PREFIX LABELS_FILE IMAGE...\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *precision = argv[2], *prefix = argv[4];
    int repeat = atoi(argv[3]);
    size_t n_labels, n_images = (size_t)(argc - 6);
    char **labels = read_lines(argv[5], &n_labels);
    const char *const *images = (const char *const *)argv + 6;
    jaclip_model_options *opts = NULL;
    jaclip_model *model = NULL;
    jaclip_tensor *t = NULL;
    jaclip_status st;

    if ((st = jaclip_model_options_create(&opts)))
        die("options", st);
    if (strcmp(precision, "fp32") == 0)
        st = jaclip_model_options_set_precision(opts, JACLIP_PRECISION_FP32);
    else if (strcmp(precision, "bf16") == 0)
        st = jaclip_model_options_set_precision(opts, JACLIP_PRECISION_BF16);
    else if (strcmp(precision, "int8") == 0)
        st = jaclip_model_options_set_precision(opts, JACLIP_PRECISION_INT8);
    if (st)
        die("precision", st);
    const char *threads = getenv("JACLIP_BENCH_THREADS");
    if (threads && (st = jaclip_model_options_set_num_threads(opts, atoi(threads))))
        die("threads", st);
    double rss_before = rss_mb(), t0 = now();
    if ((st = jaclip_model_load(&model, model_path, opts)))
        die(model_path, st);
    double load_s = now() - t0, rss_loaded = rss_mb();

    /* Warm-up: TorchScript's profiling executor optimises each method over its first calls. */
    for (int i = 0; i < 2; i++) {
        if ((st = jaclip_model_encode_image_files(&t, model, images, n_images)))
            die("warm-up images", st);
        jaclip_tensor_free(t);
        if ((st = jaclip_model_encode_image_files(&t, model, images, 1)))
            die("warm-up image", st);
        jaclip_tensor_free(t);
        if ((st = jaclip_model_encode_texts(&t, model, (const char *const *)labels, NULL, n_labels)))
            die("warm-up texts", st);
        jaclip_tensor_free(t);
        if ((st = jaclip_model_encode_texts(&t, model, (const char *const *)labels, NULL, 1)))
            die("warm-up text", st);
        jaclip_tensor_free(t);
    }

    t0 = now();
    for (int r = 0; r < repeat; r++)
        for (size_t i = 0; i < n_images; i++) {
            if ((st = jaclip_model_encode_image_files(&t, model, images + i, 1)))
                die(images[i], st);
            jaclip_tensor_free(t);
        }
    double image_b1 = repeat * n_images / (now() - t0);

    t0 = now();
    for (int r = 0; r < repeat; r++) {
        if ((st = jaclip_model_encode_image_files(&t, model, images, n_images)))
            die("images", st);
        if (r == 0)
            save(prefix, "images", t);
        jaclip_tensor_free(t);
    }
    double image_batch = repeat * n_images / (now() - t0);

    t0 = now();
    for (int r = 0; r < repeat; r++)
        for (size_t i = 0; i < n_labels; i++) {
            if ((st = jaclip_model_encode_texts(&t, model, (const char *const *)labels + i, NULL, 1)))
                die(labels[i], st);
            jaclip_tensor_free(t);
        }
    double text_b1 = repeat * n_labels / (now() - t0);

    t0 = now();
    for (int r = 0; r < repeat; r++) {
        if ((st = jaclip_model_encode_texts(&t, model, (const char *const *)labels, NULL, n_labels)))
            die("texts", st);
        if (r == 0)
            save(prefix, "texts", t);
        jaclip_tensor_free(t);
    }
    double text_batch = repeat * n_labels / (now() - t0);

    printf("{\"precision\": \"%s\", \"model_precision\": \"%s\", \"load_s\": %.3f, \"rss_before_mb\": %.1f, "
           "\"rss_loaded_mb\": %.1f, \"rss_after_mb\": %.1f, \"peak_rss_mb\": %.1f, "
           "\"image_b1_per_s\": %.3f, \"image_batch_per_s\": %.3f, \"image_batch\": %zu, "
           "\"text_b1_per_s\": %.2f, \"text_batch_per_s\": %.2f, \"text_batch\": %zu, "
           "\"precision_reason\": \"%s\", \"cpu_features\": \"%s\"}\n",
           precision, precision_names[jaclip_model_precision(model) & 3], load_s, rss_before, rss_loaded, rss_mb(),
           peak_rss_mb(), image_b1, image_batch, n_images, text_b1, text_batch, n_labels,
           jaclip_model_precision_reason(model), jaclip_cpu_features());
    jaclip_model_free(model);
    jaclip_model_options_free(opts);
    for (size_t i = 0; i < n_labels; i++)
        free(labels[i]);
    free(labels);
    return 0;
}
