// RoPE (HF rotate-half) and Qwen2-VL's M-RoPE of q and k in one op call (one dispatch and one
// autograd node for both; a kernel launch each); the backward is the rotation by -theta (the
// *_bwd kernels). Outputs are new contiguous tensors.
#include "ops/norm_common.h"
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

void checkTables(const char *op, const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin) {
  checkFloatTensor(op, "x", x);
  checkFloatTensor(op, "cos", cos);
  TORCH_CHECK_VALUE(cos.sizes() == sin.sizes() && cos.scalar_type() == sin.scalar_type(), op,
                    ": cos and sin must have the same shape and dtype, got ", cos.sizes(), " and ", sin.sizes());
  TORCH_CHECK_VALUE(cos.device() == x.device() && sin.device() == x.device(), op, ": cos and sin must be on ", x.device(),
                    " (x's device), got ", cos.device(), " and ", sin.device());
}

// x as (B, H, S, D): as given (4-D), or the vision layout (S, H, D) viewed as (1, H, S, D).
at::Tensor bhsd(const at::Tensor &x) {
  at::Tensor v = x.stride(-1) == 1 ? x : x.contiguous();
  if (v.dim() == 4) return v;
  return v.as_strided({1, v.size(1), v.size(0), v.size(2)}, {0, v.stride(1), v.stride(0), 1});
}

at::Tensor contiguousLast(const at::Tensor &t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

at::Tensor ropeOne(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin, bool backward) {
  const char *op = "rope";
  checkTables(op, x, cos, sin);
  TORCH_CHECK_VALUE(x.dim() == 4 || x.dim() == 3, op, ": q/k must be (B, H, S, D) or, for vision, (S, H, D); got ",
                    x.sizes());
  TORCH_CHECK_VALUE(cos.dim() == x.dim() - 1, op, ": cos/sin must be (B or 1, S, R) for 4-D q/k and (S, R) for 3-D; got ",
                    cos.sizes());
  at::Tensor x4 = bhsd(x);
  int64_t b = x4.size(0), s = x4.size(2), d = x4.size(3), r = cos.size(-1);
  at::Tensor c3 = x.dim() == 3 ? cos.unsqueeze(0) : cos, s3 = x.dim() == 3 ? sin.unsqueeze(0) : sin;
  TORCH_CHECK_VALUE(c3.size(1) == s, op, ": cos/sin have ", c3.size(1), " positions but q/k have ", s);
  TORCH_CHECK_VALUE(c3.size(0) == b || c3.size(0) == 1, op, ": cos/sin batch must be 1 or ", b, ", got ", c3.size(0));
  TORCH_CHECK_VALUE(r % 2 == 0 && r >= 2 && r <= d, op, ": the rotary width (cos.size(-1) = ", r,
                    ") must be even and at most the head dim ", d);
  c3 = contiguousLast(c3).expand({b, s, r});  // a table shared by the batch: stride 0
  s3 = contiguousLast(s3).expand({b, s, r});
  at::Tensor y = at::empty(x.sizes(), x.options());
  if (x.numel() > 0)
    runKernel(builtinModule("rope.tile"), backward ? "rope_bwd" : "rope_fwd",
              {{"T", ir::dtypeName(dtypeOf(x))}, {"C", ir::dtypeName(dtypeOf(cos))}, {"R", std::to_string(r)}},
              {tensorArg(x4), tensorArg(c3), tensorArg(s3), tensorArg(bhsd(y))}, x.device(), b * s);
  return y;
}

at::Tensor mropeOne(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin, at::IntArrayRef section,
                       bool backward) {
  const char *op = "mrope";
  checkTables(op, x, cos, sin);
  TORCH_CHECK_VALUE(x.dim() == 4, op, ": q/k must be (B, H, S, D), got ", x.sizes());
  int64_t b = x.size(0), s = x.size(2), d = x.size(3);
  TORCH_CHECK_VALUE(cos.dim() == 4 && cos.size(0) == 3 && cos.size(2) == s && cos.size(3) == d &&
                        (cos.size(1) == b || cos.size(1) == 1),
                    op, ": cos/sin must be (3, B or 1, S, D) = (3, ", b, ", ", s, ", ", d, "), got ", cos.sizes());
  TORCH_CHECK_VALUE(section.size() == 3 && section[0] >= 0 && section[1] >= 0 && section[2] >= 0 &&
                        section[0] + section[1] + section[2] == d / 2 && d % 2 == 0,
                    op, ": mrope_section must be 3 non-negative sizes summing to D/2 = ", d / 2, ", got ", section);
  at::Tensor x4 = contiguousLast(x);
  at::Tensor c4 = contiguousLast(cos).expand({3, b, s, d}), s4 = contiguousLast(sin).expand({3, b, s, d});
  at::Tensor y = at::empty(x.sizes(), x.options());
  if (x.numel() > 0)
    runKernel(builtinModule("mrope.tile"), backward ? "mrope_bwd" : "mrope_fwd",
              {{"T", ir::dtypeName(dtypeOf(x))}, {"C", ir::dtypeName(dtypeOf(cos))}, {"D", std::to_string(d)}},
              {tensorArg(x4), tensorArg(c4), tensorArg(s4), KernelArg::ofInt(section[0]), KernelArg::ofInt(section[1]),
               tensorArg(y)},
              x.device(), b * s);
  return y;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                              const at::Tensor &sin, bool backward) {
  return {ropeOne(q, cos, sin, backward), ropeOne(k, cos, sin, backward)};
}

std::tuple<at::Tensor, at::Tensor> mrope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                               const at::Tensor &sin, at::IntArrayRef section, bool backward) {
  return {mropeOne(q, cos, sin, section, backward), mropeOne(k, cos, sin, section, backward)};
}

}  // namespace tigon::ops
