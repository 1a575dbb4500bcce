// LayerNorm over the last dimension: forward (y, mean, rstd) and backward (dx, dw, db).
// A missing weight or bias is passed to the kernels as an empty tensor (read as 1 or 0).
#include "ops/norm_common.h"
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

at::Tensor paramOrEmpty(const std::optional<at::Tensor> &p, const at::Tensor &x) {
  return p ? p->to(x.scalar_type()).contiguous() : at::empty({0}, x.options());
}

void checkInputs(const char *op, const at::Tensor &x, const std::optional<at::Tensor> &weight,
                 const std::optional<at::Tensor> &bias) {
  checkFloatTensor(op, "x", x);
  if (weight) checkVector(op, "weight", *weight, x);
  if (bias) checkVector(op, "bias", *bias, x);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_fwd(const at::Tensor &x, const std::optional<at::Tensor> &weight,
                                                              const std::optional<at::Tensor> &bias, double eps) {
  checkInputs("layer_norm", x, weight, bias);
  TORCH_CHECK_VALUE(eps >= 0, "layer_norm: eps must be non-negative, got ", eps);
  at::Tensor x2 = rowsOf(x);
  int64_t m = x2.size(0), n = x2.size(1);
  at::Tensor y = at::empty_like(x2), mean = at::empty({m}, x.options().dtype(at::kFloat)), rstd = at::empty_like(mean);
  Bindings b = {{"T", ir::dtypeName(dtypeOf(x))}, {"N", std::to_string(n)}};
  std::vector<KernelArg> args = {tensorArg(x2), tensorArg(paramOrEmpty(weight, x)), tensorArg(paramOrEmpty(bias, x)),
                                 KernelArg::ofFloat(eps)};
  // wide 16-bit rows: programs that loop over rows, loading the next while reducing this one
  // (layer_norm.tile says where it was measured faster); 2 per SM measured best at N = 8192
  bool rows = x.element_size() == 2 && n >= 8192;
  if (rows) args.push_back(KernelArg::ofInt(persistentGrid(m, x.device(), 2).first));  // programs
  for (const at::Tensor &out : {y, mean, rstd}) args.push_back(tensorArg(out));
  if (m > 0) runKernel(builtinModule("layer_norm.tile"), rows ? "layer_norm_fwd_rows" : "layer_norm_fwd", b, args, x.device(), m);
  auto stats = x.sizes().slice(0, x.dim() - 1);
  return {y.view(x.sizes()), mean.view(stats), rstd.view(stats)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_bwd(const at::Tensor &dy, const at::Tensor &x,
                                                              const std::optional<at::Tensor> &weight, bool has_bias,
                                                              const at::Tensor &mean, const at::Tensor &rstd) {
  checkInputs("layer_norm backward", x, weight, std::nullopt);
  TORCH_CHECK_VALUE(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type(),
                    "layer_norm backward: grad_output must match x in shape and dtype");
  at::Tensor x2 = rowsOf(x), dy2 = rowsOf(dy);
  at::Tensor mean1 = mean.reshape({-1}).contiguous(), rstd1 = rstd.reshape({-1}).contiguous();
  int64_t m = x2.size(0), n = x2.size(1);
  // wide rows: dx alone, then dw and db by column blocks (layer_norm_bwd's per-thread
  // accumulators, 2 x N / threads values, spill past N = 8192)
  bool wide = n > 8192;
  auto [programs, rowsPer] = wide ? columnBlockGrid(m, n, x.device()) : persistentGrid(m, x.device(), kBackwardProgramsPerSm);
  // the dw and db partials side by side in one buffer, so one column_sum adds up both: every
  // program writes its row of each (the wide kernels too), so only M = 0 needs zeros
  int64_t nw = weight ? n : 0, nb = has_bias ? n : 0;
  at::Tensor partials = at::empty({programs, nw + nb}, x.options().dtype(at::kFloat));
  if (m == 0) partials.zero_();
  at::Tensor dwPartial = partials.narrow(1, 0, nw), dbPartial = partials.narrow(1, nw, nb);
  at::Tensor dx = at::empty_like(x2);
  const TileModule &mod = builtinModule("layer_norm.tile");
  Bindings b = {{"T", ir::dtypeName(dtypeOf(x))}, {"N", std::to_string(n)}};
  at::Tensor w = paramOrEmpty(weight, x);
  if (m > 0 && !wide)
    runKernel(mod, "layer_norm_bwd", b,
              {tensorArg(dy2), tensorArg(x2), tensorArg(w), tensorArg(mean1), tensorArg(rstd1), KernelArg::ofInt(rowsPer),
               tensorArg(dx), tensorArg(dwPartial), tensorArg(dbPartial)},
              x.device(), m);
  if (m > 0 && wide) {
    if (weight || has_bias)
      runKernel(mod, "layer_norm_weight_grads", b,
                {tensorArg(dy2), tensorArg(x2), tensorArg(mean1), tensorArg(rstd1), KernelArg::ofInt(rowsPer),
                 tensorArg(dwPartial), tensorArg(dbPartial)},
                x.device(), m);
    runKernel(mod, "layer_norm_bwd_dx", b,
              {tensorArg(dy2), tensorArg(x2), tensorArg(w), tensorArg(mean1), tensorArg(rstd1), tensorArg(dx)}, x.device(), m);
  }
  // db takes the weight's dtype too (x's without a weight); dw and db are views of one sum,
  // empty where there is no weight or bias
  at::Tensor totals = weight || has_bias ? columnSum(partials, weight ? weight->scalar_type() : x.scalar_type())
                                         : at::empty({0}, x.options());
  return {dx.view(x.sizes()), totals.narrow(0, 0, nw), totals.narrow(0, nw, nb)};
}

}  // namespace tigon::ops
