// Cross-entropy over logits (BT, V): per-row losses and lse, with the gradient fused into the
// forward (for mean/sum reductions: scaled by the caller), or from a per-row upstream gradient
// in the backward (reduction="none"). A target outside [0, V) that is not ignore_index raises.
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

void checkInputs(const at::Tensor &logits, const at::Tensor &target) {
  const char *op = "cross_entropy";
  TORCH_CHECK_TYPE(logits.is_floating_point() && logits.scalar_type() != at::kDouble, op,
                   ": logits must be float32, float16 or bfloat16, got ", logits.scalar_type());
  TORCH_CHECK_VALUE(logits.dim() == 2, op, ": logits must be (N, V), got ", logits.sizes());
  TORCH_CHECK_TYPE(target.scalar_type() == at::kLong || target.scalar_type() == at::kInt, op,
                   ": target must hold integer class indices, got ", target.scalar_type());
  TORCH_CHECK_VALUE(target.dim() == 1 && target.size(0) == logits.size(0), op, ": target must be (N,) = (",
                    logits.size(0), ",), got ", target.sizes());
  TORCH_CHECK_VALUE(target.device() == logits.device(), op, ": target is on ", target.device(), " but logits are on ",
                    logits.device());
}

at::Tensor contiguousLast(const at::Tensor &t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

}  // namespace

void raiseOnBadTarget(const at::Tensor &error, int64_t v, int64_t ignoreIndex) {
  int64_t bad = error.item<int>();  // one small copy back: torch raises here too
  TORCH_CHECK_VALUE(bad == 0, "cross_entropy: ", bad, " target(s) outside [0, ", v, ") that are not ignore_index (",
                    ignoreIndex, ")");
}

at::Tensor lossGradScale(const at::Tensor &target, int64_t ignore_index, c10::string_view reduction) {
  TORCH_CHECK_VALUE(reduction == "mean" || reduction == "sum" || reduction == "none",
                    "cross_entropy: reduction must be 'mean', 'sum' or 'none', got '", std::string(reduction), "'");
  if (reduction != "mean") return at::ones({1}, target.options().dtype(at::kFloat));
  // with no row left every gradient row is 0 whatever the scale: 1 / max(count, 1)
  return target.ne(ignore_index).sum().clamp_min_(1).to(at::kFloat).reciprocal_().reshape({1});
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cross_entropy_rows(const at::Tensor &logits, const at::Tensor &target,
                                                                  int64_t ignore_index, double label_smoothing,
                                                                  double lse_square_scale, double softcap, bool with_grad,
                                                                  bool grad_in_logits, const at::Tensor &grad_scale,
                                                                  const at::Tensor &error) {
  checkInputs(logits, target);
  TORCH_CHECK_VALUE(label_smoothing >= 0 && label_smoothing <= 1, "cross_entropy: label_smoothing must be in [0, 1], got ",
                    label_smoothing);
  TORCH_CHECK_VALUE(softcap >= 0, "cross_entropy: softcap must be positive (or 0 for none), got ", softcap);
  at::Tensor z = contiguousLast(logits), t = target.to(at::kLong);
  int64_t n = z.size(0);
  auto f32 = logits.options().dtype(at::kFloat);
  at::Tensor loss = at::empty({n}, f32), lse = at::empty({n}, f32);
  at::Tensor grad = !with_grad ? at::empty({0}, logits.options()) : grad_in_logits ? z : at::empty_like(z);
  if (n > 0) {
    std::vector<KernelArg> args = {tensorArg(z), tensorArg(t), KernelArg::ofInt(ignore_index), KernelArg::ofFloat(label_smoothing),
                                   KernelArg::ofFloat(lse_square_scale), KernelArg::ofFloat(softcap)};
    const char *kernel = !with_grad ? "cross_entropy_fwd" : grad_in_logits ? "cross_entropy_fwd_bwd_inplace" : "cross_entropy_fwd_bwd";
    if (with_grad) args.push_back(tensorArg(grad_scale));
    args.insert(args.end(), {tensorArg(loss), tensorArg(lse), tensorArg(error)});
    if (with_grad && !grad_in_logits) args.push_back(tensorArg(grad));
    runKernel(builtinModule("cross_entropy.tile"), kernel, {{"T", ir::dtypeName(dtypeOf(z))}}, args, logits.device(), n);
  }
  return {loss, lse, grad};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> cross_entropy_fwd(const at::Tensor &logits, const at::Tensor &target,
                                                                 int64_t ignore_index, double label_smoothing,
                                                                 double lse_square_scale, double softcap, bool with_grad,
                                                                 bool grad_in_logits, c10::string_view reduction) {
  checkInputs(logits, target);
  at::Tensor scale = with_grad ? lossGradScale(target, ignore_index, reduction) : at::Tensor();
  at::Tensor error = at::zeros({1}, target.options().dtype(at::kInt));
  auto rows = cross_entropy_rows(logits, target, ignore_index, label_smoothing, lse_square_scale, softcap, with_grad,
                                 grad_in_logits, scale, error);
  raiseOnBadTarget(error, logits.size(1), ignore_index);
  return rows;
}

at::Tensor cross_entropy_bwd(const at::Tensor &logits, const at::Tensor &target, const at::Tensor &lse,
                             const at::Tensor &grad_rows, int64_t ignore_index, double label_smoothing,
                             double lse_square_scale, double softcap, bool grad_in_logits) {
  checkInputs(logits, target);
  at::Tensor z = contiguousLast(logits), t = target.to(at::kLong);
  at::Tensor g = grad_rows.to(at::kFloat).contiguous(), l = lse.contiguous();
  at::Tensor grad = grad_in_logits ? z : at::empty_like(z);
  if (z.size(0) > 0) {
    std::vector<KernelArg> args = {tensorArg(z), tensorArg(t), tensorArg(l), tensorArg(g), KernelArg::ofInt(ignore_index),
                                   KernelArg::ofFloat(label_smoothing), KernelArg::ofFloat(lse_square_scale),
                                   KernelArg::ofFloat(softcap)};
    if (!grad_in_logits) args.push_back(tensorArg(grad));
    runKernel(builtinModule("cross_entropy.tile"), grad_in_logits ? "cross_entropy_bwd_inplace" : "cross_entropy_bwd",
              {{"T", ir::dtypeName(dtypeOf(z))}}, args, logits.device(), z.size(0));
  }
  return grad;
}

}  // namespace tigon::ops
