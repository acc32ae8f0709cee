/*
 * libjaclip for C++17: move-only RAII owners over the C API of jaclip.h, and jaclip::Error (status +
 * jaclip_last_error()) thrown for every failing call. Header-only; link with -ljaclip as for C.
 *
 *     jaclip::Model model("model.jaclip");
 *     for (const auto &p : model.classify("dog.jpeg", {"犬", "猫", "象"}, {"{}の写真"}))
 *         std::printf("%.3f %s\n", p.probability, p.label.c_str());
 *
 * Threads: as in jaclip.h. A const Model or Tokenizer may be used by many threads at once; a Tensor or
 * Image by one thread at a time unless only const members are called.
 */
#ifndef JACLIP_HPP
#define JACLIP_HPP

#include "jaclip.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace jaclip {

/* A failed libjaclip call: status() is the jaclip_status, what() the library's detail. */
class Error : public std::runtime_error {
  public:
    Error(jaclip_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
    jaclip_status status() const noexcept { return status_; }
    /* "JACLIP_ERROR_IO: input/output error" */
    const char *status_string() const noexcept { return jaclip_status_string(status_); }

  private:
    jaclip_status status_;
};

namespace detail {
inline void check(jaclip_status status)
{
    if (status != JACLIP_OK)
        throw Error(status, jaclip_last_error());
}
template <class T, void (*Free)(T *)> struct Deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)> using Owned = std::unique_ptr<T, Deleter<T, Free>>;
/* The C strings of strings, valid while strings lives unchanged. */
inline std::vector<const char *> c_strings(const std::vector<std::string> &strings)
{
    std::vector<const char *> ptrs;
    ptrs.reserve(strings.size());
    for (const std::string &s : strings)
        ptrs.push_back(s.c_str());
    return ptrs;
}

} // namespace detail

/* Throws unless the loaded library is the version this header describes (same major; before 1.0 the
 * same minor) or a later compatible one. */
inline void check_version()
{
    unsigned found = jaclip_version_number(), want = JACLIP_VERSION_NUMBER;
    bool same = found / 10000 == want / 10000 && (want >= 10000 || found / 100 == want / 100);
    if (!same || found < want)
        throw Error(JACLIP_ERROR_INVALID_ARGUMENT, std::string("libjaclip ") + jaclip_version_string() +
                                                       " does not match jaclip.hpp " JACLIP_VERSION_STRING);
}

/* An owned jaclip_tensor. */
class Tensor {
  public:
    Tensor() = default;
    explicit Tensor(jaclip_tensor *owned) noexcept : p_(owned) {}

    static Tensor create(jaclip_dtype dtype, const std::vector<int64_t> &shape, const void *data = nullptr)
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_tensor_create(&t, dtype, shape.size(), shape.data(), data));
        return Tensor(t);
    }
    /* float32 [rows, cols] from row-major data. */
    static Tensor from_floats(size_t rows, size_t cols, const float *data)
    {
        return create(JACLIP_DTYPE_FLOAT32, {int64_t(rows), int64_t(cols)}, data);
    }
    Tensor clone() const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_tensor_clone(&t, p_.get()));
        return Tensor(t);
    }

    jaclip_dtype dtype() const noexcept { return jaclip_tensor_dtype(p_.get()); }
    size_t ndim() const noexcept { return jaclip_tensor_ndim(p_.get()); }
    int64_t dim(size_t axis) const noexcept { return jaclip_tensor_dim(p_.get(), axis); }
    std::vector<int64_t> shape() const
    {
        std::vector<int64_t> s(ndim());
        for (size_t i = 0; i < s.size(); i++)
            s[i] = dim(i);
        return s;
    }
    size_t numel() const noexcept { return jaclip_tensor_numel(p_.get()); }
    size_t nbytes() const noexcept { return jaclip_tensor_nbytes(p_.get()); }
    /* The elements; T must match dtype() (float, int64_t or uint8_t). */
    template <class T> const T *data() const noexcept { return static_cast<const T *>(jaclip_tensor_data(p_.get())); }
    template <class T> T *data_mut() noexcept { return static_cast<T *>(jaclip_tensor_data_mut(p_.get())); }
    template <class T> std::vector<T> to_vector() const { return std::vector<T>(data<T>(), data<T>() + numel()); }

    jaclip_tensor *get() const noexcept { return p_.get(); }
    jaclip_tensor *release() noexcept { return p_.release(); }
    explicit operator bool() const noexcept { return p_ != nullptr; }

  private:
    detail::Owned<jaclip_tensor, jaclip_tensor_free> p_;
};

