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

}  // namespace tigon::ops
