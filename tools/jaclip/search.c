#include "cli.h"

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
    "      --exact           exact search even when INDEX.ann ('jaclip index ann build') is present\n"
    "      --nprobe N        approximate search: inverted lists visited (more: slower, better recall)\n"
    "      --json            JSON instead of a table\n"
    "      --force           search even if INDEX records another model's fingerprint\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "  -h, --help            this help\n";

int cmd_search(int argc, char **argv)
{
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},    {"index", required_argument, NULL, 'i'},
        {"image", required_argument, NULL, OPT_IMAGE}, {"json", no_argument, NULL, OPT_JSON},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS},
        {"force", no_argument, NULL, OPT_COMMAND_BASE + 60},
        {"exact", no_argument, NULL, OPT_COMMAND_BASE}, {"nprobe", required_argument, NULL, OPT_COMMAND_BASE + 1},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};
    model_args m = {0};
    const char *index_path = NULL;
    string_list query_images = {0};
    size_t k = 10;
    bool json = false, force = false, exact = false;
    size_t nprobe = 0;
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
        case OPT_COMMAND_BASE + 60: force = true; break;
        case OPT_COMMAND_BASE: exact = true; break;
        case OPT_COMMAND_BASE + 1: nprobe = (size_t)parse_long(optarg, "--nprobe", 1, 65536); break;
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
        cli_warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", index_path, jaclip_index_dim(index), dim);
        return EXIT_RUNTIME;
    }
    /* Another model's embeddings would give meaningless scores. Indexes from before fingerprints pass. */
    jaclip_status fst = jaclip_index_check_fingerprint(index, jaclip_model_fingerprint(model),
                                                       JACLIP_INDEX_FINGERPRINT_ALLOW_UNKNOWN);
    if (fst) {
        report(index_path, fst);
        if (!force) {
            cli_warn("%s: pass --force to search it with this model anyway", index_path);
            return EXIT_RUNTIME;
        }
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
    jaclip_ann *ann = exact ? NULL : load_ann_beside(index_path, index);
    if (ann && nprobe && (st = jaclip_ann_set_params(ann, nprobe, 0, 0)))
        die(NULL, st);
    if ((st = ann ? jaclip_ann_search(&idx, &scores, ann, queries, k) : jaclip_index_search(&idx, &scores, index, queries, k)))
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
            cli_json_string(stdout, query);
            printf(", \"kind\": \"%s\", \"results\": [", i < ntexts ? "text" : "image");
            for (size_t j = 0; j < kk && rows[i * kk + j] >= 0; j++) {
                printf("%s{\"rank\": %zu, \"row\": %lld, \"score\": ", j ? ", " : "", j + 1,
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
                printf("%3zu  %.4f  ", j + 1, (double)s[i * kk + j]);
                print_escaped(stdout, jaclip_index_label(index, (size_t)rows[i * kk + j]));
                putchar('\n');
            }
        }
    }
    if (json)
        fputs("]\n", stdout);
    jaclip_tensor_free(idx);
    jaclip_tensor_free(scores);
    jaclip_tensor_free(queries);
    jaclip_model_free(model);
    jaclip_ann_free(ann);
    jaclip_index_free(index);
    free(query_images.items);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
