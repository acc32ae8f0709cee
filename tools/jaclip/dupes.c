/* jaclip index dupes: the duplicate groups of an index (jaclip_index_duplicates), a page at a time. */
#include "cli.h"

static const char dupes_usage[] =
    "usage: jaclip index dupes INDEX [--threshold T] [--exact-only] [--offset N] [--limit N] [--json]\n"
    "\n"
    "Prints groups of duplicate photos: exact duplicates (files with the same content hash, as index\n"
    "build/sync record it) and near duplicates (cosine at or above T, default 0.95: re-encoded,\n"
    "resized or lightly edited copies; docs/duplicates.md). Groups are ordered by their first row;\n"
    "each lists its rows, the first row first, with the cosine of each to the first.\n"
    "  --threshold T   near-duplicate cosine, 0.5 to 1 (default 0.95)\n"
    "  --exact-only    only files with equal content\n"
    "  --offset N      skip the first N groups (default 0)\n"
    "  --limit N       print at most N groups (default 0: all)\n"
    "  --json          one JSON object: {\"total\", \"offset\", \"groups\": [{\"exact\", \"rows\": [{\"row\",\n"
    "                  \"label\", \"score\"}]}]}\n"
    "  -h, --help      this help\n";

enum { OPT_THRESHOLD = OPT_COMMAND_BASE + 60, OPT_EXACT_ONLY, OPT_OFFSET, OPT_LIMIT };

int cmd_index_dupes(int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"threshold", required_argument, NULL, OPT_THRESHOLD}, {"exact-only", no_argument, NULL, OPT_EXACT_ONLY},
        {"offset", required_argument, NULL, OPT_OFFSET}, {"limit", required_argument, NULL, OPT_LIMIT},
        {"json", no_argument, NULL, OPT_JSON}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    /* clang-format on */
    command_name = "jaclip index dupes";
    double threshold = 0.95;
    bool exact_only = false, json = false;
    long offset = 0, limit = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_THRESHOLD: threshold = parse_double(optarg, "--threshold"); break;
        case OPT_EXACT_ONLY: exact_only = true; break;
        case OPT_OFFSET: offset = parse_long(optarg, "--offset", 0, LONG_MAX); break;
        case OPT_LIMIT: limit = parse_long(optarg, "--limit", 0, LONG_MAX); break;
        case OPT_JSON: json = true; break;
        case 'h': return help_requested(dupes_usage);
        default: bad_option(opt, argv);
        }
    }
    if (argc - optind != 1)
        usage_error("give exactly one INDEX");
    if (!(threshold >= 0.5 && threshold <= 1))
        usage_error("--threshold is a cosine from 0.5 to 1, not %g", threshold);
    jaclip_index *index = load_index_or_die(argv[optind]);
    jaclip_dupes_options *o = NULL;
    jaclip_dupes *d = NULL;
    jaclip_status st = jaclip_dupes_options_create(&o);
    if (!st)
        st = jaclip_dupes_options_set_threshold(o, (float)threshold);
    if (!st)
        st = jaclip_dupes_options_set_exact_only(o, exact_only);
    if (!st)
        st = jaclip_dupes_options_set_page(o, (size_t)offset, (size_t)limit);
    if (!st)
        st = jaclip_index_duplicates(&d, index, o);
    jaclip_dupes_options_free(o);
    if (st)
        die(argv[optind], st);
    size_t count = jaclip_dupes_count(d);
    if (json)
        printf("{\"total\": %zu, \"offset\": %ld, \"threshold\": %g, \"exact_only\": %s, \"groups\": [",
               jaclip_dupes_total(d), offset, threshold, exact_only ? "true" : "false");
    else
        printf("%zu duplicate groups%s; groups %ld..%ld:\n", jaclip_dupes_total(d),
               exact_only ? " (exact only)" : "", count ? offset + 1 : 0, offset + (long)count);
    for (size_t g = 0; g < count; g++) {
        int exact = jaclip_dupes_group_exact(d, g);
        if (json)
            printf("%s{\"exact\": %s, \"rows\": [", g ? ", " : "", exact ? "true" : "false");
        else
            printf("group %zu (%s, %zu files):\n", (size_t)offset + g + 1, exact ? "same content" : "similar",
                   jaclip_dupes_group_size(d, g));
        for (size_t j = 0; j < jaclip_dupes_group_size(d, g); j++) {
            size_t row = 0;
            float score = 0;
            jaclip_dupes_member(&row, &score, d, g, j);
            const char *label = jaclip_index_label(index, row);
            if (json) {
                printf("%s{\"row\": %zu, \"label\": ", j ? ", " : "", row);
                cli_json_string(stdout, label);
                fputs(", \"score\": ", stdout);
                json_float(stdout, score);
                putchar('}');
            } else {
                printf("  %.4f  ", (double)score);
                print_escaped(stdout, label);
                putchar('\n');
            }
        }
        if (json)
            fputs("]}", stdout);
    }
    if (json)
        puts("]}");
    jaclip_dupes_free(d);
    jaclip_index_free(index);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
