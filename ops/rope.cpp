// RoPE (HF rotate-half) and Qwen2-VL's M-RoPE on q and k in one launch; the backward is the
// rotation by -theta (the *_bwd kernels) on both gradients, also in one launch. Outputs are new
// contiguous tensors.
#include "ops/norm_common.h"
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

// q and k: float tensors of one dtype on one device, both (B, H, S, D) or, where visionAllowed,
// both (S, H, D); equal in every dimension but the heads (dim 1): batch, positions, head dim.
void checkQk(const char *op, const at::Tensor &q, const at::Tensor &k, bool visionAllowed) {
  checkFloatTensor(op, "q", q);
  checkFloatTensor(op, "k", k);
  const char *layout = visionAllowed ? "(B, H, S, D) or, for vision, (S, H, D)" : "(B, H, S, D)";
  TORCH_CHECK_VALUE(q.dim() == 4 || (visionAllowed && q.dim() == 3), op, ": q must be ", layout, "; got ", q.sizes());
  TORCH_CHECK_VALUE(k.dim() == q.dim(), op, ": q and k must have the same number of dimensions, got q ", q.sizes(),
                    " and k ", k.sizes());
  for (int64_t d = 0; d < q.dim(); ++d)
    TORCH_CHECK_VALUE(d == 1 || q.size(d) == k.size(d), op,
                      ": q and k may differ only in their number of heads (dim 1); got q ", q.sizes(), " and k ",
                      k.sizes());
  TORCH_CHECK_TYPE(q.scalar_type() == k.scalar_type(), op, ": q and k must have the same dtype, got ", q.scalar_type(),
                   " and ", k.scalar_type());
  TORCH_CHECK_VALUE(q.device() == k.device(), op, ": q is on ", q.device(), " but k is on ", k.device());
}

void checkTables(const char *op, const at::Tensor &q, const at::Tensor &cos, const at::Tensor &sin) {
  checkFloatTensor(op, "cos", cos);
  TORCH_CHECK_VALUE(cos.sizes() == sin.sizes() && cos.scalar_type() == sin.scalar_type(), op,
                    ": cos and sin must have the same shape and dtype, got ", cos.sizes(), " and ", sin.sizes());
  TORCH_CHECK_VALUE(cos.device() == q.device() && sin.device() == q.device(), op, ": cos and sin must be on ", q.device(),
                    " (q's device), got ", cos.device(), " and ", sin.device());
}

at::Tensor contiguousLast(const at::Tensor &t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// x as (B, H, S, D): as given (4-D), or the vision layout (S, H, D) viewed as (1, H, S, D).
at::Tensor bhsd(const at::Tensor &x) {
  at::Tensor v = contiguousLast(x);
  if (v.dim() == 4) return v;
  return v.as_strided({1, v.size(1), v.size(0), v.size(2)}, {0, v.stride(1), v.stride(0), 1});
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                              const at::Tensor &sin, bool backward) {
  const char *op = "rope";
  checkQk(op, q, k, true);
  checkTables(op, q, cos, sin);
  TORCH_CHECK_VALUE(cos.dim() == q.dim() - 1, op, ": cos/sin must be (B or 1, S, R) for 4-D q/k and (S, R) for 3-D; got ",
                    cos.sizes(), " with q ", q.sizes());
  at::Tensor q4 = bhsd(q), k4 = bhsd(k);
  int64_t b = q4.size(0), s = q4.size(2), d = q4.size(3), r = cos.size(-1);
  at::Tensor c3 = q.dim() == 3 ? cos.unsqueeze(0) : cos, s3 = q.dim() == 3 ? sin.unsqueeze(0) : sin;
  TORCH_CHECK_VALUE(c3.size(1) == s, op, ": cos/sin have ", c3.size(1), " positions but q/k have ", s, " (cos ",
                    cos.sizes(), ", q ", q.sizes(), ")");
  TORCH_CHECK_VALUE(c3.size(0) == b || c3.size(0) == 1, op, ": cos/sin batch must be 1 or ", b, ", got ", c3.size(0),
                    " (cos ", cos.sizes(), ", q ", q.sizes(), ")");
  TORCH_CHECK_VALUE(r % 2 == 0 && r >= 2 && r <= d, op, ": the rotary width (cos.size(-1) = ", r,
                    ") must be even and at most the head dim ", d);
  c3 = contiguousLast(c3).expand({b, s, r});  // a table shared by the batch: stride 0
  s3 = contiguousLast(s3).expand({b, s, r});
  at::Tensor qy = at::empty(q.sizes(), q.options()), ky = at::empty(k.sizes(), k.options());
  if (q.numel() + k.numel() > 0)
    runKernel(builtinModule("rope.tile"), backward ? "rope_bwd" : "rope_fwd",
              {{"T", ir::dtypeName(dtypeOf(q))}, {"C", ir::dtypeName(dtypeOf(cos))}, {"R", std::to_string(r)}},
              {tensorArg(q4), tensorArg(k4), tensorArg(c3), tensorArg(s3), tensorArg(bhsd(qy)), tensorArg(bhsd(ky))},
              q.device(), b * s);
  return {qy, ky};
}

std::tuple<at::Tensor, at::Tensor> mrope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                               const at::Tensor &sin, at::IntArrayRef section, bool backward) {
  const char *op = "mrope";
  checkQk(op, q, k, false);
  checkTables(op, q, cos, sin);
  int64_t b = q.size(0), s = q.size(2), d = q.size(3);
  TORCH_CHECK_VALUE(cos.dim() == 4 && cos.size(0) == 3 && cos.size(2) == s && cos.size(3) == d &&
                        (cos.size(1) == b || cos.size(1) == 1),
                    op, ": cos/sin must be (3, B or 1, S, D) = (3, ", b, ", ", s, ", ", d, "), got ", cos.sizes());
  TORCH_CHECK_VALUE(section.size() == 3 && section[0] >= 0 && section[1] >= 0 && section[2] >= 0 &&
                        section[0] + section[1] + section[2] == d / 2 && d % 2 == 0,
                    op, ": mrope_section must be 3 non-negative sizes summing to D/2 = ", d / 2, ", got ", section);
  at::Tensor c4 = contiguousLast(cos).expand({3, b, s, d}), s4 = contiguousLast(sin).expand({3, b, s, d});
  at::Tensor qy = at::empty(q.sizes(), q.options()), ky = at::empty(k.sizes(), k.options());
  if (q.numel() + k.numel() > 0)
    runKernel(builtinModule("mrope.tile"), backward ? "mrope_bwd" : "mrope_fwd",
              {{"T", ir::dtypeName(dtypeOf(q))}, {"C", ir::dtypeName(dtypeOf(cos))}, {"D", std::to_string(d)}},
              {tensorArg(contiguousLast(q)), tensorArg(contiguousLast(k)), tensorArg(c4), tensorArg(s4),
               KernelArg::ofInt(section[0]), KernelArg::ofInt(section[1]), tensorArg(qy), tensorArg(ky)},
              q.device(), b * s);
  return {qy, ky};
}

}  // namespace tigon::ops
