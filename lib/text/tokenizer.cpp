// rinna's Japanese tokenizer: strict UTF-8 check, per-character lower-casing (ICU), special-token
// splitting and stripping, one SentencePiece call per chunk, [CLS] + ids + [PAD] framing.
// The rules are those of docs/tokenizer.md (reference-behaviour.md §3). No libtorch here.
// SentencePiece is reached through text/sentencepiece.hpp (dlopen'ed: sentencepiece.cpp says why).
#include "common/internal.h"
#include "text/sentencepiece.hpp"

#include <unicode/uchar.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using jc_text::SpApi;
using jc_text::SpProcessor;

// The seven special strings, in the order of their reference ids (looked up in the model at load).
constexpr std::string_view kSpecials[] = {"<unk>", "<s>", "</s>", "[PAD]", "[CLS]", "[SEP]", "[MASK]"};
constexpr int kNumSpecials = 7;
constexpr int kPadIndex = 3;
constexpr int kClsIndex = 4;
constexpr size_t kMaxLength = 4096;

}  // namespace

struct jaclip_tokenizer {
    explicit jaclip_tokenizer(const SpApi &api) : sp(api) {}
    SpProcessor sp;
    int special_ids[kNumSpecials];
    int64_t vocab_size;
    // True when no piece holds "▁" after its first character: then no piece spans a whitespace
    // byte, and a prefix cut at whitespace tokenizes as the whole text does up to there.
    bool chunk_at_whitespace;
};

namespace {

// Lower-cases one code point as Python's str.lower does on a one-character string: ICU's full
// mapping in the root locale (İ → i̇); final sigma cannot apply to a lone character. Writes UTF-8 to
// out (at least 32 bytes) and returns its length.
size_t lower_codepoint(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        return 1;
    }
    UChar src[2], dst[8];
    int32_t src_len = 0;
    U16_APPEND_UNSAFE(src, src_len, cp);
    UErrorCode err = U_ZERO_ERROR;
    int32_t dst_len = u_strToLower(dst, 8, src, src_len, "", &err);
    int32_t out_len = 0;
    if (U_SUCCESS(err) && dst_len <= 8) {
        err = U_ZERO_ERROR;
        u_strToUTF8(out, 32, &out_len, dst, dst_len, &err);
        if (U_SUCCESS(err))
            return (size_t)out_len;
    }
    // Unreachable for valid code points (mappings expand to at most 3 UTF-16 units); keep cp as is.
    err = U_ZERO_ERROR;
    u_strToUTF8(out, 32, &out_len, src, src_len, &err);
    return (size_t)out_len;
}

// Strict UTF-8 decoding of one code point at s[i] (n bytes in all). Returns its length, or 0 with
// *why set when the bytes there are not valid UTF-8.
size_t decode_utf8(const unsigned char *s, size_t n, size_t i, uint32_t *cp, const char **why)
{
    unsigned char b = s[i];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t min;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2, min = 0x80, *cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, min = 0x800, *cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, min = 0x10000, *cp = b & 0x07;
    } else {
        *why = (b >= 0x80 && b <= 0xBF) ? "unexpected continuation byte"
               : (b == 0xC0 || b == 0xC1) ? "overlong encoding"
                                          : "byte that never occurs in UTF-8";
        return 0;
    }
    for (size_t k = 1; k < len; k++) {
        if (i + k >= n || (s[i + k] & 0xC0) != 0x80) {
            *why = "truncated multi-byte sequence";
            return 0;
        }
        *cp = (*cp << 6) | (s[i + k] & 0x3F);
    }
    if (*cp < min) {
        *why = "overlong encoding";
        return 0;
    }
    if (*cp >= 0xD800 && *cp <= 0xDFFF) {
        *why = "encoded surrogate";
        return 0;
    }
    if (*cp > 0x10FFFF) {
        *why = "code point above U+10FFFF";
        return 0;
    }
    return len;
}

// Python's str.isspace (bidi class WS, B or S, or category Zs), as str.strip uses it.
bool is_py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

