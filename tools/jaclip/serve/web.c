#include "http.h"

/* ---- the search page's files, embedded at build time (mk/75-serve.mk rebuilds on change) ---- */

/* .incbin reads the files relative to the directory make runs in: the project root. */
#define EMBED(sym, file)                                                                        \
    __asm__(".section .rodata\n.global " #sym "_start\n.global " #sym "_end\n.balign 16\n" #sym \
            "_start:\n.incbin \"" file "\"\n" #sym "_end:\n.byte 0\n.previous\n");              \
    extern const unsigned char sym##_start[], sym##_end[];

EMBED(web_index_html, "tools/jaclip/serve/web/index.html")
EMBED(web_app_js, "tools/jaclip/serve/web/app.js")
EMBED(web_style_css, "tools/jaclip/serve/web/style.css")

bool web_file(const char *path, const unsigned char **data, size_t *len, const char **content_type)
{
    static const struct {
        const char *path, *type;
        const unsigned char *start, *end;
    } files[] = {
        {"/", "text/html; charset=utf-8", web_index_html_start, web_index_html_end},
        {"/index.html", "text/html; charset=utf-8", web_index_html_start, web_index_html_end},
        {"/app.js", "text/javascript; charset=utf-8", web_app_js_start, web_app_js_end},
        {"/style.css", "text/css; charset=utf-8", web_style_css_start, web_style_css_end},
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        if (!strcmp(path, files[i].path)) {
            *data = files[i].start;
            *len = (size_t)(files[i].end - files[i].start);
            *content_type = files[i].type;
            return true;
        }
    return false;
}
