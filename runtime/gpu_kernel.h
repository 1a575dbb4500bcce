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
  // Loads a module image (a cubin, or PTX that the driver then compiles) for the current
  // device; throws tigon::Error with the driver's log on failure, or when the compiled kernel
  // cannot run 32 * warps threads (too many registers per thread).
  GpuKernel(const ir::Function &f, const std::string &image, int device = 0);
  ~GpuKernel();
  GpuKernel(const GpuKernel &) = delete;
  GpuKernel &operator=(const GpuKernel &) = delete;

  // Checks the arguments, evaluates the grid and launches on `stream` (tensors hold device
  // pointers). A grid with a zero dimension launches nothing.
  void launch(const std::vector<KernelArg> &args, CUstream stream = nullptr) const;

  int device() const { return device_; }
  int registersPerThread() const;
  int localBytesPerThread() const;  // spills and stack: should be 0

 private:
  const ir::Function f_;  // a copy: the kernel outlives the caller's IR
  int device_;
  CUmodule module_ = nullptr;
  CUfunction function_ = nullptr;
};

// Makes the device's primary context (the one PyTorch uses too) current on this thread.
void ensureContext(int device = 0);

// PTX -> cubin for a device through the driver's linker (ptxas inside the driver).
std::string ptxToCubin(const std::string &ptx, const std::string &kernelName, int device = 0);

}  // namespace tigon
