#include "cli.h"

/* ---- eval -------------------------------------------------------------------------------------- */

static const char eval_usage[] =
    "usage: jaclip eval --model MODEL [options] DIR\n"
    "\n"
    "Zero-shot accuracy on a labelled folder: DIR holds one sub-folder per class (byte order of name),\n"
    "each with that class's image files (recursively). Every image is ranked against every\n"
    "class by cosine with the class's classifier row (rinna's ImageNet protocol: templates filled with\n"
    "the class name, text embeddings L2-normalised, averaged, re-normalised); top-1 and top-5 accuracy\n"
    "count the images whose class is ranked first / in the first five. Unreadable files are skipped\n"
    "with one warning each and not counted.\n"
    "\n"
    "  -m, --model FILE        model file made by 'jaclip convert' (default: $JACLIP_MODEL)\n"
    "  -t, --template TEXT     template around each class name, {} marks it; repeat to ensemble\n"
    "      --templates NAME    add a named template set: imagenet (rinna's 37 Japanese templates)\n"
    "                          (no template at all: the class name alone)\n"
    "      --classes imagenet  the class names are rinna's 1000 Japanese ImageNet names, the i-th\n"
    "                          sub-folder (of exactly 1000, e.g. synset ids n01440764...) being class i\n"
    "      --mapping FILE      lines 'FOLDER<TAB>CLASS NAME' naming the sub-folders' classes\n"
    "                          (default: each sub-folder's own name)\n"
    "      --classifier FILE   use a saved classifier (one row per sub-folder, same names)\n"
    "      --save-classifier FILE  write the classifier built here\n"
    "      --confusions N      list the N most frequent (class, predicted) mistakes (default 10)\n"
    "      --json              JSON: top1, top5, per-class accuracy, confusions\n"
    "      --exif-transpose    rotate images by their EXIF orientation first\n"
    "      --strict            an unreadable file is an error (exit 1) instead of a warning\n"
    "      --device DEV        cpu (default), cuda or cuda:N\n"
    "      --threads N         libtorch threads (default: all cores)\n"
    "      --precision P       default (as stored), fp32, bf16, int8, int8-weights or auto\n"
    "  -h, --help              this help\n";

typedef struct {
    char *folder;
    const char *label;
    size_t images, top1, top5;
} class_stats;

typedef struct {
    size_t truth, predicted, count;
} confusion;

static int by_count(const void *a, const void *b)
{
    const confusion *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    if (x->truth != y->truth)
        return x->truth < y->truth ? -1 : 1;
    return x->predicted < y->predicted ? -1 : x->predicted > y->predicted;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const class_stats *)a)->folder, ((const class_stats *)b)->folder);
}

static class_stats *list_classes(const char *dir, size_t *count)
{
    DIR *d = opendir(dir);
    if (!d) {
        cli_warn("%s: cannot read directory: %s", dir, strerror(errno));
        exit(EXIT_RUNTIME);
    }
    size_t n = 0, cap = 16;
    class_stats *classes = xcalloc(cap, sizeof *classes);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *path = xcalloc(len, 1);
        snprintf(path, len, "%s/%s", dir, e->d_name);
        struct stat sb;
        bool is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
        free(path);
        if (!is_dir)
            continue;
        if (n == cap) {
            class_stats *more = realloc(classes, 2 * cap * sizeof *classes);
            if (!more) {
                cli_warn("out of memory");
                exit(EXIT_RUNTIME);
            }
            classes = more;
            cap *= 2;
        }
        classes[n++] = (class_stats){.folder = xstrdup(e->d_name)};
    }
    closedir(d);
    qsort(classes, n, sizeof *classes, by_name);
    *count = n;
    return classes;
}

static void apply_mapping(const char *path, class_stats *classes, size_t n)
{
    string_list lines = {0};
    read_lines(path, &lines, "the mapping file");
    for (size_t i = 0; i < lines.count; i++) {
        char *tab = strchr(lines.items[i], '\t');
        if (!tab || !tab[1])
            usage_error("%s: line '%s' is not 'FOLDER<TAB>CLASS NAME'", path, lines.items[i]);
        *tab = '\0';
        for (size_t c = 0; c < n; c++)
            if (strcmp(classes[c].folder, lines.items[i]) == 0)
                classes[c].label = tab + 1;
    }
    for (size_t c = 0; c < n; c++)
        if (!classes[c].label)
            usage_error("%s names no class for the folder '%s'", path, classes[c].folder);
    free(lines.items); /* the labels point into the lines, kept to the end */
}

