#include "ops/torch_bridge.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>
#include <fmt/format.h>

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "dsl/error.h"
#include "runtime/autotune.h"
#include "runtime/builtin_kernels.h"
#include "runtime/interpreter.h"
#include "runtime/jit.h"
#include "runtime/scratch_timer.h"

namespace tigon::ops {

ir::DType dtypeOf(const at::Tensor &t) {
  switch (t.scalar_type()) {
    case at::kFloat: return ir::DType::F32;
    case at::kHalf: return ir::DType::F16;
    case at::kBFloat16: return ir::DType::BF16;
    case at::kInt: return ir::DType::I32;
    case at::kLong: return ir::DType::I64;
    case at::kBool: return ir::DType::Bool;
    default: TORCH_CHECK_TYPE(false, "tigon: unsupported dtype ", t.scalar_type());
  }
}

at::ScalarType scalarTypeOf(ir::DType t) {
  switch (t) {
    case ir::DType::F32: return at::kFloat;
    case ir::DType::F16: return at::kHalf;
    case ir::DType::BF16: return at::kBFloat16;
    case ir::DType::I32: return at::kInt;
    case ir::DType::I64: return at::kLong;
    case ir::DType::Bool: return at::kBool;
  }
  return at::kFloat;
}

KernelArg tensorArg(const at::Tensor &t) {
  TORCH_CHECK(t.dim() == 0 || t.stride(-1) == 1 || t.size(-1) <= 1, "tigon: the last dimension must be contiguous");
  TensorArg a;
  a.data = t.data_ptr();
  a.dtype = dtypeOf(t);
  a.sizes = t.sizes().vec();
  a.strides = t.strides().vec();
  return KernelArg::of(std::move(a));
}

const TileModule &builtinModule(const std::string &file) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<TileModule>> modules;
  std::lock_guard<std::mutex> lock(mutex);
  auto &m = modules[file];
  if (!m) m = std::make_unique<TileModule>(loadTileSource(file, builtinKernelSources().at(file)));
  return *m;
}

int64_t parallelism(const at::Device &device) {
  if (!device.is_cuda()) return 4;
  static std::map<int, int64_t> sms;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  auto &n = sms[device.index()];
  if (!n) n = at::cuda::getDeviceProperties(device.index())->multiProcessorCount;
  return n;
}

namespace {

// The CPU path: the interpreter on the kernel specialized with its default tune values.
void interpretOnCpu(const TileModule &m, const std::string &kernel, const Bindings &fixed, const std::vector<KernelArg> &args) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const ir::Function>> specialized;
  const ast::Kernel *k = m.ast.findKernel(kernel);
  if (!k) throw Error(fmt::format("no kernel '{}' in {}", kernel, m.path));
  Bindings b = defaultConfig(*k, fixed);
  std::string key = fmt::format("{} {} {}", m.path, kernel, configString(b));
  std::shared_ptr<const ir::Function> f;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto &slot = specialized[key];
    if (!slot) slot = std::make_shared<const ir::Function>(specialize(m, kernel, b));
    f = slot;
  }
  interpret(*f, args);
}

}  // namespace

void runKernel(const TileModule &m, const std::string &kernel, const Bindings &fixed, const std::vector<KernelArg> &args,
               const at::Device &device, int64_t rows, bool tune, int64_t columns) {
  guarded([&] {
    if (!device.is_cuda()) return interpretOnCpu(m, kernel, fixed, args);
    int index = device.index();
    CUstream stream = c10::cuda::getCurrentCUDAStream(index).stream();
    std::vector<bool> aligned = tensorAlignment(args);
    std::string tuneKey = tune ? fmt::format("{} {} rows~{}", kernel, configString(fixed), rowBucket(rows))
                               : fmt::format("{} {} defaults", kernel, configString(fixed));
    if (tune && columns > 0) tuneKey += fmt::format(" columns~{}", rowBucket(columns));
    // the hot path: a call like an earlier one goes straight to its kernel
    std::string callKey = fmt::format("{} {} {} ", m.sourceHash, tuneKey, index);
    for (bool a : aligned) callKey += a ? '1' : '0';
    static std::mutex mutex;
    static std::unordered_map<std::string, std::shared_ptr<const CompiledKernel>> seen;
    std::shared_ptr<const CompiledKernel> k;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (auto it = seen.find(callKey); it != seen.end()) k = it->second;
    }
    if (!k) {
      Bindings bound = fixed;
      if (!tune) {  // every tune value bound to its default: one candidate, which Jit::tuned does not time
        const ast::Kernel *def = m.ast.findKernel(kernel);
        if (!def) throw Error(fmt::format("no kernel '{}' in {}", kernel, m.path));
        bound = defaultConfig(*def, fixed);
      }
      Jit &jit = Jit::instance();
      Bindings b = jit.tuned(m, kernel, bound, aligned, tuneKey,
                             [&](const CompiledKernel &c) { return timeOnScratch(*c.gpu, c.ir, args, stream); }, index);
      k = jit.kernel(m, kernel, b, aligned, index);
      std::lock_guard<std::mutex> lock(mutex);
      seen[callKey] = k;
    }
    k->gpu->launch(args, stream);
  });
}

}  // namespace tigon::ops
