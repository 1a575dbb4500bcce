// The op layer: every built-in op as a function on at::Tensor. Each checks its inputs (clear
// ValueError/TypeError messages), allocates outputs and runs its .tile kernels on the inputs'
// device. registration.cpp exposes them as torch.ops.tigon.*.
#pragma once
#include <ATen/ATen.h>

#include <optional>
#include <tuple>

namespace tigon::ops {

std::tuple<at::Tensor, at::Tensor> rms_norm_fwd(const at::Tensor &x, const std::optional<at::Tensor> &weight, double eps,
                                                double offset, c10::string_view casting_mode);
// dx, and dw (empty when there is no weight); dx_in_dy lets dx overwrite dy's buffer.
std::tuple<at::Tensor, at::Tensor> rms_norm_bwd(const at::Tensor &dy, const at::Tensor &x,
                                                const std::optional<at::Tensor> &weight, const at::Tensor &rstd,
                                                double offset, bool dx_in_dy);

std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_fwd(const at::Tensor &x, const std::optional<at::Tensor> &weight,
                                                              const std::optional<at::Tensor> &bias, double eps);
// dx, dw, db (dw/db empty when there is no weight/bias)
std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_bwd(const at::Tensor &dy, const at::Tensor &x,
                                                              const std::optional<at::Tensor> &weight, bool has_bias,
                                                              const at::Tensor &mean, const at::Tensor &rstd);

// RoPE of q and k: each (B, H, S, D) (its own head count) with cos/sin (B or 1, S, R), or the
// vision layout (S, H, D) with cos/sin (S, R); backward rotates by -theta.
std::tuple<at::Tensor, at::Tensor> rope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                              const at::Tensor &sin, bool backward);
// M-RoPE of q and k: each (B, H, S, D), cos/sin (3, B or 1, S, D), section = [s0, s1, s2].
std::tuple<at::Tensor, at::Tensor> mrope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                               const at::Tensor &sin, at::IntArrayRef section, bool backward);

at::Tensor swiglu_fwd(const at::Tensor &a, const at::Tensor &b);
std::tuple<at::Tensor, at::Tensor> swiglu_bwd(const at::Tensor &dc, const at::Tensor &a, const at::Tensor &b);

// The target as contiguous int64 (no copy when it is one already).
at::Tensor lossTarget(const at::Tensor &target);
// Before a loss kernel, one launch (loss_setup, no host sync): stats, f32 (2,) = [the gradient's
// scale for `reduction` (1 / max(rows not ignored, 1) for "mean", 1 for "sum" and "none"), the
// rows not ignored], and error, i32 (1,) = 0, the bad-target counter. Checks `reduction`.
// target: from lossTarget.
std::tuple<at::Tensor, at::Tensor> lossSetup(const at::Tensor &target, int64_t ignore_index, c10::string_view reduction);
// After the loss kernels, one launch (loss_reduce; none for "none", which returns rows): the
// loss as a 0-dim f32 tensor, the sum of rows, divided by stats[1] for "mean" (NaN when 0).
at::Tensor lossReduce(const at::Tensor &rows, const at::Tensor &stats, c10::string_view reduction);
// Per-row loss and lse (f32) into loss and lse ((BT,) each, contiguous: whole tensors or slices
// of them), and with with_grad the gradient of the logits times grad_scale[0] (a 1-element f32
// tensor on the logits' device), returned: a new tensor, or the logits with grad_in_logits.
// Targets outside [0, V) that are not ignore_index are counted into error (i32 (1,), on the
// device; see raiseOnBadTarget). One launch, no host sync.
at::Tensor cross_entropy_rows(const at::Tensor &logits, const at::Tensor &target, int64_t ignore_index,
                              double label_smoothing, double lse_square_scale, double softcap, bool with_grad,
                              bool grad_in_logits, const at::Tensor &grad_scale, const at::Tensor &error,
                              const at::Tensor &loss, const at::Tensor &lse);
// Raises torch's ValueError if cross_entropy_rows counted bad targets into error (a host sync).
void raiseOnBadTarget(const at::Tensor &error, int64_t v, int64_t ignoreIndex);
// [loss, lse, grad, error]: the loss reduced for `reduction` ("none": per row), the per-row lse,
// with with_grad the gradient of that loss (of the sum of rows for "none"), and the bad-target
// counter. Three launches (lossSetup, cross_entropy_rows, lossReduce); with check_targets one
// host sync (raiseOnBadTarget), else none: the caller checks error later (raise_on_bad_target).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> cross_entropy_fwd(
    const at::Tensor &logits, const at::Tensor &target, int64_t ignore_index, double label_smoothing,
    double lse_square_scale, double softcap, bool with_grad, bool grad_in_logits, c10::string_view reduction,
    bool check_targets);
// raiseOnBadTarget on the counter a loss forward returned (check_targets = false).
void raise_on_bad_target(const at::Tensor &error, int64_t num_classes, int64_t ignore_index);
// The gradient of the logits for a per-row upstream gradient, from the saved lse.
at::Tensor cross_entropy_bwd(const at::Tensor &logits, const at::Tensor &target, const at::Tensor &lse,
                             const at::Tensor &grad_rows, int64_t ignore_index, double label_smoothing,
                             double lse_square_scale, double softcap, bool grad_in_logits);

// Fused linear cross-entropy: [loss, lse, dx, dw, db, error]: the loss reduced for `reduction`
// (per row for "none"), the per-row lse, the gradients of that loss when with_grad (empty tensors
// otherwise) and the bad-target counter (checked here with check_targets, as cross_entropy_fwd);
// chunk_rows <= 0 picks the chunk size.
std::vector<at::Tensor> fused_linear_cross_entropy_fwd(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &target,
                                                       const std::optional<at::Tensor> &bias, int64_t ignore_index,
                                                       double label_smoothing, double lse_square_scale, double softcap,
                                                       bool with_grad, c10::string_view reduction, bool accum_f32,
                                                       int64_t chunk_rows, bool check_targets);
// [dx, dw, db] for a per-row upstream gradient (reduction="none"), recomputing the logits.
std::vector<at::Tensor> fused_linear_cross_entropy_bwd(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &target,
                                                       const std::optional<at::Tensor> &bias, const at::Tensor &lse,
                                                       const at::Tensor &grad_rows, int64_t ignore_index, double label_smoothing,
                                                       double lse_square_scale, double softcap, bool accum_f32,
                                                       int64_t chunk_rows);

// x *= g[0] in place for each tensor (float dtypes, any shape whose rows of the last dimension
// are contiguous), rounded once to its dtype; g holds one element, on the tensors' device. No
// pass over the tensors when g[0] == 1, and no host sync either way (the kernel reads g).
void scale_unless_one_(at::TensorList tensors, const at::Tensor &g);

// User kernels (tigon.load): a text description of a file's kernels ("kernel NAME",
// "generic NAME dtype|const|tune", "param NAME tensor|scalar TYPE in|out|inout" lines), and a
// launch with the tensor, float and int arguments in parameter order.
std::string describe_tile(c10::string_view path, c10::string_view source);
void launch_tile(c10::string_view path, c10::string_view source, c10::string_view kernel, c10::string_view bindings,
                 at::TensorList tensors, at::ArrayRef<double> floats, at::ArrayRef<int64_t> ints);

}  // namespace tigon::ops