static void print_percent(const char *name, size_t hits, size_t total)
{
    printf("%s %6.2f %%  (%zu/%zu)\n", name, total ? 100.0 * (double)hits / (double)total : 0.0, hits, total);
}

static void json_ratio(size_t hits, size_t total)
{
    json_float(stdout, total ? (float)((double)hits / (double)total) : 0.0f);
}

typedef struct {
    model_args m;
    string_list templates;
    const char *classes_preset, *mapping, *classifier_path, *save_path, *root;
    size_t show_confusions;
    bool json, strict;
} eval_options;

/* One evaluation: the classes (sorted folders), their files, and the tallies. */
typedef struct {
    class_stats *classes;
    size_t nclasses;
    string_list labels, *files;
    size_t total, counted, top1, top5;
    uint32_t *mistakes; /* [truth, predicted] */
    confusion *pairs;
    size_t npairs;
} eval_run;

static void parse_eval_args(eval_options *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},       {"template", required_argument, NULL, 't'},
        {"templates", required_argument, NULL, OPT_TEMPLATES}, {"classes", required_argument, NULL, OPT_CLASSES},
        {"mapping", required_argument, NULL, OPT_MAPPING}, {"classifier", required_argument, NULL, OPT_CLASSIFIER},
        {"save-classifier", required_argument, NULL, OPT_SAVE_CLASSIFIER},
        {"confusions", required_argument, NULL, OPT_TOP}, {"json", no_argument, NULL, OPT_JSON},
        {"exif-transpose", no_argument, NULL, OPT_EXIF}, {"strict", no_argument, NULL, OPT_STRICT},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS}, {"precision", required_argument, NULL, OPT_PRECISION},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    o->show_confusions = 10;
    while ((opt = next_option(argc, argv, ":m:t:h", options, &o->m)) != -1)
        switch (opt) {
        case 't': {
            const char *mark = strstr(optarg, "{}");
            if (!is_utf8(optarg) || !mark || strstr(mark + 2, "{}"))
                usage_error("--template must be UTF-8 with {} (once) where the class name goes, got '%s'", optarg);
            list_push(&o->templates, xstrdup(optarg));
            break;
        }
        case OPT_TEMPLATES: add_template_preset(&o->templates, optarg); break;
        case OPT_CLASSES: o->classes_preset = optarg; break;
        case OPT_MAPPING: o->mapping = optarg; break;
        case OPT_CLASSIFIER: o->classifier_path = optarg; break;
        case OPT_SAVE_CLASSIFIER: o->save_path = optarg; break;
        case OPT_TOP: o->show_confusions = (size_t)parse_long(optarg, "--confusions", 0, LONG_MAX); break;
        case OPT_JSON: o->json = true; break;
        case OPT_STRICT: o->strict = true; break;
        case 'h': exit(help_requested(eval_usage));
        default: bad_option(opt, argv);
        }
    if (optind + 1 != argc)
        usage_error("give exactly one DIR (a folder of class sub-folders)");
    if (o->classes_preset && o->mapping)
        usage_error("give --classes or --mapping, not both");
    if (o->classifier_path && o->templates.count)
        usage_error("--classifier holds its templates: give no --template with it");
    o->root = argv[optind];
}

/* Each class's name: from --classes, --mapping, or its folder's name. */
static void name_classes(const eval_options *o, class_stats *classes, size_t nclasses)
{
    if (o->classes_preset) {
        const char *const *names;
        size_t count;
        if (jaclip_preset_labels(&names, &count, o->classes_preset))
            usage_error("--classes: %s", jaclip_last_error());
        if (count != nclasses)
            usage_error("--classes %s has %zu classes but %s holds %zu sub-folders", o->classes_preset, count, o->root,
                        nclasses);
        for (size_t c = 0; c < nclasses; c++)
            classes[c].label = names[c];
    } else if (o->mapping) {
        apply_mapping(o->mapping, classes, nclasses);
    } else {
        for (size_t c = 0; c < nclasses; c++) {
            if (!is_utf8(classes[c].folder))
                usage_error("folder name '%s' is not UTF-8: name the class with --mapping", classes[c].folder);
            classes[c].label = classes[c].folder;
        }
    }
}

