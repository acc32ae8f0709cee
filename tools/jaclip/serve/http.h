/* The HTTP layer of `jaclip serve` (libmicrohttpd): reads requests under the limits, checks framing,
 * Host/Origin and the token, hands each request to its route (routes.h), sends the reply, counts. */
#ifndef JACLIP_SERVE_HTTP_H
#define JACLIP_SERVE_HTTP_H

#include "routes.h"

#include <sys/socket.h>

typedef struct http_server http_server;

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    const char *bound_host;         /* the --host address as a Host header writes it ("[::1]" for IPv6) */
    const char *const *allow_hosts; /* --allow-host NAME: more Host names served without a token */
    size_t nallow_hosts;
    const char *token; /* NULL: none */
    size_t max_body;
    unsigned max_requests;
    double timeout; /* idle connection, body arrival, and the graceful stop */
} http_options;

/* Listens; NULL with errno set when it cannot. *port: the port bound. */
http_server *http_start(routes *rt, const http_options *o, unsigned *port);
/* Graceful stop: refuse new work, close the listening socket, let requests in flight finish until
 * deadline (now_seconds() clock). Returns how many were still running then; when none, the server is
 * freed, otherwise it is left to the process's exit (its threads are inside library calls). */
unsigned http_stop(http_server *h, double deadline);

/* web.c: the search page's files, embedded at build time. */
bool web_file(const char *path, const unsigned char **data, size_t *len, const char **content_type);

#endif
