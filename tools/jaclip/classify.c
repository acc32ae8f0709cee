#include "cli.h"

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

int cmd_classify(int argc, char **argv)
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
    if (has_non_finite(p, jaclip_tensor_numel(probs))) {
        cli_warn("%s: the model gave non-finite values (damaged weights?)", m.model_path);
        return EXIT_RUNTIME;
    }
    ranked_label *ranked = xcalloc(nlabels, sizeof *ranked);
    if (json)
        fputs("[\n", stdout);
    for (size_t i = 0; i < nimages; i++) {
        for (size_t j = 0; j < nlabels; j++)
            ranked[j] = (ranked_label){j, p[i * nlabels + j]};
        qsort(ranked, nlabels, sizeof *ranked, by_probability);
        if (json) {
            fputs("  {\"image\": ", stdout);
            cli_json_string(stdout, images[i]);
            fputs(", \"labels\": [", stdout);
            for (size_t j = 0; j < nlabels; j++) {
                fputs(j ? ", {\"label\": " : "{\"label\": ", stdout);
                cli_json_string(stdout, labels[ranked[j].label]);
                fputs(", \"probability\": ", stdout);
                json_float(stdout, ranked[j].prob);
                fputc('}', stdout);
            }
            fputs(i + 1 < nimages ? "]},\n" : "]}\n", stdout);
        } else {
            fputs(i ? "\n" : "", stdout);
            print_escaped(stdout, images[i]);
            putchar('\n');
            for (size_t j = 0; j < nlabels; j++) {
                printf("  %7.2f%%  ", 100.0 * ranked[j].prob);
                print_escaped(stdout, labels[ranked[j].label]);
                putchar('\n');
            }
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
