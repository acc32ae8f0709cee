// The faiss plugin (libjaclip-faiss.so.1): the only file that includes faiss. It wraps faiss's C++ API
// in the C table of faiss_bridge.h; no exception leaves it.
#include "backend/bridge.hpp"
#include "backend/faiss/faiss_bridge.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/IndexIVFPQ.h>
#include <faiss/impl/io.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>
#include <faiss/invlists/InvertedLists.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <stdexcept>
#include <unordered_set>

// ---- allocations while faiss reads a file -----------------------------------------------------------
// faiss::read_index trusts the sizes in its stream (it resizes a vector before reading its bytes) and
// leaks what it built when it throws half-way. A crafted ANN file with valid checksums (test/fuzz/
// fuzz_ann.c) made it allocate 3.5 GB from 25 bytes, and leak on every refusal. So the plugin, linked
// -Bsymbolic, defines operator new/delete for its own code (faiss included): while a read is under way
// on this thread, allocations draw on a budget tied to the file's size, and each live one is recorded,
// so that a failed read frees everything it allocated. Other code and other threads are unaffected.
namespace {

template <class T> struct MallocAllocator {  // the record must not allocate through operator new
    using value_type = T;
    MallocAllocator() = default;
    template <class U> MallocAllocator(const MallocAllocator<U> &) {}
    T *allocate(size_t n)
    {
        if (void *p = std::malloc(n * sizeof(T)))
            return static_cast<T *>(p);
        throw std::bad_alloc();
    }
    void deallocate(T *p, size_t) { std::free(p); }
    bool operator==(const MallocAllocator &) const { return true; }
    bool operator!=(const MallocAllocator &) const { return false; }
};

struct ReadBudget {
    size_t left;
    std::unordered_set<void *, std::hash<void *>, std::equal_to<void *>, MallocAllocator<void *>> live;
};
thread_local ReadBudget *t_budget;

void *budgeted_new(size_t n)
{
    ReadBudget *b = t_budget;
    if (b) {
        if (n > b->left)
            throw std::bad_alloc();
        b->left -= n;
    }
    void *p = std::malloc(n ? n : 1);
    if (!p)
        throw std::bad_alloc();
    if (b) {
        t_budget = nullptr;  // the record's own node is not part of the read
        try {
            b->live.insert(p);
        } catch (...) {
            t_budget = b;
            std::free(p);
            throw;
        }
        t_budget = b;
    }
    return p;
}

void budgeted_delete(void *p) noexcept
{
    if (ReadBudget *b = t_budget)
        b->live.erase(p);
    std::free(p);
}

// Runs read under a budget; on failure frees what it left allocated (faiss objects own only memory)
// and throws a copy of the error: the original is destroyed first, while its frees are still
// recorded, so nothing is freed twice.
template <class F> void with_budget(size_t budget, F &&read)
{
    ReadBudget b{budget, {}};
    std::string message;  // allocated untracked
    bool failed = false, out_of_budget = false;
    t_budget = &b;
    try {
        read();
    } catch (const std::bad_alloc &) {
        failed = out_of_budget = true;
    } catch (const std::exception &e) {
        failed = true;
        t_budget = nullptr;
        message = e.what();
        t_budget = &b;
    } catch (...) {
        failed = true;
    }
    t_budget = nullptr;
    if (!failed)
        return;
    for (void *p : b.live)
        std::free(p);
    if (out_of_budget)
        throw std::bad_alloc();
    throw std::runtime_error(message.empty() ? "unknown exception while reading" : message);
}

}  // namespace

void *operator new(size_t n) { return budgeted_new(n); }
void *operator new[](size_t n) { return budgeted_new(n); }
void operator delete(void *p) noexcept { budgeted_delete(p); }
void operator delete[](void *p) noexcept { budgeted_delete(p); }
void operator delete(void *p, size_t) noexcept { budgeted_delete(p); }
void operator delete[](void *p, size_t) noexcept { budgeted_delete(p); }

struct jc_faiss_index {
    std::unique_ptr<faiss::Index> index;
    jc_faiss_family family;
};

namespace {

jaclip_status fail_from_exception(const char *context)
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return fail(JACLIP_ERROR_OUT_OF_MEMORY, "faiss %s: out of memory", context);
    } catch (const std::exception &e) {
        std::string s = e.what();
        if (s.size() > 600)
            s = s.substr(0, 600) + "...";
        return fail(JACLIP_ERROR_BACKEND, "faiss %s: %s", context, s.c_str());
    } catch (...) {
        return fail(JACLIP_ERROR_BACKEND, "faiss %s: unknown C++ exception", context);
    }
}

