// The semantics of the tile IR's elementwise ops (dsl/ir.h) on one element, as LLVM IR:
// f16/bf16 compute in f32 and round to their dtype after every op; the approximate ops use
// the GPU's fast instructions on f32; sqrt and division are IEEE. Every function throws
// tigon::Error for an op the dtype does not have (exp of an int, rem of a float, ...).
#pragma once
#include <llvm/IR/IRBuilder.h>

#include "dsl/ir.h"

namespace tigon::codegen {

llvm::Type *registerType(llvm::LLVMContext &ctx, ir::DType t);  // bool is i1
llvm::Type *memoryType(llvm::LLVMContext &ctx, ir::DType t);    // bool is i8
llvm::Value *toMemory(llvm::IRBuilder<> &b, ir::DType t, llvm::Value *x);
llvm::Value *fromMemory(llvm::IRBuilder<> &b, ir::DType t, llvm::Value *x);

llvm::Value *emitConst(llvm::IRBuilder<> &b, ir::DType t, double fval, int64_t ival);
llvm::Value *emitUnary(llvm::IRBuilder<> &b, ir::UnaryOp op, ir::DType t, llvm::Value *x);
// For comparisons the result is i1; otherwise of dtype t.
llvm::Value *emitBinary(llvm::IRBuilder<> &b, ir::BinaryOp op, ir::DType t, llvm::Value *x, llvm::Value *y);
llvm::Value *emitFma(llvm::IRBuilder<> &b, ir::DType t, llvm::Value *x, llvm::Value *y, llvm::Value *z);
llvm::Value *emitCast(llvm::IRBuilder<> &b, ir::DType from, ir::DType to, llvm::Value *x);

// A float of dtype t as f32, and back with round-to-nearest-even (no-ops for f32).
llvm::Value *widen(llvm::IRBuilder<> &b, ir::DType t, llvm::Value *x);
llvm::Value *narrow(llvm::IRBuilder<> &b, ir::DType t, llvm::Value *x);

}  // namespace tigon::codegen
