// GPU check and benchmark of the built-in kernels other than rms_norm (layer_norm, rope, mrope,
// swiglu, cross_entropy):
//  1. correctness: small random cases run on the GPU (default config) and in the interpreter;
//     every output must agree (f32 within 1e-5 relative, f16 2e-3, bf16 1e-2);
//  2. speed: training-sized cases, every config of the kernel's tune space timed, reported as
//     GB/s of the bytes the kernel must move (each input read once, each output written once).
// Usage: tigon_kernel_bench [check|bench|all] [filter]. Without a GPU it says so and exits 0.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "dsl/error.h"
#include "runtime/autotune.h"
#include "runtime/builtin_kernels.h"
#include "runtime/cuda_driver.h"
#include "runtime/half.h"
#include "runtime/interpreter.h"
#include "runtime/jit.h"
#include "runtime/scratch_timer.h"

#include "gpu_util.h"

using namespace tigon;

namespace {

int g_failures = 0;

// A host tensor: storage of `storage` elements viewed with sizes and strides.
struct Tensor {
  ir::DType dt = ir::DType::F32;
  std::vector<int64_t> sizes, strides;
  std::vector<uint8_t> bytes;
  CUdeviceptr dev = 0;
  bool output = false;  // compared after the run (out or inout)

  int64_t storage() const { return int64_t(bytes.size()) / ir::dtypeBytes(dt); }
  double get(int64_t i) const { return readElement(bytes.data() + size_t(i) * size_t(ir::dtypeBytes(dt)), dt); }
  void set(int64_t i, double v) { writeElement(bytes.data() + size_t(i) * size_t(ir::dtypeBytes(dt)), dt, v); }
  TensorArg hostArg() {
    TensorArg t;
    t.data = bytes.data();
    t.dtype = dt;
    t.sizes = sizes;
    t.strides = strides;
    return t;
  }
  TensorArg devArg() const {
    TensorArg t;
    t.data = reinterpret_cast<void *>(uintptr_t(dev));
    t.dtype = dt;
    t.sizes = sizes;
    t.strides = strides;
    return t;
  }
};

// An argument: a tensor (index into Case::tensors) or a scalar.
struct Arg {
  int tensor = -1;
  KernelArg scalar;
};

struct Case {
  std::string label;
  std::string kernel, file;
  Bindings fixed;  // dtypes and consts (tune values left free for the benchmark)
  std::vector<Tensor> tensors;
  std::vector<Arg> args;
  double bytes = 0;  // bytes the kernel must move

