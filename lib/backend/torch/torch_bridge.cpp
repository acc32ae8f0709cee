// The libtorch plugin: loads the TorchScript model file and runs its encode methods. The only file that
// includes libtorch, so the slow torch headers compile once and no torch type leaks elsewhere; it is
// built into libjaclip-torch.so.1 and reached only through jc_torch_api (torch_bridge.h).
#include "backend/bridge.hpp"
#include "backend/torch/torch_bridge.h"
#include "qlinear/qlinear.h"

#include <ATen/Parallel.h>
#include <caffe2/serialize/read_adapter_interface.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/cuda.h>
#include <torch/library.h>
#include <torch/script.h>

#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <sstream>
#include <string>
#include <vector>

namespace {

const char *const kConfigFile = "jaclip/config.txt";
const char *const kTokenizerFile = "jaclip/tokenizer.model";

// Reads a model file from caller memory without copying it first.
class MemoryReadAdapter final : public caffe2::serialize::ReadAdapterInterface {
  public:
    MemoryReadAdapter(const void *data, size_t size) : data_(static_cast<const char *>(data)), size_(size) {}
    size_t size() const override { return size_; }
    size_t read(uint64_t pos, void *buf, size_t n, const char *) const override
    {
        if (pos >= size_)
            return 0;
        n = std::min<uint64_t>(n, size_ - pos);
        std::memcpy(buf, data_ + pos, n);
        return n;
    }

  private:
    const char *data_;
    size_t size_;
};

// First line of a libtorch message, without the C++ backtrace.
std::string short_message(const std::string &what)
{
    std::string s = what.substr(0, what.find("\nException raised from"));
    if (s.size() > 600)
        s = s.substr(0, 600) + "...";
    return s;
}

jaclip_status fail_from_exception(jaclip_status status, const char *context)
{
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return fail(JACLIP_ERROR_OUT_OF_MEMORY, "%s: out of memory", context);
    } catch (const c10::Error &e) {
        return fail(status, "%s: %s", context, short_message(e.what_without_backtrace()).c_str());
    } catch (const std::exception &e) {
        return fail(status, "%s: %s", context, short_message(e.what()).c_str());
    } catch (...) {
        return fail(status, "%s: unknown C++ exception", context);
    }
}

int usable_cores()
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    return 1;
}

char *copy_out(const std::string &s, size_t *size)
{
    char *p = static_cast<char *>(std::malloc(s.size() + 1));
    if (!p)
        throw std::bad_alloc();
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    *size = s.size();
    return p;
}

// The method must exist and take exactly `args` tensors besides self.
bool has_tensor_method(torch::jit::Module &module, const char *name, size_t args, std::string &why)
{
    auto method = module.find_method(name);
    if (!method) {
        why = std::string("the model has no method ") + name;
        return false;
    }
    const c10::FunctionSchema &schema = method->function().getSchema();
    bool ok = schema.arguments().size() == args + 1 && schema.returns().size() == 1 &&
              schema.returns()[0].type()->kind() == c10::TypeKind::TensorType;
    for (size_t i = 1; ok && i < schema.arguments().size(); i++)
        ok = schema.arguments()[i].type()->kind() == c10::TypeKind::TensorType;
    if (!ok)
        why = std::string("method ") + name + " has the wrong signature: " + c10::toString(schema);
    return ok;
}

} // namespace

