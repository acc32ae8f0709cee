/* `jaclip serve`: options, then the three layers wired together: the engine (engine.h: model, slots,
 * batching, indexes), the routes on it (routes.h), and the HTTP layer in front (http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static const char serve_usage[] =
    "usage: jaclip serve --model MODEL [--index [NAME=]INDEX]... [--host ADDR] [--port N] [options]\n"
    "\n"
    "An HTTP service: the JSON API of docs/serve.md (embed, classify, search, duplicates, a row's\n"
    "thumbnail or original file, index info, /healthz, /metrics), a search page at / (Japanese, or\n"
    "English when the browser prefers it), and Immich's machine-learning protocol (/ping, /predict:\n"
    "CLIP only, docs/immich.md). The model is loaded once and shared.\n"
    "\n"
    "  -m, --model FILE          model file (default: $JACLIP_MODEL)\n"
    "  -i, --index [NAME=]FILE   an index to search (repeatable); NAME defaults to the file's base name\n"
    "  -c, --classifier FILE     a classifier saved by 'jaclip classify --save-classifier' (or the\n"
    "                            library), used by /v1/classify when a request gives no labels\n"
    "      --host ADDR           address to bind (default: 127.0.0.1); a non-loopback one needs --token\n"
    "  -p, --port N              port (default: 8080; 0 picks a free one, printed on stdout)\n"
    "      --token TOKEN         require 'Authorization: Bearer TOKEN' (default: $JACLIP_SERVE_TOKEN)\n"
    "      --trust-network       allow a non-loopback --host without --token: anyone who reaches ADDR\n"
    "                            may use the API (a private network, e.g. for Immich: docs/immich.md)\n"
    "      --allow-host NAME     also serve requests whose Host header is NAME (any port) without a\n"
    "                            token, e.g. the container name Immich reaches this server by (repeatable)\n"
    "      --immich-model NAME   answer Immich's /predict only for this CLIP modelName (default: any)\n"
    "      --threads N           requests running library work at once (default: 1)\n"
    "      --max-batch N         single text queries, and single searches of one index, that queue\n"
    "                            while the model is busy run as one library call of up to N\n"
    "                            (default: 16; 1 turns batching off)\n"
    "      --model-threads N     cores each model call may use (default: all)\n"
    "      --max-requests N      requests in flight before answering 503 (default: 64)\n"
    "      --max-body BYTES      largest request body (default: 16777216)\n"
    "      --timeout SECONDS     idle connection timeout, the longest wait for a model slot or a body,\n"
    "                            and how long a stop waits for requests in flight (default: 30)\n"
    "      --device DEV          cpu (default), cuda or cuda:N\n"
    "      --precision P         default (as stored), fp32, bf16, int8, int8-weights or auto\n"
    "      --exact               never use INDEX.ann: every search is exact (a request may also ask\n"
    "                            for exact search with \"exact\": true)\n"
    "      --force               serve every --index even if it records another model's fingerprint\n"
    "                            (as 'jaclip search --force'; without it such an index is refused at\n"
    "                            start and on reload)\n"
    "  -h, --help                this help\n"
    "\n"
    "SIGHUP reloads every index (and its INDEX.ann) now, as POST /v1/admin/reload does; a changed\n"
    "index file is also reloaded by itself at its next use. SIGINT or SIGTERM stops accepting, lets requests in flight "
    "finish (up to --timeout; then they are\n"
    "answered 503 or cut), and exits 0 within --timeout + 1 s. Without --token, only Host values naming\n"
    "localhost, ADDR or an --allow-host NAME are served, and the API refuses cross-site requests (docs/serve.md).\n";

enum {
    OPT_HOST = OPT_COMMAND_BASE,
    OPT_TOKEN,
    OPT_MODEL_THREADS,
    OPT_MAX_REQUESTS,
    OPT_MAX_BODY,
    OPT_TIMEOUT,
    OPT_MAX_BATCH,
    OPT_TRUST_NETWORK,
    OPT_ALLOW_HOST,
    OPT_IMMICH_MODEL,
    OPT_FORCE,
    OPT_EXACT
};

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(v6) || (IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127);
}

static void parse_host(const char *host, long port, struct sockaddr_storage *out, socklen_t *len)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        usage_error("--host must be a numeric IPv4 or IPv6 address, got '%s'", host);
    }
}

typedef struct {
    model_args m;
    string_list index_args, allow_hosts;
    const char *host, *token, *classifier_path, *immich_model;
    bool trust_network, force, exact;
    long port, workers, max_requests, max_body, timeout, max_batch;
    struct sockaddr_storage addr;
    socklen_t addr_len;
} serve_options;

static void parse_serve_args(serve_options *o, int argc, char **argv)
{
    /* clang-format off */
    static const struct option options[] = {
        {"model", required_argument, NULL, 'm'},        {"index", required_argument, NULL, 'i'},
        {"host", required_argument, NULL, OPT_HOST},    {"port", required_argument, NULL, 'p'},
        {"token", required_argument, NULL, OPT_TOKEN},  {"threads", required_argument, NULL, OPT_THREADS},
        {"model-threads", required_argument, NULL, OPT_MODEL_THREADS},
        {"max-requests", required_argument, NULL, OPT_MAX_REQUESTS},
        {"max-body", required_argument, NULL, OPT_MAX_BODY}, {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"device", required_argument, NULL, OPT_DEVICE}, {"precision", required_argument, NULL, OPT_PRECISION},
        {"help", no_argument, NULL, 'h'},
        {"classifier", required_argument, NULL, 'c'},    {"max-batch", required_argument, NULL, OPT_MAX_BATCH},
        {"trust-network", no_argument, NULL, OPT_TRUST_NETWORK},
        {"allow-host", required_argument, NULL, OPT_ALLOW_HOST},
        {"immich-model", required_argument, NULL, OPT_IMMICH_MODEL},
        {"force", no_argument, NULL, OPT_FORCE},          {"exact", no_argument, NULL, OPT_EXACT},
        {NULL, 0, NULL, 0}};
    /* clang-format on */
    int opt;
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->token = getenv("JACLIP_SERVE_TOKEN");
    o->port = 8080, o->workers = 1, o->max_requests = 64, o->max_body = 16L << 20, o->timeout = 30;
    o->max_batch = 16;
    while ((opt = getopt_long(argc, argv, ":m:i:p:c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm': o->m.model_path = optarg; break;
        case OPT_DEVICE: o->m.device = optarg; break;
        case OPT_PRECISION: o->m.precision = parse_precision(optarg); break;
        case 'i': list_push(&o->index_args, optarg); break;
        case OPT_HOST: o->host = optarg; break;
        case 'p': o->port = parse_long(optarg, "--port", 0, 65535); break;
        case OPT_TOKEN: o->token = optarg; break;
        case OPT_THREADS: o->workers = parse_long(optarg, "--threads", 1, 256); break;
        case OPT_MODEL_THREADS: o->m.threads = (int)parse_long(optarg, "--model-threads", 0, 1024); break;
        case OPT_MAX_REQUESTS: o->max_requests = parse_long(optarg, "--max-requests", 1, 10000); break;
        case OPT_MAX_BODY: o->max_body = parse_long(optarg, "--max-body", 1024, 1L << 30); break;
        case OPT_TIMEOUT: o->timeout = parse_long(optarg, "--timeout", 1, 3600); break;
        case OPT_MAX_BATCH: o->max_batch = parse_long(optarg, "--max-batch", 1, 256); break;
        case 'c': o->classifier_path = optarg; break;
        case OPT_TRUST_NETWORK: o->trust_network = true; break;
        case OPT_FORCE: o->force = true; break;
        case OPT_EXACT: o->exact = true; break;
        case OPT_ALLOW_HOST:
            /* A Host value is a name or address without port; [v6] as Host writes it. */
            if (!*optarg || strlen(optarg) > 255 ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789.-_[]:") != strlen(optarg))
                usage_error("--allow-host takes a host name or address as the Host header gives it, got '%s'", optarg);
            list_push(&o->allow_hosts, optarg);
            break;
        case OPT_IMMICH_MODEL:
            if (!*optarg || !is_utf8(optarg))
                usage_error("--immich-model must be a non-empty UTF-8 name");
            o->immich_model = optarg;
            break;
        case 'h': exit(help_requested(serve_usage));
        default: bad_option(opt, argv);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (o->token && !*o->token)
        o->token = NULL;
    if (o->token && !is_utf8(o->token))
        usage_error("--token must be UTF-8");
    parse_host(o->host, o->port, &o->addr, &o->addr_len);
    if (!is_loopback(&o->addr) && !o->token && !o->trust_network)
        usage_error("--host %s is not a loopback address: give --token (or JACLIP_SERVE_TOKEN) too, or "
                    "--trust-network on a private network",
                    o->host);
    if (!is_loopback(&o->addr) && !o->token)
        cli_warn("no --token on %s: every client that reaches it may use the API (--trust-network)", o->host);
}

int cmd_serve(int argc, char **argv)
{
    serve_options o;
    command_name = "jaclip serve";
    parse_serve_args(&o, argc, argv);
    /* The signals are taken by sigwait below. Blocked before anything starts a thread (libtorch and
     * OpenBLAS pools, MHD), so every thread inherits the mask and none dies of them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    engine_options eo = {.model = &o.m,
                         .classifier_path = o.classifier_path,
                         .index_args = (const char *const *)o.index_args.items,
                         .nindex_args = o.index_args.count,
                         .workers = (unsigned)o.workers,
                         .max_batch = (unsigned)o.max_batch,
                         .slot_timeout = (double)o.timeout,
                         .force = o.force,
                         .exact = o.exact};
    engine *e = engine_open(&eo);
    routes_init();
    routes rt = {.engine = e,
                 .max_body = (size_t)o.max_body,
                 .max_requests = (unsigned)o.max_requests,
                 .token_required = o.token != NULL,
                 .immich_model = o.immich_model};
    char bound_host[64];
    snprintf(bound_host, sizeof bound_host, o.addr.ss_family == AF_INET6 ? "[%s]" : "%s", o.host);
    http_options ho = {.bound_host = bound_host,
                       .allow_hosts = (const char *const *)o.allow_hosts.items,
                       .nallow_hosts = o.allow_hosts.count,
                       .addr = o.addr,
                       .addr_len = o.addr_len,
                       .token = o.token,
                       .max_body = (size_t)o.max_body,
                       .max_requests = (unsigned)o.max_requests,
                       .timeout = (double)o.timeout};
    unsigned port = 0;
    http_server *h = http_start(&rt, &ho, &port);
    if (!h) {
        cli_warn("cannot listen on %s port %ld: %s", o.host, o.port, strerror(errno));
        return EXIT_RUNTIME;
    }
    size_t n = engine_index_count(e);
    printf("jaclip serve: listening on http://%s%s%s:%u/ (%zu index%s)\n", o.addr.ss_family == AF_INET6 ? "[" : "",
           o.host, o.addr.ss_family == AF_INET6 ? "]" : "", port ? port : (unsigned)o.port, n, n == 1 ? "" : "es");
    fflush(stdout);

    int sig = 0;
    /* SIGHUP reloads every index now (as POST /v1/admin/reload), then serving goes on. */
    while (!sigwait(&stop, &sig) && sig == SIGHUP) {
        size_t failed = engine_reload_all(e, NULL, NULL);
        fprintf(stderr, "jaclip serve: SIGHUP: %zu of %zu index%s reloaded\n", n - failed, n, n == 1 ? "" : "es");
    }
    /* Requests in flight get --timeout to finish; long work (classify) is abandoned at its next
     * library call after that, answering 503. */
    double deadline = now_seconds() + (double)o.timeout;
    engine_stop(e, deadline);
    unsigned left = http_stop(h, deadline + 1.0);
    fprintf(stderr, "jaclip serve: stopped by signal %d%s\n", sig, left ? " (requests still running were cut)" : "");
    if (left) {
        /* A request thread is still inside one library call: freeing the model under it is not safe,
         * and serve writes no file, so leave at once and let the kernel close the connections. */
        fflush(NULL);
        _exit(0);
    }
    engine_close(e);
    free(o.index_args.items);
    free(o.allow_hosts.items);
    return 0;
}
