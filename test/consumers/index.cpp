// index DIR: jaclip::Index through jaclip.hpp — build, remove, save, append, remove and compact the
// file, reload, search; prints one line per step for test_consumers.py.
#include "jaclip.hpp"

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    try {
        const std::string path = std::string(argv[1]) + "/x.jci";
        const float rows[3 * 4] = {1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 3, 0};
        jaclip::Index index(4);
        index.add(jaclip::Tensor::from_floats(3, 4, rows), {"a.jpg", "b.jpg", "c.jpg"});
        index.set_fingerprint("cloob-4-0123456789abcdef");
        std::printf("removed %zu\n", index.remove({"b.jpg", "missing.jpg"}));
        index.save(path);
        const float more[4] = {0, 0, 0, 5};
        jaclip::Index::append_file(path, jaclip::Tensor::from_floats(1, 4, more), {"d.jpg"});
        std::printf("removed from file %zu\n", jaclip::Index::remove_file(path, {"a.jpg"}));
        jaclip::Index::compact_file(path);
        jaclip::Index back = jaclip::Index::load(path);
        std::printf("size %zu dim %zu fingerprint %s\n", back.size(), back.dim(), back.fingerprint().c_str());
        for (size_t i = 0; i < back.size(); i++)
            std::printf("row %zu %s\n", i, back.label(i).c_str());
        const float query[4] = {0, 0, 0.6f, 0.8f};
        auto hits = back.search(jaclip::Tensor::from_floats(1, 4, query), 2);
        for (size_t i = 0; i < 2; i++)
            std::printf("hit %s %.4f\n", back.label(size_t(hits.first.data<int64_t>()[i])).c_str(),
                        double(hits.second.data<float>()[i]));
        try {
            back.label(99);
        } catch (const jaclip::Error &e) {
            std::printf("error %s\n", e.status_string());
        }
    } catch (const std::exception &e) {
        std::fprintf(stderr, "index: %s\n", e.what());
        return 1;
    }
    return 0;
}
