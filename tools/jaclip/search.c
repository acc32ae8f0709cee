#include "cli.h"

/* ---- search ------------------------------------------------------------------------------------ */

static const char search_usage[] =
    "usage: jaclip search --model MODEL --index INDEX [TEXT...] [--image FILE]... [-k N] [--json]\n"
    "                     [--threshold S] [--offset N] [--folder DIR] [--after DATE] [--before DATE]\n"
    "                     [--type EXT]...\n"
    "\n"
    "Finds the k rows of INDEX most similar (cosine) to each query: each TEXT, and each --image.\n"
    "Scores are cosines in [-1, 1]. Filters choose the rows first, then the best k of them are ranked,\n"
    "so k results come back whenever k rows pass (a filter, --offset or --threshold searches exactly).\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "  -i, --index INDEX     an index made by 'jaclip index build'\n"
    "      --image FILE      query by the image in FILE (repeatable)\n"
    "  -k N                  results per query (default: 10)\n"
    "      --exact           exact search even when INDEX.ann ('jaclip index ann build') is present\n"
    "      --nprobe N        approximate search: inverted lists visited (more: slower, better recall)\n"
    "      --threshold S     leave out results scoring below S (a cosine, -1..1)\n"
    "      --offset N        skip the N best results (pages: --offset 20 -k 20 is page 2)\n"
    "      --folder DIR      only rows under DIR (an existing folder, or a label prefix as stored)\n"
    "      --after DATE      only photos taken (EXIF DateTimeOriginal, else file modified) at or\n"
    "                        after DATE (YYYY-MM-DD[THH:MM[:SS]], local time)\n"
    "      --before DATE     only photos taken (or, without EXIF date, modified) before DATE\n"
    "      --type EXT        only files ending in .EXT (letter case ignored; repeatable, or jpg,png)\n"
    "      --json            JSON instead of a table\n"
    "      --force           search even if INDEX records another model's fingerprint\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "      --precision P     default (as stored), fp32, bf16, int8, int8-weights or auto\n"
    "  -h, --help            this help\n";

typedef struct {
    model_args m;
    const char *index_path;
    string_list query_images;
    char **texts;
    size_t ntexts, k, nprobe;
    bool json, force, exact;
    search_filter filter;
} search_options;

static void parse_search_args(search_options *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},    {"index", required_argument, NULL, 'i'},
        {"image", required_argument, NULL, OPT_IMAGE}, {"json", no_argument, NULL, OPT_JSON},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS}, {"precision", required_argument, NULL, OPT_PRECISION},
        {"force", no_argument, NULL, OPT_COMMAND_BASE + 60},
        {"exact", no_argument, NULL, OPT_COMMAND_BASE}, {"nprobe", required_argument, NULL, OPT_COMMAND_BASE + 1},
        {"folder", required_argument, NULL, OPT_SEARCH_FOLDER}, {"after", required_argument, NULL, OPT_SEARCH_AFTER},
        {"before", required_argument, NULL, OPT_SEARCH_BEFORE}, {"type", required_argument, NULL, OPT_SEARCH_TYPE},
        {"offset", required_argument, NULL, OPT_SEARCH_OFFSET},
        {"threshold", required_argument, NULL, OPT_SEARCH_THRESHOLD},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    o->k = 10;
    while ((opt = next_option(argc, argv, ":m:i:k:h", options, &o->m)) != -1)
        switch (opt) {
        case 'i': o->index_path = optarg; break;
        case OPT_IMAGE: list_push(&o->query_images, optarg); break;
        case 'k': o->k = (size_t)parse_long(optarg, "-k", 1, 1000000); break;
        case OPT_JSON: o->json = true; break;
        case OPT_COMMAND_BASE + 60: o->force = true; break;
        case OPT_COMMAND_BASE: o->exact = true; break;
        case OPT_COMMAND_BASE + 1: o->nprobe = (size_t)parse_long(optarg, "--nprobe", 1, 65536); break;
        case 'h': exit(help_requested(search_usage));
        case OPT_SEARCH_FOLDER:
        case OPT_SEARCH_AFTER:
        case OPT_SEARCH_BEFORE:
        case OPT_SEARCH_TYPE:
        case OPT_SEARCH_OFFSET:
        case OPT_SEARCH_THRESHOLD: search_filter_option(&o->filter, opt, optarg); break;
        default: bad_option(opt, argv);
        }
    if (!o->index_path)
        usage_error("--index INDEX is required");
    o->ntexts = (size_t)(argc - optind);
    if (o->ntexts + o->query_images.count == 0)
        usage_error("no query: give a TEXT or --image FILE");
    o->texts = argv + optind;
    for (size_t i = 0; i < o->ntexts; i++)
        if (!is_utf8(o->texts[i]))
            usage_error("query text %zu is not valid UTF-8", i + 1);
}

/* false (after saying why) unless the index holds this model's embeddings (or --force says so). */
static bool index_fits_model(const search_options *o, const jaclip_index *index, const jaclip_model *model)
{
    size_t dim = (size_t)jaclip_model_embedding_dim(model);
    if (jaclip_index_dim(index) != dim) {
        cli_warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", o->index_path, jaclip_index_dim(index),
                 dim);
        return false;
    }
    /* Another model's embeddings would give meaningless scores. Indexes from before fingerprints pass. */
    jaclip_status fst =
        jaclip_index_check_fingerprint(index, jaclip_model_fingerprint(model), JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN);
    if (fst) {
        report(o->index_path, fst);
        if (!o->force) {
            cli_warn("%s: pass --force to search it with this model anyway", o->index_path);
            return false;
        }
    }
    return true;
}