/* ---- similarity (no model needed) ---- */

inline Tensor similarity(const Tensor &a, const Tensor &b, jaclip_similarity_kind kind = JACLIP_SIMILARITY_COSINE,
                         float scale = 1.0f)
{
    jaclip_tensor *t = nullptr;
    detail::check(jaclip_similarity(&t, a.get(), b.get(), kind, scale));
    return Tensor(t);
}
inline Tensor probabilities(const Tensor &a, const Tensor &b, jaclip_similarity_kind kind = JACLIP_SIMILARITY_COSINE,
                            float scale = 100.0f)
{
    jaclip_tensor *t = nullptr;
    detail::check(jaclip_probabilities(&t, a.get(), b.get(), kind, scale));
    return Tensor(t);
}
inline Tensor softmax(const Tensor &logits)
{
    jaclip_tensor *t = nullptr;
    detail::check(jaclip_softmax(&t, logits.get()));
    return Tensor(t);
}
inline Tensor normalize(const Tensor &x)
{
    jaclip_tensor *t = nullptr;
    detail::check(jaclip_normalize(&t, x.get()));
    return Tensor(t);
}
/* (indices int64 [N, k'], values float32 [N, k']), best first. */
inline std::pair<Tensor, Tensor> topk(const Tensor &scores, size_t k)
{
    jaclip_tensor *idx = nullptr, *val = nullptr;
    detail::check(jaclip_topk(&idx, &val, scores.get(), k));
    return {Tensor(idx), Tensor(val)};
}

/* ---- images ---- */

class Image {
  public:
    explicit Image(const std::string &path, uint64_t max_pixels = 0, uint32_t flags = JACLIP_IMAGE_DEFAULT)
    {
        jaclip_image *img = nullptr;
        detail::check(jaclip_image_load(&img, path.c_str(), max_pixels, flags));
        p_.reset(img);
    }
    static Image from_memory(const void *data, size_t size, uint64_t max_pixels = 0,
                             uint32_t flags = JACLIP_IMAGE_DEFAULT)
    {
        jaclip_image *img = nullptr;
        detail::check(jaclip_image_load_memory(&img, data, size, max_pixels, flags));
        return Image(img);
    }
    static Image from_pixels(const void *pixels, uint32_t width, uint32_t height, size_t stride,
                             jaclip_pixel_format format)
    {
        jaclip_image *img = nullptr;
        detail::check(jaclip_image_from_pixels(&img, pixels, width, height, stride, format));
        return Image(img);
    }

    uint32_t width() const noexcept { return jaclip_image_width(p_.get()); }
    uint32_t height() const noexcept { return jaclip_image_height(p_.get()); }
    std::string mode() const { return p_ ? jaclip_image_mode(p_.get()) : ""; }
    /* uint8 [size, size, 3] */
    Tensor resize_crop(uint32_t size) const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_image_resize_crop(&t, p_.get(), size));
        return Tensor(t);
    }
    const jaclip_image *get() const noexcept { return p_.get(); }

  private:
    explicit Image(jaclip_image *owned) noexcept : p_(owned) {}
    detail::Owned<jaclip_image, jaclip_image_free> p_;
};

namespace detail {
inline std::vector<const jaclip_image *> image_pointers(const std::vector<Image> &images)
{
    std::vector<const jaclip_image *> ptrs;
    ptrs.reserve(images.size());
    for (const Image &img : images)
        ptrs.push_back(img.get());
    return ptrs;
}
} // namespace detail

/* float32 [n, 3, size, size]; mean and std hold 3 floats each. */
inline Tensor preprocess_images(const std::vector<Image> &images, uint32_t size, const float *mean, const float *std)
{
    auto ptrs = detail::image_pointers(images);
    jaclip_tensor *t = nullptr;
    detail::check(jaclip_image_preprocess(&t, ptrs.data(), ptrs.size(), size, mean, std));
    return Tensor(t);
}

