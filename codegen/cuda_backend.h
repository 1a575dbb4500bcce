// Tile IR -> CUDA C++ source, which the runtime compiles with NVRTC (runtime/nvrtc.h): the
// second backend, for comparing with the LLVM backend and as a path that needs no LLVM.
//
// The kernel is `extern "C" __global__` with `__launch_bounds__(32 * warps)`, named as the
// IR function, with the ABI of codegen/llvm_backend.h (per tensor a pointer, its sizes and
// strides as long long; scalars by value). It uses the same thread layout (LayoutPlan) and
// thread plan (codegen/thread_plan.h) as the LLVM backend, so each thread holds, loads and
// stores the same elements with the same 16-byte vectors and reduces in the same order; and
// the same instructions for every elementwise op (codegen/cuda_scalar_ops.h), so both
// backends give the same bits. It includes no header.
#pragma once
#include <string>

#include "dsl/ir.h"

namespace tigon::codegen {

// Throws tigon::Error naming the kernel when it cannot be lowered (the same checks and limits
// as the LLVM backend: elements per thread, shared memory, warps).
std::string emitCuda(const ir::Function &f);

}  // namespace tigon::codegen
