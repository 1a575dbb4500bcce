// RMSNorm over the last dimension: forward (y, rstd) and backward (dx, dw).
#include "ops/norm_common.h"
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

void checkNormInputs(const char *op, const at::Tensor &x, const std::optional<at::Tensor> &weight) {
  checkFloatTensor(op, "x", x);
  if (weight) checkVector(op, "weight", *weight, x);
}

// The weight in x's dtype (the kernels take one dtype), or ones when there is none.
at::Tensor weightLike(const std::optional<at::Tensor> &weight, const at::Tensor &x) {
  if (!weight) return at::ones({x.size(-1)}, x.options());
  return weight->to(x.scalar_type()).contiguous();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rms_norm_fwd(const at::Tensor &x, const std::optional<at::Tensor> &weight, double eps,
                                                double offset, c10::string_view casting_mode) {
  checkNormInputs("rms_norm", x, weight);
  TORCH_CHECK_VALUE(casting_mode == "llama" || casting_mode == "gemma" || casting_mode == "none",
                    "rms_norm: casting_mode must be 'llama', 'gemma' or 'none', got '", std::string(casting_mode), "'");
  at::Tensor x2 = rowsOf(x), w = weightLike(weight, x);
  int64_t m = x2.size(0), n = x2.size(1);
  at::Tensor y = at::empty_like(x2), rstd = at::empty({m}, x.options().dtype(at::kFloat));
  if (m > 0) {
    const char *kernel = casting_mode == "llama" ? "rms_norm_fwd" : "rms_norm_fwd_f32";
    runKernel(builtinModule("rms_norm.tile"), kernel, {{"T", ir::dtypeName(dtypeOf(x))}, {"N", std::to_string(n)}},
              {tensorArg(x2), tensorArg(w), KernelArg::ofFloat(offset), KernelArg::ofFloat(eps), tensorArg(y), tensorArg(rstd)},
              x.device(), m);
  }
  return {y.view(x.sizes()), rstd.view(x.sizes().slice(0, x.dim() - 1))};
}

std::tuple<at::Tensor, at::Tensor> rms_norm_bwd(const at::Tensor &dy, const at::Tensor &x,
                                                const std::optional<at::Tensor> &weight, const at::Tensor &rstd,
                                                double offset, bool dx_in_dy) {
  checkNormInputs("rms_norm backward", x, weight);
  TORCH_CHECK_VALUE(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type(),
                    "rms_norm backward: grad_output must match x in shape and dtype");
  at::Tensor x2 = rowsOf(x), dy2 = rowsOf(dy), w = weightLike(weight, x), rstd1 = rstd.reshape({-1}).contiguous();
  int64_t m = x2.size(0), n = x2.size(1);
  // dx may overwrite dy: each element of dy is read before its dx is written, by one thread
  at::Tensor dx = dx_in_dy && dy2.is_contiguous() && dy2.data_ptr() == dy.data_ptr() ? dy2 : at::empty_like(x2);
  auto [programs, rowsPer] = persistentGrid(m, x.device(), kBackwardProgramsPerSm);
  at::Tensor partial = at::empty({programs, n}, x.options().dtype(at::kFloat));
  Bindings b = {{"T", ir::dtypeName(dtypeOf(x))}, {"N", std::to_string(n)}};
  const TileModule &mod = builtinModule("rms_norm.tile");
  if (m > 0)
    runKernel(mod, "rms_norm_bwd", b,
              {tensorArg(dy2), tensorArg(x2), tensorArg(w), tensorArg(rstd1), KernelArg::ofFloat(offset),
               KernelArg::ofInt(rowsPer), tensorArg(dx), tensorArg(partial)},
              x.device(), m);
  else
    partial.zero_();
  at::Tensor dw = weight ? columnSum(partial, weight->scalar_type()) : at::empty({0}, x.options());
  return {dx.view(x.sizes()), dw};
}

}  // namespace tigon::ops