/* ---- tokenizer ---- */

/* Non-owning view of a tokenizer: what Model::tokenizer() returns (valid while the model lives) and
 * the base of the owning Tokenizer. */
class TokenizerRef {
  public:
    explicit TokenizerRef(const jaclip_tokenizer *t) noexcept : t_(t) {}

    int64_t vocab_size() const noexcept { return jaclip_tokenizer_vocab_size(t_); }
    /* Throws JACLIP_ERROR_NOT_FOUND for an id outside the vocabulary. */
    std::string id_to_piece(int64_t id) const
    {
        const char *piece = jaclip_tokenizer_id_to_piece(t_, id);
        if (!piece)
            throw Error(JACLIP_ERROR_NOT_FOUND, "token id " + std::to_string(id) + " is not in the vocabulary");
        return piece;
    }
    /* (input_ids, attention_mask), int64 [texts.size(), max_length]. */
    std::pair<Tensor, Tensor> encode(const std::vector<std::string> &texts,
                                     size_t max_length = JACLIP_DEFAULT_MAX_LENGTH) const
    {
        std::vector<const char *> ptrs;
        std::vector<size_t> lengths;
        for (const std::string &s : texts) {
            ptrs.push_back(s.data());
            lengths.push_back(s.size());
        }
        jaclip_tensor *ids = nullptr, *mask = nullptr;
        detail::check(jaclip_tokenizer_encode(&ids, &mask, t_, ptrs.data(), lengths.data(), texts.size(), max_length));
        return {Tensor(ids), Tensor(mask)};
    }
    /* Every id of one text, unframed: int64 [count]. */
    Tensor tokenize(std::string_view text) const
    {
        jaclip_tensor *ids = nullptr;
        detail::check(jaclip_tokenizer_tokenize(&ids, t_, text.data(), text.size()));
        return Tensor(ids);
    }
    const jaclip_tokenizer *get() const noexcept { return t_; }

  protected:
    const jaclip_tokenizer *t_;
};

/* An owned tokenizer loaded from a SentencePiece .model file or its bytes. Move-only. */
class Tokenizer : public TokenizerRef {
  public:
    explicit Tokenizer(const std::string &path) : TokenizerRef(nullptr)
    {
        jaclip_tokenizer *t = nullptr;
        detail::check(jaclip_tokenizer_load(&t, path.c_str()));
        t_ = t;
    }
    static Tokenizer from_memory(const void *data, size_t size)
    {
        jaclip_tokenizer *t = nullptr;
        detail::check(jaclip_tokenizer_load_memory(&t, data, size));
        return Tokenizer(t);
    }
    Tokenizer(Tokenizer &&other) noexcept : TokenizerRef(std::exchange(other.t_, nullptr)) {}
    Tokenizer &operator=(Tokenizer &&other) noexcept
    {
        if (this != &other) {
            jaclip_tokenizer_free(const_cast<jaclip_tokenizer *>(t_));
            t_ = std::exchange(other.t_, nullptr);
        }
        return *this;
    }
    Tokenizer(const Tokenizer &) = delete;
    Tokenizer &operator=(const Tokenizer &) = delete;
    ~Tokenizer() { jaclip_tokenizer_free(const_cast<jaclip_tokenizer *>(t_)); }

  private:
    explicit Tokenizer(jaclip_tokenizer *owned) noexcept : TokenizerRef(owned) {}
};

/* ---- model ---- */

struct ModelOptions {
    std::string device = "cpu"; /* "cpu", "cuda", "cuda:N" */
    int32_t num_threads = 0;    /* cores to use, 0 = all (see jaclip.h) */
    jaclip_precision precision = JACLIP_PRECISION_DEFAULT;
    uint64_t max_image_pixels = 0; /* 0 = JACLIP_DEFAULT_MAX_PIXELS */
    uint32_t image_flags = JACLIP_IMAGE_DEFAULT;
};

struct Prediction {
    std::string label;
    float probability;
};

