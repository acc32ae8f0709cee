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
        std::unique_ptr<faiss::Index> ix(faiss::read_index(&reader));
        if (reader.pos != size)
            return fail(JACLIP_ERROR_INDEX_FORMAT, "faiss data: %zu trailing bytes", size - reader.pos);
        int family = family_of(ix.get());
        if (!family)
            return fail(JACLIP_ERROR_INDEX_FORMAT, "faiss data: not an index structure this library builds");
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
