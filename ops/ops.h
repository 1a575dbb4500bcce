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

// RoPE on q and k in one launch: q (B, Hq, S, D) and k (B, Hk, S, D) (any strides but the
// last) with cos/sin (B or 1, S, R), or the vision layout q/k (S, H, D) with cos/sin (S, R);
// backward rotates by -theta. Returns (q_embed, k_embed); either may have no heads.
std::tuple<at::Tensor, at::Tensor> rope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                              const at::Tensor &sin, bool backward);
// M-RoPE on q and k in one launch: q/k (B, H, S, D), cos/sin (3, B or 1, S, D),
// section = [s0, s1, s2].
std::tuple<at::Tensor, at::Tensor> mrope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                               const at::Tensor &sin, at::IntArrayRef section, bool backward);

at::Tensor swiglu_fwd(const at::Tensor &a, const at::Tensor &b);
std::tuple<at::Tensor, at::Tensor> swiglu_bwd(const at::Tensor &dc, const at::Tensor &a, const at::Tensor &b);

// Per-row loss and lse (f32), and with with_grad the gradient of the logits times
// grad_scale[0] (a 1-element f32 tensor on the logits' device; the gradient in a new tensor, or
// over the logits with grad_in_logits). Targets outside [0, V) that are not ignore_index are
// counted into error (i32 (1,), on the device; see raiseOnBadTarget). No host sync.
std::tuple<at::Tensor, at::Tensor, at::Tensor> cross_entropy_rows(const at::Tensor &logits, const at::Tensor &target,
                                                                  int64_t ignore_index, double label_smoothing,
                                                                  double lse_square_scale, double softcap, bool with_grad,
                                                                  bool grad_in_logits, const at::Tensor &grad_scale,
                                                                  const at::Tensor &error);
// Raises torch's ValueError if cross_entropy_rows counted bad targets into error (a host sync).
void raiseOnBadTarget(const at::Tensor &error, int64_t v, int64_t ignoreIndex);
// The gradient's scale for a reduction of the per-row losses, as a 1-element f32 tensor computed
// on the target's device (no host sync): 1 / (rows not ignored) for "mean" (1 when there are
// none: every gradient row is 0 then), 1 for "sum" and "none".
at::Tensor lossGradScale(const at::Tensor &target, int64_t ignore_index, c10::string_view reduction);
// cross_entropy_rows with the gradient scaled for `reduction`.
std::tuple<at::Tensor, at::Tensor, at::Tensor> cross_entropy_fwd(const at::Tensor &logits, const at::Tensor &target,
                                                                 int64_t ignore_index, double label_smoothing,
                                                                 double lse_square_scale, double softcap, bool with_grad,
                                                                 bool grad_in_logits, c10::string_view reduction);
// The gradient of the logits for a per-row upstream gradient, from the saved lse.
at::Tensor cross_entropy_bwd(const at::Tensor &logits, const at::Tensor &target, const at::Tensor &lse,
                             const at::Tensor &grad_rows, int64_t ignore_index, double label_smoothing,
                             double lse_square_scale, double softcap, bool grad_in_logits);

// Fused linear cross-entropy: [loss rows, lse, dx, dw, db] (the gradients of the reduced loss
// when with_grad; empty tensors otherwise); chunk_rows <= 0 picks the chunk size.
std::vector<at::Tensor> fused_linear_cross_entropy_fwd(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &target,
                                                       const std::optional<at::Tensor> &bias, int64_t ignore_index,
                                                       double label_smoothing, double lse_square_scale, double softcap,
                                                       bool with_grad, c10::string_view reduction, bool accum_f32,
                                                       int64_t chunk_rows);
// [dx, dw, db] for a per-row upstream gradient (reduction="none"), recomputing the logits.
std::vector<at::Tensor> fused_linear_cross_entropy_bwd(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &target,
                                                       const std::optional<at::Tensor> &bias, const at::Tensor &lse,
                                                       const at::Tensor &grad_rows, int64_t ignore_index, double label_smoothing,
                                                       double lse_square_scale, double softcap, bool accum_f32,
                                                       int64_t chunk_rows);

// User kernels (tigon.load): a text description of a file's kernels ("kernel NAME",
// "generic NAME dtype|const|tune", "param NAME tensor|scalar TYPE in|out|inout" lines), and a
// launch with the tensor, float and int arguments in parameter order.
std::string describe_tile(c10::string_view path, c10::string_view source);
void launch_tile(c10::string_view path, c10::string_view source, c10::string_view kernel, c10::string_view bindings,
                 at::TensorList tensors, at::ArrayRef<double> floats, at::ArrayRef<int64_t> ints);

}  // namespace tigon::ops