/* A loaded model. Move-only; const members may run in many threads at once. */
class Model {
  public:
    explicit Model(const std::string &path, const ModelOptions &options = {})
    {
        auto opts = make_options(options);
        jaclip_model *m = nullptr;
        detail::check(jaclip_model_load(&m, path.c_str(), opts.get()));
        p_.reset(m);
    }
    static Model from_memory(const void *data, size_t size, const ModelOptions &options = {})
    {
        auto opts = make_options(options);
        jaclip_model *m = nullptr;
        detail::check(jaclip_model_load_memory(&m, data, size, opts.get()));
        return Model(m);
    }

    int64_t embedding_dim() const noexcept { return jaclip_model_embedding_dim(p_.get()); }
    int64_t image_size() const noexcept { return jaclip_model_image_size(p_.get()); }
    int64_t max_text_length() const noexcept { return jaclip_model_max_text_length(p_.get()); }
    std::string device() const { return p_ ? jaclip_model_device(p_.get()) : ""; }
    jaclip_precision precision() const noexcept { return jaclip_model_precision(p_.get()); }
    const float *image_mean() const noexcept { return jaclip_model_image_mean(p_.get()); }
    const float *image_std() const noexcept { return jaclip_model_image_std(p_.get()); }
    TokenizerRef tokenizer() const noexcept { return TokenizerRef(jaclip_model_tokenizer(p_.get())); }

    Tensor encode_texts(const std::vector<std::string> &texts) const
    {
        std::vector<const char *> ptrs;
        std::vector<size_t> lengths;
        for (const std::string &s : texts) {
            ptrs.push_back(s.data());
            lengths.push_back(s.size());
        }
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_encode_texts(&t, p_.get(), ptrs.data(), lengths.data(), texts.size()));
        return Tensor(t);
    }
    Tensor encode_token_ids(const Tensor &input_ids, const Tensor &attention_mask) const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_encode_token_ids(&t, p_.get(), input_ids.get(), attention_mask.get()));
        return Tensor(t);
    }
    Tensor encode_pixel_values(const Tensor &pixel_values) const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_encode_pixel_values(&t, p_.get(), pixel_values.get()));
        return Tensor(t);
    }
    Tensor encode_image_files(const std::vector<std::string> &paths) const
    {
        std::vector<const char *> ptrs = detail::c_strings(paths);
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_encode_image_files(&t, p_.get(), ptrs.data(), ptrs.size()));
        return Tensor(t);
    }
    /* Encoded JPEG/PNG files held in memory. */
    Tensor encode_image_buffers(const std::vector<std::string_view> &buffers) const
    {
        std::vector<const void *> ptrs;
        std::vector<size_t> sizes;
        for (std::string_view b : buffers) {
            ptrs.push_back(b.data());
            sizes.push_back(b.size());
        }
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_encode_image_buffers(&t, p_.get(), ptrs.data(), sizes.data(), ptrs.size()));
        return Tensor(t);
    }
    Tensor encode_images(const std::vector<Image> &images) const
    {
        auto ptrs = detail::image_pointers(images);
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_encode_images(&t, p_.get(), ptrs.data(), ptrs.size()));
        return Tensor(t);
    }
    Tensor preprocess_images(const std::vector<Image> &images) const
    {
        auto ptrs = detail::image_pointers(images);
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_model_preprocess_images(&t, p_.get(), ptrs.data(), ptrs.size()));
        return Tensor(t);
    }

    /* "cloob" or "clip"; the model's own probability scale (100 for CLOOB, exp(logit_scale) for CLIP). */
    std::string family() const { return jaclip_model_family(p_.get()); }
    float default_scale() const noexcept { return jaclip_model_default_scale(p_.get()); }

    /* Unit-length class embeddings float32 [labels, D] by rinna's ImageNet protocol: Classifier's
     * weights (templates empty = the label alone). */
    Tensor encode_labels(const std::vector<std::string> &labels, const std::vector<std::string> &templates = {}) const;
    /* Zero-shot classification of one image file: labels ranked best first, probabilities summing
     * to 1 (softmax of scale * cosine; scale 0 = default_scale()). */
    std::vector<Prediction> classify(const std::string &image_path, const std::vector<std::string> &labels,
                                     const std::vector<std::string> &templates = {}, float scale = 0.0f) const;

    const jaclip_model *get() const noexcept { return p_.get(); }

  private:
    explicit Model(jaclip_model *owned) noexcept : p_(owned) {}
    using Options = detail::Owned<jaclip_model_options, jaclip_model_options_free>;
    static Options make_options(const ModelOptions &o)
    {
        jaclip_model_options *raw = nullptr;
        detail::check(jaclip_model_options_create(&raw));
        Options opts(raw);
        detail::check(jaclip_model_options_set_device(raw, o.device.c_str()));
        detail::check(jaclip_model_options_set_num_threads(raw, o.num_threads));
        detail::check(jaclip_model_options_set_precision(raw, o.precision));
        detail::check(jaclip_model_options_set_max_image_pixels(raw, o.max_image_pixels));
        detail::check(jaclip_model_options_set_image_flags(raw, o.image_flags));
        return opts;
    }
    detail::Owned<jaclip_model, jaclip_model_free> p_;
};