// Index of the special string that starts at s[i], or -1.
int special_at(std::string_view s, size_t i)
{
    if (s[i] != '<' && s[i] != '[')
        return -1;
    for (int k = 0; k < kNumSpecials; k++)
        if (s.compare(i, kSpecials[k].size(), kSpecials[k]) == 0)
            return k;
    return -1;
}

// Length in bytes of the whitespace run at the start / end of valid UTF-8 text t.
size_t leading_space(std::string_view t)
{
    const auto *s = (const unsigned char *)t.data();
    size_t i = 0;
    while (i < t.size()) {
        uint32_t cp;
        const char *why;
        size_t len = decode_utf8(s, t.size(), i, &cp, &why);
        if (len == 0 || !is_py_space(cp))
            break;
        i += len;
    }
    return i;
}

size_t trailing_space(std::string_view t)
{
    const auto *s = (const unsigned char *)t.data();
    size_t end = t.size();
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && (s[start] & 0xC0) == 0x80)
            start--;
        uint32_t cp;
        const char *why;
        if (decode_utf8(s, end, start, &cp, &why) == 0 || !is_py_space(cp))
            break;
        end = start;
    }
    return t.size() - end;
}

enum class TokenizeResult { ok, bad_utf8, run_too_long, span_too_long };

bool is_chunk_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t longest_run(std::string_view t)
{
    size_t longest = 0, run = 0;
    for (char c : t) {
        run = is_chunk_space(c) ? 0 : run + 1;
        longest = run > longest ? run : longest;
    }
    return longest;
}

// Where to end a prefix of about target bytes: at a whitespace byte after prev and at most target,
// else at the first one after target (no further than a run can be), else at the end.
size_t choose_cut(std::string_view t, size_t target, size_t prev)
{
    if (target >= t.size())
        return t.size();
    for (size_t i = target; i > prev; i--)
        if (is_chunk_space(t[i]))
            return i;
    for (size_t i = target + 1; i < t.size(); i++)
        if (is_chunk_space(t[i]) || i - target > JACLIP_TOKENIZER_MAX_RUN)
            return i;
    return t.size();
}

// Appends the ids of text t (lower-cased, between special tokens) until ids holds limit ids.
// SentencePiece turns each whitespace run into a "▁" that starts a piece, and no piece holds one
// inside (chunk_at_whitespace), so every segmentation has a boundary there; its Viterbi pass is
// causal, so a prefix of t cut at whitespace gives exactly the whole text's first ids, float ties
// included (separate calls per chunk would not: ties break on the score summed from the start). The
// prefix grows until it gives enough ids, so a long text costs what its first ids cost.
TokenizeResult encode_piece(const jaclip_tokenizer *tok, std::string_view t, size_t limit, std::vector<int> *ids)
{
    size_t needed = limit - ids->size();
    bool whole = limit == SIZE_MAX || !tok->chunk_at_whitespace || needed > t.size() / 16;
    size_t target = whole ? t.size() : needed * 16, cut = 0;
    std::vector<int> piece_ids;
    for (;;) {
        cut = choose_cut(t, target, cut);
        std::string_view prefix = t.substr(0, cut);
        if (longest_run(prefix) > JACLIP_TOKENIZER_MAX_RUN)
            return TokenizeResult::run_too_long;
        if (prefix.size() > JACLIP_TOKENIZER_MAX_SPAN)
            return TokenizeResult::span_too_long;
        piece_ids.clear();
        std::string err = tok->sp.encode(prefix, &piece_ids);
        if (!err.empty())
            throw std::runtime_error("SentencePiece failed: " + err);
        if (piece_ids.size() >= needed || cut == t.size()) {
            ids->insert(ids->end(), piece_ids.begin(), piece_ids.end());
            return TokenizeResult::ok;
        }
        target = cut * 2;
    }
}

struct Piece {  // a chunk of the lower-cased text, or a special token (special >= 0)
    int special;
    std::string_view text;
};

