// Cross-entropy over logits (BT, V): the loss (reduced for "mean"/"sum", per row for "none")
// and the per-row lse, with the gradient of the reduced loss fused into the forward, or from a
// per-row upstream gradient in the backward (reduction="none"). A forward launches three
// kernels and no torch ones (loss_setup, the cross-entropy kernel, loss_reduce: see
// kernels_src/loss_reduce.tile). A target outside [0, V) that is not ignore_index raises a
// ValueError: the forward syncs once to check, or (check_targets = false) hands out the counter
// for raise_on_bad_target to check later (the backward, after launching its kernels), so a
// training step's forward never waits for the GPU.
#include "ops/ops.h"
#include "ops/torch_bridge.h"
#include "runtime/builtin_kernels.h"

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
  int64_t bad = error.item<int>();  // one small copy back
  TORCH_CHECK_VALUE(bad == 0, "cross_entropy: ", bad, " target(s) outside [0, ", v, ") that are not ignore_index (",
                    ignoreIndex, ")");
}

at::Tensor lossTarget(const at::Tensor &target) { return contiguousLast(target.to(at::kLong)); }

std::tuple<at::Tensor, at::Tensor> lossSetup(const at::Tensor &target, int64_t ignore_index, c10::string_view reduction) {
  TORCH_CHECK_VALUE(reduction == "mean" || reduction == "sum" || reduction == "none",
                    "cross_entropy: reduction must be 'mean', 'sum' or 'none', got '", std::string(reduction), "'");
  at::Tensor stats = at::empty({2}, target.options().dtype(at::kFloat));
  at::Tensor error = at::empty({1}, target.options().dtype(at::kInt));
  runKernel(builtinModule("loss_reduce.tile"), "loss_setup", {},
            {tensorArg(target), KernelArg::ofInt(ignore_index), KernelArg::ofInt(reduction == "mean"), tensorArg(stats),
             tensorArg(error)},
            target.device(), target.size(0), /*tune=*/false);
  return {stats, error};
}

at::Tensor lossReduce(const at::Tensor &rows, const at::Tensor &stats, c10::string_view reduction) {
  if (reduction == "none") return rows;
  at::Tensor loss = at::empty({1}, rows.options());
  runKernel(builtinModule("loss_reduce.tile"), "loss_reduce", {},
            {tensorArg(rows), tensorArg(stats), KernelArg::ofInt(reduction == "mean"), tensorArg(loss)}, rows.device(),
            rows.size(0), /*tune=*/false);
  return loss.view(at::IntArrayRef{});  // 0-dim (view({}) would pick the dtype overload)
}