// ---- int8-weight Linear layers (JACLIP_PRECISION_INT8_WEIGHTS) ------------------------------------
// Every nn.Linear of the model calls jaclip::q8_linear instead of aten::linear: lib/qlinear's kernel,
// with the weights packed once at load. Output columns are split between torch's threads.
namespace {

at::Tensor q8_linear(const at::Tensor &x, const at::Tensor &packed, const at::Tensor &scale, const at::Tensor &colsum,
                     const c10::optional<at::Tensor> &bias)
{
    TORCH_CHECK(x.device().is_cpu(), "int8-weight Linear layers run on the CPU only");
    TORCH_CHECK(x.dim() >= 1, "q8_linear: input without dimensions");
    const int64_t n = scale.size(0), k = x.size(-1), kp = jc_q8_kpad(k), nb = jc_q8_blocks(n);
    TORCH_CHECK(packed.scalar_type() == at::kChar && packed.numel() == nb * JC_Q8_BLOCK * kp &&
                    colsum.numel() == nb * JC_Q8_BLOCK,
                "q8_linear: an input of width ", k, " does not match the packed weights");
    at::Tensor xf = x.to(at::kFloat).contiguous();
    const int64_t m = k > 0 ? xf.numel() / k : 0;
    at::Tensor xq = at::empty({m, kp}, at::kByte), xs = at::empty({m}, at::kFloat), xz = at::empty({m}, at::kInt);
    const float *xp = xf.data_ptr<float>();
    at::parallel_for(0, m, 16, [&](int64_t r0, int64_t r1) {
        jc_q8_quantize_rows(xp + r0 * k, r1 - r0, k, xq.data_ptr<uint8_t>() + r0 * kp, xs.data_ptr<float>() + r0,
                            xz.data_ptr<int32_t>() + r0);
    });
    at::Tensor b;
    if (bias && bias->defined())
        b = bias->to(at::kFloat).contiguous();
    at::Tensor y = at::empty({m, n}, at::kFloat);
    const int64_t pairs = (nb + 1) / 2; // the kernel's widest tile is two blocks
    at::parallel_for(0, pairs, 1, [&](int64_t p0, int64_t p1) {
        jc_q8_gemm(packed.data_ptr<int8_t>(), scale.data_ptr<float>(), colsum.data_ptr<int32_t>(),
                   b.defined() ? b.data_ptr<float>() : nullptr, n, k, xq.data_ptr<uint8_t>(), xs.data_ptr<float>(),
                   xz.data_ptr<int32_t>(), m, y.data_ptr<float>(), p0 * 2, std::min(p1 * 2, nb));
    });
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = n;
    return y.view(sizes);
}

// The attention products of an int8-weights model on a CPU with native bf16. Those large enough for
// OpenBLAS to wake its own pool (m*n*k >= 262144, its threshold) would leave that pool spinning against
// torch's threads (images b8 ran 1.25x slower so, make bench-peers): they run in bf16 on oneDNN, on
// torch's threads. Smaller ones (a text query's) stay fp32 on the calling thread.
at::Tensor attn_matmul(const at::Tensor &a, const at::Tensor &b)
{
    if (a.dim() < 2 || b.dim() < 2 || a.size(-2) * a.size(-1) * b.size(-1) < 262144)
        return at::matmul(a, b);
    return at::matmul(a.to(at::kBFloat16), b.to(at::kBFloat16)).to(a.scalar_type());
}

TORCH_LIBRARY(jaclip, m)
{
    m.def("q8_linear(Tensor x, Tensor packed, Tensor scale, Tensor colsum, Tensor? bias) -> Tensor", q8_linear);
    m.def("attn_matmul(Tensor a, Tensor b) -> Tensor", attn_matmul);
}

bool is_linear(const torch::jit::Module &module)
{
    const std::string name = module.type()->name() ? module.type()->name()->qualifiedName() : "";
    return name.rfind("__torch__.torch.nn.modules.linear.", 0) == 0 && name.size() > 7 &&
           name.compare(name.size() - 7, 7, ".Linear") == 0;
}

// Packs one Linear's weight and frees the float copy.
void pack_linear(torch::jit::Module &linear)
{
    at::Tensor w = linear.attr("weight").toTensor().to(at::kFloat).contiguous();
    TORCH_CHECK(w.dim() == 2, "a Linear weight of ", w.dim(), " dimensions");
    const int64_t n = w.size(0), k = w.size(1), nb = jc_q8_blocks(n);
    at::Tensor packed = at::empty({nb * JC_Q8_BLOCK * jc_q8_kpad(k)}, at::kChar);
    at::Tensor scale = at::empty({n}, at::kFloat), colsum = at::empty({nb * JC_Q8_BLOCK}, at::kInt);
    at::parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
        jc_q8_pack(w.data_ptr<float>(), n, k, b0, b1, packed.data_ptr<int8_t>(), scale.data_ptr<float>(),
                   colsum.data_ptr<int32_t>());
    });
    linear.register_buffer("q8_packed", packed);
    linear.register_buffer("q8_scale", scale);
    linear.register_buffer("q8_colsum", colsum);
    linear.setattr("weight", at::empty({0}, at::kFloat));
}

