// mrope.tile (Qwen2-VL M-RoPE, forward and backward) in the interpreter against a float64
// LibTorch reference written as transformers' apply_multimodal_rotary_pos_emb, with autograd.
#include "tests/torch/torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

namespace {

torch::Tensor rotateHalf(const torch::Tensor &x) {
  int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// HF: mrope_section * 2, split the last dim of the (3, B, S, D) tables by it, take chunk i from
// plane i % 3, concatenate; unsqueeze the head axis.
torch::Tensor mropeTable(const torch::Tensor &t, const std::vector<int64_t> &section) {
  std::vector<int64_t> sec2 = section;
  sec2.insert(sec2.end(), section.begin(), section.end());
  std::vector<torch::Tensor> parts;
  int64_t at = 0;
  for (size_t i = 0; i < sec2.size(); ++i) {
    parts.push_back(t[int64_t(i % 3)].narrow(-1, at, sec2[i]));
    at += sec2[i];
  }
  return torch::cat(parts, -1).unsqueeze(1);  // (B, 1, S, D)
}

struct MropeCase {
  int64_t b, hq, hk, s, d;
  std::vector<int64_t> section;  // s0, s1, s2 with sum D/2
  bool random;                   // arbitrary tables (halves differ) instead of HF's cos/sin
};

void checkMrope(const MropeCase &c, ir::DType dt, ir::DType ct, const std::string &warps) {
  const TileModule &mod = builtinModule("mrope.tile");
  std::string tn = ir::dtypeName(dt), cn = ir::dtypeName(ct);
  CAPTURE(tn);
  CAPTURE(cn);
  CAPTURE(c.b);
  CAPTURE(c.hq);
  CAPTURE(c.hk);
  CAPTURE(c.s);
  CAPTURE(c.d);
  CAPTURE(c.section[0]);
  CAPTURE(c.section[1]);
  CAPTURE(c.random);
  CAPTURE(warps);
  auto opts = torch::TensorOptions().dtype(torchType(dt));
  auto copts = torch::TensorOptions().dtype(torchType(ct));
  // HF's strided q and k
  torch::Tensor q = torch::randn({c.b, c.s, c.hq, c.d}).to(opts).transpose(1, 2);
  torch::Tensor k = torch::randn({c.b, c.s, c.hk, c.d}).to(opts).transpose(1, 2);
  torch::Tensor cos, sin;
  if (c.random) {
    cos = torch::randn({3, c.b, c.s, c.d}).to(copts);
    sin = torch::randn({3, c.b, c.s, c.d}).to(copts);
  } else {
    // Qwen2-VL: position_ids (3, B, S) (t, h, w), freqs = pos * inv_freq, emb = cat(freqs, freqs)
    torch::Tensor pos = torch::randint(0, 50, {3, c.b, c.s}).to(torch::kFloat64);
    torch::Tensor invFreq = torch::pow(10000.0, -torch::arange(0, c.d, 2, torch::kFloat64) / double(c.d));
    torch::Tensor freqs = pos.unsqueeze(-1) * invFreq;
    torch::Tensor emb = torch::cat({freqs, freqs}, -1);
    cos = emb.cos().to(copts);
    sin = emb.sin().to(copts);
  }
  Bindings bind = {{"T", tn}, {"C", cn}, {"D", std::to_string(c.d)}, {"HQ", std::to_string(c.hq)},
                   {"HK", std::to_string(c.hk)}, {"WARPS", warps}};
  auto s0 = KernelArg::ofInt(c.section[0]), s1 = KernelArg::ofInt(c.section[1]);

  torch::Tensor qe = poisoned({c.b, c.hq, c.s, c.d}, dt), ke = poisoned({c.b, c.hk, c.s, c.d}, dt);
  interpret(specialize(mod, "mrope_fwd", bind),
            {arg(q, dt), arg(k, dt), arg(cos, ct), arg(sin, ct), s0, s1, arg(qe, dt), arg(ke, dt)});
  torch::Tensor q64 = q.to(torch::kFloat64).requires_grad_(), k64 = k.to(torch::kFloat64).requires_grad_();
  torch::Tensor cos64 = mropeTable(cos.to(torch::kFloat64), c.section);
  torch::Tensor sin64 = mropeTable(sin.to(torch::kFloat64), c.section);
  torch::Tensor qe64 = q64 * cos64 + rotateHalf(q64) * sin64, ke64 = k64 * cos64 + rotateHalf(k64) * sin64;
  CHECK(relErr(qe, qe64.detach()) < tolerance(dt));
  CHECK(relErr(ke, ke64.detach()) < tolerance(dt));

  torch::Tensor dqe = torch::randn({c.b, c.hq, c.s, c.d}).to(opts), dke = torch::randn({c.b, c.hk, c.s, c.d}).to(opts);
  torch::Tensor dq = poisoned({c.b, c.s, c.hq, c.d}, dt).transpose(1, 2), dk = poisoned({c.b, c.s, c.hk, c.d}, dt).transpose(1, 2);
  interpret(specialize(mod, "mrope_bwd", bind),
            {arg(dqe, dt), arg(dke, dt), arg(cos, ct), arg(sin, ct), s0, s1, arg(dq, dt), arg(dk, dt)});
  torch::autograd::backward({qe64, ke64}, {dqe.to(torch::kFloat64), dke.to(torch::kFloat64)});
  CHECK(relErr(dq, q64.grad()) < tolerance(dt));
  CHECK(relErr(dk, k64.grad()) < tolerance(dt));
}

}  // namespace

TEST_CASE("mrope: interpreter forward and backward match a float64 LibTorch reference") {
  torch::manual_seed(7);
  const MropeCase cases[] = {
      {1, 2, 1, 5, 2, {1, 0, 0}, false},           // one pair, all temporal
      {2, 3, 3, 7, 8, {1, 2, 1}, false},
      {2, 2, 1, 9, 16, {0, 4, 4}, true},           // an empty section, arbitrary tables
      {1, 3, 2, 13, 128, {16, 24, 24}, false},     // Qwen2-VL (head dim 128)
      {2, 5, 1, 5, 80, {8, 12, 20}, true},         // a single k head, uneven sections
      {1, 2, 2, 3, 1000, {100, 150, 250}, false},
      {1, 28, 4, 2, 128, {16, 24, 24}, false},     // Qwen2-VL-7B's head counts
  };
  int k = 0;
  for (const MropeCase &c : cases)
    for (ir::DType dt : kFloatTypes) {
      ++k;
      checkMrope(c, dt, dt, k % 3 == 0 ? "1" : k % 3 == 1 ? "2" : "4");
      if (dt != ir::DType::F32) checkMrope(c, dt, ir::DType::F32, "8");
    }
}
