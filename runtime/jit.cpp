#include "runtime/jit.h"

#include <chrono>
#include <future>
#include <thread>

#include "dsl/error.h"
#include "runtime/cuda_driver.h"
#include "runtime/log.h"

namespace tigon {

namespace {

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

std::string kernelKey(const TileModule &m, const std::string &kernel, const Bindings &b, const std::string &arch,
                      const std::string &backend, const std::vector<bool> &aligned) {
  std::string align;
  for (bool a : aligned) align += a ? '1' : '0';
  return fmt::format("tigon {} | {} {} | {} | source {} | {} | {} | align {}", TIGON_VERSION, backend,
                     backendVersion(backend), arch, m.sourceHash, kernel, configString(b), align);
}

Jit &Jit::instance() {
  static Jit jit(DiskCache::defaultDir());
  return jit;
}

Jit::Jit(const std::string &cacheDir, const std::string &backend) : disk_(cacheDir), backend_(backend) {
  checkBackend(backend);
}

std::string Jit::arch(int device) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string &a = arch_[device];
  if (a.empty()) a = cuda::nativeArch(device);
  return a;
}

std::shared_ptr<const CompiledKernel> Jit::kernel(const TileModule &m, const std::string &kernel, const Bindings &b,
                                                  const std::vector<bool> &aligned, int device,
                                                  const std::string &backend) {
  const std::string &use = backend.empty() ? backend_ : backend;
  std::string key = kernelKey(m, kernel, b, arch(device), use, aligned);
  std::shared_ptr<Slot> slot;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto &s = kernels_[fmt::format("{} | device {}", key, device)];  // a loaded module serves one device
    if (!s) s = std::make_shared<Slot>();
    slot = s;
  }
  // two threads asking for the same kernel compile it once; a failure lets a later call retry
  std::call_once(slot->once, [&] { slot->kernel = build(m, kernel, b, aligned, key, device, use); });
  return slot->kernel;
}

std::shared_ptr<const CompiledKernel> Jit::build(const TileModule &m, const std::string &kernel, const Bindings &b,
                                                 const std::vector<bool> &aligned, const std::string &key, int device,
                                                 const std::string &backend) {
  auto t0 = std::chrono::steady_clock::now();
  auto ck = std::make_shared<CompiledKernel>();
  ck->ir = specialize(m, kernel, b);
  ck->backend = backend;
  size_t t = 0;
  for (ir::Param &p : ck->ir.params)
    if (p.kind == ir::Param::Kind::Tensor) p.aligned16 = t < aligned.size() ? aligned[t++] : false;

  if (auto entry = disk_.load(key); entry && entry->count("cubin")) {
    try {
      ck->gpu = std::make_unique<GpuKernel>(ck->ir, entry->at("cubin"), device);
      ck->ptx = entry->count("ptx") ? entry->at("ptx") : "";
      ck->fromDisk = true;
    } catch (const Error &e) {
      log::warn("cached kernel {} did not load ({}); recompiling", kernel, e.what());
    }
  }
  if (!ck->gpu) {
    ck->ptx = compilePtx(ck->ir, arch(device), backend);
    std::string cubin = ptxToCubin(ck->ptx, kernel, device);
    ck->gpu = std::make_unique<GpuKernel>(ck->ir, cubin, device);
    disk_.store(key, {{"ptx", ck->ptx}, {"cubin", cubin}});
  }
  ck->millis = msSince(t0);
  (ck->fromDisk ? counters_.loadedFromDisk : counters_.compiled)++;
  log::info("{} {} ({}) for {} by {} in {:.1f} ms", ck->fromDisk ? "loaded" : "compiled", kernel, configString(b),
            arch(device), backend, ck->millis);
  return ck;
}

Bindings Jit::tuned(const TileModule &m, const std::string &kernel, const Bindings &fixed,
                    const std::vector<bool> &aligned, const std::string &tuneKey, const KernelTimer &time,
                    int device) {
  // the versions too: a new tigon or compiler may reject (or speed up) a remembered config
  std::string key = fmt::format("tune | tigon {} | {} | {} {} | {} | {}", TIGON_VERSION, arch(device), backend_,
                                backendVersion(backend_), m.sourceHash, tuneKey);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = tunings_.find(key); it != tunings_.end()) return it->second;
  }
  const ast::Kernel *k = m.ast.findKernel(kernel);
  if (!k) throw Error(fmt::format("no kernel '{}' in {}", kernel, m.path));
  std::string what = fmt::format("{} ({})", kernel, configString(fixed));
  std::vector<Bindings> candidates = tuneSpace(*k, fixed);
  auto noteRejections = [&](const TuneResult &r) {
    counters_.rejected += r.rejected;
    for (const std::string &why : r.rejections) log::info("  rejected {}", why);
  };
  Bindings chosen;
  if (auto entry = disk_.load(key); entry && entry->count("config")) {
    chosen = parseConfig(entry->at("config"));
    for (auto &[name, value] : fixed) chosen[name] = value;
  } else if (!autotuneEnabled() || candidates.size() == 1) {  // nothing to choose: nothing timed
    TuneResult r = pickFirstThatRuns(what, candidates, [&](const Bindings &c) -> std::optional<double> {
      this->kernel(m, kernel, c, aligned, device);
      return 0.0;
    });
    chosen = r.best;
    if (r.rejected) log::info("{} [{}]: the default config does not fit; using {}", kernel, tuneKey, configString(chosen));
    noteRejections(r);
  } else {
    auto t0 = std::chrono::steady_clock::now();
    // compile every candidate at once (LLVM and the driver's ptxas run in parallel threads)
    std::map<std::string, std::shared_future<std::shared_ptr<const CompiledKernel>>> compiled;
    for (const Bindings &c : candidates)
      compiled[configString(c)] =
          std::async(std::launch::async, [&, c] { return this->kernel(m, kernel, c, aligned, device); }).share();
    TuneResult r = pickFastest(what, candidates, [&](const Bindings &c) -> std::optional<double> {
      return time(*compiled.at(configString(c)).get());
    });
    chosen = r.best;
    disk_.store(key, {{"config", configString(chosen)}});
    counters_.tunings++;
    log::info("tuned {} [{}]: {} ({:.3f} ms; {} timed, {} rejected) in {:.0f} ms", kernel, tuneKey, configString(chosen),
              r.bestMs, r.timed, r.rejected, msSince(t0));
    noteRejections(r);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  tunings_[key] = chosen;
  return chosen;
}

}  // namespace tigon
