// Tile IR -> LLVM IR (IRBuilder, NVVM intrinsics) -> O3 -> PTX through LLVM's NVPTX backend.
#pragma once
#include <string>

#include "dsl/ir.h"

namespace tigon::codegen {

struct PtxResult {
  std::string llvmIR;  // the optimized module, as text (filled when asked for)
  std::string ptx;
};

// `arch` is "sm_XY" (sm_80, sm_90, ...). Throws tigon::Error for an arch LLVM does not know
// or a kernel that cannot be lowered (naming the kernel and why).
PtxResult compileToPtx(const ir::Function &f, const std::string &arch, bool wantLlvmIR = false);

// The LLVM version that generates the code ("19.1.7"): part of every cache key.
std::string compilerVersion();

// The kernel's parameter list in the PTX, in order: for each tensor parameter a global
// pointer, then its sizes (i64 each), then its strides in elements (i64 each); for each scalar
// parameter its value (f32, i32 or i64). The entry's name is the kernel's name.
}  // namespace tigon::codegen
