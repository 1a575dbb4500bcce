// SwiGLU, c = silu(a) * b: forward, and backward (da, db) recomputing silu from a.
#include "ops/norm_common.h"
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

at::Tensor swiglu_fwd(const at::Tensor &a, const at::Tensor &b) {
  const char *op = "swiglu";
  checkFloatTensor(op, "a", a);
  TORCH_CHECK_VALUE(a.device() == b.device(), op, ": a is on ", a.device(), " but b is on ", b.device());
  TORCH_CHECK_VALUE(a.sizes() == b.sizes() && a.scalar_type() == b.scalar_type(), op,
                    ": a and b must have the same shape and dtype, got ", a.sizes(), " ", a.scalar_type(), " and ",
                    b.sizes(), " ", b.scalar_type());
  at::Tensor a2 = rowsOf(a), b2 = rowsOf(b), c = at::empty(a2.sizes(), a.options());
  if (a.numel() > 0)
    runKernel(builtinModule("swiglu.tile"), "swiglu_fwd", {{"T", ir::dtypeName(dtypeOf(a))}, {"N", std::to_string(a2.size(1))}},
              {tensorArg(a2), tensorArg(b2), tensorArg(c)}, a.device(), a2.size(0));
  return c.view(a.sizes());
}

std::tuple<at::Tensor, at::Tensor> swiglu_bwd(const at::Tensor &dc, const at::Tensor &a, const at::Tensor &b) {
  TORCH_CHECK_VALUE(dc.sizes() == a.sizes() && dc.scalar_type() == a.scalar_type(),
                    "swiglu backward: grad_output must match a in shape and dtype");
  at::Tensor a2 = rowsOf(a), b2 = rowsOf(b), dc2 = rowsOf(dc);
  at::Tensor da = at::empty(a2.sizes(), a.options()), db = at::empty(a2.sizes(), a.options());
  if (a.numel() > 0)
    runKernel(builtinModule("swiglu.tile"), "swiglu_bwd", {{"T", ir::dtypeName(dtypeOf(a))}, {"N", std::to_string(a2.size(1))}},
              {tensorArg(dc2), tensorArg(a2), tensorArg(b2), tensorArg(da), tensorArg(db)}, a.device(), a2.size(0));
  return {da.view(a.sizes()), db.view(a.sizes())};
}

}  // namespace tigon::ops