// Validates, lower-cases and tokenizes one text, appending its ids to ids; stops feeding
// SentencePiece once ids holds at least limit ids (those ids are the same as the whole text's first
// ones). Invalid UTF-8 anywhere sets *bad_offset and *why.
TokenizeResult tokenize_one(const jaclip_tokenizer *tok, const char *text, size_t length, size_t limit,
                            std::vector<int> *ids, size_t *bad_offset, const char **why)
{
    const auto *s = (const unsigned char *)text;
    std::string_view src(text, length);

    // Step 0: strict UTF-8 check over the whole text, before anything else.
    for (size_t i = 0; i < length;) {
        uint32_t cp;
        size_t len = decode_utf8(s, length, i, &cp, why);
        if (len == 0) {
            *bad_offset = i;
            return TokenizeResult::bad_utf8;
        }
        i += len;
    }

    // Step 1: lower-case each character, leaving exact special strings as they are.
    std::string lowered;
    lowered.reserve(length + 8);
    char buf[32];
    for (size_t i = 0; i < length;) {
        int k = special_at(src, i);
        if (k >= 0) {
            lowered.append(kSpecials[k]);
            i += kSpecials[k].size();
            continue;
        }
        uint32_t cp;
        size_t len = decode_utf8(s, length, i, &cp, why);
        lowered.append(buf, lower_codepoint(cp, buf));
        i += len;
    }

    // Step 2: split on the special strings (leftmost match; none is a prefix of another).
    std::string_view low(lowered);
    std::vector<Piece> pieces;
    size_t chunk_start = 0;
    for (size_t i = 0; i < low.size();) {
        int k = special_at(low, i);
        if (k < 0) {
            i++;  // special strings are ASCII, so a byte step never lands inside one
            continue;
        }
        if (i > chunk_start)
            pieces.push_back({-1, low.substr(chunk_start, i - chunk_start)});
        pieces.push_back({k, kSpecials[k]});
        i += kSpecials[k].size();
        chunk_start = i;
    }
    if (chunk_start < low.size())
        pieces.push_back({-1, low.substr(chunk_start)});

    // Step 3: strip whitespace next to special tokens. Step 4: ids, one SentencePiece call per chunk
    // (on a prefix of it when that gives the ids still needed).
    for (size_t p = 0; p < pieces.size() && ids->size() < limit; p++) {
        if (pieces[p].special >= 0) {
            ids->push_back(tok->special_ids[pieces[p].special]);
            continue;
        }
        std::string_view t = pieces[p].text;
        if (p > 0 && pieces[p - 1].special >= 0)
            t.remove_prefix(leading_space(t));
        if (p + 1 < pieces.size() && pieces[p + 1].special >= 0)
            t.remove_suffix(trailing_space(t));
        TokenizeResult r = encode_piece(tok, t, limit, ids);
        if (r != TokenizeResult::ok)
            return r;
    }
    return TokenizeResult::ok;
}

jaclip_status fail_exception()
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "out of memory in the tokenizer");
    } catch (const std::length_error &) {
        return jc_fail(JACLIP_ERROR_OUT_OF_MEMORY, "text too large for the tokenizer");
    } catch (const std::exception &e) {
        return jc_fail(JACLIP_ERROR_INTERNAL, "tokenizer: %s", e.what());
    } catch (...) {
        return jc_fail(JACLIP_ERROR_INTERNAL, "tokenizer: unknown exception");
    }
}

jaclip_status load_serialized(jaclip_tokenizer **out, std::string_view bytes, const char *what)
{
    const SpApi &api = jc_text::sp_api();
    if (!api.error.empty())
        return jc_fail(JACLIP_ERROR_TOKENIZER, "%s", api.error.c_str());
    if (bytes.empty())
        return jc_fail(JACLIP_ERROR_TOKENIZER, "%s: empty SentencePiece model", what);
    std::unique_ptr<jaclip_tokenizer> tok(new jaclip_tokenizer(api));
    std::string err = tok->sp.load(bytes);
    if (!err.empty())
        return jc_fail(JACLIP_ERROR_TOKENIZER, "%s: not a usable SentencePiece model (%s)", what, err.c_str());
    tok->vocab_size = tok->sp.piece_size();
    if (tok->vocab_size <= 0)
        return jc_fail(JACLIP_ERROR_TOKENIZER, "%s: SentencePiece model has no pieces", what);
    // Ids come from the model, as the reference's piece_to_id gives them; framing needs [CLS] and
    // [PAD] to be real pieces.
    for (int k = 0; k < kNumSpecials; k++) {
        tok->special_ids[k] = tok->sp.piece_to_id(kSpecials[k]);
    }
    for (int k : {kClsIndex, kPadIndex}) {
        if (tok->sp.is_unknown(tok->special_ids[k]))
            return jc_fail(JACLIP_ERROR_TOKENIZER, "%s: SentencePiece model has no %s piece", what,
                           std::string(kSpecials[k]).c_str());
    }
    tok->chunk_at_whitespace = true;
    for (int id = 0; id < tok->vocab_size && tok->chunk_at_whitespace; id++) {
        const std::string &piece = tok->sp.id_to_piece(id);
        if (piece.size() > 3 && piece.find("\xE2\x96\x81", 1) != std::string::npos)
            tok->chunk_at_whitespace = false;
    }
    *out = tok.release();
    return JACLIP_OK;
}

