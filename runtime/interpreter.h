// The reference interpreter: runs specialized tile IR on the host CPU with the exact
// semantics written in dsl/ir.h. It is the oracle the GPU backends are tested against, and it
// runs CPU tensors through the same kernels.
#pragma once
#include <array>
#include <vector>

#include "dsl/ir.h"
#include "runtime/kernel_args.h"

namespace tigon {

// The launch grid (programs along x, y, z) the kernel declares for these arguments, after
// checkArgs. Cheap enough for every launch: the IR is not verified again.
std::array<int64_t, 3> evalGrid(const ir::Function &f, const std::vector<KernelArg> &args);

// Runs every program of the grid, one after another. Tensor arguments point to host memory.
void interpret(const ir::Function &f, const std::vector<KernelArg> &args);

}  // namespace tigon
