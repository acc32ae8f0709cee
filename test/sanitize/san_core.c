/* test_core's model-free parts (versions, errors, tensors, similarity, top-k, options) in the
 * sanitizer build, plus what model loading does there: the libtorch plugin cannot be opened under a
 * sanitizer runtime (no_deepbind.c), so every load must fail cleanly with JACLIP_ERROR_BACKEND. */
#include "core_cases.h"

#include <string.h>

static void test_load_without_backend(const char *model_path)
{
    jaclip_model *m = (jaclip_model *)1;
    CHECK_ERROR(jaclip_model_load(&m, model_path, NULL), JACLIP_ERROR_BACKEND);
    CHECK(m == NULL && strstr(jaclip_last_error(), "plugin") != NULL);
    size_t size = 0;
    char *bytes = read_file(model_path, &size);
    CHECK(bytes != NULL);
    if (bytes) {
        m = (jaclip_model *)1;
        CHECK_ERROR(jaclip_model_load_memory(&m, bytes, size, NULL), JACLIP_ERROR_BACKEND);
        CHECK(m == NULL);
    }
    free(bytes);
    /* Argument checks still come first. */
    CHECK_ERROR(jaclip_model_load(NULL, model_path, NULL), JACLIP_ERROR_INVALID_ARGUMENT);
    CHECK_ERROR(jaclip_model_load(&m, "/nonexistent/model.jaclip", NULL), JACLIP_ERROR_IO);
}

int main(void)
{
    test_version_and_errors();
    test_tensors();
    test_similarity();
    test_topk();
    test_options();
    test_load_without_backend(env_or("JACLIP_TEST_MODEL", "build/models/tiny.jaclip"));
    return check_summary("san_core");
}
