// rms_norm.tile (forward and backward) in the interpreter against LibTorch float64 references.
#include "torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

namespace {

const TileModule &rmsModule() { return builtinModule("rms_norm.tile"); }

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
          ir::Function reduce = specialize(builtinModule("column_sum.tile"), "column_sum", {{"T", tn}, {"N", std::to_string(n)}});
          interpret(reduce, {arg(partial, ir::DType::F32), arg(dw, dt)});
          double dxScale = (dy.to(torch::kFloat64) * (offset + w64.detach()) * rstd64.detach()).norm().item<double>();
          CHECK(relErr(dx, x64.grad(), dxScale) < tolerance(dt));
          CHECK(relErr(dw, w64.grad()) < tolerance(dt));
        }
}
