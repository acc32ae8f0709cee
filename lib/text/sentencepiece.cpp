// The SentencePiece table of sentencepiece.hpp. SentencePiece is dlopen'ed, not linked: Debian's
// libsentencepiece embeds its own protobuf-lite and exports its symbols, which clash with the
// libprotobuf that libtorch loads: once both are in one process, one binds to the other's functions
// and crashes. Loaded RTLD_LOCAL | RTLD_DEEPBIND, it binds only to itself and nothing binds to it. Its
// C++ functions are then called by their mangled names.
#include "text/sentencepiece.hpp"

#include <dlfcn.h>

#include <mutex>
#include <type_traits>

#ifndef JC_SENTENCEPIECE_LIBRARY
#define JC_SENTENCEPIECE_LIBRARY "libsentencepiece.so.0"
#endif

// Sanitizer runtimes refuse RTLD_DEEPBIND; sanitized builds (fuzzing) have no libtorch, so no clash.
#if defined(__SANITIZE_ADDRESS__)
#define JC_SP_DEEPBIND 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define JC_SP_DEEPBIND 0
#endif
#endif
#ifndef JC_SP_DEEPBIND
#define JC_SP_DEEPBIND RTLD_DEEPBIND
#endif

namespace jc_text {

const SpApi &sp_api()
{
    static SpApi api;
    static std::once_flag once;
    std::call_once(once, [] {
        void *h = dlopen(JC_SENTENCEPIECE_LIBRARY, RTLD_NOW | RTLD_LOCAL | JC_SP_DEEPBIND);
        if (!h) {
            const char *e = dlerror();
            api.error = std::string("cannot load ") + JC_SENTENCEPIECE_LIBRARY + ": " + (e ? e : "?");
            return;
        }
        bool missing = false;
        auto sym = [&](auto &fn, const char *name) {
            void *p = dlsym(h, name);
            if (!p && !missing) {
                missing = true;
                api.error = std::string(JC_SENTENCEPIECE_LIBRARY) + " lacks " + name +
                            " (not SentencePiece 0.1.x built with the C++11 ABI?)";
            }
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
        };
        sym(api.construct, "_ZN13sentencepiece22SentencePieceProcessorC1Ev");
        sym(api.destruct, "_ZN13sentencepiece22SentencePieceProcessorD1Ev");
        sym(api.load_serialized, "_ZN13sentencepiece22SentencePieceProcessor23LoadFromSerializedProtoESt17"
                                 "basic_string_viewIcSt11char_traitsIcEE");
        sym(api.encode_ids, "_ZNK13sentencepiece22SentencePieceProcessor6EncodeESt17basic_string_viewIcSt11"
                            "char_traitsIcEEPSt6vectorIiSaIiEE");
        sym(api.piece_size, "_ZNK13sentencepiece22SentencePieceProcessor12GetPieceSizeEv");
        sym(api.id_to_piece, "_ZNK13sentencepiece22SentencePieceProcessor9IdToPieceB5cxx11Ei");
        sym(api.piece_to_id, "_ZNK13sentencepiece22SentencePieceProcessor9PieceToIdESt17basic_string_viewIc"
                             "St11char_traitsIcEE");
        sym(api.is_unknown, "_ZNK13sentencepiece22SentencePieceProcessor9IsUnknownEi");
        sym(api.status_destruct, "_ZN13sentencepiece4util6StatusD1Ev");
        sym(api.status_to_string, "_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev");
        // The handle stays open for the life of the process: tokenizers may outlive any one user.
    });
    return api;
}

// Runs a Status-returning call; returns "" when ok, else the status text.
namespace {

template <typename F> std::string sp_call(const SpApi &api, F &&call)
{
    struct Guard { // destroys the Status even if reading its text throws
        const SpApi &api;
        StatusBuf st;
        ~Guard()
        {
            if (st.rep)
                api.status_destruct(&st);
        }
    } g{api, {}};
    call(&g.st);
    if (g.st.rep == nullptr)
        return std::string();
    alignas(std::string) unsigned char raw[sizeof(std::string)];
    api.status_to_string(reinterpret_cast<std::string *>(raw), &g.st);
    std::string *text = reinterpret_cast<std::string *>(raw);
    std::string message = std::move(*text);
    text->~basic_string();
    return message.empty() ? std::string("unknown SentencePiece error") : message;
}

} // namespace

std::string SpProcessor::load(std::string_view bytes)
{
    return sp_call(api_, [&](StatusBuf *st) { api_.load_serialized(st, storage_, bytes); });
}

std::string SpProcessor::encode(std::string_view text, std::vector<int> *ids) const
{
    return sp_call(api_, [&](StatusBuf *st) { api_.encode_ids(st, storage_, text, ids); });
}

} // namespace jc_text
