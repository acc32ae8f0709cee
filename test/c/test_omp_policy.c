/* The libtorch plugin loads libgomp with a passive OpenMP wait policy unless the host chose one
 * (torch_plugin.c says why: a spinning pool collapses on shared cores). Each case in a child process
 * of its own, so the plugin loads afresh. Needs JACLIP_TEST_MODEL. */
#include "jaclip.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit status 0 when, after loading a model, OMP_WAIT_POLICY reads `expect`. */
static int child(const char *model_path, const char *preset, const char *expect)
{
    if (preset)
        setenv("OMP_WAIT_POLICY", preset, 1);
    else
        unsetenv("OMP_WAIT_POLICY");
    jaclip_model *model = NULL;
    if (jaclip_model_load(&model, model_path, NULL) != JACLIP_OK)
        return 2;
    const char *now = getenv("OMP_WAIT_POLICY");
    int ok = now && strcmp(now, expect) == 0;
    jaclip_model_free(model);
    return ok ? 0 : 1;
}

static int run(const char *model_path, const char *preset, const char *expect)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(child(model_path, preset, expect));
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int main(void)
{
    const char *model_path = env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip");
    CHECK(run(model_path, NULL, "PASSIVE") == 0);   /* unset: passive */
    CHECK(run(model_path, "ACTIVE", "ACTIVE") == 0); /* the host's choice stays */
    return check_summary("test_omp_policy");
}
