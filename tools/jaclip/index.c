#include "cli.h"

/* ---- index: build, sync (sync.c), remove, compact, info, list ------------------------------------ */

static const char index_usage[] =
    "usage: jaclip index build --model MODEL DIR... -o INDEX [--batch N] [--root ROOT] [--exif-transpose] [--wait]\n"
    "                          [--fp16]\n"
    "       jaclip index sync --model MODEL DIR... -o INDEX [same options as build] [--moved] [--force]\n"
    "       jaclip index remove INDEX LABEL... [--wait]\n"
    "       jaclip index compact INDEX [--wait]\n"
    "       jaclip index info INDEX [--json]\n"
    "       jaclip index list INDEX [-0]\n"
    "       jaclip index merge OUTPUT SHARD... [--unique]   (see jaclip index merge --help)\n"
    "       jaclip index ann build|info INDEX   (approximate search; see 'jaclip index ann --help')\n"
    "\n"
    "build    embeds every JPEG and PNG file under each DIR that INDEX lacks (see 'index sync --help').\n"
    "sync     makes INDEX match the DIRs: adds new files, removes rows of gone files, re-embeds changed\n"
    "         ones; resumable and idempotent ('jaclip index sync --help').\n"
    "remove   deletes every row whose label is one of the LABELs (exact bytes), durably.\n"
    "compact  rewrites INDEX without its deleted rows, atomically.\n"
    "info     prints the number of rows, their width and storage, the model fingerprint, and how labels\n"
    "         and orientation were recorded (labels, root, orientation).\n"
    "list     prints the labels in row order, one per line (-0: each ended by a NUL byte).\n"
    "\n"
    "Writers (build, sync, remove, compact) of one INDEX run one at a time: another is refused, or\n"
    "waits with --wait.\n"
    "  -h, --help            this help\n";

enum { OPT_INDEX_WAIT = OPT_COMMAND_BASE + 40 };

static int index_remove_or_compact(int argc, char **argv, bool compact)
{
    /* clang-format off */
    static const struct option options[] = {
        {"wait", no_argument, NULL, OPT_INDEX_WAIT}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    /* clang-format on */
    bool wait = false;
    int opt;
    command_name = compact ? "jaclip index compact" : "jaclip index remove";
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_INDEX_WAIT: wait = true; break;
        case 'h': return help_requested(index_usage);
        default: bad_option(opt, argv);
        }
    }
    if (compact ? argc - optind != 1 : argc - optind < 2)
        usage_error(compact ? "give exactly one INDEX" : "give INDEX and at least one LABEL");
    const char *path = argv[optind];
    index_writer_lock(path, wait);
    jaclip_status st;
    if (compact) {
        if ((st = jaclip_index_compact_file(path, NULL)))
            die(path, st);
        return 0; /* the same live rows: INDEX.ann stays current */
    }
    size_t removed = 0;
    if ((st = jaclip_index_remove_file(path, (const char *const *)argv + optind + 1, (size_t)(argc - optind - 1),
                                       &removed)))
        die(path, st);
    cli_warn("%s: %zu rows removed", path, removed);
    if (removed)
        refresh_ann_of_file(path);
    return 0;
}

/* The metadata that index info shows (docs/index-format.md). */
static const char *const meta_keys[] = {JACLIP_INDEX_META_LABELS, JACLIP_INDEX_META_ROOT,
                                        JACLIP_INDEX_META_ORIENTATION};

static int index_info_or_list(int argc, char **argv, bool list)
{
    /* clang-format off */
    static const struct option options[] = {
        {"json", no_argument, NULL, OPT_JSON}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    /* clang-format on */
    bool json = false, nul = false;
    int opt;
    command_name = list ? "jaclip index list" : "jaclip index info";
    while ((opt = getopt_long(argc, argv, list ? ":h0" : ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: json = true; break;
        case '0': nul = true; break;
        case 'h': return help_requested(index_usage);
        default: bad_option(opt, argv);
        }
    }
    if (argc - optind != 1)
        usage_error("give exactly one INDEX");
    jaclip_index *index = load_index_or_die(argv[optind]);
    size_t n = jaclip_index_size(index);
    const char *rows_as = jaclip_index_row_format(index) == JACLIP_INDEX_ROWS_FLOAT16 ? "float16" : "float32";
    const char *fp = jaclip_index_fingerprint(index);
    if (list) {
        for (size_t i = 0; i < n; i++) {
            /* -0 carries names exactly; lines escape what would break a line or drive a terminal. */
            if (nul)
                fputs(jaclip_index_label(index, i), stdout);
            else
                print_escaped(stdout, jaclip_index_label(index, i));
            putchar(nul ? '\0' : '\n');
        }
    } else if (json) {
        printf("{\"rows\": %zu, \"dim\": %zu, \"storage\": \"%s\", \"fingerprint\": ", n, jaclip_index_dim(index),
               rows_as);
        if (fp[0])
            cli_json_string(stdout, fp);
        else
            fputs("null", stdout);
        for (size_t k = 0; k < sizeof meta_keys / sizeof *meta_keys; k++) {
            const char *v = jaclip_index_metadata(index, meta_keys[k]);
            printf(", \"%s\": ", meta_keys[k]);
            if (v)
                cli_json_string(stdout, v);
            else
                fputs("null", stdout);
        }
        puts("}");
    } else {
        printf("rows: %zu\ndim: %zu\nstorage: %s\nfingerprint: %s\n", n, jaclip_index_dim(index), rows_as,
               fp[0] ? fp : "(none recorded)");
        for (size_t k = 0; k < sizeof meta_keys / sizeof *meta_keys; k++) {
            const char *v = jaclip_index_metadata(index, meta_keys[k]);
            printf("%s: ", meta_keys[k]);
            if (v)
                print_escaped(stdout, v);
            else
                fputs("(not recorded)", stdout);
            putchar('\n');
        }
    }
    jaclip_index_free(index);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

int cmd_index(int argc, char **argv)
{
    command_name = "jaclip index";
    if (argc < 2)
        usage_error("missing subcommand: build, sync, remove, compact, info, list, merge or ann");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return help_requested(index_usage);
    if (!strcmp(argv[1], "build"))
        return index_update(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "sync"))
        return index_update(argc - 1, argv + 1, true);
    if (!strcmp(argv[1], "remove"))
        return index_remove_or_compact(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "compact"))
        return index_remove_or_compact(argc - 1, argv + 1, true);
    if (!strcmp(argv[1], "info"))
        return index_info_or_list(argc - 1, argv + 1, false);
    if (!strcmp(argv[1], "list"))
        return index_info_or_list(argc - 1, argv + 1, true);
    if (!strcmp(argv[1], "merge"))
        return cmd_index_merge(argc - 1, argv + 1);
    if (!strcmp(argv[1], "ann"))
        return cmd_index_ann(argc - 1, argv + 1);
    usage_error("unknown subcommand '%s': build, sync, remove, compact, info, list, merge or ann", argv[1]);
}
