// Helpers shared by the interpreter-vs-LibTorch reference tests of the built-in kernels:
// tensors as kernel arguments,
// poisoned outputs, relative errors and the per-dtype tolerances.
#pragma once
// LibTorch first: its logging header defines CHECK, CHECK_EQ, ... (aborting glog-style checks);
// they are dropped so that doctest's reporting checks take the names.
#include <torch/torch.h>
#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#undef CHECK_FALSE
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "dsl/frontend.h"
#include "runtime/builtin_kernels.h"
#include "runtime/interpreter.h"

namespace tigon::testing {

inline torch::ScalarType torchType(ir::DType t) {
  switch (t) {
    case ir::DType::F32: return torch::kFloat32;
    case ir::DType::F16: return torch::kFloat16;
    case ir::DType::BF16: return torch::kBFloat16;
    case ir::DType::I32: return torch::kInt32;
    case ir::DType::I64: return torch::kInt64;
    case ir::DType::Bool: return torch::kBool;
  }
  return torch::kFloat32;
}

// A tensor argument with the tensor's own sizes and strides (views stay views).
inline KernelArg arg(const torch::Tensor &t, ir::DType dt) {
  REQUIRE((t.scalar_type() == torchType(dt)));
  TensorArg a;
  a.data = t.data_ptr();
  a.dtype = dt;
  a.sizes = t.sizes().vec();
  a.strides = t.strides().vec();
  return KernelArg::of(a);
}

// A fresh output filled with NaN (or -1 for ints), so an unwritten element shows.
inline torch::Tensor poisoned(std::vector<int64_t> shape, ir::DType dt) {
  auto opts = torch::TensorOptions().dtype(torchType(dt));
  return ir::isFloat(dt) ? torch::full(shape, std::nan(""), opts) : torch::full(shape, -1, opts);
}

// ||out - ref|| / max(||ref||, scale) (1 when both are 0); fails on a NaN in `out`.
inline double relErr(const torch::Tensor &out, const torch::Tensor &ref, double scale = 0) {
  torch::Tensor o = out.to(torch::kFloat64), r = ref.to(torch::kFloat64);
  REQUIRE_FALSE(o.isnan().any().item<bool>());
  double denom = std::max(r.norm().item<double>(), scale);
  return (o - r).norm().item<double>() / (denom > 0 ? denom : 1.0);
}

inline double tolerance(ir::DType dt) {
  return dt == ir::DType::F32 ? 1e-5 : dt == ir::DType::BF16 ? 1e-2 : 2e-3;
}

inline const TileModule &builtinModule(const std::string &file) {
  static std::map<std::string, TileModule> modules;
  auto it = modules.find(file);
  if (it == modules.end()) it = modules.emplace(file, loadTileSource(file, builtinKernelSources().at(file))).first;
  return it->second;
}

constexpr ir::DType kFloatTypes[] = {ir::DType::F32, ir::DType::F16, ir::DType::BF16};

}  // namespace tigon::testing
