// One compiled kernel loaded on the current GPU: PTX in, launches out. Arguments are passed
// in the ABI of codegen/llvm_backend.h (tensor: pointer, sizes, strides; scalars by value).
#pragma once
#include <cuda.h>

#include <array>
#include <string>
#include <vector>

#include "dsl/ir.h"
#include "runtime/kernel_args.h"

namespace tigon {

class GpuKernel {
 public:
  // Loads the PTX through the driver's JIT for the current device; throws tigon::Error with
  // the JIT log on failure.
  GpuKernel(const ir::Function &f, const std::string &ptx);
  ~GpuKernel();
  GpuKernel(const GpuKernel &) = delete;
  GpuKernel &operator=(const GpuKernel &) = delete;

  // Checks the arguments, evaluates the grid and launches on `stream` (tensors hold device
  // pointers). A grid with a zero dimension launches nothing.
  void launch(const std::vector<KernelArg> &args, CUstream stream = nullptr) const;

  int registersPerThread() const;

 private:
  const ir::Function f_;  // a copy: the kernel outlives the caller's IR
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
};

// Makes the device's primary context current on this thread (once per thread).
void ensureContext();

}  // namespace tigon
