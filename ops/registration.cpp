// torch.ops.tigon.*: the op layer registered with the PyTorch dispatcher. One implementation
// serves CPU and CUDA tensors (it dispatches on the device itself); autograd and the fake
// (meta) implementations for torch.compile are registered from Python (tigon/_ops.py).
#include <torch/library.h>

#include "ops/ops.h"

TORCH_LIBRARY(tigon, m) {
  m.def("rms_norm_fwd(Tensor x, Tensor? weight, float eps, float offset, str casting_mode) -> (Tensor, Tensor)");
  m.def("rms_norm_bwd(Tensor dy, Tensor x, Tensor? weight, Tensor rstd, float offset, bool dx_in_dy) -> (Tensor, Tensor)");
  m.def("layer_norm_fwd(Tensor x, Tensor? weight, Tensor? bias, float eps) -> (Tensor, Tensor, Tensor)");
  m.def("layer_norm_bwd(Tensor dy, Tensor x, Tensor? weight, bool has_bias, Tensor mean, Tensor rstd) -> (Tensor, Tensor, Tensor)");
  m.def("describe_tile(str path, str source) -> str", &tigon::ops::describe_tile);  // no tensors: catch-all
  m.def("launch_tile(str path, str source, str kernel, str bindings, Tensor(a!)[] tensors, float[] floats, int[] ints) -> ()");
}

TORCH_LIBRARY_IMPL(tigon, CompositeExplicitAutograd, m) {
  m.impl("rms_norm_fwd", &tigon::ops::rms_norm_fwd);
  m.impl("rms_norm_bwd", &tigon::ops::rms_norm_bwd);
  m.impl("layer_norm_fwd", &tigon::ops::layer_norm_fwd);
  m.impl("layer_norm_bwd", &tigon::ops::layer_norm_bwd);
  m.impl("launch_tile", &tigon::ops::launch_tile);
}
