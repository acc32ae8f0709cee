#include "cli.h"

/* ---- classify ---------------------------------------------------------------------------------- */

static const char classify_usage[] =
    "usage: jaclip classify --model MODEL (--labels LIST | --labels-file FILE | --classifier FILE)\n"
    "                       [options] IMAGE|DIR...\n"
    "\n"
    "Zero-shot classification: ranks the labels for each image by softmax(scale * cosine) between the\n"
    "image's embedding and each label's classifier row: every template filled with the label, each text\n"
    "embedding L2-normalised, averaged over the templates and re-normalised (rinna's ImageNet protocol).\n"
    "A DIR stands for its JPEG and PNG files (recursively, in byte order of path). Unreadable files are\n"
    "skipped with one warning each; the exit status is 1 only if no image could be read.\n"
    "\n"
    "  -m, --model FILE        model file made by 'jaclip convert' (default: $JACLIP_MODEL)\n"
    "  -l, --labels LIST       comma-separated labels, e.g. 犬,猫,象\n"
    "      --labels-file FILE  one label per line (labels may contain commas); adds to --labels\n"
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

int cmd_classify(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"labels", required_argument, NULL, 'l'},
        {"template", required_argument, NULL, 't'},    {"scale", required_argument, NULL, OPT_SCALE},
        {"json", no_argument, NULL, OPT_JSON},         {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"help", no_argument, NULL, 'h'},
        {"labels-file", required_argument, NULL, OPT_LABELS_FILE},
        {"templates", required_argument, NULL, OPT_TEMPLATES},
        {"classifier", required_argument, NULL, OPT_CLASSIFIER},
        {"save-classifier", required_argument, NULL, OPT_SAVE_CLASSIFIER},
        {"top", required_argument, NULL, 'k'},         {"exif-transpose", no_argument, NULL, OPT_EXIF},
        {"strict", no_argument, NULL, OPT_STRICT},     {NULL, 0, NULL, 0}};
    model_args m = {0};
    string_list labels = {0}, templates = {0}, images = {0};
    const char *classifier_path = NULL, *save_path = NULL;
    double scale = 0;
    size_t top = 0;
    bool json = false, strict = false, labels_given = false;
    int opt;
    command_name = "jaclip classify";
    while ((opt = getopt_long(argc, argv, ":m:l:t:k:h", options, NULL)) != -1) {
        if (model_option(&m, opt))
            continue;
        switch (opt) {
        case 'l':
            if (!is_utf8(optarg))
                usage_error("--labels must be UTF-8");
            split_labels(optarg, &labels);
            labels_given = true;
            break;
        case OPT_LABELS_FILE: read_lines(optarg, &labels, "the labels file"); labels_given = true; break;
        case 't':
            if (!is_utf8(optarg))
                usage_error("--template must be UTF-8");
            list_push(&templates, xstrdup(optarg));
            break;
        case OPT_TEMPLATES: add_template_preset(&templates, optarg); break;
        case OPT_CLASSIFIER: classifier_path = optarg; break;
        case OPT_SAVE_CLASSIFIER: save_path = optarg; break;
        case 'k': top = (size_t)parse_long(optarg, "--top", 1, LONG_MAX); break;
        case OPT_SCALE:
            scale = parse_double(optarg, "--scale");
            if (!(scale > 0) || scale > 1e30)
                usage_error("--scale must be positive, got '%s'", optarg);
            break;
        case OPT_STRICT: strict = true; break;
        case OPT_JSON: json = true; break;
        case 'h': return help_requested(classify_usage);
        default: bad_option(opt, argv);
        }
    }
    if (!labels_given && !classifier_path)
        usage_error("--labels is required (e.g. --labels 犬,猫,象), or --labels-file or --classifier");
    if (classifier_path && (labels_given || templates.count))
        usage_error("--classifier holds its labels and templates: give no --labels or --template with it");
    if (labels_given && labels.count == 0)
        usage_error("the labels file holds no label");
    for (size_t i = 0; i < templates.count; i++) {
        const char *mark = strstr(templates.items[i], "{}");
        if (!mark || strstr(mark + 2, "{}"))
            usage_error("--template must contain {} (once) where the label goes, got '%s'", templates.items[i]);
    }
    if (optind >= argc)
        usage_error("no IMAGE given");
    expand_image_args(argv + optind, (size_t)(argc - optind), &images);

    jaclip_model *model = load_model(&m);
    jaclip_classifier *classifier = build_or_load_classifier(model, classifier_path, &labels, &templates, save_path);
    size_t nlabels = jaclip_classifier_size(classifier);
    if (top == 0 || top > nlabels)
        top = nlabels;
    jaclip_tensor *features = encode_image_batch(model, &images, strict, NULL);
    size_t nimages = images.count;
    if (nimages == 0) {
        cli_warn("no image could be read");
        return EXIT_RUNTIME;
    }
    jaclip_tensor *probs = NULL, *scores = NULL, *order = NULL;
    jaclip_status st;
    /* Ranked by cosine, which never saturates the way a softmax at scale 100 does. */
    if ((st = jaclip_classifier_classify_features(&probs, classifier, features, (float)scale)) ||
        (st = jaclip_classifier_scores(&scores, classifier, features)) ||
        (st = jaclip_topk(&order, NULL, scores, top)))
        die(NULL, st);

    const float *p = jaclip_tensor_data(probs);
    const int64_t *idx = jaclip_tensor_data(order);
    if (has_non_finite(p, jaclip_tensor_numel(probs))) {
        cli_warn("%s: the model gave non-finite values (damaged weights?)", m.model_path);
        return EXIT_RUNTIME;
    }
    if (json)
        fputs("[\n", stdout);
    for (size_t i = 0; i < nimages; i++) {
        if (json) {
            fputs("  {\"image\": ", stdout);
            cli_json_string(stdout, images.items[i]);
            fputs(", \"labels\": [", stdout);
        } else {
            fputs(i ? "\n" : "", stdout);
            print_escaped(stdout, images.items[i]);
            putchar('\n');
        }
        for (size_t j = 0; j < top; j++) {
            size_t label = (size_t)idx[i * top + j];
            float prob = p[i * nlabels + label];
            if (json) {
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
        if (json)
            fputs(i + 1 < nimages ? "]},\n" : "]}\n", stdout);
    }
    if (json)
        fputs("]\n", stdout);

    jaclip_tensor_free(order);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(probs);
    jaclip_tensor_free(features);
    jaclip_classifier_free(classifier);
    jaclip_model_free(model);
    free_list(&labels);
    free_list(&templates);
    free_list(&images);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
