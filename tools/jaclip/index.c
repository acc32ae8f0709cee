#include "cli.h"

/* ---- index build ------------------------------------------------------------------------------- */

static const char index_usage[] =
    "usage: jaclip index build --model MODEL DIR... -o INDEX [--batch N]\n"
    "       jaclip index info INDEX [--json]\n"
    "       jaclip index list INDEX [-0]\n"
    "\n"
    "build  embeds every JPEG and PNG file under each DIR (recursively, in byte order of path, skipping\n"
    "       names that start with '.') into INDEX, labelled with its absolute path. Each batch is\n"
    "       appended to INDEX and synced, so an interruption (Ctrl-C, SIGTERM, a crash) keeps what was\n"
    "       done; running the same command again adds only the files INDEX lacks. Unreadable files are\n"
    "       skipped with a warning.\n"
    "info   prints the number of rows and their width.\n"
    "list   prints the labels, one per line, in row order; control bytes, backslashes and bytes that\n"
    "       are not UTF-8 are written \\xNN and \\\\. With -0 (--null), the labels as stored, each\n"
    "       followed by a NUL byte instead.\n"
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

typedef struct {
    char *path;
    size_t order;
} ordered_path;

static int by_path_then_order(const void *a, const void *b)
{
    const ordered_path *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* Removes repeated paths, keeping each one's first place; returns how many were removed. */
static size_t drop_duplicates(string_list *files)
{
    ordered_path *sorted = xcalloc(files->count, sizeof *sorted);
    for (size_t i = 0; i < files->count; i++)
        sorted[i] = (ordered_path){files->items[i], i};
    qsort(sorted, files->count, sizeof *sorted, by_path_then_order);
    size_t dropped = 0;
    for (size_t i = 1; i < files->count; i++) {
        if (strcmp(sorted[i].path, sorted[i - 1].path) == 0) {
            free(files->items[sorted[i].order]);
            files->items[sorted[i].order] = NULL;
            dropped++;
        }
    }
    free(sorted);
    size_t kept = 0;
    for (size_t i = 0; i < files->count; i++)
        if (files->items[i])
            files->items[kept++] = files->items[i];
    files->count = kept;
    return dropped;
}

/* Whether roots[i] is the same as an earlier root or lies under any other one. */
static bool root_covered(const string_list *roots, size_t i)
{
    const char *me = roots->items[i];
    for (size_t j = 0; j < roots->count; j++) {
        const char *other = roots->items[j];
        size_t n = strlen(other);
        if (j == i || strncmp(me, other, n) != 0)
            continue;
        if (me[n] == '\0' ? j < i : me[n] == '/' || (n > 0 && other[n - 1] == '/'))
            return true;
    }
    return false;
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
    string_list files = {0}, roots = {0};
    for (int i = optind; i < argc; i++) {
        struct stat sb;
        char *root = realpath(argv[i], NULL);
        if (!root || stat(root, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            cli_warn("%s: %s", argv[i], root ? "not a directory" : strerror(errno));
            return EXIT_RUNTIME;
        }
        list_push(&roots, root);
    }
    /* The same DIR twice, or a DIR and one below it, is walked once: each file is indexed (and each
     * skip reported) once. */
    for (size_t i = 0; i < roots.count; i++) {
        if (root_covered(&roots, i))
            continue;
        size_t before = files.count;
        walk(roots.items[i], &files);
        qsort(files.items + before, files.count - before, sizeof *files.items, by_bytes);
    }
    for (size_t i = 0; i < roots.count; i++)
        free(roots.items[i]);
    free(roots.items);
    /* Files reached twice all the same (a symbolic link to a directory given as DIR, say). */
    size_t duplicates = drop_duplicates(&files);

    jaclip_model *model = load_model(&m);
    size_t dim = (size_t)jaclip_model_embedding_dim(model);
    jaclip_index *existing = open_or_create_index(output, dim);
    string_list todo = {0};
    size_t already = 0, found, skipped = walk_skipped;
    for (size_t i = 0; i < files.count; i++) {
        if (jaclip_index_find_label(&found, existing, files.items[i]) == JACLIP_OK)
            already++;
        else if (!is_utf8(files.items[i]) && ++skipped)
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
    size_t added = 0;
    if (todo.count > 0)
        progress_show(&prog, false);
    for (size_t first = 0; first < todo.count && !stop_signal; first += batch) {
        size_t end = first + batch < todo.count ? first + batch : todo.count;
        jaclip_tensor *emb = NULL;
        const char **labels = (const char **)todo.items + first;
        size_t n = end - first;
        /* The library decodes the batch within its memory budget, each image reduced to model size at
         * once; only a batch holding a bad file is redone file by file, to skip just that file. */
        jaclip_status st = jaclip_model_encode_image_files(&emb, model, labels, n);
        if (st == JACLIP_OK) {
            st = jaclip_index_append_file(output, emb, labels);
        } else {
            st = JACLIP_OK;
            size_t encoded = 0;
            for (size_t i = 0; i < n && st == JACLIP_OK; i++) {
                jaclip_tensor_free(emb);
                emb = NULL;
                if ((st = jaclip_model_encode_image_files(&emb, model, labels + i, 1)) != JACLIP_OK) {
                    progress_clear(&prog);
                    const char *why = jaclip_last_error();
                    cli_warn("%s: skipped: %s", labels[i], why[0] ? why : jaclip_status_string(st));
                    skipped++;
                    st = JACLIP_OK;
                    continue;
                }
                if ((st = jaclip_index_append_file(output, emb, labels + i)) == JACLIP_OK)
                    encoded++;
            }
            n = encoded;
        }
        jaclip_tensor_free(emb);
        if (st) {
            progress_clear(&prog);
            die(output, st);
        }
        added += n;
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
        char dup[64] = "";
        if (duplicates)
            snprintf(dup, sizeof dup, ", %zu found twice", duplicates);
        cli_warn("%s: %zu images added, %zu already indexed, %zu skipped%s, in %.1f s", output, added, already,
                 skipped, dup, now_seconds() - prog.start);
    }
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
        {"json", no_argument, NULL, OPT_JSON}, {"null", no_argument, NULL, '0'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bool json = false, nul = false;
    int opt;
    command_name = list ? "jaclip index list" : "jaclip index info";
    while ((opt = getopt_long(argc, argv, list ? ":0h" : ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = true; break;
        case '0':
            if (!list)
                bad_option('?', argv);
            nul = true;
            break;
        case 'h': return help_requested(index_usage);
        default: bad_option(opt, argv);
        }
    }
    if (argc - optind != 1)
        usage_error("give exactly one INDEX");
    jaclip_index *index = load_index_or_die(argv[optind]);
    size_t n = jaclip_index_size(index);
    if (list && nul) {
        for (size_t i = 0; i < n; i++)
            fwrite(jaclip_index_label(index, i), 1, strlen(jaclip_index_label(index, i)) + 1, stdout);
    } else if (list) {
        /* One label a line: a newline or ESC inside a label (a file name) is escaped. */
        for (size_t i = 0; i < n; i++) {
            print_escaped(stdout, jaclip_index_label(index, i));
            putchar('\n');
        }
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
    usage_error("unknown subcommand '%s': build, info or list", argv[1]);
}