// Replaces every call of `from` in a module's forward graph (shared by all instances of its type) with a
// call of `to`, whose inputs `inputs` makes in place of the old call (it may add nodes before it).
// Returns how many calls it replaced.
size_t
replace_calls(torch::jit::Module &module, const char *from, const char *to,
              const std::function<std::vector<torch::jit::NamedValue>(torch::jit::Graph &, torch::jit::Node *)> &inputs)
{
    std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
    const c10::Symbol kind = c10::Symbol::fromQualString(from);
    std::vector<torch::jit::Node *> calls;
    for (torch::jit::Node *node : graph->nodes())
        if (node->kind() == kind)
            calls.push_back(node);
    for (torch::jit::Node *node : calls) {
        torch::jit::WithInsertPoint guard(node);
        torch::jit::Value *out = graph->insert(c10::Symbol::fromQualString(to), inputs(*graph, node));
        node->output()->replaceAllUsesWith(out);
        node->destroy();
    }
    torch::jit::EliminateDeadCode(graph);
    return calls.size();
}

// Makes a Linear type's forward call jaclip::q8_linear on the buffers pack_linear registered.
void rewrite_linear_forward(torch::jit::Module &linear)
{
    size_t replaced =
        replace_calls(linear, "aten::linear", "jaclip::q8_linear", [](torch::jit::Graph &g, torch::jit::Node *node) {
            torch::jit::Value *self = g.inputs()[0];
            return std::vector<torch::jit::NamedValue>{node->input(0), g.insertGetAttr(self, "q8_packed"),
                                                       g.insertGetAttr(self, "q8_scale"),
                                                       g.insertGetAttr(self, "q8_colsum"), node->input(2)};
        });
    TORCH_CHECK(replaced == 1, "a Linear forward with ", replaced, " aten::linear calls");
}

// Makes the model's attention (tools/jaclip_convert/cloob.py's SelfAttention) call jaclip::attn_matmul.
void rewrite_attention(torch::jit::Module &module)
{
    std::vector<c10::ClassTypePtr> done;
    for (torch::jit::Module sub : module.modules()) {
        auto name = sub.type()->name();
        if (!name || name->qualifiedName() != "__torch__.jaclip_convert.cloob.SelfAttention" ||
            std::find(done.begin(), done.end(), sub.type()) != done.end())
            continue;
        done.push_back(sub.type());
        replace_calls(sub, "aten::matmul", "jaclip::attn_matmul", [](torch::jit::Graph &, torch::jit::Node *node) {
            return std::vector<torch::jit::NamedValue>{node->input(0), node->input(1)};
        });
    }
}

void use_int8_weights(torch::jit::Module &module, bool native_bf16)
{
    if (native_bf16)
        rewrite_attention(module);
    std::vector<c10::ClassTypePtr> rewritten, kept;
    // The two projections (direct children) stay fp32: the top-level methods read their weights
    // themselves (F.linear in tools/jaclip_convert/cloob.py), and they are 1% of the weights.
    for (const torch::jit::Module &child : module.children())
        kept.push_back(child.type());
    for (const torch::jit::NameModule &named : module.named_modules()) {
        torch::jit::Module sub = named.value;
        if (!is_linear(sub) || named.name.find('.') == std::string::npos)
            continue;
        TORCH_CHECK(std::find(kept.begin(), kept.end(), sub.type()) == kept.end(),
                    "a Linear layer shares its type with a projection");
        pack_linear(sub);
        if (std::find(rewritten.begin(), rewritten.end(), sub.type()) == rewritten.end()) {
            rewrite_linear_forward(sub);
            rewritten.push_back(sub.type());
        }
    }
    TORCH_CHECK(!rewritten.empty(), "the model has no Linear layers to quantize");
}

} // namespace