at::Tensor cross_entropy_rows(const at::Tensor &logits, const at::Tensor &target, int64_t ignore_index,
                              double label_smoothing, double lse_square_scale, double softcap, bool with_grad,
                              bool grad_in_logits, const at::Tensor &grad_scale, const at::Tensor &error,
                              const at::Tensor &loss, const at::Tensor &lse) {
  checkInputs(logits, target);
  TORCH_CHECK_VALUE(label_smoothing >= 0 && label_smoothing <= 1, "cross_entropy: label_smoothing must be in [0, 1], got ",
                    label_smoothing);
  TORCH_CHECK_VALUE(softcap >= 0, "cross_entropy: softcap must be positive (or 0 for none), got ", softcap);
  at::Tensor z = contiguousLast(logits), t = lossTarget(target);
  int64_t n = z.size(0);
  at::Tensor grad = !with_grad ? at::empty({0}, logits.options()) : grad_in_logits ? z : at::empty_like(z);
  if (n > 0) {
    // rows as chunks of w logits (see the header of cross_entropy.tile): 16 bytes where V allows
    int64_t v = z.size(1), w = chunkWidth(v, z.element_size());
    auto chunked = [&](const at::Tensor &x) { return x.view({n, v / w, w}); };
    std::vector<KernelArg> args = {tensorArg(chunked(z)), tensorArg(t), KernelArg::ofInt(ignore_index),
                                   KernelArg::ofFloat(label_smoothing), KernelArg::ofFloat(lse_square_scale),
                                   KernelArg::ofFloat(softcap)};
    const char *kernel = !with_grad ? "cross_entropy_fwd" : grad_in_logits ? "cross_entropy_fwd_bwd_inplace" : "cross_entropy_fwd_bwd";
    if (with_grad) args.push_back(tensorArg(grad_scale));
    args.insert(args.end(), {tensorArg(loss), tensorArg(lse), tensorArg(error)});
    if (with_grad && !grad_in_logits) args.push_back(tensorArg(chunked(grad)));
    Bindings b = {{"T", ir::dtypeName(dtypeOf(z))}, {"W", std::to_string(w)}, {"CAPPED", softcap != 0 ? "1" : "0"},
                  {"SMOOTHED", label_smoothing != 0 ? "1" : "0"}};
    runKernel(builtinModule("cross_entropy.tile"), kernel, b, args, logits.device(), n, /*tune=*/true, v);
  }
  return grad;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> cross_entropy_fwd(
    const at::Tensor &logits, const at::Tensor &target, int64_t ignore_index, double label_smoothing,
    double lse_square_scale, double softcap, bool with_grad, bool grad_in_logits, c10::string_view reduction,
    bool check_targets) {
  checkInputs(logits, target);
  at::Tensor t = lossTarget(target);
  auto [stats, error] = lossSetup(t, ignore_index, reduction);
  auto f32 = logits.options().dtype(at::kFloat);
  at::Tensor rows = at::empty({logits.size(0)}, f32), lse = at::empty({logits.size(0)}, f32);
  at::Tensor grad = cross_entropy_rows(logits, t, ignore_index, label_smoothing, lse_square_scale, softcap, with_grad,
                                       grad_in_logits, stats.narrow(0, 0, 1), error, rows, lse);
  at::Tensor loss = lossReduce(rows, stats, reduction);  // launched before the wait of the check
  if (check_targets) raiseOnBadTarget(error, logits.size(1), ignore_index);
  return {loss, lse, grad, error};
}

at::Tensor cross_entropy_bwd(const at::Tensor &logits, const at::Tensor &target, const at::Tensor &lse,
                             const at::Tensor &grad_rows, int64_t ignore_index, double label_smoothing,
                             double lse_square_scale, double softcap, bool grad_in_logits) {
  checkInputs(logits, target);
  at::Tensor z = contiguousLast(logits), t = lossTarget(target);
  at::Tensor g = grad_rows.to(at::kFloat).contiguous(), l = lse.contiguous();
  at::Tensor grad = grad_in_logits ? z : at::empty_like(z);
  if (z.size(0) > 0) {
    std::vector<KernelArg> args = {tensorArg(z), tensorArg(t), tensorArg(l), tensorArg(g), KernelArg::ofInt(ignore_index),
                                   KernelArg::ofFloat(label_smoothing), KernelArg::ofFloat(lse_square_scale),
                                   KernelArg::ofFloat(softcap)};
    if (!grad_in_logits) args.push_back(tensorArg(grad));
    runKernel(builtinModule("cross_entropy.tile"), grad_in_logits ? "cross_entropy_bwd_inplace" : "cross_entropy_bwd",
              {{"T", ir::dtypeName(dtypeOf(z))}, {"CAPPED", softcap != 0 ? "1" : "0"}}, args, logits.device(), z.size(0),
              /*tune=*/true, z.size(1));
  }
  return grad;
}

void raise_on_bad_target(const at::Tensor &error, int64_t num_classes, int64_t ignore_index) {
  TORCH_CHECK_VALUE(error.numel() == 1 && error.scalar_type() == at::kInt,
                    "raise_on_bad_target: error must be the int32 counter a loss forward returned, got ",
                    error.scalar_type(), " of shape ", error.sizes());
  raiseOnBadTarget(error, num_classes, ignore_index);
}

void scale_unless_one_(at::TensorList tensors, const at::Tensor &g) {
  const char *op = "scale_unless_one_";
  TORCH_CHECK_VALUE(g.numel() == 1, op, ": g must hold one element, got ", g.sizes());
  at::Tensor g1 = g.reshape({1});
  if (g1.scalar_type() != at::kFloat) g1 = g1.to(at::kFloat);
  for (const at::Tensor &x : tensors) {
    TORCH_CHECK_TYPE(x.is_floating_point() && x.scalar_type() != at::kDouble, op,
                     ": tensors must be float32, float16 or bfloat16, got ", x.scalar_type());
    TORCH_CHECK_VALUE(x.device() == g.device(), op, ": a tensor is on ", x.device(), " but g is on ", g.device());
    if (x.numel() == 0) continue;
    // one row when contiguous (indices stay well inside i32), else rows of the last dimension
    bool flat = x.is_contiguous() && x.numel() <= (int64_t(1) << 30);
    TORCH_CHECK_VALUE(flat || (x.dim() >= 1 && x.stride(-1) == 1), op,
                      ": a non-contiguous tensor must have a contiguous last dimension, got strides ", x.strides());
    at::Tensor rows = flat ? x.view({1, x.numel()}) : x.view({-1, x.size(-1)});
    runKernel(builtinModule("loss_reduce.tile"), "scale_unless_one", {{"T", ir::dtypeName(dtypeOf(x))}},
              {tensorArg(rows), tensorArg(g1), KernelArg::ofInt(4 * parallelism(x.device()))}, x.device(),
              rows.size(0), /*tune=*/false);
  }
}

}  // namespace tigon::ops
