/* jaclip index merge: shards (e.g. of python3 -m jaclip.distributed) into one index, by
 * jaclip_index_merge. */
#include "cli.h"

static const char merge_usage[] =
    "usage: jaclip index merge OUTPUT SHARD... [--unique]\n"
    "\n"
    "Writes one index file OUTPUT holding the rows of every SHARD index file, in the order given. Each\n"
    "shard's checksums are verified and all must have the same width; a damaged shard is refused and\n"
    "OUTPUT is then left as it was. OUTPUT is replaced only once complete, and may be one of the shards.\n"
    "\n"
    "  -u, --unique   refuse the merge if a label occurs more than once over all shards\n"
    "  -h, --help     this help\n";

int cmd_index_merge(int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"unique", no_argument, NULL, 'u'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    /* clang-format on */
    uint32_t flags = JACLIP_INDEX_MERGE_DEFAULT;
    int opt;
    command_name = "jaclip index merge";
    while ((opt = getopt_long(argc, argv, ":uh", options, NULL)) != -1) {
        switch (opt) {
        case 'u': flags |= JACLIP_INDEX_MERGE_UNIQUE_LABELS; break;
        case 'h': return help_requested(merge_usage);
        default: bad_option(opt, argv);
        }
    }
    if (argc - optind < 2)
        usage_error("give OUTPUT and at least one SHARD");
    const char *output = argv[optind];
    size_t n = (size_t)(argc - optind - 1);
    double start = now_seconds();
    jaclip_status st = jaclip_index_merge(output, (const char *const *)argv + optind + 1, n, flags);
    if (st)
        die(output, st);
    jaclip_index *merged = load_index_or_die(output);
    cli_warn("%s: %zu rows of width %zu from %zu shards in %.1f s", output, jaclip_index_size(merged),
             jaclip_index_dim(merged), n, now_seconds() - start);
    jaclip_index_free(merged);
    return 0;
}
