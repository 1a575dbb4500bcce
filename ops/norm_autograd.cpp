// Autograd of the norms in C++ (the Autograd dispatch key of tigon::rms_norm_fwd and
// tigon::layer_norm_fwd): their forward+backward at small sizes is host time, and a Python
// autograd.Function (torch.library.register_autograd) cost about as much again as the ops
// themselves. Both directions call the ops through the dispatcher, so torch.compile traces them
// with their fake implementations (tigon/_ops.py) as it does any op.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace tigon::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

template <typename Signature>
c10::TypedOperatorHandle<Signature> opHandle(const char *name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

at::Tensor orUndefined(const std::optional<at::Tensor> &t) { return t ? *t : at::Tensor(); }
std::optional<at::Tensor> optionalOf(const at::Tensor &t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; }

struct RmsNorm : torch::autograd::Function<RmsNorm> {
  using Fwd = std::tuple<at::Tensor, at::Tensor>(const at::Tensor &, const std::optional<at::Tensor> &, double, double,
                                                 c10::string_view);
  using Bwd = std::tuple<at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &, const std::optional<at::Tensor> &,
                                                 const at::Tensor &, double, bool);

  static variable_list forward(AutogradContext *ctx, const at::Tensor &x, const std::optional<at::Tensor> &weight,
                               double eps, double offset, c10::string_view mode) {
    at::AutoDispatchBelowADInplaceOrView below;
    static auto op = opHandle<Fwd>("tigon::rms_norm_fwd");
    auto [y, rstd] = op.call(x, weight, eps, offset, mode);
    ctx->save_for_backward({x, orUndefined(weight), rstd});
    ctx->saved_data["offset"] = offset;
    ctx->mark_non_differentiable({rstd});
    ctx->set_materialize_grads(false);
    return {y, rstd};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};  // y unused
    static auto op = opHandle<Bwd>("tigon::rms_norm_bwd");
    variable_list saved = ctx->get_saved_variables();
    auto [dx, dw] = op.call(grads[0].contiguous(), saved[0], optionalOf(saved[1]), saved[2],
                            ctx->saved_data["offset"].toDouble(), false);
    return {dx, saved[1].defined() ? dw : at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct LayerNorm : torch::autograd::Function<LayerNorm> {
  using Fwd = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor &, const std::optional<at::Tensor> &,
                                                             const std::optional<at::Tensor> &, double);
  using Bwd = std::tuple<at::Tensor, at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &,
                                                             const std::optional<at::Tensor> &, bool, const at::Tensor &,
                                                             const at::Tensor &);

  static variable_list forward(AutogradContext *ctx, const at::Tensor &x, const std::optional<at::Tensor> &weight,
                               const std::optional<at::Tensor> &bias, double eps) {
    at::AutoDispatchBelowADInplaceOrView below;
    static auto op = opHandle<Fwd>("tigon::layer_norm_fwd");
    auto [y, mean, rstd] = op.call(x, weight, bias, eps);
    ctx->save_for_backward({x, orUndefined(weight), mean, rstd});
    ctx->saved_data["bias_dtype"] = bias ? c10::IValue(bias->scalar_type()) : c10::IValue();
    ctx->mark_non_differentiable({mean, rstd});
    ctx->set_materialize_grads(false);
    return {y, mean, rstd};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    if (!grads[0].defined()) return {at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
    static auto op = opHandle<Bwd>("tigon::layer_norm_bwd");
    variable_list saved = ctx->get_saved_variables();
    const c10::IValue &biasType = ctx->saved_data["bias_dtype"];
    auto [dx, dw, db] = op.call(grads[0].contiguous(), saved[0], optionalOf(saved[1]), !biasType.isNone(), saved[2],
                                saved[3]);
    return {dx, saved[1].defined() ? dw : at::Tensor(), biasType.isNone() ? at::Tensor() : db.to(biasType.toScalarType()),
            at::Tensor()};
  }
};

std::tuple<at::Tensor, at::Tensor> rmsNormAutograd(const at::Tensor &x, const std::optional<at::Tensor> &weight,
                                                   double eps, double offset, c10::string_view mode) {
  variable_list out = RmsNorm::apply(x, weight, eps, offset, mode);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> layerNormAutograd(const at::Tensor &x, const std::optional<at::Tensor> &weight,
                                                                 const std::optional<at::Tensor> &bias, double eps) {
  variable_list out = LayerNorm::apply(x, weight, bias, eps);
  return {out[0], out[1], out[2]};
}

}  // namespace

}  // namespace tigon::ops

TORCH_LIBRARY_IMPL(tigon, Autograd, m) {
  m.impl("rms_norm_fwd", &tigon::ops::rmsNormAutograd);
  m.impl("layer_norm_fwd", &tigon::ops::layerNormAutograd);
}
