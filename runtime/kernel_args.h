// A kernel's run-time arguments, as the interpreter and the GPU launcher take them: one
// KernelArg per kernel parameter, in declaration order.
#pragma once
#include <cstdint>
#include <vector>

#include "dsl/ir.h"

namespace tigon {

struct TensorArg {
  void *data = nullptr;          // host memory for the interpreter, device memory on the GPU
  ir::DType dtype = ir::DType::F32;
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements; the last must be 1
};

struct KernelArg {
  enum class Kind { Tensor, Float, Int } kind = Kind::Int;
  TensorArg tensor;
  double f = 0;
  int64_t i = 0;

  static KernelArg of(TensorArg t) {
    KernelArg a;
    a.kind = Kind::Tensor;
    a.tensor = std::move(t);
    return a;
  }
  static KernelArg ofFloat(double v) {
    KernelArg a;
    a.kind = Kind::Float;
    a.f = v;
    return a;
  }
  static KernelArg ofInt(int64_t v) {
    KernelArg a;
    a.kind = Kind::Int;
    a.i = v;
    return a;
  }
};

// Whether a tensor keeps the promise ir::Param::aligned16 makes: a 16-byte aligned base and
// every stride but the last a multiple of 16 bytes (but that of a dimension of size 1, only
// ever indexed at 0: a flat tensor viewed as one row [1, n] is aligned whatever n is).
bool isAligned16(const TensorArg &t);
// isAligned16 of each tensor argument, in order (what the JIT specializes on).
std::vector<bool> tensorAlignment(const std::vector<KernelArg> &args);

// Checks the arguments against the kernel's parameters (count, kinds, dtypes, ranks, const
// sizes, same-named dimensions agreeing, unit last stride); throws tigon::Error naming the
// parameter otherwise.
void checkArgs(const ir::Function &f, const std::vector<KernelArg> &args);

}  // namespace tigon
