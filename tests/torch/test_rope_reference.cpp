// rope.tile (HF rotate-half RoPE, forward and backward) in the interpreter against a float64
// LibTorch reference with autograd: strided q/k made by view + transpose as HF does, GQA head
// counts, partial rotary, cos/sin broadcast over the batch, f32 cos/sin with 16-bit q, and the
// Qwen2-VL vision layout (S, H, D).
#include "tests/torch/torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

namespace {

torch::Tensor rotateHalf(const torch::Tensor &x) {
  int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// HF apply_rotary_pos_emb on the first R channels of x (..., S, D); cos/sin broadcast (..., S, R).
torch::Tensor ropeRef(const torch::Tensor &x, const torch::Tensor &cos, const torch::Tensor &sin, int64_t r) {
  torch::Tensor rot = x.narrow(-1, 0, r), pass = x.narrow(-1, r, x.size(-1) - r);
  return torch::cat({rot * cos + rotateHalf(rot) * sin, pass}, -1);
}

struct RopeCase {
  int64_t b, hq, hk, s, d, r;
  bool batchCos;  // cos/sin per batch entry, else (1, S, R) expanded with batch stride 0
  bool vision;    // q/k given as (S, H, D) and viewed as (1, H, S, D)
  bool random = false;  // arbitrary cos/sin tables (halves differ): checks the general formula
};

// HF's q = proj(hidden).view(B, S, H, D).transpose(1, 2): (B, H, S, D) with strides
// (S*H*D, D, H*D, 1); the vision tower's (S, H, D) viewed as (1, H, S, D) likewise
torch::Tensor hfLayout(int64_t b, int64_t h, int64_t s, int64_t d, const torch::TensorOptions &opts) {
  return torch::randn({b, s, h, d}).to(opts).transpose(1, 2);
}

void checkRope(const RopeCase &c, ir::DType dt, ir::DType ct, const std::string &warps) {
  const TileModule &mod = builtinModule("rope.tile");
  std::string tn = ir::dtypeName(dt), cn = ir::dtypeName(ct);
  CAPTURE(tn);
  CAPTURE(cn);
  CAPTURE(c.b);
  CAPTURE(c.hq);
  CAPTURE(c.hk);
  CAPTURE(c.s);
  CAPTURE(c.d);
  CAPTURE(c.r);
  CAPTURE(c.batchCos);
  CAPTURE(c.vision);
  CAPTURE(c.random);
  CAPTURE(warps);
  REQUIRE((!c.vision || c.b == 1));
  auto opts = torch::TensorOptions().dtype(torchType(dt));
  auto copts = torch::TensorOptions().dtype(torchType(ct));
  torch::Tensor q = hfLayout(c.b, c.hq, c.s, c.d, opts), k = hfLayout(c.b, c.hk, c.s, c.d, opts);
  // cos/sin as HF builds them: cat(freqs, freqs) over positions (here per batch entry or shared)
  int64_t bc = c.batchCos ? c.b : 1;
  torch::Tensor pos = torch::arange(c.s, torch::kFloat64).unsqueeze(0) + 3 * torch::arange(bc, torch::kFloat64).unsqueeze(1);
  torch::Tensor invFreq = torch::pow(10000.0, -torch::arange(0, c.r, 2, torch::kFloat64) / double(c.r));
  torch::Tensor freqs = pos.unsqueeze(-1) * invFreq;  // (bc, S, R/2)
  torch::Tensor emb = torch::cat({freqs, freqs}, -1);
  torch::Tensor cos = emb.cos().to(copts), sin = emb.sin().to(copts);
  if (c.random) {
    cos = torch::randn({bc, c.s, c.r}).to(copts);
    sin = torch::randn({bc, c.s, c.r}).to(copts);
  }
  // the vision tower's (S, R) tables are (1, S, R) here too
  torch::Tensor cosArg = cos.expand({c.b, c.s, c.r}), sinArg = sin.expand({c.b, c.s, c.r});
  Bindings bind = {{"T", tn}, {"C", cn}, {"R", std::to_string(c.r)}, {"D", std::to_string(c.d)},
                   {"HQ", std::to_string(c.hq)}, {"HK", std::to_string(c.hk)}, {"WARPS", warps}};

  // forward into contiguous poisoned (B, H, S, D) outputs
  torch::Tensor qe = poisoned({c.b, c.hq, c.s, c.d}, dt), ke = poisoned({c.b, c.hk, c.s, c.d}, dt);
  interpret(specialize(mod, "rope_fwd", bind),
            {arg(q, dt), arg(k, dt), arg(cosArg, ct), arg(sinArg, ct), arg(qe, dt), arg(ke, dt)});
  torch::Tensor q64 = q.to(torch::kFloat64).requires_grad_(), k64 = k.to(torch::kFloat64).requires_grad_();
  torch::Tensor cos64 = cos.to(torch::kFloat64).unsqueeze(1), sin64 = sin.to(torch::kFloat64).unsqueeze(1);
  torch::Tensor qe64 = ropeRef(q64, cos64, sin64, c.r), ke64 = ropeRef(k64, cos64, sin64, c.r);
  CHECK(relErr(qe, qe64.detach()) < tolerance(dt));
  CHECK(relErr(ke, ke64.detach()) < tolerance(dt));
  // the pass-through channels are copied exactly
  if (c.r < c.d) {
    CHECK(torch::equal(qe.narrow(-1, c.r, c.d - c.r), q.narrow(-1, c.r, c.d - c.r)));
    CHECK(torch::equal(ke.narrow(-1, c.r, c.d - c.r), k.narrow(-1, c.r, c.d - c.r)));
  }

  // backward: upstream gradients strided like the forward inputs, dq and dk into transposed
  // (B, S, H, D) buffers
  torch::Tensor dqe = hfLayout(c.b, c.hq, c.s, c.d, opts), dke = hfLayout(c.b, c.hk, c.s, c.d, opts);
  torch::Tensor dq = poisoned({c.b, c.s, c.hq, c.d}, dt).transpose(1, 2), dk = poisoned({c.b, c.s, c.hk, c.d}, dt).transpose(1, 2);
  interpret(specialize(mod, "rope_bwd", bind),
            {arg(dqe, dt), arg(dke, dt), arg(cosArg, ct), arg(sinArg, ct), arg(dq, dt), arg(dk, dt)});
  torch::autograd::backward({qe64, ke64}, {dqe.to(torch::kFloat64), dke.to(torch::kFloat64)});
  CHECK(relErr(dq, q64.grad()) < tolerance(dt));
  CHECK(relErr(dk, k64.grad()) < tolerance(dt));
}

}  // namespace

TEST_CASE("rope: interpreter forward and backward match a float64 LibTorch reference") {
  torch::manual_seed(99);
  // {B, HQ, HK, S, D, R, per-batch cos, vision}
  const RopeCase cases[] = {
      {2, 3, 1, 5, 2, 2, true, false},      // smallest rotary: one pair
      {2, 4, 2, 7, 7, 6, false, false},     // odd head dim, one pass-through channel
      {1, 2, 2, 37, 128, 128, false, false},  // full rotary, Llama head dim
      {3, 5, 1, 9, 128, 64, true, false},   // partial rotary (GLM, Qwen3-Next style), MQA k
      {1, 2, 1, 3, 127, 126, true, false},  // odd D
      {2, 1, 1, 3, 1000, 1000, false, false},
      {1, 3, 3, 11, 16, 16, false, true},   // Qwen2-VL vision layout (S, H, D), cos/sin (S, R)
      {1, 2, 2, 6, 80, 32, false, true},    // vision layout with partial rotary (Phi-style 80/32)
      {2, 3, 2, 5, 24, 16, true, false, true},   // arbitrary cos/sin: the exact transpose in backward
      {1, 2, 2, 9, 8, 8, false, true, true},
      {1, 28, 4, 3, 128, 128, true, false},  // Qwen2-VL-7B's head counts
  };
  int k = 0;
  for (const RopeCase &c : cases)
    for (ir::DType dt : kFloatTypes) {
      ++k;
      // cos/sin in q's dtype (HF text models) and in f32 (Qwen2-VL vision); vary the tuning
      checkRope(c, dt, dt, k % 3 == 0 ? "1" : k % 3 == 1 ? "2" : "4");
      if (dt != ir::DType::F32) checkRope(c, dt, ir::DType::F32, "8");
    }
}
