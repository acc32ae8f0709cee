#include "cli.h"

/* ---- embed ------------------------------------------------------------------------------------- */

static const char embed_usage[] =
    "usage: jaclip embed --model MODEL (--image FILE|DIR... | --text TEXT...) [options]\n"
    "\n"
    "Writes one embedding per input, in input order: float32 [N, D] as .npy (default) or JSON.\n"
    "A DIR stands for its image files (recursively, in byte order of path). An unreadable image\n"
    "is skipped with one warning naming it, so rows are the readable images in order (--format json\n"
    "names each row's file); the exit status is 1 only if none could be read.\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "      --image           the inputs are image files or directories of them\n"
    "      --text            the inputs are UTF-8 texts\n"
    "  -f, --format FMT      npy (default) or json\n"
    "  -o, --output FILE     write there instead of to standard output\n"
    "      --normalize       L2-normalise each embedding\n"
    "      --exif-transpose  rotate images by their EXIF orientation first (phone photos)\n"
    "      --strict          an unreadable image is an error (exit 1) instead of a warning\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "      --precision P     default (as stored), fp32, bf16, int8, int8-weights or auto\n"
    "  -h, --help            this help\n"
    "\n"
    "Texts that start with '-' go after '--'.\n";

static void write_embeddings_json(FILE *f, char **inputs, const char *kind, const float *data, size_t rows, size_t cols)
{
    fputs("[\n", f);
    for (size_t r = 0; r < rows; r++) {
        fprintf(f, "  {\"%s\": ", kind);
        cli_json_string(f, inputs[r]);
        fputs(", \"embedding\": [", f);
        for (size_t c = 0; c < cols; c++) {
            if (c)
                fputs(", ", f);
            json_float(f, data[r * cols + c]);
        }
        fputs(r + 1 < rows ? "]},\n" : "]}\n", f);
    }
    fputs("]\n", f);
}

typedef struct {
    model_args m;
    const char *format, *output;
    bool images, texts, normalize, strict;
    char **inputs;
    size_t n;
} embed_options;

static void parse_embed_args(embed_options *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},      {"image", no_argument, NULL, OPT_IMAGE},
        {"text", no_argument, NULL, OPT_TEXT},        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},     {"normalize", no_argument, NULL, OPT_NORMALIZE},
        {"device", required_argument, NULL, OPT_DEVICE}, {"threads", required_argument, NULL, OPT_THREADS}, {"precision", required_argument, NULL, OPT_PRECISION},
        {"help", no_argument, NULL, 'h'},             {"exif-transpose", no_argument, NULL, OPT_EXIF},
        {"strict", no_argument, NULL, OPT_STRICT},    {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    o->format = "npy";
    while ((opt = next_option(argc, argv, ":m:f:o:h", options, &o->m)) != -1)
        switch (opt) {
        case OPT_IMAGE: o->images = true; break;
        case OPT_TEXT: o->texts = true; break;
        case 'f': o->format = optarg; break;
        case 'o': o->output = optarg; break;
        case OPT_NORMALIZE: o->normalize = true; break;
        case OPT_STRICT: o->strict = true; break;
        case 'h': exit(help_requested(embed_usage));
        default: bad_option(opt, argv);
        }
    if (o->images == o->texts)
        usage_error("give exactly one of --image and --text");
    if (strcmp(o->format, "npy") != 0 && strcmp(o->format, "json") != 0)
        usage_error("--format must be npy or json, got '%s'", o->format);
    if (optind >= argc)
        usage_error("no %s given", o->images ? "image FILE" : "TEXT");
    if (!o->output && strcmp(o->format, "npy") == 0 && isatty(STDOUT_FILENO))
        usage_error("not writing binary .npy to a terminal: pass -o FILE or --format json");
    o->n = (size_t)(argc - optind);
    o->inputs = argv + optind;
    for (size_t i = 0; o->texts && i < o->n; i++)
        if (!is_utf8(o->inputs[i]))
            usage_error("text %zu is not valid UTF-8", i + 1);
}

/* Writes the n rows of emb named by inputs to -o FILE or standard output; the exit status. */
static int write_embeddings(const embed_options *o, const jaclip_tensor *emb, char **inputs, size_t n)
{
    FILE *f = o->output ? fopen(o->output, "wb") : stdout;
    if (!f) {
        cli_warn("%s: cannot create: %s", o->output, strerror(errno));
        return EXIT_RUNTIME;
    }
    size_t cols = (size_t)jaclip_tensor_dim(emb, 1);
    if (strcmp(o->format, "npy") == 0)
        write_npy(f, jaclip_tensor_data(emb), n, cols);
    else
        write_embeddings_json(f, inputs, o->texts ? "text" : "image", jaclip_tensor_data(emb), n, cols);
    if (ferror(f) || (o->output ? fclose(f) : fflush(f)) != 0) {
        cli_warn("%s: cannot write: %s", o->output ? o->output : "standard output", strerror(errno));
        return EXIT_RUNTIME;
    }
    return 0;
}

int cmd_embed(int argc, char **argv)
{
    embed_options o;
    command_name = "jaclip embed";
    parse_embed_args(&o, argc, argv);
    char **inputs = o.inputs;
    size_t n = o.n;
    string_list files = {0};
    if (o.images)
        expand_image_args(inputs, n, &files);
    jaclip_model *model = load_model(&o.m);
    jaclip_tensor *emb = NULL, *normed = NULL;
    jaclip_status st = JACLIP_OK;
    if (o.texts) {
        st = jaclip_model_encode_texts(&emb, model, (const char *const *)inputs, NULL, n);
    } else {
        emb = encode_image_batch(model, &files, o.strict, NULL);
        if (files.count == 0) {
            cli_warn("no image could be read");
            return EXIT_RUNTIME;
        }
        inputs = files.items;
        n = files.count;
    }
    if (st)
        die(NULL, st);
    if (o.normalize) {
        if ((st = jaclip_normalize(&normed, emb)))
            die(NULL, st);
        jaclip_tensor_free(emb);
        emb = normed;
    }
    /* Damaged weights can load and give NaN: an error, not a file of NaN (or invalid JSON). */
    if (has_non_finite(jaclip_tensor_data(emb), jaclip_tensor_numel(emb))) {
        cli_warn("%s: the model gave non-finite values (damaged weights?); nothing written", o.m.model_path);
        return EXIT_RUNTIME;
    }
    int rc = write_embeddings(&o, emb, inputs, n);
    jaclip_tensor_free(emb);
    jaclip_model_free(model);
    for (size_t i = 0; i < files.count; i++)
        free(files.items[i]);
    free(files.items);
    return rc;
}
