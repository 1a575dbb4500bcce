// Between LibTorch and tigon's runtime: tensors as kernel arguments, and one call that runs a
// kernel of a .tile module on the tensors' device: the JIT (autotuned on first call, on
// torch's current stream) for CUDA tensors, the interpreter for CPU tensors.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "dsl/frontend.h"
#include "dsl/error.h"
#include "runtime/kernel_args.h"

namespace tigon::ops {

ir::DType dtypeOf(const at::Tensor &t);
at::ScalarType scalarTypeOf(ir::DType t);

// The tensor as a kernel argument (its last stride must be 1; sizes and strides as they are).
KernelArg tensorArg(const at::Tensor &t);

// A built-in .tile file ("rms_norm.tile"), parsed and checked once per process.
const TileModule &builtinModule(const std::string &file);

// Runs `kernel` over its grid. `fixed` binds dtypes and consts; tune values come from the
// autotuner (bucketed by `rows`, and by `columns` where a run-time width decides the best
// config, as the vocabulary does cross-entropy's) on CUDA, from the kernel's defaults on the
// CPU. tune = false takes the defaults on CUDA too (nothing timed: for tiny kernels, and
// in-place ones whose timing would copy a large tensor to scratch memory).
void runKernel(const TileModule &m, const std::string &kernel, const Bindings &fixed, const std::vector<KernelArg> &args,
               const at::Device &device, int64_t rows, bool tune = true, int64_t columns = 0);

// Number of multiprocessors of a CUDA device (for sizing persistent grids); 4 on the CPU.
int64_t parallelism(const at::Device &device);

// Converts a tigon::Error into the c10::Error that Python sees as RuntimeError, and a
// tigon::OutOfMemory into the c10::OutOfMemoryError it sees as torch.OutOfMemoryError.
template <typename F>
auto guarded(F &&f) -> decltype(f()) {
  try {
    return f();
  } catch (const tigon::OutOfMemory &e) {
    TORCH_CHECK_WITH(OutOfMemoryError, false, e.what());
  } catch (const tigon::Error &e) {
    TORCH_CHECK(false, e.what());
  }
}

}  // namespace tigon::ops