/* Query images embedded as the index's rows were: rotated by EXIF when it records exif-transpose. */
static jaclip_status encode_query_images(jaclip_tensor **out, const jaclip_model *model, const string_list *paths,
                                         const jaclip_index *index)
{
    const char *orientation = jaclip_index_metadata(index, JACLIP_INDEX_META_ORIENTATION);
    uint32_t flags = orientation && !strcmp(orientation, "exif-transpose") ? JACLIP_IMAGE_EXIF_TRANSPOSE : 0;
    jaclip_image **images = xcalloc(paths->count, sizeof *images);
    jaclip_status st = JACLIP_OK;
    for (size_t i = 0; i < paths->count && !st; i++)
        if ((st = jaclip_image_load(&images[i], paths->items[i], 0, flags)))
            report(paths->items[i], st);
    if (!st && (st = jaclip_model_encode_images(out, model, (const jaclip_image *const *)images, paths->count)))
        report(NULL, st);
    for (size_t i = 0; i < paths->count; i++)
        jaclip_image_free(images[i]);
    free(images);
    return st;
}

/* The queries in one tensor: texts first, then images. */
static jaclip_tensor *encode_queries(const search_options *o, const jaclip_model *model, const jaclip_index *index)
{
    size_t ntexts = o->ntexts, nimages = o->query_images.count, dim = (size_t)jaclip_model_embedding_dim(model);
    int64_t shape[2] = {(int64_t)(ntexts + nimages), (int64_t)dim};
    jaclip_tensor *queries = NULL, *part = NULL;
    jaclip_status st = jaclip_tensor_create(&queries, JACLIP_DTYPE_FLOAT32, 2, shape, NULL);
    if (st)
        die(NULL, st);
    float *q = jaclip_tensor_data_mut(queries);
    if (ntexts) {
        if ((st = jaclip_model_encode_texts(&part, model, (const char *const *)o->texts, NULL, ntexts)))
            die(NULL, st);
        memcpy(q, jaclip_tensor_data(part), jaclip_tensor_nbytes(part));
        jaclip_tensor_free(part);
    }
    if (nimages) {
        if ((st = encode_query_images(&part, model, &o->query_images, index)))
            exit(EXIT_RUNTIME);
        memcpy(q + ntexts * dim, jaclip_tensor_data(part), jaclip_tensor_nbytes(part));
        jaclip_tensor_free(part);
    }
    return queries;
}

/* Each query's hits (rows idx, scores s, [nq, kk]; a negative row ends a short list). */
static void print_hits(const search_options *o, const jaclip_index *index, const int64_t *rows, const float *s,
                       size_t kk)
{
    size_t ntexts = o->ntexts, nq = ntexts + o->query_images.count;
    if (o->json)
        fputs("[\n", stdout);
    for (size_t i = 0; i < nq; i++) {
        const char *query = i < ntexts ? o->texts[i] : o->query_images.items[i - ntexts];
        if (o->json) {
            fputs("  {\"query\": ", stdout);
            cli_json_string(stdout, query);
            printf(", \"kind\": \"%s\", \"results\": [", i < ntexts ? "text" : "image");
            for (size_t j = 0; j < kk && rows[i * kk + j] >= 0; j++) {
                printf("%s{\"rank\": %zu, \"row\": %lld, \"score\": ", j ? ", " : "", o->filter.offset + j + 1,
                       (long long)rows[i * kk + j]);
                json_float(stdout, s[i * kk + j]);
                fputs(", \"label\": ", stdout);
                cli_json_string(stdout, jaclip_index_label(index, (size_t)rows[i * kk + j]));
                fputc('}', stdout);
            }
            fputs(i + 1 < nq ? "]},\n" : "]}\n", stdout);
        } else {
            if (nq > 1) {
                printf("%s%s: ", i ? "\n" : "", i < ntexts ? "text" : "image");
                print_escaped(stdout, query);
                putchar('\n');
            }
            for (size_t j = 0; j < kk && rows[i * kk + j] >= 0; j++) {
                printf("%3zu  %.4f  ", o->filter.offset + j + 1, (double)s[i * kk + j]);
                print_escaped(stdout, jaclip_index_label(index, (size_t)rows[i * kk + j]));
                putchar('\n');
            }
        }
    }
    if (o->json)
        fputs("]\n", stdout);
}

int cmd_search(int argc, char **argv)
{
    search_options o;
    command_name = "jaclip search";
    parse_search_args(&o, argc, argv);
    jaclip_index *index = load_index_or_die(o.index_path);
    jaclip_model *model = load_model(&o.m);
    if (!index_fits_model(&o, index, model))
        return EXIT_RUNTIME;
    jaclip_tensor *queries = encode_queries(&o, model, index), *idx = NULL, *scores = NULL;
    jaclip_status st;
    /* Filters, pages and cutoffs are the library's exact filter-then-rank. */
    jaclip_search_options *filter = search_filter_used(&o.filter) ? search_filter_options(&o.filter, index) : NULL;
    jaclip_ann *ann = o.exact || filter ? NULL : load_ann_beside(o.index_path, index);
    if (ann && o.nprobe && (st = jaclip_ann_set_params(ann, o.nprobe, 0, 0)))
        die(NULL, st);
    if ((st = ann ? jaclip_ann_search(&idx, &scores, ann, queries, o.k)
                  : jaclip_index_search_with(&idx, &scores, index, queries, o.k, filter)))
        die(o.index_path, st);
    jaclip_search_options_free(filter);
    free(o.filter.types.items);
    print_hits(&o, index, jaclip_tensor_data(idx), jaclip_tensor_data(scores), (size_t)jaclip_tensor_dim(idx, 1));
    jaclip_tensor_free(idx);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(queries);
    jaclip_model_free(model);
    jaclip_ann_free(ann);
    jaclip_index_free(index);
    free(o.query_images.items);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
