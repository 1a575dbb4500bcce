// rope.tile (HF rotate-half RoPE on q and k in one launch, forward and backward) in the
// interpreter against a float64 LibTorch reference with autograd: strided q/k made by view +
// transpose as HF does, GQA head counts (HPP dividing them or not, none for one tensor), partial
// rotary, cos/sin broadcast over the batch, f32 cos/sin with 16-bit q/k, and the Qwen2-VL
// vision layout (S, H, D). Outputs start as NaN: every element must be written, and a spare
// head beside a strided output must stay untouched.
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
  int64_t b, hq, hk, s, d, r;  // k has its own head count (GQA; 0: no k heads)
  bool batchCos;  // cos/sin per batch entry, else (1, S, R) expanded with batch stride 0
  bool vision;    // q/k given as (S, H, D) and viewed as (1, H, S, D)
  bool random = false;  // arbitrary cos/sin tables (halves differ): checks the general formula
};

// x (B, H, S, D) as HF makes it, proj(hidden).view(B, S, H, D).transpose(1, 2): strides
// (S*H*D, D, H*D, 1); with B = 1 also the vision tower's (S, H, D) as the op views it
torch::Tensor headsInput(const RopeCase &c, int64_t h, torch::TensorOptions opts) {
  return torch::randn({c.b, c.s, h, c.d}).to(opts).transpose(1, 2);
}

void checkRope(const RopeCase &c, ir::DType dt, ir::DType ct, const std::string &perThread, const std::string &hpp) {
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
  CAPTURE(perThread);
  CAPTURE(hpp);
  if (c.vision) REQUIRE(c.b == 1);
  auto opts = torch::TensorOptions().dtype(torchType(dt));
  auto copts = torch::TensorOptions().dtype(torchType(ct));
  torch::Tensor q = headsInput(c, c.hq, opts), k = headsInput(c, c.hk, opts);
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
  // (B, S, R), batch stride 0 when shared; the vision tower's (S, R) is (1, S, R)
  torch::Tensor cosArg = c.vision ? cos : cos.expand({c.b, c.s, c.r}), sinArg = c.vision ? sin : sin.expand({c.b, c.s, c.r});
  Bindings bind = {{"T", tn}, {"C", cn}, {"R", std::to_string(c.r)}, {"PER_THREAD", perThread}, {"HPP", hpp}};
  torch::Tensor cos64 = cos.to(torch::kFloat64).unsqueeze(1), sin64 = sin.to(torch::kFloat64).unsqueeze(1);

  // forward: q into a contiguous poisoned output, k into a strided one with a spare head
  torch::Tensor qy = poisoned({c.b, c.hq, c.s, c.d}, dt);
  auto [ky, kSpare] = poisonedHeads(c.b, c.hk, c.s, c.d, dt);
  interpret(specialize(mod, "rope_fwd", bind),
            {arg(q, dt), arg(k, dt), arg(cosArg, ct), arg(sinArg, ct), arg(qy, dt), arg(ky, dt)});
  torch::Tensor q64 = q.to(torch::kFloat64).requires_grad_(), k64 = k.to(torch::kFloat64).requires_grad_();
  torch::Tensor qy64 = ropeRef(q64, cos64, sin64, c.r), ky64 = ropeRef(k64, cos64, sin64, c.r);
  // relErr fails on an unwritten (NaN) element
  if (c.hq > 0) CHECK(relErr(qy, qy64.detach()) < tolerance(dt));
  checkHeads(ky, ky64.detach(), kSpare, dt);
  // the pass-through channels are copied exactly
  if (c.r < c.d) {
    CHECK(torch::equal(qy.narrow(-1, c.r, c.d - c.r), q.narrow(-1, c.r, c.d - c.r)));
    CHECK(torch::equal(ky.narrow(-1, c.r, c.d - c.r), k.narrow(-1, c.r, c.d - c.r)));
  }

  // backward: dy strided like the forward inputs, dq/dk into transposed (B, S, H, D) buffers
  torch::Tensor dqy = headsInput(c, c.hq, opts), dky = headsInput(c, c.hk, opts);
  auto [dq, dqSpare] = poisonedHeads(c.b, c.hq, c.s, c.d, dt);
  auto [dk, dkSpare] = poisonedHeads(c.b, c.hk, c.s, c.d, dt);
  interpret(specialize(mod, "rope_bwd", bind),
            {arg(dqy, dt), arg(dky, dt), arg(cosArg, ct), arg(sinArg, ct), arg(dq, dt), arg(dk, dt)});
  torch::autograd::backward({qy64, ky64}, {dqy.to(torch::kFloat64), dky.to(torch::kFloat64)});
  checkHeads(dq, q64.grad(), dqSpare, dt);
  checkHeads(dk, k64.grad(), dkSpare, dt);
}

}  // namespace

TEST_CASE("rope: interpreter forward and backward of q and k in one launch match a float64 LibTorch reference") {
  torch::manual_seed(99);
  // {B, Hq, Hk, S, D, R, per-batch cos, vision}
  const RopeCase cases[] = {
      {2, 3, 1, 5, 2, 2, true, false},       // smallest rotary: one pair
      {2, 4, 3, 7, 7, 6, false, false},      // odd head dim, one pass-through channel
      {1, 2, 2, 37, 128, 128, false, false},   // full rotary, Llama head dim
      {3, 5, 2, 9, 128, 64, true, false},    // partial rotary (GLM, Qwen3-Next style), GQA 5/2 heads
      {1, 2, 1, 3, 127, 126, true, false},   // odd D
      {2, 1, 1, 3, 1000, 1000, false, false},
      {2, 7, 3, 6, 16, 16, true, false},     // GQA heads that no HPP divides but 1
      {1, 3, 0, 5, 16, 16, false, false},    // no k heads (one gradient only)
      {1, 0, 2, 5, 16, 8, false, false},     // no q heads
      {1, 3, 3, 11, 16, 16, false, true},    // Qwen2-VL vision layout (S, H, D), cos/sin (S, R)
      {1, 2, 5, 6, 80, 32, false, true},     // vision layout with partial rotary (Phi-style 80/32)
      {2, 3, 2, 5, 24, 16, true, false, true},   // arbitrary cos/sin: the exact transpose in backward
      {1, 2, 2, 9, 8, 8, false, true, true},
  };
  int k = 0;
  for (const RopeCase &c : cases)
    for (ir::DType dt : kFloatTypes) {
      ++k;
      // cos/sin in q's dtype (HF text models) and in f32 (Qwen2-VL vision); vary the tuning
      checkRope(c, dt, dt, k % 2 ? "8" : "4", k % 3 ? "2" : "1");
      if (dt != ir::DType::F32) checkRope(c, dt, ir::DType::F32, "16", "4");
    }
}