  // A tensor with sizes, optional strides (default contiguous) and storage elements.
  int tensor(ir::DType dt, std::vector<int64_t> sizes, std::vector<int64_t> strides = {}, int64_t storage = -1,
             bool output = false) {
    Tensor t;
    t.dt = dt;
    if (strides.empty()) strides = contiguousStrides(sizes);
    if (storage < 0) {
      storage = 1;
      for (size_t d = 0; d < sizes.size(); ++d) storage += (sizes[d] - 1) * strides[d];
      for (int64_t s : sizes) storage = s == 0 ? 0 : storage;
    }
    t.sizes = std::move(sizes);
    t.strides = std::move(strides);
    t.bytes.assign(size_t(storage) * size_t(ir::dtypeBytes(dt)), 0);
    t.output = output;
    tensors.push_back(std::move(t));
    args.push_back({int(tensors.size() - 1), {}});
    return int(tensors.size() - 1);
  }
  void f(double v) { args.push_back({-1, KernelArg::ofFloat(v)}); }
  void i(int64_t v) { args.push_back({-1, KernelArg::ofInt(v)}); }
};

// ---- the cases ---------------------------------------------------------------------------

void fillRandom(Tensor &t, std::mt19937 &rng, double sd = 1, double mean = 0) {
  std::normal_distribution<double> dist(mean, sd);
  for (int64_t i = 0; i < t.storage(); ++i) t.set(i, dist(rng));
}

bool g_fill = true;  // small cases: random host data; benchmarks: a device memset

// programs > 0: layer_norm_fwd_rows with that many programs, taking row tiles in turn
Case layerNormFwd(ir::DType dt, int64_t m, int64_t n, bool affine, std::mt19937 &rng, int64_t programs = 0) {
  Case c;
  c.kernel = programs > 0 ? "layer_norm_fwd_rows" : "layer_norm_fwd";
  c.label = fmt::format("{} {} M={} N={}{}{}", c.kernel, ir::dtypeName(dt), m, n, affine ? "" : " no-affine",
                        programs > 0 ? fmt::format(" programs={}", programs) : "");
  c.file = "layer_norm.tile";
  c.fixed = {{"T", ir::dtypeName(dt)}, {"N", std::to_string(n)}};
  int x = c.tensor(dt, {m, n});
  int w = c.tensor(dt, {affine ? n : 0});
  int b = c.tensor(dt, {affine ? n : 0});
  c.f(1e-5);
  if (programs > 0) c.i(programs);
  c.tensor(dt, {m, n}, {}, -1, true);
  c.tensor(ir::DType::F32, {m}, {}, -1, true);
  c.tensor(ir::DType::F32, {m}, {}, -1, true);
  if (g_fill) {
    fillRandom(c.tensors[size_t(x)], rng, 2, 0.5);
    fillRandom(c.tensors[size_t(w)], rng, 0.2, 1);
    fillRandom(c.tensors[size_t(b)], rng);
  }
  c.bytes = double(2 * m * n * ir::dtypeBytes(dt) + 8 * m);
  return c;
}

Case layerNormBwd(ir::DType dt, int64_t m, int64_t n, int64_t programs, int64_t rowsPer, std::mt19937 &rng) {
  Case c;
  c.label = fmt::format("layer_norm_bwd {} M={} N={} P={}", ir::dtypeName(dt), m, n, programs);
  c.kernel = "layer_norm_bwd";
  c.file = "layer_norm.tile";
  c.fixed = {{"T", ir::dtypeName(dt)}, {"N", std::to_string(n)}};
  int dy = c.tensor(dt, {m, n});
  int x = c.tensor(dt, {m, n});
  int w = c.tensor(dt, {n});
  int mean = c.tensor(ir::DType::F32, {m});
  int rstd = c.tensor(ir::DType::F32, {m});
  c.i(rowsPer);
  c.tensor(dt, {m, n}, {}, -1, true);
  c.tensor(ir::DType::F32, {programs, n}, {}, -1, true);
  c.tensor(ir::DType::F32, {programs, n}, {}, -1, true);
  if (g_fill) {
    fillRandom(c.tensors[size_t(dy)], rng);
    fillRandom(c.tensors[size_t(x)], rng);
    fillRandom(c.tensors[size_t(w)], rng, 0.2, 1);
    fillRandom(c.tensors[size_t(mean)], rng, 0.1);
    fillRandom(c.tensors[size_t(rstd)], rng, 0.1, 1);
  }
  c.bytes = double(3 * m * n * ir::dtypeBytes(dt) + 8 * m + 8 * programs * n);
  return c;
}

// The strides of (B, H, S, D) as HF's view(B, S, H, D).transpose(1, 2) makes them
std::vector<int64_t> hfStrides(int64_t s, int64_t h, int64_t d) { return {s * h * d, d, h * d, 1}; }

// q (B, HQ, S, D) and k (B, HK, S, D) in HF's layout, the outputs likewise; cos/sin (B, S, R)
// with batch stride 0
Case rope(bool backward, ir::DType dt, ir::DType ct, int64_t b, int64_t hq, int64_t hk, int64_t s, int64_t d, int64_t r,
          std::mt19937 &rng) {
  Case c;
  c.kernel = backward ? "rope_bwd" : "rope_fwd";
  c.label = fmt::format("{} {} cos {} B={} HQ={} HK={} S={} D={} R={}", c.kernel, ir::dtypeName(dt), ir::dtypeName(ct), b,
                        hq, hk, s, d, r);
  c.file = "rope.tile";
  c.fixed = {{"T", ir::dtypeName(dt)}, {"C", ir::dtypeName(ct)}, {"R", std::to_string(r)}, {"D", std::to_string(d)},
             {"HQ", std::to_string(hq)}, {"HK", std::to_string(hk)}};
  int q = c.tensor(dt, {b, hq, s, d}, hfStrides(s, hq, d), b * s * hq * d);
  int k = c.tensor(dt, {b, hk, s, d}, hfStrides(s, hk, d), b * s * hk * d);
  int cs = c.tensor(ct, {b, s, r}, {0, r, 1}, s * r);
  int sn = c.tensor(ct, {b, s, r}, {0, r, 1}, s * r);
  c.tensor(dt, {b, hq, s, d}, hfStrides(s, hq, d), b * s * hq * d, true);
  c.tensor(dt, {b, hk, s, d}, hfStrides(s, hk, d), b * s * hk * d, true);
  if (g_fill)
    for (int t : {q, k, cs, sn}) fillRandom(c.tensors[size_t(t)], rng);
  c.bytes = double(2 * b * (hq + hk) * s * d * ir::dtypeBytes(dt) + 2 * s * r * ir::dtypeBytes(ct));
  return c;
}

Case mrope(bool backward, ir::DType dt, int64_t b, int64_t hq, int64_t hk, int64_t s, int64_t d, int64_t s0, int64_t s1,
           std::mt19937 &rng) {
  Case c;
  c.kernel = backward ? "mrope_bwd" : "mrope_fwd";
  c.label = fmt::format("{} {} B={} HQ={} HK={} S={} D={} sections {},{}", c.kernel, ir::dtypeName(dt), b, hq, hk, s, d, s0,
                        s1);
  c.file = "mrope.tile";
  c.fixed = {{"T", ir::dtypeName(dt)}, {"C", ir::dtypeName(dt)}, {"D", std::to_string(d)}, {"HQ", std::to_string(hq)},
             {"HK", std::to_string(hk)}};
  int q = c.tensor(dt, {b, hq, s, d}, hfStrides(s, hq, d), b * s * hq * d);
  int k = c.tensor(dt, {b, hk, s, d}, hfStrides(s, hk, d), b * s * hk * d);
  int cs = c.tensor(dt, {3, b, s, d});
  int sn = c.tensor(dt, {3, b, s, d});
  c.i(s0);
  c.i(s1);
  c.tensor(dt, {b, hq, s, d}, hfStrides(s, hq, d), b * s * hq * d, true);
  c.tensor(dt, {b, hk, s, d}, hfStrides(s, hk, d), b * s * hk * d, true);
  if (g_fill)
    for (int t : {q, k, cs, sn}) fillRandom(c.tensors[size_t(t)], rng);
  // the tables: only the needed third of each is read
  c.bytes = double(2 * b * (hq + hk) * s * d * ir::dtypeBytes(dt) + 2 * b * s * d * ir::dtypeBytes(dt));
  return c;
}

Case swiglu(bool backward, ir::DType dt, int64_t m, int64_t n, bool fused, std::mt19937 &rng) {
  Case c;
  c.kernel = backward ? "swiglu_bwd" : "swiglu_fwd";
  c.label = fmt::format("{} {} M={} N={}{}", c.kernel, ir::dtypeName(dt), m, n, fused ? " gate_up" : "");
  c.file = "swiglu.tile";
  c.fixed = {{"T", ir::dtypeName(dt)}, {"N", std::to_string(n)}};
  std::vector<int> ins;
  if (backward) ins.push_back(c.tensor(dt, {m, n}));
  ins.push_back(c.tensor(dt, {m, n}, fused ? std::vector<int64_t>{2 * n, 1} : std::vector<int64_t>{}));
  ins.push_back(c.tensor(dt, {m, n}, fused ? std::vector<int64_t>{2 * n, 1} : std::vector<int64_t>{}));
  c.tensor(dt, {m, n}, {}, -1, true);
  if (backward) c.tensor(dt, {m, n}, {}, -1, true);
  if (g_fill)
    for (int t : ins) fillRandom(c.tensors[size_t(t)], rng, 2);
  c.bytes = double((backward ? 5 : 3) * m * n * ir::dtypeBytes(dt));
  return c;
}

struct CeOpts {
  int64_t ignore = -100;
  double smoothing = 0, zloss = 0, softcap = 0;
};

// kinds: fwd, fwd_bwd, fwd_bwd_inplace, bwd, bwd_inplace
Case crossEntropy(const std::string &kind, ir::DType dt, int64_t bt, int64_t v, const CeOpts &o, std::mt19937 &rng) {
  Case c;
  c.kernel = "cross_entropy_" + kind;
  c.label = fmt::format("{} {} BT={} V={} ls={} z={} cap={}", c.kernel, ir::dtypeName(dt), bt, v, o.smoothing, o.zloss,
                        o.softcap);
  c.file = "cross_entropy.tile";
  bool inplace = kind.find("inplace") != std::string::npos, bwd = kind.rfind("bwd", 0) == 0;
  c.fixed = {{"T", ir::dtypeName(dt)}, {"CAPPED", o.softcap != 0 ? "1" : "0"}};  // the case flags, as the op binds them
  // the forward kernels see rows as chunks of w logits, as the op passes them
  int64_t w = chunkWidth(v, ir::dtypeBytes(dt));
  std::vector<int64_t> rows = bwd ? std::vector<int64_t>{bt, v} : std::vector<int64_t>{bt, v / w, w};
  if (!bwd) {
    c.fixed["SMOOTHED"] = o.smoothing != 0 ? "1" : "0";
    c.fixed["W"] = std::to_string(w);
  }
  int logits = c.tensor(dt, rows, {}, -1, inplace);
  int target = c.tensor(ir::DType::I64, {bt});
  {
    std::uniform_int_distribution<int64_t> cls(0, v - 1);
    Tensor &t = c.tensors[size_t(target)];
    for (int64_t r = 0; r < bt; ++r) t.set(r, r % 7 == 3 ? double(o.ignore) : double(cls(rng)));
  }
  int lse = -1, grad = -1;
  if (bwd) {
    lse = c.tensor(ir::DType::F32, {bt});
    grad = c.tensor(ir::DType::F32, {bt});
  }
  c.i(o.ignore);
  c.f(o.smoothing);
  c.f(o.zloss);
  c.f(o.softcap);
  if (!bwd) {
    if (kind != "fwd") c.tensors[size_t(c.tensor(ir::DType::F32, {1}))].set(0, 1.0 / double(bt));  // the gradient's scale
    c.tensor(ir::DType::F32, {bt}, {}, -1, true);
    c.tensor(ir::DType::F32, {bt}, {}, -1, true);
    c.tensor(ir::DType::I32, {1}, {}, -1, true);
    if (kind == "fwd_bwd") c.tensor(dt, rows, {}, -1, true);
  } else if (!inplace) {
    c.tensor(dt, {bt, v}, {}, -1, true);
  }
  if (g_fill) {
    fillRandom(c.tensors[size_t(logits)], rng, 3);
    if (bwd) {
      // a plausible lse: the logsumexp of the row
      Tensor &l = c.tensors[size_t(logits)], &s = c.tensors[size_t(lse)];
      for (int64_t r = 0; r < bt; ++r) {
        double mx = -INFINITY, sum = 0;
        auto z = [&](int64_t j) {
          double x = l.get(r * v + j);
          return o.softcap != 0 ? o.softcap * std::tanh(x / o.softcap) : x;
        };
        for (int64_t j = 0; j < v; ++j) mx = std::max(mx, z(j));
        for (int64_t j = 0; j < v; ++j) sum += std::exp(z(j) - mx);
        s.set(r, mx + std::log(sum));
      }
      fillRandom(c.tensors[size_t(grad)], rng);
    }
  }
  double pass = double(bt * v * ir::dtypeBytes(dt));
  c.bytes = kind == "fwd" ? pass : bwd ? 2 * pass : 3 * pass;
  return c;
}

// ---- running -----------------------------------------------------------------------------

const TileModule &module(const std::string &file) {
  static std::map<std::string, TileModule> mods;
  auto it = mods.find(file);
  if (it == mods.end()) it = mods.emplace(file, loadTileSource(file, builtinKernelSources().at(file))).first;
  return it->second;
}

std::vector<bool> alignment(const Case &c) {
  std::vector<bool> out;
  for (const Arg &a : c.args) {
    if (a.tensor < 0) continue;  // one entry per tensor parameter
    const Tensor &t = c.tensors[size_t(a.tensor)];
    bool ok = true;
    for (size_t d = 0; d + 1 < t.strides.size(); ++d) ok &= (t.strides[d] * ir::dtypeBytes(t.dt)) % 16 == 0;
    out.push_back(ok);
  }
  return out;
}

void upload(Case &c, bool fillDevice) {
  const cuda::Driver &d = cuda::driver();
  for (Tensor &t : c.tensors) {
    size_t bytes = std::max<size_t>(t.bytes.size(), 16);
    cuda::check(d.cuMemAlloc(&t.dev, bytes), "cuMemAlloc");
    if (fillDevice && t.dt != ir::DType::I64 && !t.output)
      cuda::check(d.cuMemsetD8(t.dev, 0x3c, bytes), "cuMemsetD8");  // 0x3c3c: about 0.0115 in bf16 and f32
    else if (!t.bytes.empty())
      cuda::check(d.cuMemcpyHtoD(t.dev, t.bytes.data(), t.bytes.size()), "cuMemcpyHtoD");
  }
}

void release(Case &c) {
  for (Tensor &t : c.tensors)
    if (t.dev) cuda::driver().cuMemFree(t.dev);
}

std::vector<KernelArg> deviceArgs(const Case &c) {
  std::vector<KernelArg> out;
  for (const Arg &a : c.args) out.push_back(a.tensor < 0 ? a.scalar : KernelArg::of(c.tensors[size_t(a.tensor)].devArg()));
  return out;
}

double tolerance(ir::DType dt) { return dt == ir::DType::F32 ? 1e-5 : dt == ir::DType::BF16 ? 1e-2 : 2e-3; }

void check(Jit &jit, Case c, const Bindings &config = {}) {
  Bindings b = c.fixed;
  for (auto &[k, v] : config) b[k] = v;
  Case host = c;  // the interpreter's copy
  std::string what = c.label + (config.empty() ? "" : " " + configString(config));
  try {
    auto k = jit.kernel(module(c.file), c.kernel, b, alignment(c));
    upload(c, false);
    k->gpu->launch(deviceArgs(c));
    // no cuCtxSynchronize: cuda_driver.cpp binds cuCtxSynchronize_v2, which in CUDA 13 takes a
    // context argument; the blocking copies below wait for the kernel instead
    std::vector<KernelArg> hostArgs;
    for (const Arg &a : host.args)
      hostArgs.push_back(a.tensor < 0 ? a.scalar : KernelArg::of(host.tensors[size_t(a.tensor)].hostArg()));
    interpret(k->ir, hostArgs);
    std::string detail;
    bool ok = true;
    for (size_t i = 0; i < c.tensors.size(); ++i) {
      Tensor &t = c.tensors[i];
      if (!t.output) continue;
      std::vector<uint8_t> gpu(t.bytes.size());
      if (!gpu.empty()) cuda::check(cuda::driver().cuMemcpyDtoH(gpu.data(), t.dev, gpu.size()), "cuMemcpyDtoH");
      t.bytes = gpu;
      const Tensor &ref = host.tensors[i];
      double num = 0, den = 0;
      int64_t nanMismatch = 0;
      for (int64_t e = 0; e < t.storage(); ++e) {
        double g = t.get(e), r = ref.get(e);
        if (std::isnan(g) || std::isnan(r)) {
          nanMismatch += std::isnan(g) != std::isnan(r);
          continue;
        }
        num += (g - r) * (g - r);
        den += r * r;
      }
      double err = std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
      if (den == 0) err = std::sqrt(num);
      bool good = nanMismatch == 0 && err < tolerance(t.dt);
      ok &= good;
      detail += fmt::format(" | arg{} {:.1e}{}", i, err, nanMismatch ? fmt::format(" NaN-mismatch {}", nanMismatch) : "");
    }
    g_failures += !ok;
    fmt::print("{} {}{}\n", ok ? "ok  " : "FAIL", what, detail);
  } catch (const std::exception &e) {
    ++g_failures;
    fmt::print("FAIL {}: {}\n", what, e.what());
  }
  release(c);
}

void bench(Jit &jit, Case c, const std::vector<std::string> &onlyConfigs = {}) {
  const TileModule &m = module(c.file);
  const ast::Kernel *k = m.ast.findKernel(c.kernel);
  upload(c, true);
  std::vector<KernelArg> args = deviceArgs(c);
  double best = 1e30, first = 0;
  std::string bestConfig;
  std::vector<std::string> lines;
  for (const Bindings &config : tuneSpace(*k, c.fixed)) {
    Bindings tuneOnly;
    for (auto &[name, v] : config)
      if (!c.fixed.count(name)) tuneOnly[name] = v;
    std::string cs = configString(tuneOnly);
    if (!onlyConfigs.empty() && std::find(onlyConfigs.begin(), onlyConfigs.end(), cs) == onlyConfigs.end()) continue;
    try {
      auto kern = jit.kernel(m, c.kernel, config, alignment(c));
      double ms = timeOnScratch(*kern->gpu, kern->ir, args, nullptr, 3, 15);
      if (first == 0) first = ms;
      if (ms < best) {
        best = ms;
        bestConfig = cs;
      }
      lines.push_back(fmt::format("    {:<40} {:8.1f} us {:6.0f} GB/s  regs {} local {}", cs, ms * 1e3, c.bytes / (ms * 1e6),
                                  kern->gpu->registersPerThread(), kern->gpu->localBytesPerThread()));
    } catch (const std::exception &e) {
      lines.push_back(fmt::format("    {:<40} rejected: {}", cs, std::string(e.what()).substr(0, 120)));
    }
  }
  fmt::print("{}: {:.1f} MB; default {:.1f} us = {:.0f} GB/s; best {} {:.1f} us = {:.0f} GB/s\n", c.label, c.bytes / 1e6,
             first * 1e3, c.bytes / (first * 1e6), bestConfig, best * 1e3, c.bytes / (best * 1e6));
  for (const std::string &l : lines) fmt::print("{}\n", l);
  std::fflush(stdout);
  release(c);
}

}  // namespace

