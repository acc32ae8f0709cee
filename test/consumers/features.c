/* features MODEL IMAGE OUTDIR TEXT...: writes the image's and the texts' features as raw float32 to
 * OUTDIR/image.f32 and OUTDIR/text.f32 (test_consumers.py compares them across languages). */
#include "jaclip.h"

#include <stdio.h>

static int write_tensor(const char *dir, const char *name, const jaclip_tensor *t)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(jaclip_tensor_data(t), 1, jaclip_tensor_nbytes(t), f) == jaclip_tensor_nbytes(t);
    if (f && fclose(f) != 0)
        ok = 0;
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL IMAGE OUTDIR TEXT...\n", argv[0]);
        return 2;
    }
    jaclip_model *model = NULL;
    jaclip_tensor *image = NULL, *text = NULL;
    const char *paths[1] = {argv[2]};
    int rc = 1;
    if (jaclip_version_number() != JACLIP_VERSION_NUMBER)
        fprintf(stderr, "header/library version mismatch\n");
    else if (jaclip_model_load(&model, argv[1], NULL) != JACLIP_OK ||
             jaclip_model_encode_image_files(&image, model, paths, 1) != JACLIP_OK ||
             jaclip_model_encode_texts(&text, model, (const char *const *)argv + 4, NULL, (size_t)argc - 4) !=
                 JACLIP_OK)
        fprintf(stderr, "features: %s\n", jaclip_last_error());
    else if (!write_tensor(argv[3], "image.f32", image) || !write_tensor(argv[3], "text.f32", text))
        fprintf(stderr, "features: cannot write to %s\n", argv[3]);
    else
        rc = 0;
    jaclip_tensor_free(text);
    jaclip_tensor_free(image);
    jaclip_model_free(model);
    return rc;
}
