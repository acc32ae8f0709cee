#include "cli.h"

/* ---- classify ---------------------------------------------------------------------------------- */

static const char classify_usage[] =
    "usage: jaclip classify --model MODEL (--labels LIST | --labels-file FILE | --classifier FILE)\n"
    "                       [options] IMAGE|DIR...\n"
    "\n"
    "Zero-shot classification: ranks the labels for each image by softmax(scale * cosine) between the\n"
    "image's embedding and each label's classifier row: every template filled with the label, each text\n"
    "embedding L2-normalised, averaged over the templates and re-normalised (rinna's ImageNet protocol).\n"
    "A DIR stands for its image files (recursively, in byte order of path). Unreadable files are\n"
    "skipped with one warning each; the exit status is 1 only if no image could be read.\n"
    "\n"
    "  -m, --model FILE        model file made by 'jaclip convert' (default: $JACLIP_MODEL)\n"
    "  -l, --labels LIST       comma-separated labels, e.g. 犬,猫,象\n"
    "      --labels-file FILE  one label per line (labels may contain commas; blank lines and # comments\n"
    "                          are skipped); adds to --labels\n"
    "  -t, --template TEXT     text around each label, {} marks the label, e.g. '{}の写真'; repeat it to\n"
    "                          ensemble several (default: {} alone)\n"
    "      --templates NAME    add a named template set: imagenet (rinna's 37 Japanese templates)\n"
    "      --classifier FILE   use a classifier saved by --save-classifier instead of building one\n"
    "      --save-classifier FILE  write the classifier built here (for the same model only)\n"
    "  -k, --top K             show the K best labels per image (default: all)\n"
    "      --scale S           logit scale before the softmax (default: the model's own: 100 for\n"
    "                          CLOOB, exp(logit_scale) for CLIP)\n"
    "      --exif-transpose    rotate images by their EXIF orientation first (phone photos)\n"
    "      --strict            an unreadable file is an error (exit 1) instead of a warning\n"
    "      --json              JSON instead of a table\n"
    "      --device DEV        cpu (default), cuda or cuda:N\n"
    "      --threads N         libtorch threads (default: all cores)\n"
    "      --precision P       default (as stored), fp32, bf16, int8, int8-weights or auto\n"
    "  -h, --help              this help\n";

/* Splits a comma-separated list, trimming ASCII spaces; empty items are a usage error. */
static void split_labels(const char *list, string_list *out)
{
    char *copy = xstrdup(list);
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
        list_push(out, xstrdup(item));
    }
    free(copy);
}

static void free_list(string_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
}

typedef struct {
    model_args m;
    string_list labels, templates, images;
    const char *classifier_path, *save_path;
    double scale;
    size_t top;
    bool json, strict, labels_given;
} classify_options;

static void parse_classify_args(classify_options *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"labels", required_argument, NULL, 'l'},
        {"template", required_argument, NULL, 't'},    {"scale", required_argument, NULL, OPT_SCALE},
        {"json", no_argument, NULL, OPT_JSON},         {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"precision", required_argument, NULL, OPT_PRECISION}, {"help", no_argument, NULL, 'h'},
        {"labels-file", required_argument, NULL, OPT_LABELS_FILE},
        {"templates", required_argument, NULL, OPT_TEMPLATES},
        {"classifier", required_argument, NULL, OPT_CLASSIFIER},
        {"save-classifier", required_argument, NULL, OPT_SAVE_CLASSIFIER},
        {"top", required_argument, NULL, 'k'},         {"exif-transpose", no_argument, NULL, OPT_EXIF},
        {"strict", no_argument, NULL, OPT_STRICT},     {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    while ((opt = next_option(argc, argv, ":m:l:t:k:h", options, &o->m)) != -1)
        switch (opt) {
        case 'l':
            if (!is_utf8(optarg))
                usage_error("--labels must be UTF-8");
            split_labels(optarg, &o->labels);
            o->labels_given = true;
            break;
        case OPT_LABELS_FILE:
            read_lines(optarg, &o->labels, "the labels file");
            o->labels_given = true;
            break;
        case 't':
            if (!is_utf8(optarg))
                usage_error("--template must be UTF-8");
            list_push(&o->templates, xstrdup(optarg));
            break;
        case OPT_TEMPLATES: add_template_preset(&o->templates, optarg); break;
        case OPT_CLASSIFIER: o->classifier_path = optarg; break;
        case OPT_SAVE_CLASSIFIER: o->save_path = optarg; break;
        case 'k': o->top = (size_t)parse_long(optarg, "--top", 1, LONG_MAX); break;
        case OPT_SCALE:
            o->scale = parse_double(optarg, "--scale");
            if (!(o->scale > 0) || o->scale > 1e30)
                usage_error("--scale must be positive, got '%s'", optarg);
            break;
        case OPT_STRICT: o->strict = true; break;
        case OPT_JSON: o->json = true; break;
        case 'h': exit(help_requested(classify_usage));
        default: bad_option(opt, argv);
        }
    if (!o->labels_given && !o->classifier_path)
        usage_error("--labels is required (e.g. --labels 犬,猫,象), or --labels-file or --classifier");
    if (o->classifier_path && (o->labels_given || o->templates.count))
        usage_error("--classifier holds its labels and templates: give no --labels or --template with it");
    if (o->labels_given && o->labels.count == 0)
        usage_error("the labels file holds no label");
    for (size_t i = 0; i < o->templates.count; i++) {
        const char *mark = strstr(o->templates.items[i], "{}");
        if (!mark || strstr(mark + 2, "{}"))
            usage_error("--template must contain {} (once) where the label goes, got '%s'", o->templates.items[i]);
    }
    if (optind >= argc)
        usage_error("no IMAGE given");
    expand_image_args(argv + optind, (size_t)(argc - optind), &o->images);
}

