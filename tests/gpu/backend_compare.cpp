// Both backends on the GPU, element for element, against each other and the interpreter: the
// hand-built kernels of tests/cpp/codegen_fixtures (every construct of the language, inputs
// sprinkled with NaN, infinities and -0) and the built-in kernels in several configs. The two
// backends must agree bit for bit (a NaN matches any NaN), except where float atomic adds
// order their additions freely; each must agree with the interpreter within rounding and the
// approximate ops' error. Exit status 0 only if all do; without a GPU it says so and exits 0.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <optional>
#include <random>

#include "codegen/ir_query.h"
#include "codegen_fixtures.h"
#include "dsl/error.h"
#include "dsl/frontend.h"
#include "gpu_util.h"
#include "runtime/backend.h"
#include "runtime/builtin_kernels.h"
#include "runtime/gpu_kernel.h"
#include "runtime/interpreter.h"

using namespace tigon;

namespace {

using Tensors = std::vector<std::optional<HostTensor>>;  // per parameter (none for scalars)

// Sizes of run-time dimensions, by name: rows not a multiple of any ROWS, a vocabulary not a
// multiple of any block, a few programs' partial sums.
int64_t runtimeSize(const std::string &dim) { return dim == "V" ? 1500 : dim == "P" ? 5 : 37; }

Tensors randomTensors(const ir::Function &f, std::mt19937 &rng, bool specials) {
  std::normal_distribution<double> normal;
  std::uniform_int_distribution<int> small(-50, 50), pick(0, 63);
  const double special[] = {NAN, INFINITY, -INFINITY, -0.0};
  Tensors out;
  for (const ir::Param &p : f.params) {
    if (p.kind != ir::Param::Kind::Tensor) {
      out.emplace_back();
      continue;
    }
    std::vector<int64_t> sizes;
    for (int d = 0; d < p.rank(); ++d)
      sizes.push_back(p.staticDims[size_t(d)] >= 0 ? p.staticDims[size_t(d)] : runtimeSize(p.dimNames[size_t(d)]));
    HostTensor t(p.dtype, sizes);
    int bytes = ir::dtypeBytes(p.dtype);
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (ir::isFloat(p.dtype)) {
        int k = pick(rng);
        t.set(i, specials && k < 4 ? special[k] : normal(rng));
      } else {
        int64_t v = p.dtype == ir::DType::Bool ? small(rng) > 0 : small(rng);
        std::memcpy(t.bytes.data() + i * bytes, &v, size_t(bytes));  // little-endian: the low bytes
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

// The kernel's arguments over tensors whose data is at data[i]; scalars get fixed values
// (eps small, row counts that cover the rows).
std::vector<KernelArg> arguments(const ir::Function &f, const Tensors &tensors, const std::vector<void *> &data) {
  std::vector<KernelArg> args;
  for (size_t i = 0; i < f.params.size(); ++i) {
    const ir::Param &p = f.params[i];
    if (tensors[i]) args.push_back(KernelArg::of(tensors[i]->arg(data[i])));
    else if (p.dtype == ir::DType::F32) args.push_back(KernelArg::ofFloat(p.name == "eps" ? 1e-6 : 0.5));
    else args.push_back(KernelArg::ofInt(8));
  }
  return args;
}

Tensors runOnGpu(ir::Function f, const Tensors &inputs, const std::string &backend) {
  std::vector<std::unique_ptr<DeviceTensor>> device;  // DeviceTensor owns its memory: never copied
  std::vector<void *> data;
  for (const auto &t : inputs) {
    device.push_back(t ? std::make_unique<DeviceTensor>(*t) : nullptr);
    data.push_back(t ? device.back()->data() : nullptr);
  }
  std::vector<KernelArg> args = arguments(f, inputs, data);
  std::vector<bool> aligned = tensorAlignment(args);
  for (size_t i = 0, t = 0; i < f.params.size(); ++i)
    if (inputs[i]) f.params[i].aligned16 = aligned[t++];
  GpuKernel kernel(f, ptxToCubin(compilePtx(f, cuda::nativeArch(), backend), f.name));
  kernel.launch(args);
  cuda::check(cuda::driver().cuCtxSynchronize(), "synchronize");
  Tensors out = inputs;
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i]) device[i]->download(*out[i]);
  return out;
}

Tensors interpretOnHost(const ir::Function &f, const Tensors &inputs) {
  Tensors out = inputs;
  std::vector<void *> data;
  for (auto &t : out) data.push_back(t ? t->bytes.data() : nullptr);
  interpret(f, arguments(f, out, data));
  return out;
}

// Elements of a that differ from b: bit for bit (tol 0; NaN matches NaN) or, for floats, by
// more than tol * max(1, |b|). Also the largest such relative difference.
struct Diff {
  int64_t count = 0;
  double worst = 0;
};
Diff compare(const HostTensor &a, const HostTensor &b, double tol) {
  Diff d;
  size_t bytes = size_t(ir::dtypeBytes(a.dt));
  for (int64_t i = 0; i < a.numel(); ++i) {
    bool same = std::memcmp(a.bytes.data() + size_t(i) * bytes, b.bytes.data() + size_t(i) * bytes, bytes) == 0;
    if (same || !ir::isFloat(a.dt)) {
      d.count += !same;
      continue;
    }
    double x = a.get(i), y = b.get(i);
    if (std::isnan(x) || std::isnan(y)) {
      d.count += std::isnan(x) != std::isnan(y);
      continue;
    }
    double err = x == y ? 0 : std::fabs(x - y) / std::max(1.0, std::fabs(y));
    d.worst = std::max(d.worst, err);
    d.count += !(err <= tol);
  }
  return d;
}

// Rounding flips and approximate ops allowed against the interpreter: a few ulps of f16/bf16,
// 1e-4 relative for f32.
double interpreterTolerance(ir::DType t) {
  return t == ir::DType::BF16 ? 0x1p-6 : t == ir::DType::F16 ? 0x1p-9 : t == ir::DType::F32 ? 1e-4 : 0;
}

bool hasFloatAtomics(const ir::Function &f) {
  bool found = false;
  codegen::forEachOp(f.body, [&](const ir::Op &op) {
    found = found || (op.kind == ir::OpKind::AtomicAdd && ir::isFloat(f.params[size_t(op.param)].dtype));
  });
  return found;
}

int g_failures = 0, g_passes = 0;

void check(const ir::Function &f, std::mt19937 &rng, bool specials) {
  std::string name = codegen::describeKernel(f);
  try {
    Tensors inputs = randomTensors(f, rng, specials);
    Tensors llvm = runOnGpu(f, inputs, "llvm"), nvrtc = runOnGpu(f, inputs, "nvrtc"), ref = interpretOnHost(f, inputs);
    double backendTol = hasFloatAtomics(f) ? 1e-5 : 0;
    std::string report;
    bool ok = true;
    for (size_t i = 0; i < f.params.size(); ++i) {
      if (!inputs[i] || f.params[i].access == ir::Access::In) continue;
      double tol = interpreterTolerance(f.params[i].dtype);
      Diff between = compare(nvrtc[i].value(), llvm[i].value(), backendTol);
      Diff l = compare(llvm[i].value(), ref[i].value(), tol), n = compare(nvrtc[i].value(), ref[i].value(), tol);
      ok = ok && between.count == 0 && l.count == 0 && n.count == 0;
      report += fmt::format(" | {}: nvrtc/llvm {} differ; vs interpreter llvm {} ({:.1e}) nvrtc {} ({:.1e})", f.params[i].name,
                            between.count, l.count, l.worst, n.count, n.worst);
    }
    ++(ok ? g_passes : g_failures);
    fmt::print("{} {}{}\n", ok ? "ok  " : "FAIL", name, report);
  } catch (const std::exception &e) {
    // a config too large for one block is refused by both backends' shared limits
    std::string why = e.what();
    bool refused = why.find("elements per thread") != std::string::npos;
    ++(refused ? g_passes : g_failures);
    fmt::print("{} {}: {}\n", refused ? "ok  " : "FAIL", name, why);
  }
}

}  // namespace

int main() {
  if (!haveGpu("the backend comparison needs one")) return 0;
  ensureContext(0);
  fmt::print("device {} | llvm {} | nvrtc {}\n", cuda::nativeArch(), backendVersion("llvm"), backendVersion("nvrtc"));
  std::mt19937 rng(20261126);
  for (const ir::Function &f : test::handBuiltKernels()) check(f, rng, true);
  TileModule m = loadTileSource("rms_norm.tile", builtinKernelSources().at("rms_norm.tile"));
  TileModule sums = loadTileSource("column_sum.tile", builtinKernelSources().at("column_sum.tile"));
  for (const char *t : {"f32", "f16", "bf16"})
    for (const char *n : {"7", "1000", "4096"})
      for (auto [rows, warps] : {std::pair{"1", "4"}, {"4", "8"}, {"2", "1"}}) {
        for (const char *kernel : {"rms_norm_fwd", "rms_norm_fwd_f32", "rms_norm_bwd"})
          check(specialize(m, kernel, {{"T", t}, {"N", n}, {"ROWS", rows}, {"WARPS", warps}}), rng, false);
        check(specialize(sums, "column_sum", {{"T", t}, {"N", n}, {"BLOCK", "256"}, {"WARPS", warps}}), rng, false);
      }
  fmt::print("{} passed, {} failed\n", g_passes, g_failures);
  return g_failures == 0 ? 0 : 1;
}
