/* Times the ImageNet zero-shot classifier (1000 labels x 37 templates = 37 000 texts) on one model:
 * building it, against encoding the same 37 000 texts with jaclip_model_encode_texts in the same run
 * (the reference: what the ensemble costs beyond the text encoder), then saving it and loading it back
 * (the reason the file exists). Prints one JSON object.
 *
 *   bench_classifier MODEL OUT_FILE [REPEAT_LOAD [REFERENCE_TEXTS]]
 *
 * REFERENCE_TEXTS (default: all 37 000) encodes only an evenly spaced sample as the reference, and the
 * ratio is then per text: on a 2-core machine the full-size model takes ~20 min per 37 000 texts.
 */
#include <jaclip.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, jaclip_status st)
{
    fprintf(stderr, "bench_classifier: %s: %s (%s)\n", what, jaclip_last_error(), jaclip_status_string(st));
    exit(1);
}

static void cpu_model(char *buf, size_t size)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[200];
    snprintf(buf, size, "unknown");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            snprintf(buf, size, "%s", v ? v + 2 : line);
            buf[strcspn(buf, "\n")] = '\0';
            break;
        }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_classifier MODEL OUT_FILE [REPEAT_LOAD [REFERENCE_TEXTS]]\n");
        return 2;
    }
    int repeat = argc > 3 ? atoi(argv[3]) : 5;
    jaclip_model *model = NULL;
    jaclip_status st;
    if ((st = jaclip_model_load(&model, argv[1], NULL)))
        die(argv[1], st);
    const char *const *labels, *const *templates;
    size_t nl, nt;
    if ((st = jaclip_preset_labels(&labels, &nl, "imagenet")) ||
        (st = jaclip_preset_templates(&templates, &nt, "imagenet")))
        die("presets", st);

    /* The reference: the same texts, filled here, through the plain text encoder. */
    char **texts = calloc(nl * nt, sizeof *texts);
    for (size_t i = 0; i < nl * nt; i++) {
        const char *t = templates[i % nt], *mark = strstr(t, "{}");
        size_t n = strlen(t) + strlen(labels[i / nt]) + 1;
        texts[i] = malloc(n);
        snprintf(texts[i], n, "%.*s%s%s", (int)(mark - t), t, labels[i / nt], mark + 2);
    }
    size_t total = nl * nt, reference = argc > 4 ? (size_t)atol(argv[4]) : total;
    if (reference == 0 || reference > total)
        reference = total;
    const char **sample = calloc(reference, sizeof *sample);
    for (size_t i = 0; i < reference; i++)
        sample[i] = texts[i * total / reference];
    jaclip_tensor *features = NULL;
    double t0 = now();
    if ((st = jaclip_model_encode_texts(&features, model, sample, NULL, reference)))
        die("encode_texts", st);
    double encode_s = now() - t0;
    jaclip_tensor_free(features);
    free(sample);

    jaclip_classifier *c = NULL, *loaded = NULL;
    t0 = now();
    if ((st = jaclip_classifier_create(&c, model, labels, nl, templates, nt)))
        die("classifier_create", st);
    double build_s = now() - t0;
    t0 = now();
    if ((st = jaclip_classifier_save(c, argv[2])))
        die("save", st);
    double save_s = now() - t0, load_best = 1e30;
    for (int r = 0; r < repeat; r++) {
        t0 = now();
        if ((st = jaclip_classifier_load(&loaded, argv[2], model)))
            die("load", st);
        double s = now() - t0;
        load_best = s < load_best ? s : load_best;
        jaclip_classifier_free(loaded);
    }
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    double encode_ms = 1e3 * encode_s / (double)reference, build_ms = 1e3 * build_s / (double)total;
    printf("{\"model\": \"%s\", \"fingerprint\": \"%s\", \"cpu\": \"%s\", \"texts\": %zu,\n"
           " \"reference_texts\": %zu, \"encode_texts_s\": %.3f, \"encode_ms_per_text\": %.3f,\n"
           " \"build_s\": %.3f, \"build_ms_per_text\": %.3f, \"build_over_encode_per_text\": %.4f,\n"
           " \"save_s\": %.4f, \"load_s\": %.5f, \"build_over_load\": %.1f}\n",
           argv[1], jaclip_model_fingerprint(model), cpu, total, reference, encode_s, encode_ms, build_s, build_ms,
           build_ms / encode_ms, save_s, load_best, build_s / load_best);
    for (size_t i = 0; i < nl * nt; i++)
        free(texts[i]);
    free(texts);
    jaclip_classifier_free(c);
    jaclip_model_free(model);
    return 0;
}