jaclip_status fail_tokenize(TokenizeResult r, size_t text, size_t bad, const char *why)
{
    if (r == TokenizeResult::bad_utf8)
        return jc_fail(JACLIP_ERROR_INVALID_UTF8, "text %zu: invalid UTF-8 at byte offset %zu (%s)", text, bad,
                       why);
    if (r == TokenizeResult::run_too_long)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                       "text %zu: more than %d bytes without a space, tab or line break where the tokenizer "
                       "still needs ids (JACLIP_TOKENIZER_MAX_RUN)",
                       text, JACLIP_TOKENIZER_MAX_RUN);
    return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT,
                   "text %zu: more than %d bytes between special tokens where the tokenizer still needs ids "
                   "(JACLIP_TOKENIZER_MAX_SPAN)",
                   text, JACLIP_TOKENIZER_MAX_SPAN);
}

}  // namespace

// Lower-cases one code point (used by the exhaustive lower-casing test, which links this file
// directly; the version script keeps it out of libjaclip.so).
extern "C" size_t jc_tokenizer_lower_codepoint(uint32_t cp, char *out32) { return lower_codepoint(cp, out32); }

// SentencePiece model files are a few MB (rinna's: 0.8 MB); anything this large is not one.
#define JC_TOKENIZER_MAX_BYTES ((size_t)1 << 30)

extern "C" {

jaclip_status jaclip_tokenizer_load(jaclip_tokenizer **out, const char *path)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!path)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "path is NULL");
    try {
        char *data;
        size_t size;
        jaclip_status st = jc_read_regular_file(path, "tokenizer", JC_TOKENIZER_MAX_BYTES, &data, &size);
        if (st)
            return st;
        std::unique_ptr<char, decltype(&std::free)> owned(data, &std::free);
        return load_serialized(out, std::string_view(data, size), path);
    } catch (...) {
        return fail_exception();
    }
}

jaclip_status jaclip_tokenizer_load_memory(jaclip_tokenizer **out, const void *data, size_t size)
{
    if (!out)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out is NULL");
    *out = NULL;
    if (!data && size > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "data is NULL");
    try {
        return load_serialized(out, std::string_view(static_cast<const char *>(data), data ? size : 0),
                               "tokenizer in memory");
    } catch (...) {
        return fail_exception();
    }
}

void jaclip_tokenizer_free(jaclip_tokenizer *tokenizer) { delete tokenizer; }

int64_t jaclip_tokenizer_vocab_size(const jaclip_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->vocab_size : 0;
}

const char *jaclip_tokenizer_id_to_piece(const jaclip_tokenizer *tokenizer, int64_t id)
{
    if (!tokenizer || id < 0 || id >= tokenizer->vocab_size)
        return NULL;
    try {
        return tokenizer->sp.id_to_piece((int)id).c_str();
    } catch (...) {
        return NULL;
    }
}

