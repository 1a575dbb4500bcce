// The GPU check: runs the built-in kernels through the JIT on the GPU and compares them with
// the interpreter and with float64 references; checks the cache (a second run with
// --expect-warm must compile nothing) and measures compile, load, tune and launch times.
// --backend llvm|nvrtc picks the code generator (default: TIGON_BACKEND, else llvm). Also
// checks that configs over the GPU's limits are rejected and counted by the autotuner.
// Exit status 0 only if every check passed. Without a GPU it says so and exits 0.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "dsl/error.h"
#include "gpu_util.h"
#include "runtime/builtin_kernels.h"
#include "runtime/cuda_driver.h"
#include "runtime/half.h"
#include "runtime/interpreter.h"
#include "runtime/jit.h"
#include "runtime/scratch_timer.h"

using namespace tigon;

namespace {

int g_failures = 0, g_passes = 0;

HostTensor randomTensor(ir::DType dt, std::vector<int64_t> sizes, std::mt19937 &rng, double mean = 0, double sd = 1) {
  HostTensor t(dt, std::move(sizes));
  std::normal_distribution<double> dist(mean, sd);
  for (int64_t i = 0; i < t.numel(); ++i) t.set(i, dist(rng));
  return t;
}

// ||a - ref|| / max(||ref||, scale); infinite if a holds a NaN (an unwritten element).
double relErr(const HostTensor &a, const std::vector<double> &ref, double scale = 0) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double v = a.get(i);
    if (std::isnan(v)) return INFINITY;
    num += (v - ref[size_t(i)]) * (v - ref[size_t(i)]);
    den += ref[size_t(i)] * ref[size_t(i)];
  }
  double d = std::max(std::sqrt(den), scale);
  return std::sqrt(num) / (d > 0 ? d : 1);
}

