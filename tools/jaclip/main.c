/* jaclip: zero-shot classification, embedding, photo indexing and search from the command line.
 * Exit status: 0 success, 1 runtime error, 2 usage error, 128+N when stopped by signal N (index build
 * stops cleanly between batches). Errors go to stderr as "jaclip: FILE: reason". */
#include "cli.h"

/* ---- main -------------------------------------------------------------------------------------- */

static const char main_usage[] =
    "usage: jaclip COMMAND [options]\n"
    "\n"
    "Japanese CLIP (rinna/japanese-cloob-vit-b-16) from the command line.\n"
    "\n"
    "  classify   zero-shot classification of images over Japanese labels\n"
    "  embed      image or text embeddings as .npy or JSON\n"
    "  index      build, sync, remove, compact, merge, ann; info, list: the index of a photo folder\n"
    "  search     search an index by Japanese text or by an example image\n"
    "  serve      an HTTP service: JSON API for embedding, classification and search; a search page\n"
    "  eval       zero-shot accuracy on a labelled folder (one sub-folder per class)\n"
    "  convert    convert a Hugging Face checkpoint into a model file (runs jaclip-convert)\n"
    "  info       what a model is and how it runs here (precision and why, CPU features)\n"
    "\n"
    "'jaclip COMMAND --help' describes each; 'man jaclip' all of them. Options common to the commands\n"
    "that load a model: --model FILE (default: $JACLIP_MODEL), --device DEV, --threads N,\n"
    "--precision P (default, fp32, bf16, int8, int8-weights, or auto: the fastest within cosine 0.999 of fp32\n"
    "on this CPU).\n"
    "Exit status: 0 success, 1 runtime error, 2 usage error.\n";

int main(int argc, char **argv)
{
    opterr = 0; /* bad_option words the messages */
    if (argc < 2)
        usage_error("missing COMMAND");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
        return help_requested(main_usage);
    if (!strcmp(cmd, "--version")) {
        printf("jaclip %s (libjaclip %s)\n", JACLIP_VERSION_STRING, jaclip_version_string());
        return 0;
    }
    if (jaclip_version_number() != JACLIP_VERSION_NUMBER) {
        cli_warn("libjaclip %s is loaded, this command was built for %s", jaclip_version_string(),
                 JACLIP_VERSION_STRING);
        return EXIT_RUNTIME;
    }
    if (!strcmp(cmd, "classify"))
        return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed"))
        return cmd_embed(argc - 1, argv + 1);
    if (!strcmp(cmd, "index"))
        return cmd_index(argc - 1, argv + 1);
    if (!strcmp(cmd, "search"))
        return cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval"))
        return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc - 1, argv + 1);
    usage_error("unknown command '%s'", cmd);
}