// Reads faiss's serialisation straight from caller memory, never past its end.
struct MemoryReader final : faiss::IOReader {
    const unsigned char *data;
    size_t size, pos = 0;
    MemoryReader(const unsigned char *d, size_t n) : data(d), size(n) {}
    size_t operator()(void *ptr, size_t item_size, size_t nitems) override
    {
        if (item_size == 0 || pos >= size)
            return 0;
        size_t fit = std::min(nitems, (size - pos) / item_size);
        std::memcpy(ptr, data + pos, fit * item_size);
        pos += fit * item_size;
        return fit;
    }
};

// faiss reads its fields without checking that they agree, and searches trust them: a crafted file
// whose PQ says 9 bits a code, or whose list holds fewer code bytes than ids, read out of bounds at
// the first search (test/fuzz/fuzz_ann.c). These are the invariants search relies on, for the three
// structures this library builds. Returns what is wrong, or nullptr. libjaclip checks the stream
// itself before it gets here (lib/ann/ann_faiss_check.c); these stay as a second line, on what faiss
// actually built.
using idx_t = faiss::Index::idx_t;

bool flat_holds(const faiss::Index *index, int d, idx_t rows)
{
    auto flat = dynamic_cast<const faiss::IndexFlat *>(index);
    return flat && flat->d == d && flat->ntotal == rows && flat->code_size == sizeof(float) * (size_t)d &&
           flat->codes.size() == flat->code_size * (size_t)rows;
}

const char *ivf_inconsistency(const faiss::IndexIVF *ivf, size_t code_size)
{
    if (ivf->d <= 0 || ivf->nlist == 0 || ivf->ntotal < 0 || ivf->code_size != code_size)
        return "IVF sizes";
    if (!flat_holds(ivf->quantizer, ivf->d, (idx_t)ivf->nlist))
        return "IVF coarse quantizer";
    auto lists = dynamic_cast<const faiss::ArrayInvertedLists *>(ivf->invlists);
    if (!lists || lists->nlist != ivf->nlist || lists->code_size != code_size || lists->codes.size() != ivf->nlist ||
        lists->ids.size() != ivf->nlist)
        return "IVF lists";
    idx_t total = 0;
    for (size_t l = 0; l < ivf->nlist; l++) {
        const auto &ids = lists->ids[l];
        if (lists->codes[l].size() != ids.size() * code_size)
            return "IVF list codes";
        for (idx_t id : ids)
            if (id < 0 || id >= ivf->ntotal)
                return "IVF list ids";
        total += (idx_t)ids.size();
    }
    return total == ivf->ntotal ? nullptr : "IVF list lengths";
}

const char *pq_inconsistency(const faiss::IndexIVFPQ *ivf)
{
    const faiss::ProductQuantizer &pq = ivf->pq;
    if (pq.nbits != 8 || pq.ksub != 256 || pq.M == 0 || pq.d != (size_t)ivf->d || pq.dsub * pq.M != pq.d ||
        pq.code_size != pq.M || pq.centroids.size() != pq.M * pq.ksub * pq.dsub ||
        ivf->polysemous_ht != 0)
        return "product quantizer";
    return ivf_inconsistency(ivf, pq.code_size);
}

const char *hnsw_inconsistency(const faiss::IndexHNSWFlat *ix)
{
    const faiss::HNSW &g = ix->hnsw;
    idx_t n = ix->ntotal;
    if (n < 0 || !flat_holds(ix->storage, ix->d, n) || g.levels.size() != (size_t)n ||
        g.offsets.size() != (size_t)n + 1 || g.offsets[0] != 0 || g.cum_nneighbor_per_level.empty())
        return "HNSW sizes";
    int levels = (int)g.cum_nneighbor_per_level.size() - 1;
    if (g.max_level < -1 || g.max_level >= levels || (n > 0) != (g.entry_point >= 0) || g.entry_point >= n ||
        (n > 0 && g.levels[(size_t)g.entry_point] != g.max_level + 1))
        return "HNSW entry point";
    for (size_t i = 1; i < g.cum_nneighbor_per_level.size(); i++)
        if (g.cum_nneighbor_per_level[i] < g.cum_nneighbor_per_level[i - 1])
            return "HNSW levels";
    for (idx_t i = 0; i < n; i++) {
        int level = g.levels[(size_t)i];
        if (level < 1 || level > levels || g.offsets[(size_t)i + 1] - g.offsets[(size_t)i] !=
                                               (size_t)g.cum_nneighbor_per_level[(size_t)level])
            return "HNSW node levels";
    }
    if (g.neighbors.size() != g.offsets[(size_t)n])
        return "HNSW neighbour lists";
    for (faiss::HNSW::storage_idx_t v : g.neighbors)
        if (v < -1 || v >= n)
            return "HNSW neighbours";
    return nullptr;
}

