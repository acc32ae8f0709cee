#include "cli.h"

#ifndef JACLIP_CONVERT_INSTALLED
#define JACLIP_CONVERT_INSTALLED "/usr/local/lib/jaclip/jaclip-convert"
#endif
#ifndef JACLIP_DEFAULT_PYTHON
#define JACLIP_DEFAULT_PYTHON "/usr/bin/python3"
#endif
/* ---- convert ----------------------------------------------------------------------------------- */

/* tools/jaclip-convert: $JACLIP_CONVERT, else beside the build tree (build/jaclip → tools/), else the
 * installed copy. */
static const char *find_converter(char *buf, size_t size)
{
    const char *env = getenv("JACLIP_CONVERT");
    if (env && *env)
        return env;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(buf, size, "%s/../tools/jaclip-convert", exe);
            if (access(buf, R_OK) == 0)
                return buf;
        }
    }
    return JACLIP_CONVERT_INSTALLED;
}

int cmd_convert(int argc, char **argv)
{
    char buf[PATH_MAX + 64];
    const char *script = find_converter(buf, sizeof buf);
    const char *python = getenv("JACLIP_PYTHON");
    if (!python || !*python)
        python = access(JACLIP_DEFAULT_PYTHON, X_OK) == 0 ? JACLIP_DEFAULT_PYTHON : "python3";
    char **args = xcalloc((size_t)argc + 2, sizeof *args);
    args[0] = (char *)python;
    args[1] = (char *)script;
    for (int i = 1; i < argc; i++)
        args[i + 1] = argv[i];
    execvp(python, args);
    cli_warn("%s: cannot run %s: %s", script, python, strerror(errno));
    free(args);
    return EXIT_RUNTIME;
}
