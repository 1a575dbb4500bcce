// RMSNorm over the last dimension: forward (y, rstd) and backward (dx, dw).
#include "ops/ops.h"
#include "ops/torch_bridge.h"

namespace tigon::ops {

namespace {

void checkNormInputs(const char *op, const at::Tensor &x, const std::optional<at::Tensor> &weight) {
  TORCH_CHECK_TYPE(x.is_floating_point() && x.scalar_type() != at::kDouble, op,
                   ": x must be float32, float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": x must have at least one dimension");
  if (!weight) return;
  TORCH_CHECK_VALUE(weight->dim() == 1 && weight->size(0) == x.size(-1), op, ": weight must have shape [", x.size(-1),
                    "] (the last dimension of x), got ", weight->sizes());
  TORCH_CHECK_VALUE(weight->device() == x.device(), op, ": weight is on ", weight->device(), " but x is on ", x.device());
  TORCH_CHECK_TYPE(weight->is_floating_point() && weight->scalar_type() != at::kDouble, op,
                   ": weight must be float32, float16 or bfloat16, got ", weight->scalar_type());
}

// x as (M, N) rows with a contiguous last dimension (a copy only when it is strided).
at::Tensor rows(const at::Tensor &x) {
  at::Tensor r = x.reshape({-1, x.size(-1)});
  return r.stride(-1) == 1 ? r : r.contiguous();
}

// The weight in x's dtype (the kernels take one dtype), or ones when there is none.
at::Tensor weightLike(const std::optional<at::Tensor> &weight, const at::Tensor &x) {
  if (!weight) return at::ones({x.size(-1)}, x.options());
  return weight->to(x.scalar_type()).contiguous();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> rms_norm_fwd(const at::Tensor &x, const std::optional<at::Tensor> &weight, double eps,
                                                double offset, c10::string_view casting_mode) {
  checkNormInputs("rms_norm", x, weight);
  TORCH_CHECK_VALUE(casting_mode == "llama" || casting_mode == "gemma" || casting_mode == "none",
                    "rms_norm: casting_mode must be 'llama', 'gemma' or 'none', got '", std::string(casting_mode), "'");
  at::Tensor x2 = rows(x), w = weightLike(weight, x);
  int64_t m = x2.size(0), n = x2.size(1);
  at::Tensor y = at::empty_like(x2), rstd = at::empty({m}, x.options().dtype(at::kFloat));
  if (m > 0) {
    const char *kernel = casting_mode == "llama" ? "rms_norm_fwd" : "rms_norm_fwd_f32";
    runKernel(builtinModule("rms_norm.tile"), kernel, {{"T", ir::dtypeName(dtypeOf(x))}, {"N", std::to_string(n)}},
              {tensorArg(x2), tensorArg(w), KernelArg::ofFloat(offset), KernelArg::ofFloat(eps), tensorArg(y), tensorArg(rstd)},
              x.device(), m);
  }
  return {y.view(x.sizes()), rstd.view(x.sizes().slice(0, x.dim() - 1))};
}

std::tuple<at::Tensor, at::Tensor> rms_norm_bwd(const at::Tensor &dy, const at::Tensor &x,
                                                const std::optional<at::Tensor> &weight, const at::Tensor &rstd,
                                                double offset, bool dx_in_dy) {
  checkNormInputs("rms_norm backward", x, weight);
  TORCH_CHECK_VALUE(dy.sizes() == x.sizes() && dy.scalar_type() == x.scalar_type(),
                    "rms_norm backward: grad_output must match x in shape and dtype");
  at::Tensor x2 = rows(x), dy2 = rows(dy), w = weightLike(weight, x), rstd1 = rstd.reshape({-1}).contiguous();
  int64_t m = x2.size(0), n = x2.size(1);
  // dx may overwrite dy: each element of dy is read before its dx is written, by one thread
  at::Tensor dx = dx_in_dy && dy2.is_contiguous() && dy2.data_ptr() == dy.data_ptr() ? dy2 : at::empty_like(x2);
  // Enough programs to hide memory latency (each walks its rows one tile at a time), few
  // enough that the dw partial sums (programs x N floats) stay small beside the data.
  int64_t perSm = n >= 4096 ? 4 : n >= 1024 ? 8 : 16;
  int64_t programs = std::max<int64_t>(1, std::min<int64_t>(m, perSm * parallelism(x.device())));
  int64_t rowsPer = m == 0 ? 1 : (m + programs - 1) / programs;
  programs = m == 0 ? 1 : (m + rowsPer - 1) / rowsPer;
  at::Tensor partial = at::empty({programs, n}, x.options().dtype(at::kFloat));
  Bindings b = {{"T", ir::dtypeName(dtypeOf(x))}, {"N", std::to_string(n)}};
  const TileModule &mod = builtinModule("rms_norm.tile");
  if (m > 0)
    runKernel(mod, "rms_norm_bwd", b,
              {tensorArg(dy2), tensorArg(x2), tensorArg(w), tensorArg(rstd1), KernelArg::ofFloat(offset),
               KernelArg::ofInt(rowsPer), tensorArg(dx), tensorArg(partial)},
              x.device(), m);
  else
    partial.zero_();
  at::Tensor dw;
  if (weight) {
    dw = at::empty({n}, weight->options());
    runKernel(mod, "rms_norm_dw_reduce", {{"T", ir::dtypeName(dtypeOf(dw))}, {"N", std::to_string(n)}},
              {tensorArg(partial), tensorArg(dw)}, x.device(), programs);
  } else {
    dw = at::empty({0}, x.options());
  }
  return {dx.view(x.sizes()), dw};
}

}  // namespace tigon::ops