/* A zero-shot classifier (jaclip_classifier), built in C by rinna's ImageNet protocol: every template
 * filled with every label, text embeddings L2-normalised, averaged per label, re-normalised. Immutable:
 * const members may run on many threads at once. Use it with the model it was built with. */
class Classifier {
  public:
    Classifier(const Model &model, const std::vector<std::string> &labels,
               const std::vector<std::string> &templates = {})
    {
        std::vector<const char *> l = detail::c_strings(labels), t = detail::c_strings(templates);
        jaclip_classifier *c = nullptr;
        detail::check(
            jaclip_classifier_create(&c, model.get(), l.data(), l.size(), t.empty() ? nullptr : t.data(), t.size()));
        p_.reset(c);
    }
    /* A file written by save(), refused unless built with this model. */
    static Classifier load(const std::string &path, const Model &model)
    {
        jaclip_classifier *c = nullptr;
        detail::check(jaclip_classifier_load(&c, path.c_str(), model.get()));
        return Classifier(c);
    }
    void save(const std::string &path) const { detail::check(jaclip_classifier_save(p_.get(), path.c_str())); }

    size_t size() const noexcept { return jaclip_classifier_size(p_.get()); }
    size_t dim() const noexcept { return jaclip_classifier_dim(p_.get()); }
    std::string label(size_t i) const
    {
        const char *s = jaclip_classifier_label(p_.get(), i);
        if (!s)
            throw Error(JACLIP_ERROR_INVALID_ARGUMENT, "label index out of range");
        return s;
    }
    float default_scale() const noexcept { return jaclip_classifier_default_scale(p_.get()); }
    std::string fingerprint() const { return jaclip_classifier_fingerprint(p_.get()); }
    /* float32 [size, dim], unit rows. */
    Tensor weights() const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_classifier_weights(&t, p_.get()));
        return Tensor(t);
    }
    /* Cosines [N, size]; probabilities softmax(scale * cosine) (scale 0 = default_scale()). */
    Tensor scores(const Tensor &features) const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_classifier_scores(&t, p_.get(), features.get()));
        return Tensor(t);
    }
    Tensor classify_features(const Tensor &features, float scale = 0.0f) const
    {
        jaclip_tensor *t = nullptr;
        detail::check(jaclip_classifier_classify_features(&t, p_.get(), features.get(), scale));
        return Tensor(t);
    }
    Tensor classify_image_files(const Model &model, const std::vector<std::string> &paths, float scale = 0.0f) const
    {
        std::vector<const char *> ptrs = detail::c_strings(paths);
        jaclip_tensor *t = nullptr;
        detail::check(
            jaclip_classifier_classify_image_files(&t, p_.get(), model.get(), ptrs.data(), ptrs.size(), scale));
        return Tensor(t);
    }
    /* One image file's labels, best first. */
    std::vector<Prediction> predict(const Model &model, const std::string &image_path, float scale = 0.0f) const
    {
        Tensor probs = classify_image_files(model, {image_path}, scale);
        auto ranked = topk(probs, size());
        std::vector<Prediction> out;
        for (size_t i = 0; i < size_t(ranked.first.dim(1)); i++)
            out.push_back({label(size_t(ranked.first.data<int64_t>()[i])), ranked.second.data<float>()[i]});
        return out;
    }

    const jaclip_classifier *get() const noexcept { return p_.get(); }

  private:
    explicit Classifier(jaclip_classifier *owned) noexcept : p_(owned) {}
    detail::Owned<jaclip_classifier, jaclip_classifier_free> p_;
};

