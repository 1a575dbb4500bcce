// torch.ops.tigon.*: the op layer registered with the PyTorch dispatcher. One implementation
// serves CPU and CUDA tensors (it dispatches on the device itself); the fake (meta)
// implementations for torch.compile are registered from Python (tigon/_ops.py), and so is
// autograd, except that of the norms, rotary embeddings and SwiGLU (ops/autograd.cpp).
#include <torch/library.h>

#include "ops/ops.h"

TORCH_LIBRARY(tigon, m) {
  m.def("rms_norm_fwd(Tensor x, Tensor? weight, float eps, float offset, str casting_mode) -> (Tensor, Tensor)");
  m.def("rms_norm_bwd(Tensor dy, Tensor x, Tensor? weight, Tensor rstd, float offset, bool dx_in_dy) -> (Tensor, Tensor)");
  m.def("layer_norm_fwd(Tensor x, Tensor? weight, Tensor? bias, float eps) -> (Tensor, Tensor, Tensor)");
  m.def("layer_norm_bwd(Tensor dy, Tensor x, Tensor? weight, bool has_bias, Tensor mean, Tensor rstd) -> (Tensor, Tensor, Tensor)");
  m.def("rope(Tensor q, Tensor k, Tensor cos, Tensor sin, bool backward) -> (Tensor, Tensor)");
  m.def("mrope(Tensor q, Tensor k, Tensor cos, Tensor sin, int[] section, bool backward) -> (Tensor, Tensor)");
  m.def("swiglu_fwd(Tensor a, Tensor b) -> Tensor");
  m.def("swiglu_bwd(Tensor dc, Tensor a, Tensor b) -> (Tensor, Tensor)");
  m.def("cross_entropy_fwd(Tensor logits, Tensor target, int ignore_index, float label_smoothing, float lse_square_scale, "
        "float softcap, bool with_grad, bool grad_in_logits, str reduction, bool check_targets) -> "
        "(Tensor, Tensor, Tensor, Tensor)");
  m.def("cross_entropy_bwd(Tensor logits, Tensor target, Tensor lse, Tensor grad_rows, int ignore_index, "
        "float label_smoothing, float lse_square_scale, float softcap, bool grad_in_logits) -> Tensor");
  m.def("fused_linear_cross_entropy_fwd(Tensor x, Tensor weight, Tensor target, Tensor? bias, int ignore_index, "
        "float label_smoothing, float lse_square_scale, float softcap, bool with_grad, str reduction, bool accum_f32, "
        "int chunk_rows, bool check_targets) -> Tensor[]");
  // ValueError if a loss forward run with check_targets=False counted bad targets (a host sync)
  m.def("raise_on_bad_target(Tensor error, int num_classes, int ignore_index) -> ()");
  m.def("fused_linear_cross_entropy_bwd(Tensor x, Tensor weight, Tensor target, Tensor? bias, Tensor lse, "
        "Tensor grad_rows, int ignore_index, float label_smoothing, float lse_square_scale, float softcap, bool accum_f32, "
        "int chunk_rows) -> Tensor[]");
  // x *= g[0] for each tensor, in place, skipped on the device when g[0] == 1 (the backward of
  // the losses whose gradient the forward computed)
  m.def("scale_unless_one_(Tensor(a!)[] tensors, Tensor g) -> ()");
  m.def("describe_tile(str path, str source) -> str", &tigon::ops::describe_tile);  // no tensors: catch-all
  m.def("launch_tile(str path, str source, str kernel, str bindings, Tensor(a!)[] tensors, float[] floats, int[] ints) -> ()");
}

TORCH_LIBRARY_IMPL(tigon, CompositeExplicitAutograd, m) {
  m.impl("rms_norm_fwd", &tigon::ops::rms_norm_fwd);
  m.impl("rms_norm_bwd", &tigon::ops::rms_norm_bwd);
  m.impl("layer_norm_fwd", &tigon::ops::layer_norm_fwd);
  m.impl("layer_norm_bwd", &tigon::ops::layer_norm_bwd);
  m.impl("rope", &tigon::ops::rope_apply);
  m.impl("mrope", &tigon::ops::mrope_apply);
  m.impl("swiglu_fwd", &tigon::ops::swiglu_fwd);
  m.impl("swiglu_bwd", &tigon::ops::swiglu_bwd);
  m.impl("cross_entropy_fwd", &tigon::ops::cross_entropy_fwd);
  m.impl("cross_entropy_bwd", &tigon::ops::cross_entropy_bwd);
  m.impl("raise_on_bad_target", &tigon::ops::raise_on_bad_target);
  m.impl("fused_linear_cross_entropy_fwd", &tigon::ops::fused_linear_cross_entropy_fwd);
  m.impl("fused_linear_cross_entropy_bwd", &tigon::ops::fused_linear_cross_entropy_bwd);
  m.impl("scale_unless_one_", &tigon::ops::scale_unless_one_);
  m.impl("launch_tile", &tigon::ops::launch_tile);
}
