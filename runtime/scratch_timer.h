// Times a kernel the way the autotuner must: on scratch copies of every tensor it writes, so
// tuning never touches the caller's outputs (or in-place buffers), with device events.
#pragma once
#include <cuda.h>

#include <vector>

#include "runtime/gpu_kernel.h"
#include "runtime/kernel_args.h"

namespace tigon {

// Median milliseconds of `reps` launches after `warmup` ones. `args` hold device pointers;
// out tensors get fresh scratch buffers, inout tensors scratch copies of their contents.
double timeOnScratch(const GpuKernel &kernel, const ir::Function &f, std::vector<KernelArg> args, CUstream stream,
                     int warmup = 2, int reps = 10);

// Bytes from a tensor's first element to one past its last (strides in elements).
size_t tensorExtentBytes(const TensorArg &t);

}  // namespace tigon