std::vector<double> values(const HostTensor &t) {
  std::vector<double> v(size_t(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = t.get(i);
  return v;
}

double tolerance(ir::DType dt) { return dt == ir::DType::F32 ? 1e-5 : dt == ir::DType::BF16 ? 1e-2 : 2e-3; }

void report(bool ok, const std::string &line) {
  ++(ok ? g_passes : g_failures);
  fmt::print("{} {}\n", ok ? "ok  " : "FAIL", line);
}

void sync() { cuda::check(cuda::driver().cuCtxSynchronize(), "synchronize"); }

struct RmsNormCase {
  ir::DType dt;
  int64_t n, m;
  Bindings config;  // ROWS, WARPS
  bool interpret;   // also compare with the interpreter (small cases)
};

void checkRmsNorm(Jit &jit, const TileModule &mod, const RmsNormCase &c, std::mt19937 &rng) {
  const double eps = 1e-6, offset = c.n == 7 ? 1.0 : 0.0;
  std::string tn = ir::dtypeName(c.dt);
  Bindings b = c.config;
  b["T"] = tn;
  b["N"] = std::to_string(c.n);
  HostTensor x = randomTensor(c.dt, {c.m, c.n}, rng), w = randomTensor(c.dt, {c.n}, rng, 1.0, 0.1);
  HostTensor dy = randomTensor(c.dt, {c.m, c.n}, rng);

  // float64 references
  std::vector<double> rstdRef(size_t(c.m)), yRef(size_t(c.m * c.n)), dxRef(size_t(c.m * c.n)), dwRef(size_t(c.n), 0.0);
  double dxScale = 0;
  for (int64_t r = 0; r < c.m; ++r) {
    double ss = 0;
    for (int64_t j = 0; j < c.n; ++j) ss += x.get(r * c.n + j) * x.get(r * c.n + j);
    double inv = 1 / std::sqrt(ss / double(c.n) + eps), dot = 0;
    rstdRef[size_t(r)] = inv;
    for (int64_t j = 0; j < c.n; ++j) {
      double xh = x.get(r * c.n + j) * inv, g = dy.get(r * c.n + j) * (offset + w.get(j));
      yRef[size_t(r * c.n + j)] = xh * (offset + w.get(j));
      dot += g * xh;
      dwRef[size_t(j)] += dy.get(r * c.n + j) * xh;
      dxScale += g * inv * g * inv;
    }
    for (int64_t j = 0; j < c.n; ++j) {
      double xh = x.get(r * c.n + j) * inv, g = dy.get(r * c.n + j) * (offset + w.get(j));
      dxRef[size_t(r * c.n + j)] = inv * (g - xh * dot / double(c.n));
    }
  }
  dxScale = std::sqrt(dxScale);

  // forward on the GPU
  HostTensor y(c.dt, {c.m, c.n}), rstd(ir::DType::F32, {c.m});
  DeviceTensor dx_(x), dw_(w), dy_(dy), dyOut(y), dRstd(rstd);
  std::vector<KernelArg> fwdArgs = {KernelArg::of(x.arg(dx_.data())), KernelArg::of(w.arg(dw_.data())),
                                    KernelArg::ofFloat(offset),         KernelArg::ofFloat(eps),
                                    KernelArg::of(y.arg(dyOut.data())), KernelArg::of(rstd.arg(dRstd.data()))};
  auto fwd = jit.kernel(mod, "rms_norm_fwd", b, tensorAlignment(fwdArgs));
  fwd->gpu->launch(fwdArgs);
  sync();
  dyOut.download(y);
  dRstd.download(rstd);

  // backward on the GPU: dx, per-program dw partials, their sum
  int64_t rows = std::stoll(b.at("ROWS"));
  int64_t programs = std::min<int64_t>(c.m, 264);
  int64_t rowsPer = (c.m + programs - 1) / programs;
  rowsPer = (rowsPer + rows - 1) / rows * rows;
  programs = (c.m + rowsPer - 1) / rowsPer;
  HostTensor dx(c.dt, {c.m, c.n}), partial(ir::DType::F32, {programs, c.n}), dw(c.dt, {c.n});
  DeviceTensor ddx(dx), dPartial(partial), ddw(dw);
  std::vector<KernelArg> bwdArgs = {KernelArg::of(dy.arg(dy_.data())),      KernelArg::of(x.arg(dx_.data())),
                                    KernelArg::of(w.arg(dw_.data())),        KernelArg::of(rstd.arg(dRstd.data())),
                                    KernelArg::ofFloat(offset),              KernelArg::ofInt(rowsPer),
                                    KernelArg::of(dx.arg(ddx.data())),       KernelArg::of(partial.arg(dPartial.data()))};
  auto bwd = jit.kernel(mod, "rms_norm_bwd", b, tensorAlignment(bwdArgs));
  bwd->gpu->launch(bwdArgs);
  Bindings rb = {{"T", tn}, {"N", std::to_string(c.n)}, {"BLOCK", "256"}, {"WARPS", "4"}};
  std::vector<KernelArg> redArgs = {KernelArg::of(partial.arg(dPartial.data())), KernelArg::of(dw.arg(ddw.data()))};
  static const TileModule sums = loadTileSource("column_sum.tile", builtinKernelSources().at("column_sum.tile"));
  auto red = jit.kernel(sums, "column_sum", rb, tensorAlignment(redArgs));
  red->gpu->launch(redArgs);
  sync();
  ddx.download(dx);
  ddw.download(dw);
  dPartial.download(partial);

  double eY = relErr(y, yRef), eR = relErr(rstd, rstdRef), eDx = relErr(dx, dxRef, dxScale), eDw = relErr(dw, dwRef);
  double tol = tolerance(c.dt);
  bool ok = eY < tol && eR < 1e-5 && eDx < tol && eDw < tol;
  std::string interp;
  if (c.interpret) {
    // the interpreter on the same inputs: the GPU must agree within rounding
    HostTensor iy(c.dt, {c.m, c.n}), irstd(ir::DType::F32, {c.m});
    interpret(fwd->ir, {KernelArg::of(x.arg(x.bytes.data())), KernelArg::of(w.arg(w.bytes.data())), KernelArg::ofFloat(offset),
                        KernelArg::ofFloat(eps), KernelArg::of(iy.arg(iy.bytes.data())),
                        KernelArg::of(irstd.arg(irstd.bytes.data()))});
    HostTensor idx(c.dt, {c.m, c.n}), ipartial(ir::DType::F32, {programs, c.n});
    interpret(bwd->ir, {KernelArg::of(dy.arg(dy.bytes.data())), KernelArg::of(x.arg(x.bytes.data())),
                        KernelArg::of(w.arg(w.bytes.data())), KernelArg::of(irstd.arg(irstd.bytes.data())),
                        KernelArg::ofFloat(offset), KernelArg::ofInt(rowsPer), KernelArg::of(idx.arg(idx.bytes.data())),
                        KernelArg::of(ipartial.arg(ipartial.bytes.data()))});
    double dY = relErr(y, values(iy)), dDx = relErr(dx, values(idx), dxScale), dP = relErr(partial, values(ipartial));
    // f32 differs only by the approximate rsqrt and summation order; f16/bf16 by rounding flips
    double itol = c.dt == ir::DType::F32 ? 2e-6 : tol;
    ok = ok && dY < itol && dDx < itol && dP < 1e-5;
    interp = fmt::format(" | vs interpreter y {:.1e} dx {:.1e} dw_partial {:.1e}", dY, dDx, dP);
  }
  report(ok, fmt::format("rms_norm {:<4} N={:<5} M={:<5} {:<15} y {:.1e} rstd {:.1e} dx {:.1e} dw {:.1e}{}", tn, c.n, c.m,
                         configString(c.config), eY, eR, eDx, eDw, interp));
}

// A kernel whose default config does not fit (tests/tiles/over_limits.tile, read from the
// working directory: scripts/gpu-check.sh runs in the repository root). The autotuner must
// reject it and one more config, count both, and choose one that fits and gives the column
// argmax; a warm process reads the decision and rejects nothing.
void checkOverLimits(Jit &jit, bool expectWarm, std::mt19937 &rng) {
  TileModule mod = loadTileFile("tests/tiles/over_limits.tile");
  const int64_t rows = 64, n = 256;
  HostTensor x(ir::DType::BF16, {rows, n}), out(ir::DType::I32, {n});
  std::vector<int64_t> want(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) {  // each column a permutation of 0/64 .. 63/64: one maximum
    std::vector<int64_t> perm(static_cast<size_t>(rows));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int64_t r = 0; r < rows; ++r) x.set(r * n + c, double(perm[size_t(r)]) / double(rows));
    want[size_t(c)] = std::max_element(perm.begin(), perm.end()) - perm.begin();
  }
  DeviceTensor dx(x), dout(out);
  std::vector<KernelArg> args = {KernelArg::of(x.arg(dx.data())), KernelArg::of(out.arg(dout.data()))};
  std::vector<bool> aligned = tensorAlignment(args);
  int before = jit.counters().rejected;
  Bindings best = jit.tuned(mod, "col_argmax", {{"R", "64"}, {"N", "256"}}, aligned, "col_argmax R=64 N=256",
                            [&](const CompiledKernel &k) { return timeOnScratch(*k.gpu, k.ir, args, nullptr); });
  int rejected = jit.counters().rejected - before;
  jit.kernel(mod, "col_argmax", best, aligned)->gpu->launch(args);
  sync();
  dout.download(out);
  int wrong = 0;
  for (int64_t c = 0; c < n; ++c) wrong += int64_t(out.get(c)) != want[size_t(c)];
  bool fits = best.at("WARPS") == "8" || best.at("WARPS") == "4";
  report(fits && wrong == 0 && rejected == (expectWarm ? 0 : 2),
         fmt::format("configs over the limits: {} rejected, chose {}, {} wrong columns", rejected, configString(best),
                     wrong));
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char **argv) {
  bool expectWarm = false;
  std::string backend;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--expect-warm") expectWarm = true;
    else if (a == "--backend" && i + 1 < argc) backend = argv[++i];
    else {
      fmt::print(stderr, "usage: tigon_gpu_check [--expect-warm] [--backend llvm|nvrtc]\n");
      return 2;
    }
  }
  if (!haveGpu("the GPU checks need one")) return 0;
  try {
    ensureContext(0);  // this program allocates through the driver before any kernel loads
    Jit jit(DiskCache::defaultDir(), backend.empty() ? defaultBackend() : backend);
    fmt::print("device {} | cache {} | backend {} {}\n", jit.arch(), jit.disk().dir(), jit.backend(),
               backendVersion(jit.backend()));
    TileModule mod = loadTileSource("rms_norm.tile", builtinKernelSources().at("rms_norm.tile"));
    std::mt19937 rng(20261126);
    std::vector<std::pair<const char *, const char *>> configs = {{"1", "4"}, {"4", "1"}, {"4", "8"}, {"2", "16"}};
    for (ir::DType dt : {ir::DType::F32, ir::DType::F16, ir::DType::BF16})
      for (int64_t n : {1, 7, 128, 1000, 4096, 8192})
        for (auto [rows, warps] : configs) {
          try {
            checkRmsNorm(jit, mod, {dt, n, 37, {{"ROWS", rows}, {"WARPS", warps}}, true}, rng);
            checkRmsNorm(jit, mod, {dt, n, 1031, {{"ROWS", rows}, {"WARPS", warps}}, false}, rng);
          } catch (const Error &e) {
            // a config too large for one block is refused at compile time (the autotuner skips it)
            std::string why = e.what();
            report(why.find("elements per thread") != std::string::npos,
                   fmt::format("rms_norm {} N={} ROWS={} WARPS={} refused: {}", ir::dtypeName(dt), n, rows, warps, why));
          }
        }

    // compile and load times, and host overhead of a cached launch
    std::vector<double> cold, warm;
    for (int i = 0; i < 5; ++i) {
      // the first process finds these caches empty; the second (--expect-warm) finds them full
      Jit fresh(jit.disk().dir() + "-timing-" + std::to_string(i), jit.backend());
      auto k = fresh.kernel(mod, "rms_norm_fwd", {{"T", "bf16"}, {"N", "4096"}, {"ROWS", "1"}, {"WARPS", "4"}},
                            {true, true, true, true});
      (k->fromDisk ? warm : cold).push_back(k->millis);
    }
    if (!cold.empty()) fmt::print("cold compile of one config (source -> loaded cubin): median {:.1f} ms\n", median(cold));
    if (!warm.empty()) fmt::print("warm-cache load of one config: median {:.2f} ms\n", median(warm));

    // autotuning on first call (a second process reads the decision)
    int64_t m = 16384, n = 4096;
    HostTensor x(ir::DType::BF16, {m, n}), w(ir::DType::BF16, {n}), y(ir::DType::BF16, {m, n}), rstd(ir::DType::F32, {m});
    // random bf16 in [-2, 2): the top half of random floats (fast for 64M values)
    for (HostTensor *t : {&x, &w})
      for (int64_t i = 0; i < t->numel(); ++i) {
        uint16_t bits = uint16_t(floatBits(float(rng() % 65536) / 16384.0f - 2.0f) >> 16);
        std::memcpy(t->bytes.data() + 2 * i, &bits, 2);
      }
    DeviceTensor dx(x), dw(w), dy(y), dr(rstd);
    std::vector<KernelArg> args = {KernelArg::of(x.arg(dx.data())), KernelArg::of(w.arg(dw.data())), KernelArg::ofFloat(0),
                                   KernelArg::ofFloat(1e-6), KernelArg::of(y.arg(dy.data())), KernelArg::of(rstd.arg(dr.data()))};
    auto t0 = std::chrono::steady_clock::now();
    Bindings best = jit.tuned(mod, "rms_norm_fwd", {{"T", "bf16"}, {"N", "4096"}}, {true, true, true, true},
                              fmt::format("rms_norm_fwd bf16 N=4096 rows~{}", rowBucket(m)),
                              [&](const CompiledKernel &k) { return timeOnScratch(*k.gpu, k.ir, args, nullptr); });
    double tuneMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    auto k = jit.kernel(mod, "rms_norm_fwd", best, {true, true, true, true});
    double ms = timeOnScratch(*k->gpu, k->ir, args, nullptr, 3, 20);
    double gbs = double(2 * m * n * 2 + n * 2 + m * 4) / (ms * 1e6);
    fmt::print("autotune rms_norm_fwd bf16 16384x4096: {} in {:.0f} ms; {:.3f} ms = {:.0f} GB/s\n", configString(best), tuneMs, ms, gbs);

    // timing (autotuning) from a thread with no current context, as PyTorch's autograd worker
    // tunes a backward kernel: the scratch allocations come before any launch
    std::string threadError;
    double threadMs = -1;
    std::thread([&] {
      try {
        threadMs = timeOnScratch(*k->gpu, k->ir, args, nullptr, 1, 3);
      } catch (const std::exception &e) {
        threadError = e.what();
      }
    }).join();
    report(threadMs > 0, "timing on scratch from a new thread (no current context)" + (threadError.empty() ? "" : ": " + threadError));

    // host overhead: a tiny problem, so the GPU keeps up and the launch queue never fills
    HostTensor sx(ir::DType::BF16, {1, 128}), sw(ir::DType::BF16, {128}), sy(ir::DType::BF16, {1, 128}), sr(ir::DType::F32, {1});
    DeviceTensor dsx(sx), dsw(sw), dsy(sy), dsr(sr);
    std::vector<KernelArg> small = {KernelArg::of(sx.arg(dsx.data())), KernelArg::of(sw.arg(dsw.data())), KernelArg::ofFloat(0),
                                    KernelArg::ofFloat(1e-6), KernelArg::of(sy.arg(dsy.data())), KernelArg::of(sr.arg(dsr.data()))};
    auto tiny = jit.kernel(mod, "rms_norm_fwd", {{"T", "bf16"}, {"N", "128"}, {"ROWS", "1"}, {"WARPS", "4"}}, tensorAlignment(small));
    tiny->gpu->launch(small);
    sync();
    const int launches = 2000;
    auto l0 = std::chrono::steady_clock::now();
    for (int i = 0; i < launches; ++i) tiny->gpu->launch(small);
    double perLaunchUs = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - l0).count() / launches;
    sync();
    fmt::print("host time per cached launch (argument checks, grid, cuLaunchKernel): {:.2f} us\n", perLaunchUs);

    checkOverLimits(jit, expectWarm, rng);

    const auto &cnt = jit.counters();
    fmt::print("counters: compiled {} loaded-from-disk {} tunings {} rejected {}\n", cnt.compiled.load(),
               cnt.loadedFromDisk.load(), cnt.tunings.load(), cnt.rejected.load());
    if (expectWarm) report(cnt.compiled == 0 && cnt.tunings == 0, "warm process: nothing compiled, nothing tuned");
    else report(cnt.compiled > 0, "cold process compiled");
  } catch (const std::exception &e) {
    fmt::print("FAIL exception: {}\n", e.what());
    return 1;
  }
  fmt::print("{} passed, {} failed\n", g_passes, g_failures);
  return g_failures == 0 ? 0 : 1;
}
