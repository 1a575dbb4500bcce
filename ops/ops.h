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

// User kernels (tigon.load): a text description of a file's kernels ("kernel NAME",
// "generic NAME dtype|const|tune", "param NAME tensor|scalar TYPE in|out|inout" lines), and a
// launch with the tensor, float and int arguments in parameter order.
std::string describe_tile(c10::string_view path, c10::string_view source);
void launch_tile(c10::string_view path, c10::string_view source, c10::string_view kernel, c10::string_view bindings,
                 at::TensorList tensors, at::ArrayRef<double> floats, at::ArrayRef<int64_t> ints);

}  // namespace tigon::ops