/* Every class's files, sorted, and the labels in class order. */
static void list_class_files(eval_run *e, const char *root)
{
    e->files = xcalloc(e->nclasses, sizeof *e->files);
    for (size_t c = 0; c < e->nclasses; c++) {
        list_push(&e->labels, (char *)e->classes[c].label);
        size_t len = strlen(root) + strlen(e->classes[c].folder) + 2;
        char *dir = xcalloc(len, 1);
        snprintf(dir, len, "%s/%s", root, e->classes[c].folder);
        walk(dir, &e->files[c], NULL);
        qsort(e->files[c].items, e->files[c].count, sizeof *e->files[c].items, by_bytes);
        e->total += e->files[c].count;
        free(dir);
    }
}

/* false (after saying why) unless the classifier's classes are the folders' classes, in order. */
static bool classifier_matches(const eval_run *e, const jaclip_classifier *classifier, const eval_options *o)
{
    if (jaclip_classifier_size(classifier) != e->nclasses) {
        cli_warn("%s: has %zu classes, %s %zu sub-folders", o->classifier_path, jaclip_classifier_size(classifier),
                 o->root, e->nclasses);
        return false;
    }
    for (size_t c = 0; c < e->nclasses; c++)
        if (strcmp(jaclip_classifier_label(classifier, c), e->classes[c].label) != 0) {
            cli_warn("%s: class %zu is '%s', the folder '%s' is '%s'", o->classifier_path, c,
                     jaclip_classifier_label(classifier, c), e->classes[c].folder, e->classes[c].label);
            return false;
        }
    return true;
}

/* Classifies class c's images and tallies its top-1, top-5 and mistakes. */
static void score_class(eval_run *e, size_t c, const jaclip_model *model, const jaclip_classifier *classifier,
                        bool strict, progress *prog)
{
    const size_t k = e->nclasses < 5 ? e->nclasses : 5;
    class_stats *cls = &e->classes[c];
    jaclip_tensor *features = encode_image_batch(model, &e->files[c], strict, prog), *scores = NULL, *order = NULL;
    jaclip_status st;
    if (e->files[c].count &&
        ((st = jaclip_classifier_scores(&scores, classifier, features)) || (st = jaclip_topk(&order, NULL, scores, k))))
        die(NULL, st);
    const int64_t *idx = jaclip_tensor_data(order);
    for (size_t i = 0; i < e->files[c].count; i++) {
        const int64_t *row = idx + i * k;
        bool in5 = false;
        for (size_t j = 0; j < k; j++)
            in5 |= (size_t)row[j] == c;
        cls->top1 += (size_t)row[0] == c;
        cls->top5 += in5;
        if ((size_t)row[0] != c)
            e->mistakes[c * e->nclasses + (size_t)row[0]]++;
    }
    cls->images = e->files[c].count;
    e->counted += cls->images;
    e->top1 += cls->top1;
    e->top5 += cls->top5;
    jaclip_tensor_free(order);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(features);
}

/* The (truth, predicted) pairs mistaken at least once, most frequent first. */
static void collect_confusions(eval_run *e)
{
    size_t n2 = e->nclasses * e->nclasses;
    for (size_t i = 0; i < n2; i++)
        e->npairs += e->mistakes[i] != 0;
    e->pairs = xcalloc(e->npairs, sizeof *e->pairs);
    e->npairs = 0;
    for (size_t i = 0; i < n2; i++)
        if (e->mistakes[i])
            e->pairs[e->npairs++] = (confusion){i / e->nclasses, i % e->nclasses, e->mistakes[i]};
    qsort(e->pairs, e->npairs, sizeof *e->pairs, by_count);
}

