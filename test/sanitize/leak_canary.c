/* Proof that the ASan + LSan fallback of the memcheck steps sees leaks through the torch plugin:
 * with JACLIP_CANARY=leak this program loses a text-feature tensor and a model, and LeakSanitizer
 * must report both (mk/81-memcheck.mk expects the report); with JACLIP_CANARY unset it frees all. */
#include "jaclip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    const char *path = getenv("JACLIP_TEST_MODEL");
    const char *mode = getenv("JACLIP_CANARY");
    int leak = mode && strcmp(mode, "leak") == 0;
    jaclip_model *m = NULL;
    jaclip_tensor *t = NULL;
    const char *texts[2] = {"犬", "猫の写真"};
    if (!path || jaclip_model_load(&m, path, NULL) != JACLIP_OK ||
        jaclip_model_encode_texts(&t, m, texts, NULL, 2) != JACLIP_OK) {
        fprintf(stderr, "leak_canary: %s\n", jaclip_last_error());
        return 2;
    }
    if (!leak) {
        jaclip_tensor_free(t);
        jaclip_model_free(m);
    }
    /* Leaked: the handles go out of scope with nothing pointing at them. */
    m = NULL;
    t = NULL;
    return 0;
}
