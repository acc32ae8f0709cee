// features MODEL IMAGE OUTDIR TEXT...: features.c through jaclip.hpp.
#include "jaclip.hpp"

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

static void write_tensor(const std::string &path, const jaclip::Tensor &t)
{
    std::ofstream out(path, std::ios::binary);
    out.write(static_cast<const char *>(static_cast<const void *>(t.data<float>())), std::streamsize(t.nbytes()));
    if (!out)
        throw std::runtime_error("cannot write " + path);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s MODEL IMAGE OUTDIR TEXT...\n", argv[0]);
        return 2;
    }
    try {
        jaclip::check_version();
        const jaclip::Model model(argv[1]);
        std::string dir = argv[3];
        std::vector<jaclip::Image> images; // Image is move-only, so no initializer list
        images.emplace_back(argv[2]);
        write_tensor(dir + "/image.f32", model.encode_images(images));
        write_tensor(dir + "/text.f32", model.encode_texts(std::vector<std::string>(argv + 4, argv + argc)));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "features: %s\n", e.what());
        return 1;
    }
    return 0;
}