/* The top labels of each image with their probabilities p [images, labels], ranked by idx. */
static void print_predictions(const classify_options *o, const jaclip_classifier *classifier, const float *p,
                              const int64_t *idx, size_t top)
{
    size_t nimages = o->images.count, nlabels = jaclip_classifier_size(classifier);
    if (o->json)
        fputs("[\n", stdout);
    for (size_t i = 0; i < nimages; i++) {
        if (o->json) {
            fputs("  {\"image\": ", stdout);
            cli_json_string(stdout, o->images.items[i]);
            fputs(", \"labels\": [", stdout);
        } else {
            fputs(i ? "\n" : "", stdout);
            print_escaped(stdout, o->images.items[i]);
            putchar('\n');
        }
        for (size_t j = 0; j < top; j++) {
            size_t label = (size_t)idx[i * top + j];
            float prob = p[i * nlabels + label];
            if (o->json) {
                fputs(j ? ", {\"label\": " : "{\"label\": ", stdout);
                cli_json_string(stdout, jaclip_classifier_label(classifier, label));
                fputs(", \"probability\": ", stdout);
                json_float(stdout, prob);
                fputc('}', stdout);
            } else {
                printf("  %7.2f%%  ", 100.0 * prob);
                print_escaped(stdout, jaclip_classifier_label(classifier, label));
                putchar('\n');
            }
        }
        if (o->json)
            fputs(i + 1 < nimages ? "]},\n" : "]}\n", stdout);
    }
    if (o->json)
        fputs("]\n", stdout);
}

int cmd_classify(int argc, char **argv)
{
    classify_options o;
    command_name = "jaclip classify";
    parse_classify_args(&o, argc, argv);
    jaclip_model *model = load_model(&o.m);
    jaclip_classifier *classifier =
        build_or_load_classifier(model, o.classifier_path, &o.labels, &o.templates, o.save_path);
    size_t nlabels = jaclip_classifier_size(classifier), top = o.top;
    if (top == 0 || top > nlabels)
        top = nlabels;
    jaclip_tensor *features = encode_image_batch(model, &o.images, o.strict, NULL);
    if (o.images.count == 0) {
        cli_warn("no image could be read");
        return EXIT_RUNTIME;
    }
    jaclip_tensor *probs = NULL, *scores = NULL, *order = NULL;
    jaclip_status st;
    /* Ranked by cosine, which never saturates the way a softmax at scale 100 does. */
    if ((st = jaclip_classifier_classify_features(&probs, classifier, features, (float)o.scale)) ||
        (st = jaclip_classifier_scores(&scores, classifier, features)) || (st = jaclip_topk(&order, NULL, scores, top)))
        die(NULL, st);
    const float *p = jaclip_tensor_data(probs);
    if (has_non_finite(p, jaclip_tensor_numel(probs))) {
        cli_warn("%s: the model gave non-finite values (damaged weights?)", o.m.model_path);
        return EXIT_RUNTIME;
    }
    print_predictions(&o, classifier, p, jaclip_tensor_data(order), top);
    jaclip_tensor_free(order);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(probs);
    jaclip_tensor_free(features);
    jaclip_classifier_free(classifier);
    jaclip_model_free(model);
    free_list(&o.labels);
    free_list(&o.templates);
    free_list(&o.images);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
