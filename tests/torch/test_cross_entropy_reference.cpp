// cross_entropy.tile in the interpreter against torch's cross_entropy (reduction="none",
// ignore_index, label_smoothing) in float64 with autograd, plus the z-loss
// lse_square_scale * lse^2 and Gemma-2's softcap; every kernel (forward, fused forward and
// gradient into a separate buffer or in place, backward from the saved lse with per-row
// upstream gradients, in place or not) and the out-of-range target flag.
#include "tests/torch/torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

namespace {

struct CeOptions {
  int64_t ignoreIndex = -100;
  double smoothing = 0, zloss = 0, softcap = 0;
  int ignoredRows = 0;  // rows whose target is set to ignore_index
  int badRows = 0;      // rows whose target is out of [0, V) and not ignore_index
};

struct CeReference {
  torch::Tensor loss, lse;    // float64 (BT,); lse 0 on rows not computed
  torch::Tensor logits64;     // float64 leaf (gradients accumulate here)
  torch::Tensor valid;        // bool (BT,)
};

// The float64 reference: softcap, torch's cross_entropy with reduction "none", the z-loss.
CeReference reference(const torch::Tensor &logits, const torch::Tensor &target, const CeOptions &o) {
  CeReference ref;
  int64_t v = logits.size(1);
  ref.valid = (target != o.ignoreIndex) & (target >= 0) & (target < v);
  // out-of-range targets would make torch raise: give them to the reference as ignored
  torch::Tensor safeTarget = torch::where(ref.valid, target, torch::full_like(target, o.ignoreIndex));
  ref.logits64 = logits.to(torch::kFloat64).requires_grad_();
  torch::Tensor z = ref.logits64;
  if (o.softcap != 0) z = o.softcap * torch::tanh(z / o.softcap);
  torch::Tensor lse = torch::logsumexp(z, -1);
  torch::Tensor ce = torch::nn::functional::cross_entropy(z, safeTarget,
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(o.ignoreIndex).reduction(torch::kNone)
          .label_smoothing(o.smoothing));
  torch::Tensor validF = ref.valid.to(torch::kFloat64);
  ref.loss = ce + o.zloss * lse * lse * validF;
  ref.lse = lse * validF;
  return ref;
}

// The gradient of sum(loss * w) for per-row weights w (0 on rows not computed).
torch::Tensor refGrad(const CeReference &ref, const torch::Tensor &w) {
  if (ref.logits64.grad().defined()) ref.logits64.mutable_grad().zero_();
  (ref.loss * w).sum().backward({}, /*retain_graph=*/true);
  return ref.logits64.grad().clone();
}

void checkLossLse(const torch::Tensor &loss, const torch::Tensor &lse, const torch::Tensor &err, const CeReference &ref,
                  const CeOptions &o) {
  torch::Tensor bad = ~ref.valid & (loss.isnan());
  CHECK(err.item<int32_t>() == o.badRows);
  // bad rows: NaN loss, lse 0; every other row finite and matching
  CHECK(bad.sum().item<int64_t>() == o.badRows);
  torch::Tensor ok = ~bad;
  CHECK(relErr(loss.index({ok}), ref.loss.detach().index({ok})) < 1e-5);
  CHECK(relErr(lse, ref.lse.detach()) < 1e-5);
}

// block: columns per step, as PER_THREAD * 32 * WARPS with WARPS = 8; the forward kernels see
// rows as chunks of w logits (the op's rule)
void checkCrossEntropy(ir::DType dt, int64_t bt, int64_t v, const CeOptions &o, const std::string &block) {
  const TileModule &mod = builtinModule("cross_entropy.tile");
  std::string tn = ir::dtypeName(dt);
  CAPTURE(tn);
  CAPTURE(bt);
  CAPTURE(v);
  CAPTURE(block);
  CAPTURE(o.ignoreIndex);
  CAPTURE(o.smoothing);
  CAPTURE(o.zloss);
  CAPTURE(o.softcap);
  CAPTURE(o.ignoredRows);
  CAPTURE(o.badRows);
  auto opts = torch::TensorOptions().dtype(torchType(dt));
  torch::Tensor logits = (3 * torch::randn({bt, v})).to(opts);
  torch::Tensor target = torch::randint(0, v, {bt}, torch::kInt64);
  // make the target's logit large in some rows, so that the loss is not all "uniform"
  for (int64_t r = 0; r < bt; r += 3) logits[r][target[r].item<int64_t>()] = 8.0;
  int64_t row = 0;
  for (int i = 0; i < o.ignoredRows; ++i) target[row++] = o.ignoreIndex;
  for (int i = 0; i < o.badRows; ++i) target[row++] = i % 2 ? -5 : v + i;  // below 0, or >= V
  // the case flags from the values, as the op binds them (the backward kernels take CAPPED only)
  Bindings bwdBind = {{"T", tn}, {"PER_THREAD", std::to_string(std::stoi(block) / 256)}, {"WARPS", "8"},
                      {"CAPPED", o.softcap != 0 ? "1" : "0"}};
  int64_t w = chunkWidth(v, ir::dtypeBytes(dt));
  CAPTURE(w);
  auto chunked = [&](const torch::Tensor &x) { return x.view({bt, v / w, w}); };
  Bindings bind = {{"T", tn}, {"W", std::to_string(w)}, {"PER_THREAD", std::to_string(std::stoi(block) / 256)},
                   {"WARPS", "8"}, {"CAPPED", o.softcap != 0 ? "1" : "0"}, {"SMOOTHED", o.smoothing != 0 ? "1" : "0"}};
  const double scale = 1.0 / 3.0;
  torch::Tensor scaleT = torch::full({1}, scale, torch::kFloat32);  // the fused kernels' gradient scale
  auto common = [&]() {
    return std::vector<KernelArg>{KernelArg::ofInt(o.ignoreIndex), KernelArg::ofFloat(o.smoothing),
                                  KernelArg::ofFloat(o.zloss), KernelArg::ofFloat(o.softcap)};
  };
  CeReference ref = reference(logits, target, o);
  torch::Tensor validF = ref.valid.to(torch::kFloat64);
  torch::Tensor fusedGrad = refGrad(ref, scale * validF);

  // forward only
  torch::Tensor loss = poisoned({bt}, ir::DType::F32), lse = poisoned({bt}, ir::DType::F32);
  torch::Tensor err = torch::zeros({1}, torch::kInt32);
  {
    std::vector<KernelArg> a = {arg(chunked(logits), dt), arg(target, ir::DType::I64)};
    for (KernelArg &k : common()) a.push_back(k);
    for (KernelArg k : {arg(loss, ir::DType::F32), arg(lse, ir::DType::F32), arg(err, ir::DType::I32)}) a.push_back(k);
    interpret(specialize(mod, "cross_entropy_fwd", bind), a);
    checkLossLse(loss, lse, err, ref, o);
  }
  // forward and gradient into a separate buffer
  {
    torch::Tensor loss2 = poisoned({bt}, ir::DType::F32), lse2 = poisoned({bt}, ir::DType::F32);
    torch::Tensor err2 = torch::zeros({1}, torch::kInt32), dlogits = poisoned({bt, v}, dt);
    std::vector<KernelArg> a = {arg(chunked(logits), dt), arg(target, ir::DType::I64)};
    for (KernelArg &k : common()) a.push_back(k);
    for (KernelArg k : {arg(scaleT, ir::DType::F32), arg(loss2, ir::DType::F32), arg(lse2, ir::DType::F32),
                        arg(err2, ir::DType::I32), arg(chunked(dlogits), dt)})
      a.push_back(k);
    interpret(specialize(mod, "cross_entropy_fwd_bwd", bind), a);
    checkLossLse(loss2, lse2, err2, ref, o);
    CHECK(relErr(dlogits, fusedGrad) < tolerance(dt));
    CHECK(torch::equal(dlogits.index({~ref.valid}), torch::zeros({bt - ref.valid.sum().item<int64_t>(), v}, opts)));
  }
  // forward and gradient in place
  {
    torch::Tensor buf = logits.clone();
    torch::Tensor loss3 = poisoned({bt}, ir::DType::F32), lse3 = poisoned({bt}, ir::DType::F32);
    torch::Tensor err3 = torch::zeros({1}, torch::kInt32);
    std::vector<KernelArg> a = {arg(chunked(buf), dt), arg(target, ir::DType::I64)};
    for (KernelArg &k : common()) a.push_back(k);
    for (KernelArg k : {arg(scaleT, ir::DType::F32), arg(loss3, ir::DType::F32), arg(lse3, ir::DType::F32),
                        arg(err3, ir::DType::I32)})
      a.push_back(k);
    interpret(specialize(mod, "cross_entropy_fwd_bwd_inplace", bind), a);
    checkLossLse(loss3, lse3, err3, ref, o);
    CHECK(relErr(buf, fusedGrad) < tolerance(dt));
  }
  // backward with an arbitrary upstream gradient per row, from the saved lse
  torch::Tensor grad = torch::randn({bt}, torch::kFloat32);
  torch::Tensor upstreamGrad = refGrad(ref, grad.to(torch::kFloat64) * validF);
  {
    torch::Tensor dlogits = poisoned({bt, v}, dt);
    std::vector<KernelArg> a = {arg(logits, dt), arg(target, ir::DType::I64), arg(lse, ir::DType::F32),
                                arg(grad, ir::DType::F32)};
    for (KernelArg &k : common()) a.push_back(k);
    a.push_back(arg(dlogits, dt));
    interpret(specialize(mod, "cross_entropy_bwd", bwdBind), a);
    CHECK(relErr(dlogits, upstreamGrad) < tolerance(dt));
  }
  {
    torch::Tensor buf = logits.clone();
    std::vector<KernelArg> a = {arg(buf, dt), arg(target, ir::DType::I64), arg(lse, ir::DType::F32),
                                arg(grad, ir::DType::F32)};
    for (KernelArg &k : common()) a.push_back(k);
    interpret(specialize(mod, "cross_entropy_bwd_inplace", bwdBind), a);
    CHECK(relErr(buf, upstreamGrad) < tolerance(dt));
  }
}

}  // namespace

