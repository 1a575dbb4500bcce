// The JIT: a kernel of a .tile module, specialized for bindings, compiled for the GPU of this
// process and loaded; compiled once per process (memory cache, thread-safe) and once per
// machine (disk cache: a warm process loads the cubin and runs no compiler). Also the
// autotuner's driver: candidates compiled in parallel, timed, the decision persisted.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dsl/frontend.h"
#include "runtime/autotune.h"
#include "runtime/disk_cache.h"
#include "runtime/gpu_kernel.h"

namespace tigon {

struct CompiledKernel {
  ir::Function ir;
  std::string ptx;
  std::unique_ptr<GpuKernel> gpu;
  bool fromDisk = false;
  double millis = 0;  // to compile or load it
};

// Everything a compiled kernel depends on, as one string: source hash, tigon and compiler
// versions, backend, arch, every binding, the alignment of each tensor. Never the row count.
std::string kernelKey(const TileModule &m, const std::string &kernel, const Bindings &b, const std::string &arch,
                      const std::string &backend, const std::vector<bool> &aligned);

class Jit {
 public:
  // The process-wide JIT, caching in DiskCache::defaultDir().
  static Jit &instance();
  explicit Jit(const std::string &cacheDir);

  // The compiled kernel for complete bindings (every const and tune value bound) and the
  // alignment of each tensor parameter (in parameter order; scalars ignored).
  std::shared_ptr<const CompiledKernel> kernel(const TileModule &m, const std::string &kernel, const Bindings &b,
                                               const std::vector<bool> &aligned, int device = 0);

  // The config (tune values) to use for a call: remembered, read from disk, the default
  // (TIGON_AUTOTUNE=0), or found by timing every candidate with `time` and then persisted.
  // `tuneKey` names the call's class: op, dtype, const values and row bucket.
  using KernelTimer = std::function<double(const CompiledKernel &)>;
  Bindings tuned(const TileModule &m, const std::string &kernel, const Bindings &fixed, const std::vector<bool> &aligned,
                 const std::string &tuneKey, const KernelTimer &time, int device = 0);

  std::string arch(int device = 0);
  std::string backend() const { return backend_; }
  DiskCache &disk() { return disk_; }

  struct Counters {
    std::atomic<int> compiled{0}, loadedFromDisk{0}, tunings{0};
  };
  const Counters &counters() const { return counters_; }

 private:
  struct Slot {
    std::once_flag once;
    std::shared_ptr<const CompiledKernel> kernel;
  };
  DiskCache disk_;
  std::string backend_;
  std::map<int, std::string> arch_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Slot>> kernels_;
  std::map<std::string, Bindings> tunings_;
  Counters counters_;

  std::shared_ptr<const CompiledKernel> build(const TileModule &m, const std::string &kernel, const Bindings &b,
                                              const std::vector<bool> &aligned, const std::string &key, int device);
};

// The backend the JIT uses: TIGON_BACKEND (llvm, the default).
std::string defaultBackend();

}  // namespace tigon
