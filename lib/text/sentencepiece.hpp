// SentencePiece through dlopen (sentencepiece.cpp says why): its C++ member functions as a table of
// plain function pointers, and a processor object built and destroyed through them. Used by
// tokenizer.cpp only. No function of libsentencepiece is linked.
#ifndef JACLIP_TEXT_SENTENCEPIECE_HPP
#define JACLIP_TEXT_SENTENCEPIECE_HPP

#include <sentencepiece_processor.h> // for the layout (sizeof) only

#include <string>
#include <string_view>
#include <vector>

namespace jc_text {

// SentencePiece 0.1.x member functions as plain functions (Itanium C++ ABI): `this` is the first
// argument, or the second after the hidden result pointer when the result is a class with a
// destructor (util::Status, std::string).
struct StatusBuf { // util::Status: one std::unique_ptr<Rep>, null when ok
    void *rep = nullptr;
};
static_assert(sizeof(sentencepiece::util::Status) == sizeof(StatusBuf), "util::Status layout");

struct SpApi {
    std::string error; // why the library could not be used, if it could not
    void (*construct)(void *self);
    void (*destruct)(void *self);
    void (*load_serialized)(StatusBuf *ret, void *self, std::string_view bytes);
    void (*encode_ids)(StatusBuf *ret, const void *self, std::string_view text, std::vector<int> *ids);
    int (*piece_size)(const void *self);
    const std::string &(*id_to_piece)(const void *self, int id);
    int (*piece_to_id)(const void *self, std::string_view piece);
    bool (*is_unknown)(const void *self, int id);
    void (*status_destruct)(StatusBuf *self);
    void (*status_to_string)(std::string *ret, const StatusBuf *self);
};

// The table, loaded once per process; api.error is non-empty when the library cannot be used.
const SpApi &sp_api();

// A SentencePieceProcessor constructed and destroyed through the loaded library. load and encode
// return "" when ok, else SentencePiece's status text.
class SpProcessor {
  public:
    explicit SpProcessor(const SpApi &api) : api_(api) { api_.construct(storage_); }
    ~SpProcessor() { api_.destruct(storage_); }
    SpProcessor(const SpProcessor &) = delete;
    SpProcessor &operator=(const SpProcessor &) = delete;

    std::string load(std::string_view bytes);
    std::string encode(std::string_view text, std::vector<int> *ids) const;
    int piece_size() const { return api_.piece_size(storage_); }
    const std::string &id_to_piece(int id) const { return api_.id_to_piece(storage_, id); }
    int piece_to_id(std::string_view piece) const { return api_.piece_to_id(storage_, piece); }
    bool is_unknown(int id) const { return api_.is_unknown(storage_, id); }

  private:
    const SpApi &api_;
    alignas(
        sentencepiece::SentencePieceProcessor) unsigned char storage_[sizeof(sentencepiece::SentencePieceProcessor)];
};

} // namespace jc_text

#endif
