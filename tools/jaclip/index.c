#include "cli.h"

#include <fcntl.h>
#include <sys/file.h>

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
    "       jaclip index dupes INDEX [--threshold T] [--exact-only] [--offset N --limit N] [--json]\n"
    "\n"
    "build    embeds every image file under each DIR that INDEX lacks (see 'index sync --help').\n"
    "sync     makes INDEX match the DIRs: adds new files, removes rows of gone files, re-embeds changed\n"
    "         ones; resumable and idempotent ('jaclip index sync --help').\n"
    "remove   deletes every row whose label is one of the LABELs (exact bytes), durably. A LABEL that\n"
    "         no row has is named, with the form labels take, and the exit status is then 1.\n"
    "compact  rewrites INDEX without its deleted rows, atomically.\n"
    "info     prints the number of rows, their width and storage, the model fingerprint, how labels\n"
    "         and orientation were recorded (labels, root, orientation), and the deleted rows still\n"
    "         stored (advising compact from 10%).\n"
    "list     prints the labels in row order, one per line (-0: each ended by a NUL byte).\n"
    "dupes    groups exact and near duplicates ('jaclip index dupes --help').\n"
    "\n"
    "Writers (build, sync, remove, compact) of one INDEX run one at a time: another is refused, or\n"
    "waits with --wait.\n"
    "  -h, --help            this help\n";

enum { OPT_INDEX_WAIT = OPT_COMMAND_BASE + 40 };

/* index info advises compaction from this share of deleted rows: below it the file is at most a
 * tenth larger and its loading a tenth slower than compacted. */
#define COMPACT_ADVICE_SHARE 0.1

/* Says which of labels[0..n) no row of the index at path has, with the form its labels take (a path
 * as typed rarely matches byte for byte); returns how many. */
static size_t unknown_labels(const char *path, char **labels, size_t n)
{
    jaclip_index *index = NULL;
    jaclip_status st = jaclip_index_load(&index, path, JACLIP_INDEX_MMAP | JACLIP_INDEX_NO_CHECKSUM);
    if (st)
        die(path, st);
    const char *root = jaclip_index_root(index), *style = jaclip_index_metadata(index, JACLIP_INDEX_META_LABELS);
    size_t missing = 0, row;
    for (size_t i = 0; i < n; i++) {
        if (jaclip_index_find_label(&row, index, labels[i]) == JACLIP_OK)
            continue;
        missing++;
        cli_warn("%s: no row is labelled '%s'", path, labels[i]);
        char *full = realpath(labels[i], NULL); /* the file, if it still exists */
        size_t rl = root ? strlen(root) : 0;
        const char *rel = full && root && !strncmp(full, root, rl) && full[rl] == '/' ? full + rl + 1 : NULL;
        if (rel && jaclip_index_find_label(&row, index, rel) == JACLIP_OK)
            cli_warn("  labels are relative to the recorded root %s: did you mean '%s'?", root, rel);
        else if (full && !root && jaclip_index_find_label(&row, index, full) == JACLIP_OK)
            cli_warn("  labels are absolute paths: did you mean '%s'?", full);
        else if (root)
            cli_warn("  labels are paths relative to %s, byte for byte ('jaclip index list' shows them)", root);
        else
            cli_warn("  labels are %s, byte for byte ('jaclip index list' shows them)",
                     style && !strcmp(style, "relative") ? "relative paths" : "absolute paths");
        free(full);
    }
    jaclip_index_free(index);
    return missing;
}

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
    size_t removed = 0, missing = unknown_labels(path, argv + optind + 1, (size_t)(argc - optind - 1));
    if ((st = jaclip_index_remove_file(path, (const char *const *)argv + optind + 1, (size_t)(argc - optind - 1),
                                       &removed)))
        die(path, st);
    cli_warn("%s: %zu rows removed", path, removed);
    if (removed)
        refresh_ann_of_file(path);
    return missing ? EXIT_RUNTIME : 0; /* like rm: the others are removed, the status says some were not */
}

/* Deleted rows stay in the file (hidden) until compaction; say how many and when compacting pays. */
static void print_deleted(const char *path, size_t live, size_t deleted)
{
    double share = live + deleted ? (double)deleted / (double)(live + deleted) : 0;
    printf("deleted: %zu rows still stored (%.0f%% of the file's rows)", deleted, 100 * share);
    if (share >= COMPACT_ADVICE_SHARE) {
        fputs("; run 'jaclip index compact ", stdout);
        print_escaped(stdout, path);
        fputs("' to drop them", stdout);
    }
    putchar('\n');
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
    size_t deleted = jaclip_index_deleted_rows(index);
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
        printf("{\"rows\": %zu, \"deleted\": %zu, \"dim\": %zu, \"storage\": \"%s\", \"fingerprint\": ", n, deleted,
               jaclip_index_dim(index), rows_as);
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
        print_deleted(argv[optind], n, deleted);
    }
    jaclip_index_free(index);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

int cmd_index(int argc, char **argv)
{
    command_name = "jaclip index";
    if (argc < 2)
        usage_error("missing subcommand: build, sync, remove, compact, info, list, merge, ann or dupes");
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
    if (!strcmp(argv[1], "dupes"))
        return cmd_index_dupes(argc - 1, argv + 1);
    usage_error("unknown subcommand '%s': build, sync, remove, compact, info, list, merge, ann or dupes", argv[1]);
}