static void print_eval_json(const eval_run *e, size_t show)
{
    const class_stats *classes = e->classes;
    printf("{\"images\": %zu, \"skipped\": %zu, \"classes\": %zu, \"top1_correct\": %zu, \"top5_correct\": %zu, "
           "\"top1\": ",
           e->counted, e->total - e->counted, e->nclasses, e->top1, e->top5);
    json_ratio(e->top1, e->counted);
    fputs(", \"top5\": ", stdout);
    json_ratio(e->top5, e->counted);
    fputs(",\n \"per_class\": [", stdout);
    for (size_t c = 0; c < e->nclasses; c++) {
        fputs(c ? ",\n   {\"folder\": " : "\n   {\"folder\": ", stdout);
        cli_json_string(stdout, classes[c].folder);
        fputs(", \"label\": ", stdout);
        cli_json_string(stdout, classes[c].label);
        printf(", \"images\": %zu, \"top1_correct\": %zu, \"top5_correct\": %zu, \"top1\": ", classes[c].images,
               classes[c].top1, classes[c].top5);
        json_ratio(classes[c].top1, classes[c].images);
        fputs(", \"top5\": ", stdout);
        json_ratio(classes[c].top5, classes[c].images);
        fputc('}', stdout);
    }
    fputs("],\n \"confusions\": [", stdout);
    for (size_t i = 0; i < show; i++) {
        const confusion *p = &e->pairs[i];
        fputs(i ? ",\n   {\"folder\": " : "\n   {\"folder\": ", stdout);
        cli_json_string(stdout, classes[p->truth].folder);
        fputs(", \"predicted_folder\": ", stdout);
        cli_json_string(stdout, classes[p->predicted].folder);
        fputs(", \"label\": ", stdout);
        cli_json_string(stdout, classes[p->truth].label);
        fputs(", \"predicted_label\": ", stdout);
        cli_json_string(stdout, classes[p->predicted].label);
        printf(", \"count\": %zu}", p->count);
    }
    fputs("]}\n", stdout);
}

static void print_eval_text(const eval_run *e, size_t show)
{
    print_percent("top-1", e->top1, e->counted);
    print_percent("top-5", e->top5, e->counted);
    printf("%zu images in %zu classes", e->counted, e->nclasses);
    if (e->total > e->counted)
        printf(" (%zu unreadable files skipped)", e->total - e->counted);
    fputc('\n', stdout);
    if (show)
        printf("\nmost frequent mistakes (class -> predicted: images):\n");
    for (size_t i = 0; i < show; i++)
        printf("  %s -> %s: %zu\n", e->classes[e->pairs[i].truth].label, e->classes[e->pairs[i].predicted].label,
               e->pairs[i].count);
}

static void free_eval(eval_run *e, eval_options *o)
{
    free(e->pairs);
    free(e->mistakes);
    for (size_t c = 0; c < e->nclasses; c++) {
        for (size_t i = 0; i < e->files[c].count; i++)
            free(e->files[c].items[i]);
        free(e->files[c].items);
        free(e->classes[c].folder);
    }
    free(e->files);
    free(e->labels.items);
    for (size_t i = 0; i < o->templates.count; i++)
        free(o->templates.items[i]);
    free(o->templates.items);
    free(e->classes);
}

int cmd_eval(int argc, char **argv)
{
    eval_options o;
    eval_run e = {0};
    command_name = "jaclip eval";
    parse_eval_args(&o, argc, argv);
    e.classes = list_classes(o.root, &e.nclasses);
    if (e.nclasses < 2)
        usage_error("%s: holds %zu class sub-folders; zero-shot accuracy needs at least 2", o.root, e.nclasses);
    name_classes(&o, e.classes, e.nclasses);
    list_class_files(&e, o.root);
    if (e.total == 0) {
        cli_warn("%s: no image files in its sub-folders", o.root);
        return EXIT_RUNTIME;
    }
    jaclip_model *model = load_model(&o.m);
    jaclip_classifier *classifier =
        build_or_load_classifier(model, o.classifier_path, &e.labels, &o.templates, o.save_path);
    if (!classifier_matches(&e, classifier, &o))
        return EXIT_RUNTIME;
    e.mistakes = xcalloc(e.nclasses * e.nclasses, sizeof *e.mistakes);
    progress prog = {isatty(STDERR_FILENO) != 0, e.total, 0, now_seconds(), 0};
    for (size_t c = 0; c < e.nclasses; c++)
        score_class(&e, c, model, classifier, o.strict, &prog);
    if (prog.done < prog.total) { /* the last files were skipped: finish the bar */
        prog.done = prog.total;
        progress_show(&prog, true);
    }
    if (e.counted == 0) {
        cli_warn("no image could be read");
        return EXIT_RUNTIME;
    }
    collect_confusions(&e);
    size_t show = o.show_confusions < e.npairs ? o.show_confusions : e.npairs;
    if (o.json)
        print_eval_json(&e, show);
    else
        print_eval_text(&e, show);
    jaclip_classifier_free(classifier);
    jaclip_model_free(model);
    free_eval(&e, &o);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
