#include "http.h"

/* ---- the search page's files, embedded at build time (mk/75-serve.mk rebuilds on change) ---- */

/* .incbin reads the files relative to the directory make runs in: the project root. */
#define EMBED(sym, file)                                                                        \
    __asm__(".section .rodata\n.global " #sym "_start\n.global " #sym "_end\n.balign 16\n" #sym \
            "_start:\n.incbin \"" file "\"\n" #sym "_end:\n.byte 0\n.previous\n");              \
    extern const unsigned char sym##_start[], sym##_end[];

#define WEB "tools/jaclip/serve/web/"
EMBED(web_index_html, WEB "index.html")
EMBED(web_style_css, WEB "style.css")
EMBED(web_favicon_svg, WEB "favicon.svg")
EMBED(web_app_js, WEB "app.js")
EMBED(web_i18n_js, WEB "i18n.js")
EMBED(web_api_js, WEB "api.js")
EMBED(web_ui_js, WEB "ui.js")
EMBED(web_search_js, WEB "search.js")
EMBED(web_dupes_js, WEB "dupes.js")
EMBED(web_paging_js, WEB "paging.js")

#define HTML "text/html; charset=utf-8"
#define JS "text/javascript; charset=utf-8"
#define SVG "image/svg+xml"
#define FILE_OF(sym) sym##_start, sym##_end

bool web_file(const char *path, const unsigned char **data, size_t *len, const char **content_type)
{
    static const struct {
        const char *path, *type;
        const unsigned char *start, *end;
    } files[] = {
        {"/", HTML, FILE_OF(web_index_html)},
        {"/index.html", HTML, FILE_OF(web_index_html)},
        {"/style.css", "text/css; charset=utf-8", FILE_OF(web_style_css)},
        {"/favicon.svg", SVG, FILE_OF(web_favicon_svg)},
        /* Browsers that ignore <link rel=icon> ask for this name; the type says what it is. */
        {"/favicon.ico", SVG, FILE_OF(web_favicon_svg)},
        {"/app.js", JS, FILE_OF(web_app_js)},
        {"/i18n.js", JS, FILE_OF(web_i18n_js)},
        {"/api.js", JS, FILE_OF(web_api_js)},
        {"/ui.js", JS, FILE_OF(web_ui_js)},
        {"/search.js", JS, FILE_OF(web_search_js)},
        {"/dupes.js", JS, FILE_OF(web_dupes_js)},
        {"/paging.js", JS, FILE_OF(web_paging_js)},
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