int main(int argc, char **argv) {
  std::string mode = argc > 1 ? argv[1] : "all", filter = argc > 2 ? argv[2] : "";
  if (mode != "list" && !haveGpu("the kernel checks need one")) return 0;
  // filter: a substring of the labels to run, or "=LABEL" for exactly one
  auto want = [&](const std::string &label) {
    if (mode == "list") {
      fmt::print("{}\n", label);
      return false;
    }
    if (!filter.empty() && filter[0] == '=') return label == filter.substr(1);
    return filter.empty() || label.find(filter) != std::string::npos;
  };
  try {
    Jit &jit = Jit::instance();
    if (mode != "list") ensureContext();  // this thread allocates before compiling anything
    if (mode != "list") fmt::print("device {} | backend {}\n", jit.arch(), jit.backend());
    std::mt19937 rng(77);
    using D = ir::DType;
    if (mode == "check" || mode == "all" || mode == "list") {
      g_fill = true;
      std::vector<Case> cases;
      for (D dt : {D::F32, D::BF16, D::F16}) {
        for (int64_t n : {7, 128, 1000, 4096}) {
          cases.push_back(layerNormFwd(dt, 37, n, n != 7, rng));
          cases.push_back(layerNormFwd(dt, 37, n, n != 128, rng, 5));
          cases.push_back(layerNormBwd(dt, 37, n, 5, 8, rng));
          cases.push_back(swiglu(false, dt, 37, n, n == 128, rng));
          cases.push_back(swiglu(true, dt, 37, n, n == 1000, rng));
        }
        cases.push_back(swiglu(false, dt, 9, 11008, true, rng));
        for (bool bwd : {false, true}) {
          cases.push_back(rope(bwd, dt, dt, 2, 3, 1, 37, 128, 128, rng));
          cases.push_back(rope(bwd, dt, D::F32, 2, 2, 2, 19, 128, 64, rng));
          cases.push_back(rope(bwd, dt, dt, 1, 4, 2, 21, 80, 32, rng));
          cases.push_back(rope(bwd, dt, dt, 1, 32, 8, 9, 128, 128, rng));
          cases.push_back(mrope(bwd, dt, 2, 3, 1, 37, 128, 16, 24, rng));
          cases.push_back(mrope(bwd, dt, 1, 2, 2, 11, 80, 8, 12, rng));
          cases.push_back(mrope(bwd, dt, 1, 28, 4, 9, 128, 16, 24, rng));
        }
        for (const char *kind : {"fwd", "fwd_bwd", "fwd_bwd_inplace", "bwd", "bwd_inplace"}) {
          cases.push_back(crossEntropy(kind, dt, 9, 5000, {}, rng));
          cases.push_back(crossEntropy(kind, dt, 7, 4099, {-100, 0.1, 1e-3, 0}, rng));
          cases.push_back(crossEntropy(kind, dt, 7, 9000, {3, 0.1, 1e-3, 30.0}, rng));
        }
      }
      for (Case &c : cases)
        if (want(c.label)) check(jit, c);
      // non-default configs of the reductions and multi-row programs
      {
        for (D dt : {D::F32, D::BF16}) {
          Case c;
          c.label = fmt::format("column_sum {} P=37 N=1000", ir::dtypeName(dt));
          c.kernel = "column_sum";
          c.file = "column_sum.tile";
          c.fixed = {{"T", ir::dtypeName(dt)}, {"N", "1000"}};
          int p = c.tensor(D::F32, {37, 1000});
          c.tensor(dt, {1000}, {}, -1, true);
          fillRandom(c.tensors[size_t(p)], rng);
          for (auto cfg : std::vector<Bindings>{{}, {{"PB", "16"}, {"BLOCK", "128"}}, {{"PB", "4"}, {"WARPS", "8"}}})
            if (want(c.label + (cfg.empty() ? "" : " " + configString(cfg)))) check(jit, c, cfg);
        }
      }
      for (D dt : {D::F32, D::BF16})
        for (auto cfg : std::vector<Bindings>{{{"PER_THREAD", "32"}, {"WARPS", "2"}}, {{"PER_THREAD", "8"}, {"WARPS", "16"}}})
          for (int64_t n : {7, 128, 1000})
            if (Case c = layerNormFwd(dt, 300, n, true, rng); want(c.label + " " + configString(cfg))) check(jit, c, cfg);
      for (D dt : {D::F32, D::BF16})
        for (auto cfg : std::vector<Bindings>{{{"PER_THREAD", "16"}, {"WARPS", "16"}}, {{"PER_THREAD", "32"}, {"WARPS", "4"}}, {{"PER_THREAD", "8"}, {"WARPS", "32"}}})
          if (Case c = crossEntropy("fwd_bwd", dt, 5, 20000, {-100, 0.1, 1e-3, 30.0}, rng); want(c.label + " " + configString(cfg)))
            check(jit, c, cfg);
    }
    if (mode == "bench" || mode == "all") {
      g_fill = false;
      D bf = D::BF16;
      std::vector<std::function<Case()>> cases = {
          [&] { return layerNormFwd(bf, 16384, 4096, true, rng); },
          [&] { return layerNormFwd(bf, 65536, 1024, true, rng); },
          [&] { return layerNormFwd(bf, 16384, 8192, true, rng); },
          [&] { return layerNormFwd(bf, 16384, 8192, true, rng, 264); },
          [&] { return layerNormFwd(bf, 16384, 16384, true, rng, 264); },
          [&] { return layerNormBwd(bf, 16384, 4096, 264, 16384 / 264 + 1, rng); },
          [&] { return swiglu(false, bf, 16384, 14336, false, rng); },
          [&] { return swiglu(true, bf, 16384, 14336, false, rng); },
          [&] { return swiglu(false, bf, 16384, 11008, true, rng); },
          [&] { return rope(false, bf, bf, 4, 32, 8, 4096, 128, 128, rng); },
          [&] { return rope(true, bf, bf, 4, 32, 8, 4096, 128, 128, rng); },
          [&] { return mrope(false, bf, 4, 28, 4, 4096, 128, 16, 24, rng); },
          [&] { return mrope(true, bf, 4, 28, 4, 4096, 128, 16, 24, rng); },
          [&] { return crossEntropy("fwd", bf, 8192, 128256, {}, rng); },
          [&] { return crossEntropy("fwd_bwd_inplace", bf, 8192, 128256, {}, rng); },
          [&] { return crossEntropy("fwd_bwd", bf, 8192, 128256, {}, rng); },
          [&] { return crossEntropy("bwd", bf, 8192, 128256, {}, rng); },
          [&] { return crossEntropy("fwd_bwd_inplace", bf, 4096, 256000, {-100, 0, 0, 30.0}, rng); },
          [&] { return crossEntropy("fwd", D::F32, 4096, 128256, {}, rng); },
      };
      for (auto &make : cases) {
        Case c = make();
        if (want(c.label)) bench(jit, c);
      }
    }
  } catch (const std::exception &e) {
    fmt::print("FAIL exception: {}\n", e.what());
    return 1;
  }
  fmt::print("{} failures\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