TEST_CASE("cross_entropy: interpreter kernels match torch's cross_entropy in float64 with every option") {
  torch::manual_seed(31337);
  std::vector<CeOptions> options(8);
  options[1].ignoredRows = 2;                          // ignore_index rows (-100)
  options[2].smoothing = 0.1;
  options[3].zloss = 1e-2;
  options[4].softcap = 5.0;                            // Gemma-2 style (30 there; 5 bites harder here)
  options[5].badRows = 2;                              // out-of-range targets: flag, NaN loss
  options[6] = {3, 0.2, 1e-3, 7.0, 2, 1};              // everything; ignore_index 3 (a real class id)
  options[7].ignoredRows = 5;                          // every row ignored
  int k = 0;
  for (ir::DType dt : kFloatTypes)
    for (int64_t v : {1000, 4099})
      for (size_t i = 0; i < options.size(); ++i) {
        ++k;
        int64_t bt = i == 7 ? 5 : (k % 2 ? 5 : 7);
        checkCrossEntropy(dt, bt, v, options[i], k % 3 ? "2048" : "4096");
      }
  // small vocabularies: the whole row in the partial block; one class
  for (ir::DType dt : kFloatTypes) {
    checkCrossEntropy(dt, 3, 7, options[6], "2048");
    checkCrossEntropy(dt, 4, 1, options[2], "2048");
    checkCrossEntropy(dt, 3, 8192, options[0], "4096");  // full blocks only
  }
}