inline Tensor Model::encode_labels(const std::vector<std::string> &labels,
                                   const std::vector<std::string> &templates) const
{
    return Classifier(*this, labels, templates).weights();
}

inline std::vector<Prediction> Model::classify(const std::string &image_path, const std::vector<std::string> &labels,
                                               const std::vector<std::string> &templates, float scale) const
{
    return Classifier(*this, labels, templates).predict(*this, image_path, scale);
}

/* An owned jaclip_index: rows of unit embeddings with labels, searched exactly by cosine (see
 * jaclip.h for threads: const members may run at once; add/remove need the index to themselves). The
 * static *_file functions change an index file durably in place, under its lock. */
class Index {
  public:
    explicit Index(size_t dim, bool float16 = false)
    {
        jaclip_index *ix = nullptr;
        detail::check(jaclip_index_create(&ix, dim));
        p_.reset(ix);
        if (float16)
            detail::check(jaclip_index_set_row_format(ix, JACLIP_INDEX_ROWS_FLOAT16));
    }
    /* flags: JACLIP_INDEX_* of jaclip_index_load. */
    static Index load(const std::string &path, uint32_t flags = 0)
    {
        jaclip_index *ix = nullptr;
        detail::check(jaclip_index_load(&ix, path.c_str(), flags));
        return Index(ix);
    }
    void save(const std::string &path) const { detail::check(jaclip_index_save(p_.get(), path.c_str())); }

    /* embeddings float32 [labels.size(), dim]; rows are normalised as stored. */
    void add(const Tensor &embeddings, const std::vector<std::string> &labels)
    {
        auto ptrs = detail::c_strings(labels);
        detail::check(jaclip_index_add(p_.get(), embeddings.get(), ptrs.data()));
    }
    /* Deletes every row with one of these labels; returns how many. */
    size_t remove(const std::vector<std::string> &labels)
    {
        auto ptrs = detail::c_strings(labels);
        size_t removed = 0;
        detail::check(jaclip_index_remove(p_.get(), ptrs.data(), ptrs.size(), &removed));
        return removed;
    }
    size_t size() const noexcept { return jaclip_index_size(p_.get()); }
    size_t dim() const noexcept { return jaclip_index_dim(p_.get()); }
    std::string label(size_t i) const
    {
        const char *s = jaclip_index_label(p_.get(), i);
        if (!s)
            throw Error(JACLIP_ERROR_INVALID_ARGUMENT, "row index out of range");
        return s;
    }
    std::string fingerprint() const { return jaclip_index_fingerprint(p_.get()); }
    void set_fingerprint(const std::string &fingerprint)
    {
        detail::check(jaclip_index_set_fingerprint(p_.get(), fingerprint.c_str()));
    }
    /* Row indices int64 [N, k] and cosines float32 [N, k] of the best rows for each query, best first. */
    std::pair<Tensor, Tensor> search(const Tensor &queries, size_t k) const
    {
        jaclip_tensor *idx = nullptr, *val = nullptr;
        detail::check(jaclip_index_search(&idx, &val, p_.get(), queries.get(), k));
        return {Tensor(idx), Tensor(val)};
    }

    static void append_file(const std::string &path, const Tensor &embeddings, const std::vector<std::string> &labels)
    {
        auto ptrs = detail::c_strings(labels);
        detail::check(jaclip_index_append_file(path.c_str(), embeddings.get(), ptrs.data()));
    }
    static size_t remove_file(const std::string &path, const std::vector<std::string> &labels)
    {
        auto ptrs = detail::c_strings(labels);
        size_t removed = 0;
        detail::check(jaclip_index_remove_file(path.c_str(), ptrs.data(), ptrs.size(), &removed));
        return removed;
    }
    static void compact_file(const std::string &path)
    {
        detail::check(jaclip_index_compact_file(path.c_str(), nullptr));
    }

    const jaclip_index *get() const noexcept { return p_.get(); }

  private:
    explicit Index(jaclip_index *owned) noexcept : p_(owned) {}
    detail::Owned<jaclip_index, jaclip_index_free> p_;
};

} // namespace jaclip

#endif /* JACLIP_HPP */
