// layer_norm.tile (the forward and the wide-row forward, the fused and the wide-row backward, partial-sum reduce) in the interpreter against
// torch::layer_norm in float64 with autograd.
#include "tests/torch/torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

TEST_CASE("layer_norm: interpreter forward and backward match a float64 LibTorch reference") {
  torch::manual_seed(4321);
  const TileModule &mod = builtinModule("layer_norm.tile");
  int variant = 0;
  for (ir::DType dt : kFloatTypes)
    for (int64_t n : {1, 7, 127, 128, 1000})
      for (int64_t m : {1, 5, 17})
        for (std::string perThread : {"16", "8"}) {
          // rotate through the affine variants and eps values
          int v = variant++;
          bool hasW = v % 3 != 2, hasB = v % 3 == 0;
          double eps = v % 2 ? 1e-12 : 1e-5;
          bool strided = v % 4 == 1;  // x a column slice of a wider matrix
          std::string tn = ir::dtypeName(dt);
          CAPTURE(tn);
          CAPTURE(n);
          CAPTURE(m);
          CAPTURE(perThread);
          CAPTURE(hasW);
          CAPTURE(hasB);
          CAPTURE(eps);
          CAPTURE(strided);
          Bindings bind = {{"T", tn}, {"N", std::to_string(n)}, {"PER_THREAD", perThread}};
          auto opts = torch::TensorOptions().dtype(torchType(dt));
          torch::Tensor x = (0.5 + 2 * torch::randn({m, strided ? n + 9 : n})).to(opts).narrow(1, 0, n);
          torch::Tensor w = hasW ? (1 + 0.3 * torch::randn({n})).to(opts) : torch::empty({0}, opts);
          torch::Tensor b = hasB ? (0.5 * torch::randn({n})).to(opts) : torch::empty({0}, opts);
          torch::Tensor dy = torch::randn({m, n}).to(opts);

          // forward
          torch::Tensor y = poisoned({m, n}, dt), mean = poisoned({m}, ir::DType::F32), rstd = poisoned({m}, ir::DType::F32);
          interpret(specialize(mod, "layer_norm_fwd", bind),
                    {arg(x, dt), arg(w, dt), arg(b, dt), KernelArg::ofFloat(eps), arg(y, dt), arg(mean, ir::DType::F32),
                     arg(rstd, ir::DType::F32)});

          torch::Tensor x64 = x.to(torch::kFloat64).requires_grad_();
          torch::Tensor w64 = hasW ? w.to(torch::kFloat64).requires_grad_() : torch::Tensor();
          torch::Tensor b64 = hasB ? b.to(torch::kFloat64).requires_grad_() : torch::Tensor();
          torch::Tensor y64 = torch::layer_norm(x64, {n}, w64, b64, eps);
          torch::Tensor mean64 = x64.detach().mean(-1);
          torch::Tensor rstd64 = torch::rsqrt(x64.detach().var(-1, /*unbiased=*/false) + eps);
          CHECK(relErr(mean, mean64) < 1e-6);
          CHECK(relErr(rstd, rstd64) < 1e-5);
          CHECK(relErr(y, y64.detach()) < tolerance(dt));
          // the wide-row forward, 3 programs taking row tiles in turn (more programs than tiles
          // at M = 1 and 2: the idle ones write nothing)
          {
            torch::Tensor y2 = poisoned({m, n}, dt), mean2 = poisoned({m}, ir::DType::F32), rstd2 = poisoned({m}, ir::DType::F32);
            Bindings rowsBind = {{"T", tn}, {"N", std::to_string(n)}, {"PER_THREAD", perThread}, {"WARPS", "8"}};
            interpret(specialize(mod, "layer_norm_fwd_rows", rowsBind),
                      {arg(x, dt), arg(w, dt), arg(b, dt), KernelArg::ofFloat(eps), KernelArg::ofInt(3), arg(y2, dt),
                       arg(mean2, ir::DType::F32), arg(rstd2, ir::DType::F32)});
            CHECK(relErr(mean2, mean64) < 1e-6);
            CHECK(relErr(rstd2, rstd64) < 1e-5);
            CHECK(relErr(y2, y64.detach()) < tolerance(dt));
          }

          // backward: dx, per-program partials of dw and db, then their sums; both the fused
          // kernel and the wide-row pair (dx alone, then dw and db by column blocks)
          y64.backward(dy.to(torch::kFloat64));
          int64_t programs = std::min<int64_t>(m, 3), rowsPer = (m + programs - 1) / programs;
          // dx is a difference of terms of size dy * w * rstd (exactly 0 at N = 1)
          torch::Tensor wEff = hasW ? w64.detach() : torch::ones({n}, torch::kFloat64);
          double dxScale = (dy.to(torch::kFloat64) * wEff * rstd64.unsqueeze(-1)).norm().item<double>();
          ir::Function reduce = specialize(builtinModule("column_sum.tile"), "column_sum", {{"T", tn}, {"N", std::to_string(n)}, {"PB", "4"}});
          for (bool wide : {false, true}) {
            CAPTURE(wide);
            torch::Tensor dx = poisoned({m, n}, dt);
            torch::Tensor dwPartial = poisoned({programs, hasW ? n : 0}, ir::DType::F32);
            torch::Tensor dbPartial = poisoned({programs, hasB ? n : 0}, ir::DType::F32);
            KernelArg dyA = arg(dy, dt), xA = arg(x, dt), meanA = arg(mean, ir::DType::F32), rstdA = arg(rstd, ir::DType::F32);
            if (!wide) {
              interpret(specialize(mod, "layer_norm_bwd", bind),
                        {dyA, xA, arg(w, dt), meanA, rstdA, KernelArg::ofInt(rowsPer), arg(dx, dt),
                         arg(dwPartial, ir::DType::F32), arg(dbPartial, ir::DType::F32)});
            } else {
              interpret(specialize(mod, "layer_norm_bwd_dx", bind), {dyA, xA, arg(w, dt), meanA, rstdA, arg(dx, dt)});
              // 256-column blocks: N = 1000 ends in a partial one; 2 rows per step: odd M ends in half a step
              Bindings blocks = {{"T", tn}, {"N", std::to_string(n)}, {"ROWS", "2"}, {"COLS", "256"}, {"WARPS", "2"}};
              interpret(specialize(mod, "layer_norm_weight_grads", blocks),
                        {dyA, xA, meanA, rstdA, KernelArg::ofInt(rowsPer), arg(dwPartial, ir::DType::F32),
                         arg(dbPartial, ir::DType::F32)});
            }
            CHECK(relErr(dx, x64.grad(), dxScale) < tolerance(dt));
            if (hasW) {
              torch::Tensor dw = poisoned({n}, dt);
              interpret(reduce, {arg(dwPartial, ir::DType::F32), arg(dw, dt)});
              // at N = 1, xhat = 0 and dw is 0 (the float64 reference holds rounding noise)
              double dwScale = n == 1 ? dy.to(torch::kFloat64).abs().sum(0).norm().item<double>() : 0.0;
              CHECK(relErr(dw, w64.grad(), dwScale) < tolerance(dt));
            }
            if (hasB) {
              torch::Tensor db = poisoned({n}, dt);
              interpret(reduce, {arg(dbPartial, ir::DType::F32), arg(db, dt)});
              CHECK(relErr(db, b64.grad()) < tolerance(dt));
            }
          }
        }
}
