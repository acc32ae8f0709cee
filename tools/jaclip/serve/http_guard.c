/* Checks on a request's headers: the token, HTTP framing, Host / Origin / Sec-Fetch-Site. */
#include "http_internal.h"

/* ---- token ---- */

/* Constant time in the token's content: every byte of the expected token is compared. */
bool token_matches(const http_server *s, const char *header)
{
    static const char prefix[] = "Bearer ";
    if (!header || strncasecmp(header, prefix, sizeof prefix - 1))
        return false;
    const char *given = header + sizeof prefix - 1;
    size_t given_len = strlen(given);
    volatile unsigned char diff = given_len != s->token_len;
    for (size_t i = 0; i < s->token_len; i++)
        diff |= (unsigned char)s->token[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

/* ---- framing, Host and Origin ---- */

typedef struct {
    unsigned lengths, encodings;
    const char *length;
    bool lengths_differ;
} framing;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    framing *f = cls;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->lengths++ && strcmp(f->length, value ? value : ""))
            f->lengths_differ = true;
        f->length = value ? value : "";
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->encodings++;
    }
    return MHD_YES;
}

/* RFC 9112 6.3: a message with Content-Length and Transfer-Encoding, or Content-Lengths that differ, is
 * unframed: answer 400 and close (libmicrohttpd 0.9.75 accepts both and reads the body its own way,
 * so a proxy in front that reads the other way would see two requests). */
bool framing_ok(request *r)
{
    framing f = {0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
    return !(f.lengths && f.encodings) && !f.lengths_differ && f.encodings <= 1;
}

/* host[:port] names this server: localhost, the bound address, or an --allow-host name (the name a
 * container or host on a private network reaches it by, e.g. http://jaclip:3003 from Immich). */
static bool local_host(const http_server *s, const char *host, size_t n)
{
    const char *colon = NULL;
    for (size_t i = n; i-- > 0 && host[i] != ']';)
        if (host[i] == ':') {
            colon = host + i;
            break;
        }
    if (colon) {
        size_t digits = n - (size_t)(colon - host) - 1;
        if (!digits || digits > 5 || strspn(colon + 1, "0123456789") < digits)
            return false;
        n = (size_t)(colon - host);
    }
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (n == strlen(names[i]) && !strncasecmp(host, names[i], n))
            return true;
    for (size_t i = 0; i < s->nallow_hosts; i++)
        if (n == strlen(s->allow_hosts[i]) && !strncasecmp(host, s->allow_hosts[i], n))
            return true;
    return n == strlen(s->bound_host) && !strncasecmp(host, s->bound_host, n);
}

/* Without a token, a browser page of another site must not reach the API: DNS rebinding sends a
 * foreign Host, cross-site fetches and form posts send Origin or Sec-Fetch-Site. The page's files
 * and /healthz stay reachable (a link to the page is a cross-site navigation). */
bool same_site(const http_server *s, request *r, const char **why)
{
    const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (host && !local_host(s, host, strlen(host))) {
        *why = "the Host header does not name this server (localhost or its address)";
        return false;
    }
    if (r->route == ROUTE_PAGE || r->route == ROUTE_HEALTHZ || r->route == ROUTE_IMMICH_PING)
        return true;
    const char *site = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && strcasecmp(site, "same-origin") && strcasecmp(site, "none")) {
        *why = "a cross-site request (Sec-Fetch-Site)";
        return false;
    }
    const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
    if (origin) {
        static const char http_prefix[] = "http://";
        bool same = !strncasecmp(origin, http_prefix, sizeof http_prefix - 1) && host &&
                    !strcasecmp(origin + sizeof http_prefix - 1, host);
        if (!same) {
            *why = "a cross-origin request (Origin)";
            return false;
        }
    }
    return true;
}
