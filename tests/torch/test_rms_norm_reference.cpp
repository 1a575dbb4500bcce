// rms_norm.tile (forward and backward) in the interpreter against LibTorch float64 references.
#include <doctest/doctest.h>
#include <torch/torch.h>

#include "dsl/frontend.h"
#include "runtime/builtin_kernels.h"
#include "runtime/interpreter.h"

using namespace tigon;

namespace {

torch::ScalarType torchType(ir::DType t) {
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

KernelArg arg(const torch::Tensor &t, ir::DType dt) {
  REQUIRE((t.scalar_type() == torchType(dt)));
  TensorArg a;
  a.data = t.data_ptr();
  a.dtype = dt;
  a.sizes = t.sizes().vec();
  a.strides = t.strides().vec();
  return KernelArg::of(a);
}

// A fresh output filled with NaN (or -1 for ints), so an unwritten element shows.
torch::Tensor poisoned(std::vector<int64_t> shape, ir::DType dt) {
  return torch::full(shape, std::nan(""), torch::TensorOptions().dtype(torchType(dt)));
}

// ||out - ref|| / ||ref||, or over `scale` when the result is a small difference of larger
// terms (dx of RMSNorm at N = 1 is nearly zero: its error is relative to dy * w * rstd).
double relErr(const torch::Tensor &out, const torch::Tensor &ref, double scale = 0) {
  torch::Tensor o = out.to(torch::kFloat64), r = ref.to(torch::kFloat64);
  REQUIRE_FALSE(o.isnan().any().item<bool>());
  double denom = std::max(r.norm().item<double>(), scale);
  return (o - r).norm().item<double>() / (denom > 0 ? denom : 1.0);
}

double tolerance(ir::DType dt) { return dt == ir::DType::F32 ? 1e-5 : dt == ir::DType::BF16 ? 1e-2 : 2e-3; }

const TileModule &rmsModule() {
  static const TileModule m = loadTileSource("rms_norm.tile", builtinKernelSources().at("rms_norm.tile"));
  return m;
}

}  // namespace

TEST_CASE("rms_norm: interpreter forward and backward match a float64 LibTorch reference") {
  torch::manual_seed(1234);
  const double eps = 1e-6;
  for (ir::DType dt : {ir::DType::F32, ir::DType::F16, ir::DType::BF16})
    for (int64_t n : {1, 7, 128, 1000, 4096})
      for (int64_t m : {1, 5, 17})
        for (const char *rows : {"1", "4"}) {
          double offset = n == 7 ? 1.0 : 0.0;  // Gemma-style offset once
          std::string tn = ir::dtypeName(dt);
          CAPTURE(tn);
          CAPTURE(n);
          CAPTURE(m);
          CAPTURE(rows);
          Bindings b = {{"T", tn}, {"N", std::to_string(n)}, {"ROWS", rows}};
          auto opts = torch::TensorOptions().dtype(torchType(dt));
          torch::Tensor x = torch::randn({m, n}).to(opts), w = (1 + 0.1 * torch::randn({n})).to(opts);
          torch::Tensor dy = torch::randn({m, n}).to(opts);

          // forward
          torch::Tensor y = poisoned({m, n}, dt), rstd = poisoned({m}, ir::DType::F32);
          ir::Function fwd = specialize(rmsModule(), "rms_norm_fwd", b);
          interpret(fwd, {arg(x, dt), arg(w, dt), KernelArg::ofFloat(offset), KernelArg::ofFloat(eps), arg(y, dt),
                          arg(rstd, ir::DType::F32)});

          torch::Tensor x64 = x.to(torch::kFloat64).requires_grad_(), w64 = w.to(torch::kFloat64).requires_grad_();
          torch::Tensor rstd64 = torch::rsqrt(x64.pow(2).mean(-1, true) + eps);
          torch::Tensor y64 = x64 * rstd64 * (offset + w64);
          CHECK(relErr(rstd, rstd64.squeeze(-1).detach()) < 1e-6);
          CHECK(relErr(y, y64.detach()) < tolerance(dt));

          // backward: dx and per-program dw partials, then their sum
          y64.backward(dy.to(torch::kFloat64));
          int64_t programs = std::min<int64_t>(m, 3), rowsPer = (m + programs - 1) / programs;
          torch::Tensor dx = poisoned({m, n}, dt), partial = poisoned({programs, n}, ir::DType::F32);
          ir::Function bwd = specialize(rmsModule(), "rms_norm_bwd", b);
          interpret(bwd, {arg(dy, dt), arg(x, dt), arg(w, dt), arg(rstd, ir::DType::F32), KernelArg::ofFloat(offset),
                          KernelArg::ofInt(rowsPer), arg(dx, dt), arg(partial, ir::DType::F32)});
          torch::Tensor dw = poisoned({n}, dt);
          ir::Function reduce = specialize(rmsModule(), "rms_norm_dw_reduce", {{"T", tn}, {"N", std::to_string(n)}});
          interpret(reduce, {arg(partial, ir::DType::F32), arg(dw, dt)});
          double dxScale = (dy.to(torch::kFloat64) * (offset + w64.detach()) * rstd64.detach()).norm().item<double>();
          CHECK(relErr(dx, x64.grad(), dxScale) < tolerance(dt));
          CHECK(relErr(dw, w64.grad()) < tolerance(dt));
        }
}