// Resolved only where libtorch's BLAS is OpenBLAS (Debian's default BLAS alternative).
extern "C" void openblas_set_num_threads(int) __attribute__((weak));

struct jc_torch_model {
    torch::jit::Module module;
    int intra_threads = 1;
    c10::Device device{c10::kCPU};
    std::string device_name;
    jaclip_precision precision = JACLIP_PRECISION_FP32;
    jaclip_precision stored = JACLIP_PRECISION_FP32;
};

namespace {

// Dynamically quantized Linear layers re-pack their weights for the quantized engine active when the
// module is loaded. Debian's libtorch has no fbgemm; oneDNN is the x86 engine it has.
void use_onednn_quantized_engine()
{
    static const bool done = [] {
        for (at::QEngine e : at::globalContext().supportedQEngines())
            if (e == at::kONEDNN) {
                at::globalContext().setQEngine(at::kONEDNN);
                return true;
            }
        return false;
    }();
    (void)done;
}

} // namespace

// A CUDA device must exist; "cuda" alone means cuda:0.
static jaclip_status check_device(c10::Device &device, const char *name)
{
    if (!device.is_cuda())
        return JACLIP_OK;
    if (!torch::cuda::is_available())
        return fail(JACLIP_ERROR_DEVICE_UNAVAILABLE,
                    "device \"%s\" requested, but this libtorch has no CUDA or sees no GPU "
                    "(rebuild with TORCH_DIR pointing at a CUDA libtorch)",
                    name);
    int64_t count = (int64_t)torch::cuda::device_count();
    if (device.has_index() && device.index() >= count)
        return fail(JACLIP_ERROR_DEVICE_UNAVAILABLE, "device \"%s\" requested, but only %lld GPU(s)", name,
                    (long long)count);
    if (!device.has_index())
        device = c10::Device(c10::kCUDA, 0);
    return JACLIP_OK;
}

// What the loaded module computes in: an int8 file as stored, bf16 where asked for or native, else
// fp32 (the weights converted here). Sets m->stored and m->precision.
static jaclip_status choose_precision(jc_torch_model *m, const jc_torch_load_args *args, const std::string &config,
                                      const c10::Device &device, const char *where)
{
    at::ScalarType stored = at::kFloat;
    for (const auto &p : m->module.parameters()) {
        stored = p.scalar_type();
        break;
    }
    // An int8 file (converter --dtype int8) keeps its quantized Linear layers as they are.
    bool int8_file = config.find("\nprecision=int8\n") != std::string::npos;
    m->stored = int8_file                 ? JACLIP_PRECISION_INT8
                : stored == at::kBFloat16 ? JACLIP_PRECISION_BF16
                                          : JACLIP_PRECISION_FP32;
    if (int8_file && (args->precision == JACLIP_PRECISION_FP32 || args->precision == JACLIP_PRECISION_BF16))
        return fail(JACLIP_ERROR_INVALID_ARGUMENT,
                    "%s: the file holds int8 weights; load it at the default precision or INT8, or convert "
                    "the checkpoint again for fp32 / bf16",
                    where);
    if (!int8_file && args->precision == JACLIP_PRECISION_INT8)
        return fail(JACLIP_ERROR_INVALID_ARGUMENT,
                    "%s: int8 runs only from a file converted with jaclip-convert --dtype int8", where);
    if (int8_file && !device.is_cpu())
        return fail(JACLIP_ERROR_DEVICE_UNAVAILABLE, "%s: int8 models run on the CPU only", where);
    bool int8_weights = args->precision == JACLIP_PRECISION_INT8_WEIGHTS;
    if (int8_weights && int8_file)
        return fail(JACLIP_ERROR_INVALID_ARGUMENT,
                    "%s: int8 weights are made at load from an fp32 or bf16 file; this file is already int8", where);
    if (int8_weights && !device.is_cpu())
        return fail(JACLIP_ERROR_DEVICE_UNAVAILABLE, "%s: int8 weights run on the CPU only", where);
    // The default keeps a bf16 file in bf16 only where bf16 is native (GPUs, AVX512_BF16, AMX):
    // elsewhere it is many times slower than fp32, so the weights are widened at load.
    // AUTO: int8 weights where the caller measured them fastest (AVX512-VNNI without AMX, CPU only);
    // else bf16 on a CPU where it is native (measured faster than fp32 on every such CPU kind); on a
    // GPU, nothing was measured, so it keeps to the default.
    bool is_auto = args->precision == JACLIP_PRECISION_AUTO;
    int8_weights = int8_weights || (is_auto && device.is_cpu() && !int8_file && args->auto_int8_weights);
    bool auto_bf16 = is_auto && device.is_cpu() && args->native_bf16;
    bool as_default = args->precision == JACLIP_PRECISION_DEFAULT || args->precision == JACLIP_PRECISION_AUTO;
    bool want_bf16 = args->precision == JACLIP_PRECISION_BF16 || auto_bf16 ||
                     (as_default && stored == at::kBFloat16 && (args->native_bf16 || !device.is_cpu()));
    want_bf16 = want_bf16 && !int8_weights;
    at::ScalarType target = want_bf16 ? at::kBFloat16 : at::kFloat;
    if (stored != target)
        m->module.to(target);
    if (int8_weights)
        use_int8_weights(m->module, args->native_bf16);
    m->precision = int8_file      ? JACLIP_PRECISION_INT8
                   : int8_weights ? JACLIP_PRECISION_INT8_WEIGHTS
                   : want_bf16    ? JACLIP_PRECISION_BF16
                                  : JACLIP_PRECISION_FP32;
    return JACLIP_OK;
}