// The family of a deserialised index, or 0 when it is anything this library does not build (another
// metric, on-disk inverted lists, a pre-transform...).
int family_of(const faiss::Index *ix)
{
    if (ix->metric_type != faiss::METRIC_INNER_PRODUCT)
        return 0;
    if (auto hnsw = dynamic_cast<const faiss::IndexHNSWFlat *>(ix)) {
        auto flat = dynamic_cast<const faiss::IndexFlat *>(hnsw->storage);
        return flat && flat->d == ix->d && flat->ntotal == ix->ntotal ? JC_FAISS_HNSW_FLAT : 0;
    }
    auto ivf = dynamic_cast<const faiss::IndexIVF *>(ix);
    if (!ivf || !ivf->quantizer || ivf->quantizer->d != ix->d ||
        ivf->quantizer->ntotal != (faiss::Index::idx_t)ivf->nlist ||
        !dynamic_cast<const faiss::ArrayInvertedLists *>(ivf->invlists) || ivf->invlists->nlist != ivf->nlist)
        return 0;
    if (dynamic_cast<const faiss::IndexIVFFlat *>(ix) && typeid(*ix) == typeid(faiss::IndexIVFFlat))
        return JC_FAISS_IVF_FLAT;
    if (typeid(*ix) == typeid(faiss::IndexIVFPQ))
        return JC_FAISS_IVF_PQ;
    return 0;
}

// faiss runs its own OpenMP threads and calls BLAS from inside them; a multi-threaded OpenBLAS under
// them oversubscribes the cores (builds here went from seconds to minutes). Training and adding
// therefore run OpenBLAS single-threaded, restoring its setting after: the process's other BLAS
// users (numpy) keep theirs.
class SerialBlas {
  public:
    SerialBlas()
    {
        // The BLAS this plugin was linked with is loaded already; its handle also searches what it
        // depends on (libopenblas.so.0 behind Debian's libblas.so.3).
        void *blas = dlopen("libblas.so.3", RTLD_LAZY | RTLD_NOLOAD);
        if (!blas)
            return;
        *(void **)&get_ = dlsym(blas, "openblas_get_num_threads");
        *(void **)&set_ = dlsym(blas, "openblas_set_num_threads");
        dlclose(blas); // drops only the reference NOLOAD took
        if (get_ && set_) {
            saved_ = get_();
            set_(1);
        }
    }
    ~SerialBlas()
    {
        if (get_ && set_)
            set_(saved_);
    }

  private:
    int (*get_)() = nullptr;
    void (*set_)(int) = nullptr;
    int saved_ = 1;
};

jaclip_status bridge_create(jc_faiss_index **out, const jc_faiss_build_args *a)
{
    *out = nullptr;
    try {
        std::string spec;
        switch (a->family) {
        case JC_FAISS_IVF_FLAT: spec = "IVF" + std::to_string(a->nlist) + ",Flat"; break;
        case JC_FAISS_IVF_PQ: spec = "IVF" + std::to_string(a->nlist) + ",PQ" + std::to_string(a->pq_m) + "x8"; break;
        case JC_FAISS_HNSW_FLAT: spec = "HNSW" + std::to_string(a->hnsw_m) + ",Flat"; break;
        default: return fail(JACLIP_ERROR_INTERNAL, "faiss bridge: unknown family %d", (int)a->family);
        }
        std::unique_ptr<faiss::Index> ix(faiss::index_factory((int)a->dim, spec.c_str(), faiss::METRIC_INNER_PRODUCT));
        if (auto ivf = dynamic_cast<faiss::IndexIVF *>(ix.get())) {
            ivf->cp.niter = (int)a->train_iterations;
            ivf->cp.seed = 1234; // the same rows build the same index
            if (auto pq = dynamic_cast<faiss::IndexIVFPQ *>(ivf)) {
                pq->pq.cp.seed = 1234;
                pq->pq.cp.niter = (int)a->train_iterations;
                // Polysemous codes serve Hamming filtering, which search never uses; training them
                // takes minutes.
                pq->do_polysemous_training = false;
            }
        }
        *out = new jc_faiss_index{std::move(ix), a->family};
        return JACLIP_OK;
    } catch (...) {
        return fail_from_exception("create");
    }
}

void bridge_free(jc_faiss_index *index) { delete index; }

jaclip_status bridge_train(jc_faiss_index *index, int64_t n, const float *x)
{
    try {
        SerialBlas serial;
        index->index->train(n, x);
        return JACLIP_OK;
    } catch (...) {
        return fail_from_exception("train");
    }
}

jaclip_status bridge_add(jc_faiss_index *index, int64_t n, const float *x)
{
    try {
        SerialBlas serial;
        index->index->add(n, x);
        return JACLIP_OK;
    } catch (...) {
        return fail_from_exception("add");
    }
}

