// Zero-shot classification with the C++ wrapper (jaclip.hpp).
//
//   classify_cpp MODEL IMAGE LABEL... [--template T]... [--scale S]
//   e.g. classify_cpp model.jaclip dog.jpeg 犬 猫 象 --template '{}の写真'
//
// Output: one line per label, best first: "PROBABILITY<TAB>LABEL" with the probability as %.9g (the
// Python and Ruby examples print the same format, so their outputs can be compared byte for byte).
#include "jaclip.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    std::vector<std::string> labels, templates;
    float scale = 100.0f;
    for (int i = 3; i < argc; i++) {
        std::string arg = argv[i];
        if ((arg == "--template" || arg == "--scale") && i + 1 < argc) {
            if (arg == "--template")
                templates.push_back(argv[++i]);
            else
                scale = float(std::strtod(argv[++i], nullptr)); // parsed as a double, as Python and Ruby do
        } else {
            labels.push_back(arg);
        }
    }
    if (argc < 4 || labels.empty()) {
        std::fprintf(stderr, "usage: %s MODEL IMAGE LABEL... [--template T]... [--scale S]\n", argv[0]);
        return 2;
    }
    try {
        jaclip::check_version();
        jaclip::Model model(argv[1]);
        for (const jaclip::Prediction &p : model.classify(argv[2], labels, templates, scale))
            std::printf("%.9g\t%s\n", double(p.probability), p.label.c_str());
    } catch (const jaclip::Error &e) {
        std::fprintf(stderr, "classify: %s (%s)\n", e.what(), e.status_string());
        return 1;
    }
    return 0;
}