jaclip_status jaclip_tokenizer_encode(jaclip_tensor **out_ids, jaclip_tensor **out_mask,
                                      const jaclip_tokenizer *tokenizer, const char *const *texts,
                                      const size_t *lengths, size_t n, size_t max_length)
{
    if (out_mask)
        *out_mask = NULL;
    if (!out_ids)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out_ids is NULL");
    *out_ids = NULL;
    if (!tokenizer)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "tokenizer is NULL");
    if (!texts && n > 0)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "texts is NULL");
    if (max_length == 0)
        max_length = JACLIP_DEFAULT_MAX_LENGTH;
    if (max_length < 2 || max_length > kMaxLength)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "max_length must be 0 (77) or 2..%zu, got %zu",
                       kMaxLength, max_length);
    for (size_t i = 0; i < n; i++)
        if (!texts[i])
            return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "texts[%zu] is NULL", i);

    jaclip_tensor *ids_t = NULL, *mask_t = NULL;
    try {
        jaclip_status st = jc_tensor_new_2d(&ids_t, JACLIP_DTYPE_INT64, (int64_t)n, (int64_t)max_length);
        if (st == JACLIP_OK && out_mask)
            st = jc_tensor_new_2d(&mask_t, JACLIP_DTYPE_INT64, (int64_t)n, (int64_t)max_length);
        if (st != JACLIP_OK) {
            jaclip_tensor_free(ids_t);
            return st;
        }
        auto *ids_row = static_cast<int64_t *>(ids_t->data);
        auto *mask_row = mask_t ? static_cast<int64_t *>(mask_t->data) : nullptr;
        std::vector<int> ids;
        for (size_t i = 0; i < n; i++, ids_row += max_length) {
            size_t len = (lengths && lengths[i] != JACLIP_NUL_TERMINATED) ? lengths[i] : strlen(texts[i]);
            size_t bad = 0;
            const char *why = "";
            ids.clear();
            TokenizeResult r = tokenize_one(tokenizer, texts[i], len, max_length - 1, &ids, &bad, &why);
            if (r != TokenizeResult::ok) {
                jaclip_tensor_free(ids_t);
                jaclip_tensor_free(mask_t);
                return fail_tokenize(r, i, bad, why);
            }
            size_t keep = ids.size() < max_length - 1 ? ids.size() : max_length - 1;
            ids_row[0] = tokenizer->special_ids[kClsIndex];
            for (size_t j = 0; j < keep; j++)
                ids_row[1 + j] = ids[j];
            for (size_t j = 1 + keep; j < max_length; j++)
                ids_row[j] = tokenizer->special_ids[kPadIndex];
            if (mask_row) {  // from the count: a literal [PAD] in the text is a real token
                for (size_t j = 0; j < max_length; j++)
                    mask_row[j] = j < 1 + keep ? 1 : 0;
                mask_row += max_length;
            }
        }
    } catch (...) {
        jaclip_tensor_free(ids_t);
        jaclip_tensor_free(mask_t);
        return fail_exception();
    }
    *out_ids = ids_t;
    if (out_mask)
        *out_mask = mask_t;
    return JACLIP_OK;
}

jaclip_status jaclip_tokenizer_tokenize(jaclip_tensor **out_ids, const jaclip_tokenizer *tokenizer,
                                        const char *text, size_t length)
{
    if (!out_ids)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "out_ids is NULL");
    *out_ids = NULL;
    if (!tokenizer)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "tokenizer is NULL");
    if (!text)
        return jc_fail(JACLIP_ERROR_INVALID_ARGUMENT, "text is NULL");
    try {
        if (length == JACLIP_NUL_TERMINATED)
            length = strlen(text);
        std::vector<int> ids;
        size_t bad = 0;
        const char *why = "";
        TokenizeResult r = tokenize_one(tokenizer, text, length, SIZE_MAX, &ids, &bad, &why);
        if (r != TokenizeResult::ok)
            return fail_tokenize(r, 0, bad, why);
        int64_t count = (int64_t)ids.size();
        jaclip_tensor *t = NULL;
        jaclip_status st = jc_tensor_new(&t, JACLIP_DTYPE_INT64, 1, &count);
        if (st != JACLIP_OK)
            return st;
        auto *data = static_cast<int64_t *>(t->data);
        for (size_t j = 0; j < ids.size(); j++)
            data[j] = ids[j];
        *out_ids = t;
        return JACLIP_OK;
    } catch (...) {
        return fail_exception();
    }
}

}  // extern "C"