jaclip_status bridge_search(const jc_faiss_index *index, int64_t nq, const float *queries, int64_t k, int64_t nprobe,
                            int64_t ef_search, float *scores, int64_t *labels)
{
    try {
        // Per-call parameters, so concurrent searches with different knobs never race.
        faiss::SearchParametersIVF ivf;
        faiss::SearchParametersHNSW hnsw;
        const faiss::SearchParameters *params = nullptr;
        if (auto ivf_index = dynamic_cast<const faiss::IndexIVF *>(index->index.get())) {
            ivf.nprobe = nprobe > 0 ? (size_t)nprobe : ivf_index->nprobe;
            params = &ivf;
        } else if (auto hnsw_index = dynamic_cast<const faiss::IndexHNSW *>(index->index.get())) {
            hnsw.efSearch = ef_search > 0 ? (int)ef_search : hnsw_index->hnsw.efSearch;
            params = &hnsw;
        }
        static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "faiss labels are 64-bit");
        index->index->search(nq, queries, k, scores, reinterpret_cast<faiss::Index::idx_t *>(labels), params);
        return JACLIP_OK;
    } catch (...) {
        return fail_from_exception("search");
    }
}

jaclip_status bridge_serialize(const jc_faiss_index *index, unsigned char **out, size_t *size)
{
    *out = nullptr;
    *size = 0;
    try {
        faiss::VectorIOWriter w;
        faiss::write_index(index->index.get(), &w);
        unsigned char *buf = static_cast<unsigned char *>(std::malloc(w.data.size() ? w.data.size() : 1));
        if (!buf)
            return fail(JACLIP_ERROR_OUT_OF_MEMORY, "faiss serialize: out of memory (%zu bytes)", w.data.size());
        std::memcpy(buf, w.data.data(), w.data.size());
        *out = buf;
        *size = w.data.size();
        return JACLIP_OK;
    } catch (...) {
        return fail_from_exception("serialize");
    }
}

jaclip_status bridge_deserialize(jc_faiss_index **out, const unsigned char *data, size_t size)
{
    *out = nullptr;
    try {
        MemoryReader reader(data, size);
        std::unique_ptr<faiss::Index> ix;
        // What a real file needs: its data once or twice over (codes, lists, graph), plus tables
        // computed at load (IVF-PQ's precomputed table: at most nlist x 16 KB).
        with_budget(4 * size + (256u << 20), [&] { ix.reset(faiss::read_index(&reader)); });
        if (reader.pos != size)
            return fail(JACLIP_ERROR_INDEX_FORMAT, "faiss data: %zu trailing bytes", size - reader.pos);
        int family = family_of(ix.get());
        if (!family)
            return fail(JACLIP_ERROR_INDEX_FORMAT, "faiss data: not an index structure this library builds");
        const char *bad = family == JC_FAISS_HNSW_FLAT
                              ? hnsw_inconsistency(static_cast<const faiss::IndexHNSWFlat *>(ix.get()))
                          : family == JC_FAISS_IVF_PQ
                              ? pq_inconsistency(static_cast<const faiss::IndexIVFPQ *>(ix.get()))
                              : ivf_inconsistency(static_cast<const faiss::IndexIVF *>(ix.get()),
                                                  sizeof(float) * (size_t)ix->d);
        if (bad)
            return fail(JACLIP_ERROR_INDEX_FORMAT, "faiss data: inconsistent %s (crafted or damaged file)", bad);
        *out = new jc_faiss_index{std::move(ix), (jc_faiss_family)family};
        return JACLIP_OK;
    } catch (const std::bad_alloc &) {
        return fail(JACLIP_ERROR_INDEX_FORMAT, "faiss data: sizes beyond memory (damaged file?)");
    } catch (...) {
        jaclip_status st = fail_from_exception("read");
        return st == JACLIP_ERROR_BACKEND ? JACLIP_ERROR_INDEX_FORMAT : st;
    }
}

void bridge_info(const jc_faiss_index *index, jc_faiss_info *out)
{
    const faiss::Index *ix = index->index.get();
    auto ivf = dynamic_cast<const faiss::IndexIVF *>(ix);
    *out = jc_faiss_info{index->family, ix->d, ix->ntotal, ivf ? (int64_t)ivf->nlist : 0,
                         ix->metric_type == faiss::METRIC_INNER_PRODUCT};
}

} // namespace

extern "C" __attribute__((visibility("default"))) int jc_faiss_plugin_entry(int interface, const jc_faiss_host *host,
                                                                            jc_faiss_api *api)
{
    if (interface != JC_FAISS_PLUGIN_INTERFACE || !host || !host->vfail || !api)
        return -1;
    g_vfail = host->vfail;
    api->create = bridge_create;
    api->free_index = bridge_free;
    api->train = bridge_train;
    api->add = bridge_add;
    api->search = bridge_search;
    api->serialize = bridge_serialize;
    api->deserialize = bridge_deserialize;
    api->info = bridge_info;
    return 0;
}
