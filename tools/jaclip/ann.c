#include "cli.h"

/* ---- index ann: the approximate-search structure beside an index (INDEX.ann) -------------------- */

static const char ann_usage[] =
    "usage: jaclip index ann build INDEX [--kind KIND]\n"
    "       jaclip index ann info INDEX\n"
    "\n"
    "build  builds the approximate-search structure of INDEX (faiss) and saves it as INDEX.ann, which\n"
    "       'jaclip search' then uses (unless --exact). Rebuild it after the index changes: a stale\n"
    "       INDEX.ann is refused and search falls back to exact.\n"
    "info   says whether INDEX.ann is present, current, and of which kind.\n"
    "\n"
    "      --kind KIND       auto (default: exact below 20000 rows, ivf-flat below 200000, ivf-pq\n"
    "                        from there), exact, ivf-flat, ivf-pq or hnsw\n"
    "  -h, --help            this help\n";

/* INDEX.ann, malloc'd. */
char *ann_path_for(const char *index_path)
{
    size_t n = strlen(index_path) + 5;
    char *p = xcalloc(n, 1);
    snprintf(p, n, "%s.ann", index_path);
    return p;
}

jaclip_ann *load_ann_beside(const char *index_path, const jaclip_index *index)
{
    char *path = ann_path_for(index_path);
    jaclip_ann *ann = NULL;
    if (access(path, F_OK) == 0) {
        jaclip_status st = jaclip_ann_load(&ann, path, index, 0);
        if (st)
            cli_warn("%s: %s; searching exactly (rebuild it: jaclip index ann build %s)", path, jaclip_last_error(),
                     index_path);
    }
    free(path);
    return ann;
}

/* The hook for whatever changes an index file (build, sync, remove): when INDEX.ann exists, rebuild it
 * over the index as it now is, keeping its kind; nothing otherwise. false (with a warning; search then
 * falls back to exact) when the rebuild fails. */
void refresh_ann_of_file(const char *index_path)
{
    char *path = ann_path_for(index_path);
    bool present = access(path, F_OK) == 0;
    free(path);
    jaclip_index *index = NULL;
    if (present && jaclip_index_load(&index, index_path, JACLIP_INDEX_MMAP) == JACLIP_OK)
        refresh_ann_beside(index_path, index);
    jaclip_index_free(index);
}

bool refresh_ann_beside(const char *index_path, const jaclip_index *index)
{
    char *path = ann_path_for(index_path);
    bool ok = true;
    if (access(path, F_OK) == 0) {
        jaclip_ann *ann = NULL;
        size_t header_kind_offset = 16; /* docs/ann.md: the kind is read even from a stale file */
        unsigned char h[20] = {0};
        FILE *f = fopen(path, "rb");
        jaclip_ann_kind kind = JACLIP_ANN_AUTO;
        if (f && fread(h, 1, sizeof h, f) == sizeof h && !memcmp(h, "JCLIPANN", 8)) {
            unsigned k = h[header_kind_offset] | h[header_kind_offset + 1] << 8;
            if (k >= JACLIP_ANN_EXACT && k <= JACLIP_ANN_HNSW)
                kind = (jaclip_ann_kind)k;
        }
        if (f)
            fclose(f);
        jaclip_status st = jaclip_ann_build(&ann, index, kind, 0);
        if (st == JACLIP_ERROR_INVALID_ARGUMENT) /* too few rows left for that kind */
            st = jaclip_ann_build(&ann, index, JACLIP_ANN_AUTO, 0);
        if (!st)
            st = jaclip_ann_save(ann, path);
        if (st) {
            cli_warn("%s: cannot rebuild: %s (search falls back to exact)", path, jaclip_last_error());
            ok = false;
        }
        jaclip_ann_free(ann);
    }
    free(path);
    return ok;
}

static int ann_build_or_info(int argc, char **argv, bool build)
{
    /* clang-format off */
    static const struct option options[] = {
        {"kind", required_argument, NULL, OPT_COMMAND_BASE}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    /* clang-format on */
    jaclip_ann_kind kind = JACLIP_ANN_AUTO;
    int opt;
    command_name = build ? "jaclip index ann build" : "jaclip index ann info";
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_COMMAND_BASE:
            if (!build)
                bad_option(opt, argv);
            for (kind = JACLIP_ANN_AUTO; kind <= JACLIP_ANN_HNSW; kind++)
                if (!strcmp(optarg, jaclip_ann_kind_name(kind)))
                    break;
            if (kind > JACLIP_ANN_HNSW)
                usage_error("--kind: '%s' is not auto, exact, ivf-flat, ivf-pq or hnsw", optarg);
            break;
        case 'h': return help_requested(ann_usage);
        default: bad_option(opt, argv);
        }
    }
    if (argc - optind != 1)
        usage_error("give one INDEX");
    const char *index_path = argv[optind];
    jaclip_index *index = load_index_or_die(index_path);
    char *path = ann_path_for(index_path);
    jaclip_ann *ann = NULL;
    jaclip_status st;
    int rc = 0;
    if (build) {
        double t0 = now_seconds();
        if ((st = jaclip_ann_build(&ann, index, kind, 0)) || (st = jaclip_ann_save(ann, path)))
            die(path, st);
        printf("%s: %s over %zu rows in %.1f s\n", path, jaclip_ann_kind_name(jaclip_ann_kind_of(ann)),
               jaclip_index_size(index), now_seconds() - t0);
    } else if (access(path, F_OK) != 0) {
        printf("%s: absent (search is exact)\n", path);
    } else if ((st = jaclip_ann_load(&ann, path, index, 0))) {
        printf("%s: unusable, %s\n", path, jaclip_last_error());
        rc = EXIT_RUNTIME;
    } else {
        printf("%s: %s over %zu rows, current\n", path, jaclip_ann_kind_name(jaclip_ann_kind_of(ann)),
               jaclip_index_size(index));
    }
    jaclip_ann_free(ann);
    jaclip_index_free(index);
    free(path);
    return fflush(stdout) == 0 ? rc : EXIT_RUNTIME;
}

int cmd_index_ann(int argc, char **argv)
{
    command_name = "jaclip index ann";
    if (argc < 2)
        usage_error("missing subcommand: build or info");
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
        return help_requested(ann_usage);
    if (!strcmp(argv[1], "build"))
        return ann_build_or_info(argc - 1, argv + 1, true);
    if (!strcmp(argv[1], "info"))
        return ann_build_or_info(argc - 1, argv + 1, false);
    usage_error("unknown subcommand '%s': build or info", argv[1]);
}
