// The semantics of the tile IR's elementwise ops (dsl/ir.h) on one element, as CUDA C++
// expressions, and the device helpers they call (the prelude of every generated kernel).
// The same instructions as the LLVM backend (codegen/scalar_ops): f16/bf16 values live in f32
// registers, always holding a value of their dtype (rounded to nearest even after every op);
// arithmetic is IEEE (__fadd_rn, __fdiv_rn, __fsqrt_rn: never contracted into an fma); the
// approximate ops use the same PTX (ex2.approx, lg2.approx, rsqrt.approx, tanh.approx).
// Operands are names or literals (each appears in the expression once or more). Every
// function throws tigon::Error for an op the dtype does not have (exp of an int, ...).
#pragma once
#include <string>

#include "dsl/ir.h"

namespace tigon::codegen::cuda {

// The definitions every generated kernel starts with (no headers: NVRTC finds none by itself).
const std::string &prelude();

const char *registerType(ir::DType t);  // f16 and bf16 are float
const char *memoryType(ir::DType t);    // f16 and bf16 are their bits; bool is a byte

// A value of dtype t from its memory representation and back.
std::string fromMemory(ir::DType t, const std::string &bits);
std::string toMemory(ir::DType t, const std::string &x);

std::string constant(ir::DType t, double fval, int64_t ival);
std::string unary(ir::UnaryOp op, ir::DType t, const std::string &x);
// For comparisons the result is bool; otherwise of dtype t.
std::string binary(ir::BinaryOp op, ir::DType t, const std::string &x, const std::string &y);
std::string fma(ir::DType t, const std::string &x, const std::string &y, const std::string &z);
std::string cast(ir::DType from, ir::DType to, const std::string &x);
// An f32 result rounded to the float dtype t (unchanged for f32).
std::string narrow(ir::DType t, const std::string &x);

}  // namespace tigon::codegen::cuda
