// swiglu.tile (forward and backward) in the interpreter against a float64 LibTorch reference
// with autograd: silu(a) * b on rows of any stride (a and b as the halves of a fused gate_up
// projection), small and large N (several rows per program, several column blocks per row).
#include "tests/torch/torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

TEST_CASE("swiglu: interpreter forward and backward match a float64 LibTorch reference") {
  torch::manual_seed(2024);
  const TileModule &mod = builtinModule("swiglu.tile");
  int variant = 0;
  for (ir::DType dt : kFloatTypes)
    for (int64_t n : {1, 7, 127, 128, 1000, 4100})
      for (int64_t m : {1, 5, 17})
        for (std::string block : {"2048", "1024"}) {
          bool fused = variant++ % 2 == 1;  // a, b = gate_up[:, :N], gate_up[:, N:]
          std::string tn = ir::dtypeName(dt);
          CAPTURE(tn);
          CAPTURE(n);
          CAPTURE(m);
          CAPTURE(block);
          CAPTURE(fused);
          Bindings bind = {{"T", tn}, {"N", std::to_string(n)}, {"BLOCK", block}};
          auto opts = torch::TensorOptions().dtype(torchType(dt));
          torch::Tensor a, b;
          if (fused) {
            torch::Tensor gateUp = (2 * torch::randn({m, 2 * n})).to(opts);
            a = gateUp.narrow(1, 0, n);
            b = gateUp.narrow(1, n, n);
          } else {
            a = (2 * torch::randn({m, n})).to(opts);
            b = torch::randn({m, n}).to(opts);
          }
          torch::Tensor c = poisoned({m, n}, dt);
          interpret(specialize(mod, "swiglu_fwd", bind), {arg(a, dt), arg(b, dt), arg(c, dt)});
          torch::Tensor a64 = a.to(torch::kFloat64).requires_grad_(), b64 = b.to(torch::kFloat64).requires_grad_();
          torch::Tensor c64 = torch::silu(a64) * b64;
          CHECK(relErr(c, c64.detach()) < tolerance(dt));

          torch::Tensor dc = torch::randn({m, n}).to(opts);
          torch::Tensor da = poisoned({m, n}, dt), db = poisoned({m, n}, dt);
          interpret(specialize(mod, "swiglu_bwd", bind), {arg(dc, dt), arg(a, dt), arg(b, dt), arg(da, dt), arg(db, dt)});
          c64.backward(dc.to(torch::kFloat64));
          CHECK(relErr(da, a64.grad()) < tolerance(dt));
          CHECK(relErr(db, b64.grad()) < tolerance(dt));
        }
}
