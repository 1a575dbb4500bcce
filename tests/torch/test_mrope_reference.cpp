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
  int64_t b, h, s, d;
  std::vector<int64_t> section;  // s0, s1, s2 with sum D/2
  bool random;                   // arbitrary tables (halves differ) instead of HF's cos/sin
};

void checkMrope(const MropeCase &c, ir::DType dt, ir::DType ct, const std::string &perThread, const std::string &hpp) {
  const TileModule &mod = builtinModule("mrope.tile");
  std::string tn = ir::dtypeName(dt), cn = ir::dtypeName(ct);
  CAPTURE(tn);
  CAPTURE(cn);
  CAPTURE(c.b);
  CAPTURE(c.h);
  CAPTURE(c.s);
  CAPTURE(c.d);
  CAPTURE(c.section[0]);
  CAPTURE(c.section[1]);
  CAPTURE(c.random);
  CAPTURE(perThread);
  auto opts = torch::TensorOptions().dtype(torchType(dt));
  auto copts = torch::TensorOptions().dtype(torchType(ct));
  torch::Tensor x = torch::randn({c.b, c.s, c.h, c.d}).to(opts).transpose(1, 2);  // HF's strided q
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
  Bindings bind = {{"T", tn}, {"C", cn}, {"D", std::to_string(c.d)}, {"PER_THREAD", perThread}, {"HPP", hpp}};
  auto s0 = KernelArg::ofInt(c.section[0]), s1 = KernelArg::ofInt(c.section[1]);

  torch::Tensor y = poisoned({c.b, c.h, c.s, c.d}, dt);
  interpret(specialize(mod, "mrope_fwd", bind), {arg(x, dt), arg(cos, ct), arg(sin, ct), s0, s1, arg(y, dt)});
  torch::Tensor x64 = x.to(torch::kFloat64).requires_grad_();
  torch::Tensor cos64 = mropeTable(cos.to(torch::kFloat64), c.section);
  torch::Tensor sin64 = mropeTable(sin.to(torch::kFloat64), c.section);
  torch::Tensor y64 = x64 * cos64 + rotateHalf(x64) * sin64;
  CHECK(relErr(y, y64.detach()) < tolerance(dt));

  torch::Tensor dy = torch::randn({c.b, c.h, c.s, c.d}).to(opts);
  torch::Tensor dx = poisoned({c.b, c.s, c.h, c.d}, dt).transpose(1, 2);
  interpret(specialize(mod, "mrope_bwd", bind), {arg(dy, dt), arg(cos, ct), arg(sin, ct), s0, s1, arg(dx, dt)});
  y64.backward(dy.to(torch::kFloat64));
  CHECK(relErr(dx, x64.grad()) < tolerance(dt));
}

}  // namespace

TEST_CASE("mrope: interpreter forward and backward match a float64 LibTorch reference") {
  torch::manual_seed(7);
  const MropeCase cases[] = {
      {1, 2, 5, 2, {1, 0, 0}, false},           // one pair, all temporal
      {2, 3, 7, 8, {1, 2, 1}, false},
      {2, 2, 9, 16, {0, 4, 4}, true},           // an empty section, arbitrary tables
      {1, 3, 13, 128, {16, 24, 24}, false},     // Qwen2-VL (head dim 128)
      {2, 1, 5, 80, {8, 12, 20}, true},          // GQA-style single k head, uneven sections
      {1, 2, 3, 1000, {100, 150, 250}, false},
  };
  int k = 0;
  for (const MropeCase &c : cases)
    for (ir::DType dt : kFloatTypes) {
      ++k;
      checkMrope(c, dt, dt, k % 2 ? "8" : "4", k % 3 ? "2" : "1");
      if (dt != ir::DType::F32) checkMrope(c, dt, ir::DType::F32, "16", "4");
    }
}
