#include "cli.h"

/* ---- index build ------------------------------------------------------------------------------- */

static const char index_usage[] =
    "usage: jaclip index build --model MODEL DIR... -o INDEX [--batch N]\n"
    "       jaclip index info INDEX [--json]\n"
    "       jaclip index list INDEX\n"
    "       jaclip index ann build|info INDEX   (approximate search; see 'jaclip index ann --help')\n"
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
        cli_warn("%s: holds %zu-wide embeddings, the model makes %zu-wide ones", path, jaclip_index_dim(index), dim);
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
            cli_warn("%s: %s", argv[i], root ? "not a directory" : strerror(errno));
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
            cli_warn("%s: skipped: the file name is not valid UTF-8", files.items[i]);
        else
            list_push(&todo, files.items[i]);
    }
    jaclip_index_free(existing);
    if (files.count == 0)
        cli_warn("no JPEG or PNG files found");

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
                cli_warn("%s: skipped: %s", todo.items[i], why[0] ? why : jaclip_status_string(st));
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
        cli_warn("%s: interrupted: %zu of %zu new images indexed; run the same command again to add the rest", output,
             added, todo.count);
        rc = 128 + stop_signal;
    } else {
        cli_warn("%s: %zu images added, %zu already indexed, %zu skipped, in %.1f s", output, added, already, skipped,
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

int cmd_index(int argc, char **argv)
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
    if (!strcmp(argv[1], "ann"))
        return cmd_index_ann(argc - 1, argv + 1);
    usage_error("unknown subcommand '%s': build, info or list", argv[1]);
}
