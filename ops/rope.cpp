// RoPE (HF rotate-half) and Qwen2-VL's M-RoPE of q and k in one op call: one dispatch, one
// autograd node and one kernel launch for both (a program rotates all heads of q and k of one
// token); the backward is the rotation by -theta (the *_bwd kernels). Each output has its
// input's strides where the input is dense with a contiguous last dim (HF's transposed q gives
// a transposed output, as torch's own arithmetic would), else it is contiguous.
#include "ops/norm_common.h"
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

void checkPair(const char *op, const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos, const at::Tensor &sin) {
  checkFloatTensor(op, "q", q);
  checkFloatTensor(op, "k", k);
  checkFloatTensor(op, "cos", cos);
  TORCH_CHECK_VALUE(cos.sizes() == sin.sizes() && cos.scalar_type() == sin.scalar_type(), op,
                    ": cos and sin must have the same shape and dtype, got ", cos.sizes(), " and ", sin.sizes());
  TORCH_CHECK_VALUE(k.device() == q.device() && cos.device() == q.device() && sin.device() == q.device(), op,
                    ": k, cos and sin must be on ", q.device(), " (q's device), got ", k.device(), ", ", cos.device(),
                    " and ", sin.device());
  TORCH_CHECK_VALUE(k.scalar_type() == q.scalar_type(), op, ": q and k must have the same dtype, got ", q.scalar_type(),
                    " and ", k.scalar_type());
}

// x as (B, H, S, D): as given (4-D), or the vision layout (S, H, D) viewed as (1, H, S, D).
at::Tensor bhsd(const at::Tensor &x) {
  at::Tensor v = x.stride(-1) == 1 ? x : x.contiguous();
  if (v.dim() == 4) return v;
  return v.as_strided({1, v.size(1), v.size(0), v.size(2)}, {0, v.stride(1), v.stride(0), 1});
}

at::Tensor contiguousLast(const at::Tensor &t) { return t.stride(-1) == 1 ? t : t.contiguous(); }

// An output for x: x's strides where x is dense with a contiguous last dim (the kernel writes
// rows of the head dim), else contiguous
at::Tensor outputLike(const at::Tensor &x) {
  return x.stride(-1) == 1 ? at::empty_like(x) : at::empty(x.sizes(), x.options());
}

// q and k as (B, H, S, D) views with the same B, S and D (their head counts may differ)
std::pair<at::Tensor, at::Tensor> samePositions(const char *op, const at::Tensor &q, const at::Tensor &k) {
  at::Tensor q4 = bhsd(q), k4 = bhsd(k);
  TORCH_CHECK_VALUE(q4.size(0) == k4.size(0) && q4.size(2) == k4.size(2) && q4.size(3) == k4.size(3), op,
                    ": q and k must have the same batch, positions and head dim (only their head counts may differ), got ",
                    q.sizes(), " and ", k.sizes());
  return {q4, k4};
}

// false when there is nothing to rotate (no positions or an empty head dim); a kernel's tiles
// span all heads of q and of k, so each needs one at least
bool hasWork(const char *op, const at::Tensor &q4, const at::Tensor &k4) {
  if (q4.size(0) * q4.size(2) * q4.size(3) == 0) return false;
  TORCH_CHECK_VALUE(q4.size(1) > 0 && k4.size(1) > 0, op, ": q and k need one head at least, got ", q4.size(1),
                    " and ", k4.size(1));
  return true;
}

