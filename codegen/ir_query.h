// Small queries over a kernel's tile IR shared by the code generator's analyses: where each
// value is defined, a walk over every op, and the kernel's name and config for messages.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "dsl/ir.h"

namespace tigon::codegen {

struct ValueDef {
  const ir::Op *op = nullptr;    // the op whose result it is; null for a loop's block argument
  const ir::Op *loop = nullptr;  // for a block argument: its For op
  int arg = -1;                  // for a block argument: its position (0 is the induction variable)
};

// One entry per value of f.values; values of the grid block are included.
std::vector<ValueDef> collectDefs(const ir::Function &f);

// Calls fn on every op of the block and of the loop bodies inside it, in program order
// (a For op before its body).
void forEachOp(const ir::Block &b, const std::function<void(const ir::Op &)> &fn);

// "rms_norm_fwd [N=4096, T=bf16, warps=4]": names a specialization in error messages.
std::string describeKernel(const ir::Function &f);

// Errors while lowering an op: rethrows one that already names the kernel (starts with
// "kernel "), else throws "kernel <describeKernel>: <line>:<col>: <op kind>: <message>".
[[noreturn]] void failAt(const ir::Function &f, const ir::Op &op, const std::string &msg);
[[noreturn]] void rethrowAt(const ir::Function &f, const ir::Op &op, const std::exception &e);

// What every backend checks first: the IR verifies, and every scalar parameter has a type
// the kernel ABI passes (f32, i32, i64). Throws tigon::Error naming the kernel.
void checkLowerable(const ir::Function &f);

}  // namespace tigon::codegen