static jaclip_status torch_load(jc_torch_model **out, const jc_torch_load_args *args, char **config_text,
                                size_t *config_size, char **tokenizer_bytes, size_t *tokenizer_size)
{
    *out = nullptr;
    *config_text = *tokenizer_bytes = nullptr;
    std::unique_ptr<jc_torch_model> model;
    const char *where = args->path ? args->path : "model in memory";
    try {
        model.reset(new jc_torch_model());
        c10::Device device(args->device);
        jaclip_status st = check_device(device, args->device);
        if (st)
            return st;

        use_onednn_quantized_engine();
        torch::jit::ExtraFilesMap extra{{kConfigFile, ""}, {kTokenizerFile, ""}};
        if (args->data)
            model->module =
                torch::jit::load(std::make_shared<MemoryReadAdapter>(args->data, args->size), device, extra);
        else
            model->module = torch::jit::load(std::string(args->path), device, extra);
        model->module.eval();

        std::string why;
        if (!has_tensor_method(model->module, "encode_image", 1, why) ||
            !has_tensor_method(model->module, "encode_text", 2, why))
            return fail(JACLIP_ERROR_MODEL_FORMAT, "%s: %s", where, why.c_str());

        if ((st = choose_precision(model.get(), args, extra[kConfigFile], device, where)))
            return st;
        int cores = args->num_threads > 0 ? args->num_threads : usable_cores();
        // Debian's libtorch hands fp32 matrix products to OpenBLAS, which runs its own pool of one
        // thread per core; torch's intra-op threads on top of it oversubscribe the cores (measured on
        // 2 cores: 2 torch threads x 2 BLAS threads encoded single images 2.9x slower than 1 x 2).
        // bf16 and int8 products go to oneDNN, which uses torch's own pool.
        bool blas_threads_itself =
            openblas_set_num_threads != nullptr && model->precision == JACLIP_PRECISION_FP32 && device.is_cpu();
        model->intra_threads = blas_threads_itself ? 1 : cores;
        if (openblas_set_num_threads && args->num_threads > 0)
            openblas_set_num_threads(args->num_threads);
        model->device = device;
        model->device_name = device.str();

        *config_text = copy_out(extra[kConfigFile], config_size);
        *tokenizer_bytes = copy_out(extra[kTokenizerFile], tokenizer_size);
    } catch (...) {
        std::free(*config_text);
        *config_text = nullptr;
        return fail_from_exception(JACLIP_ERROR_MODEL_FORMAT, where);
    }
    *out = model.release();
    return JACLIP_OK;
}

