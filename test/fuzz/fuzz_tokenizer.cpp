// libFuzzer harness for jaclip_tokenizer_encode / _tokenize over arbitrary bytes.
// Input: one control byte (number of texts, max_length), then the bytes of the texts, cut into equal
// parts with explicit lengths (so cuts inside a character and embedded NULs are exercised).
// Besides the sanitizers, it checks the invariants of the output and aborts on any violation.
#include <jaclip.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static jaclip_tokenizer *tok;

#define REQUIRE(cond)                                                             \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
            abort();                                                              \
        }                                                                         \
    } while (0)

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    const char *dir = getenv("JACLIP_PROJECT_DATA");
    std::string path = std::string(dir && *dir ? dir : "data") + "/rinna-japanese-spiece.model";
    if (jaclip_tokenizer_load(&tok, path.c_str()) != JACLIP_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path.c_str(), jaclip_last_error());
        exit(1);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t lengths_to_try[8] = {0, 2, 3, 5, 8, 77, 200, 4096};
    if (size == 0)
        return 0;
    size_t n = 1 + (data[0] & 3);
    size_t max_length = lengths_to_try[(data[0] >> 2) & 7];
    size_t L = max_length ? max_length : 77;
    const char *body = reinterpret_cast<const char *>(data + 1);
    size_t body_size = size - 1;

    std::vector<const char *> texts(n);
    std::vector<size_t> lengths(n);
    for (size_t i = 0, off = 0; i < n; i++) {
        lengths[i] = i + 1 < n ? body_size / n : body_size - off;
        texts[i] = body + off;
        off += lengths[i];
    }

    jaclip_tensor *ids = nullptr, *mask = nullptr;
    jaclip_status st = jaclip_tokenizer_encode(&ids, &mask, tok, texts.data(), lengths.data(), n, max_length);
    int64_t vocab = jaclip_tokenizer_vocab_size(tok);
    if (st == JACLIP_ERROR_INVALID_ARGUMENT) {  // a needed run or span over the bounds (-max_len > 64 KiB)
        REQUIRE(ids == nullptr && mask == nullptr && strstr(jaclip_last_error(), "JACLIP_TOKENIZER_MAX_") != nullptr);
    } else if (st != JACLIP_OK) {
        REQUIRE(st == JACLIP_ERROR_INVALID_UTF8 && ids == nullptr && mask == nullptr);
        REQUIRE(strstr(jaclip_last_error(), "byte offset") != nullptr);
    } else {
        REQUIRE(jaclip_tensor_dim(ids, 0) == (int64_t)n && jaclip_tensor_dim(ids, 1) == (int64_t)L);
        REQUIRE(jaclip_tensor_dim(mask, 0) == (int64_t)n && jaclip_tensor_dim(mask, 1) == (int64_t)L);
        const auto *id = static_cast<const int64_t *>(jaclip_tensor_data(ids));
        const auto *m = static_cast<const int64_t *>(jaclip_tensor_data(mask));
        for (size_t i = 0; i < n; i++) {
            const int64_t *r = id + i * L, *mr = m + i * L;
            REQUIRE(r[0] == 4 && mr[0] == 1);
            size_t real = 0;
            while (real < L && mr[real] == 1)
                real++;
            for (size_t j = 0; j < L; j++) {
                REQUIRE(r[j] >= 0 && r[j] < vocab);
                REQUIRE(mr[j] == (j < real ? 1 : 0));
                if (j >= real)
                    REQUIRE(r[j] == 3);
            }
            // The unframed ids of the same text (read whole) agree with the framed row (read as a
            // prefix cut at whitespace once the text is 16 times longer than the ids needed).
            jaclip_tensor *all = nullptr;
            REQUIRE(jaclip_tokenizer_tokenize(&all, tok, texts[i], lengths[i]) == JACLIP_OK);
            size_t count = jaclip_tensor_numel(all);
            REQUIRE(real == 1 + (count < L - 1 ? count : L - 1));
            const auto *a = static_cast<const int64_t *>(jaclip_tensor_data(all));
            for (size_t j = 1; j < real; j++)
                REQUIRE(r[j] == a[j - 1]);
            jaclip_tensor_free(all);
        }
    }
    jaclip_tensor_free(ids);
    jaclip_tensor_free(mask);

    // The whole body as one text, also NUL-terminated when it has no NUL of its own.
    jaclip_tensor *all = nullptr;
    st = jaclip_tokenizer_tokenize(&all, tok, body, body_size);
    REQUIRE(st == JACLIP_OK || ((st == JACLIP_ERROR_INVALID_UTF8 || st == JACLIP_ERROR_INVALID_ARGUMENT) && all == nullptr));
    jaclip_tensor_free(all);
    if (memchr(body, 0, body_size) == nullptr) {
        std::string copy(body, body_size);
        jaclip_tensor *again = nullptr;
        REQUIRE(jaclip_tokenizer_tokenize(&again, tok, copy.c_str(), JACLIP_NUL_TERMINATED) == st);
        jaclip_tensor_free(again);
    }
    return 0;
}