Bindings headBindings(const at::Tensor &q4, const at::Tensor &k4, const at::Tensor &cos) {
  return {{"T", ir::dtypeName(dtypeOf(q4))}, {"C", ir::dtypeName(dtypeOf(cos))}, {"D", std::to_string(q4.size(3))},
          {"HQ", std::to_string(q4.size(1))}, {"HK", std::to_string(k4.size(1))}};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                              const at::Tensor &sin, bool backward) {
  const char *op = "rope";
  checkPair(op, q, k, cos, sin);
  TORCH_CHECK_VALUE(q.dim() == k.dim() && (q.dim() == 4 || q.dim() == 3), op,
                    ": q and k must both be (B, H, S, D) or, for vision, (S, H, D); got ", q.sizes(), " and ", k.sizes());
  TORCH_CHECK_VALUE(cos.dim() == q.dim() - 1, op,
                    ": cos/sin must be (B or 1, S, R) for 4-D q/k and (S, R) for 3-D; got ", cos.sizes());
  auto [q4, k4] = samePositions(op, q, k);
  int64_t b = q4.size(0), s = q4.size(2), d = q4.size(3), r = cos.size(-1);
  at::Tensor c3 = q.dim() == 3 ? cos.unsqueeze(0) : cos, s3 = q.dim() == 3 ? sin.unsqueeze(0) : sin;
  TORCH_CHECK_VALUE(c3.size(1) == s, op, ": cos/sin have ", c3.size(1), " positions but q/k have ", s);
  TORCH_CHECK_VALUE(c3.size(0) == b || c3.size(0) == 1, op, ": cos/sin batch must be 1 or ", b, ", got ", c3.size(0));
  TORCH_CHECK_VALUE(r % 2 == 0 && r >= 2 && r <= d, op, ": the rotary width (cos.size(-1) = ", r,
                    ") must be even and at most the head dim ", d);
  c3 = contiguousLast(c3).expand({b, s, r});  // a table shared by the batch: stride 0
  s3 = contiguousLast(s3).expand({b, s, r});
  at::Tensor qe = outputLike(q), ke = outputLike(k);
  if (!hasWork(op, q4, k4)) return {qe, ke};
  Bindings bind = headBindings(q4, k4, cos);
  bind["R"] = std::to_string(r);
  runKernel(builtinModule("rope.tile"), backward ? "rope_bwd" : "rope_fwd", bind,
            {tensorArg(q4), tensorArg(k4), tensorArg(c3), tensorArg(s3), tensorArg(bhsd(qe)), tensorArg(bhsd(ke))},
            q.device(), b * s);
  return {qe, ke};
}

std::tuple<at::Tensor, at::Tensor> mrope_apply(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                               const at::Tensor &sin, at::IntArrayRef section, bool backward) {
  const char *op = "mrope";
  checkPair(op, q, k, cos, sin);
  TORCH_CHECK_VALUE(q.dim() == 4 && k.dim() == 4, op, ": q and k must be (B, H, S, D), got ", q.sizes(), " and ",
                    k.sizes());
  auto [q4, k4] = samePositions(op, q, k);
  int64_t b = q4.size(0), s = q4.size(2), d = q4.size(3);
  TORCH_CHECK_VALUE(cos.dim() == 4 && cos.size(0) == 3 && cos.size(2) == s && cos.size(3) == d &&
                        (cos.size(1) == b || cos.size(1) == 1),
                    op, ": cos/sin must be (3, B or 1, S, D) = (3, ", b, ", ", s, ", ", d, "), got ", cos.sizes());
  TORCH_CHECK_VALUE(section.size() == 3 && section[0] >= 0 && section[1] >= 0 && section[2] >= 0 &&
                        section[0] + section[1] + section[2] == d / 2 && d % 2 == 0,
                    op, ": mrope_section must be 3 non-negative sizes summing to D/2 = ", d / 2, ", got ", section);
  at::Tensor c4 = contiguousLast(cos).expand({3, b, s, d}), s4 = contiguousLast(sin).expand({3, b, s, d});
  at::Tensor qe = outputLike(q), ke = outputLike(k);
  if (!hasWork(op, q4, k4)) return {qe, ke};
  runKernel(builtinModule("mrope.tile"), backward ? "mrope_bwd" : "mrope_fwd", headBindings(q4, k4, cos),
            {tensorArg(q4), tensorArg(k4), tensorArg(c4), tensorArg(s4), KernelArg::ofInt(section[0]),
             KernelArg::ofInt(section[1]), tensorArg(qe), tensorArg(ke)},
            q.device(), b * s);
  return {qe, ke};
}

}  // namespace tigon::ops
