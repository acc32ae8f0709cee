#include "cli.h"

static const char info_usage[] =
    "usage: jaclip info [--model] MODEL [--precision P] [--device DEV] [--threads N] [--json]\n"
    "\n"
    "Loads MODEL and says what it is and how it runs here: its fingerprint and sizes, the device, the\n"
    "precision it computes in and why (a bf16 file runs fp32 on a CPU without native bf16), and the CPU\n"
    "features libjaclip detected.\n"
    "\n"
    "  -m, --model FILE      model file (default: $JACLIP_MODEL)\n"
    "      --precision P     default (as stored), fp32, bf16, int8, int8-weights or auto (the fastest\n"
    "                        within cosine 0.999 of fp32 on this CPU: int8-weights with AVX512-VNNI and\n"
    "                        no AMX, else bf16 where bf16 is native)\n"
    "      --json            JSON instead of text\n"
    "      --device DEV      cpu (default), cuda or cuda:N\n"
    "      --threads N       libtorch threads (default: all cores)\n"
    "  -h, --help            this help\n";

int cmd_info(int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},     {"precision", required_argument, NULL, OPT_PRECISION},
        {"json", no_argument, NULL, OPT_JSON},       {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, OPT_THREADS}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    /* clang-format on */
    model_args m = {0};
    bool json = false;
    int opt;
    command_name = "jaclip info";
    while ((opt = next_option(argc, argv, ":m:h", options, &m)) != -1)
        switch (opt) {
        case OPT_JSON: json = true; break;
        case 'h': return help_requested(info_usage);
        default: bad_option(opt, argv);
        }
    if (optind < argc && !m.model_path)
        m.model_path = argv[optind++];
    if (optind != argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    jaclip_model *model = load_model(&m);
    const char *ran = precision_word(jaclip_model_precision(model));
    if (json) {
        fputs("{\"model\": ", stdout);
        cli_json_string(stdout, m.model_path);
        printf(", \"fingerprint\": \"%s\", \"embedding_dim\": %lld, \"image_size\": %lld, "
               "\"max_text_length\": %lld, \"device\": ",
               jaclip_model_fingerprint(model), (long long)jaclip_model_embedding_dim(model),
               (long long)jaclip_model_image_size(model), (long long)jaclip_model_max_text_length(model));
        cli_json_string(stdout, jaclip_model_device(model));
        printf(", \"precision\": \"%s\", \"precision_reason\": ", ran);
        cli_json_string(stdout, jaclip_model_precision_reason(model));
        fputs(", \"cpu_features\": ", stdout);
        cli_json_string(stdout, jaclip_cpu_features());
        printf(", \"library_version\": \"%s\"}\n", jaclip_version_string());
    } else {
        printf("model:            %s\n", m.model_path);
        printf("fingerprint:      %s\n", jaclip_model_fingerprint(model));
        printf("embedding dim:    %lld\n", (long long)jaclip_model_embedding_dim(model));
        printf("image size:       %lld\n", (long long)jaclip_model_image_size(model));
        printf("max text length:  %lld\n", (long long)jaclip_model_max_text_length(model));
        printf("device:           %s\n", jaclip_model_device(model));
        printf("precision:        %s\n", ran);
        printf("why:              %s\n", jaclip_model_precision_reason(model));
        printf("cpu features:     %s\n", jaclip_cpu_features()[0] ? jaclip_cpu_features() : "(none detected)");
        printf("libjaclip:        %s\n", jaclip_version_string());
    }
    jaclip_model_free(model);
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}