static void torch_free(jc_torch_model *model)
{
    try {
        delete model;
    } catch (...) {
        // A destructor that throws has nowhere to report to; the memory is gone either way.
    }
}

namespace {

jaclip_status run_method(const jc_torch_model *model, const char *name, std::vector<c10::IValue> inputs, int64_t n,
                         float *out, int64_t dim)
{
    c10::InferenceMode guard;
    // OpenMP's thread count is a per-thread setting: each call sets it for its own model.
    if (at::get_num_threads() != model->intra_threads)
        at::set_num_threads(model->intra_threads);
    // Methods of a loaded module may run on many threads at once; Module is a handle, so a copy is
    // cheap and avoids mutating the shared one.
    torch::jit::Module module = model->module;
    at::Tensor result = module.get_method(name)(std::move(inputs)).toTensor();
    if (result.dim() != 2 || result.size(0) != n || result.size(1) != dim) {
        std::ostringstream shape;
        shape << result.sizes();
        return fail(JACLIP_ERROR_MODEL_FORMAT, "%s returned shape %s, expected [%lld, %lld]", name, shape.str().c_str(),
                    (long long)n, (long long)dim);
    }
    result = result.to(at::kCPU, at::kFloat).contiguous();
    std::memcpy(out, result.data_ptr<float>(), sizeof(float) * n * dim);
    // Activations of tens of MB each are freed into glibc's heaps (its mmap threshold rises after the
    // first large free) and would stay resident: a batch of 8 images left ~600 MB behind a 787 MB
    // model. Handing free pages back keeps the process near its weights' size.
    malloc_trim(0);
    return JACLIP_OK;
}

} // namespace

static jaclip_status torch_encode_image(const jc_torch_model *model, const float *pixels, int64_t n, int64_t size,
                                        float *out, int64_t dim)
{
    try {
        at::Tensor input = torch::from_blob(const_cast<float *>(pixels), {n, 3, size, size}, at::kFloat);
        if (!model->device.is_cpu())
            input = input.to(model->device);
        return run_method(model, "encode_image", {input}, n, out, dim);
    } catch (...) {
        return fail_from_exception(JACLIP_ERROR_BACKEND, "encode_image");
    }
}

static jaclip_status torch_encode_text(const jc_torch_model *model, const int64_t *ids, const int64_t *mask, int64_t n,
                                       int64_t length, int64_t row_stride, float *out, int64_t dim)
{
    try {
        at::Tensor input_ids =
            torch::from_blob(const_cast<int64_t *>(ids), {n, length}, {row_stride, 1}, at::kLong).contiguous();
        at::Tensor attention =
            torch::from_blob(const_cast<int64_t *>(mask), {n, length}, {row_stride, 1}, at::kLong).contiguous();
        if (!model->device.is_cpu()) {
            input_ids = input_ids.to(model->device);
            attention = attention.to(model->device);
        }
        return run_method(model, "encode_text", {input_ids, attention}, n, out, dim);
    } catch (...) {
        return fail_from_exception(JACLIP_ERROR_BACKEND, "encode_text");
    }
}

static const char *torch_device(const jc_torch_model *model) { return model->device_name.c_str(); }

static jaclip_precision torch_precision(const jc_torch_model *model) { return model->precision; }

static jaclip_precision torch_stored_precision(const jc_torch_model *model) { return model->stored; }

extern "C" __attribute__((visibility("default"))) int jc_torch_plugin_entry(int interface, const jc_torch_host *host,
                                                                            jc_torch_api *api)
{
    if (interface != JC_TORCH_PLUGIN_INTERFACE || !host || !host->vfail || !api)
        return -1;
    g_vfail = host->vfail;
    api->load = torch_load;
    api->free_model = torch_free;
    api->encode_image = torch_encode_image;
    api->encode_text = torch_encode_text;
    api->device = torch_device;
    api->precision = torch_precision;
    api->stored_precision = torch_stored_precision;
    return 0;
}
