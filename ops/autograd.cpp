// Autograd in C++ (the Autograd dispatch key) of the ops called once per layer or more, whose
// forward+backward at small and medium sizes is host time: the norms (tigon::rms_norm_fwd,
// tigon::layer_norm_fwd), the rotary embeddings (tigon::rope, tigon::mrope) and SwiGLU
// (tigon::swiglu_fwd). A Python autograd (torch.library.register_autograd) cost about as much
// again as the ops themselves.
// Both directions call the ops through the dispatcher, so torch.compile traces them with their
// fake implementations (tigon/_ops.py) as it does any op, and a backward is itself
// differentiable where the op is.
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

// (q, k) rotated by theta, or by -theta when `backward`: the gradient is the other rotation.
struct Rope : torch::autograd::Function<Rope> {
  using Op = std::tuple<at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                                const at::Tensor &, bool);

  static variable_list rotate(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos, const at::Tensor &sin,
                              bool backward) {
    static auto op = opHandle<Op>("tigon::rope");
    auto [qe, ke] = op.call(q, k, cos, sin, backward);
    return {qe, ke};
  }

  static variable_list forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                               const at::Tensor &sin, bool backward) {
    at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["backward"] = backward;
    return rotate(q, k, cos, sin, backward);
  }

  // an unused output's gradient comes as zeros (materialized): rotated like any other
  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    variable_list d = rotate(grads[0], grads[1], saved[0], saved[1], !ctx->saved_data["backward"].toBool());
    return {d[0], d[1], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct MRope : torch::autograd::Function<MRope> {
  using Op = std::tuple<at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                                const at::Tensor &, at::IntArrayRef, bool);

  static variable_list rotate(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos, const at::Tensor &sin,
                              at::IntArrayRef section, bool backward) {
    static auto op = opHandle<Op>("tigon::mrope");
    auto [qe, ke] = op.call(q, k, cos, sin, section, backward);
    return {qe, ke};
  }

  static variable_list forward(AutogradContext *ctx, const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                               const at::Tensor &sin, at::IntArrayRef section, bool backward) {
    at::AutoDispatchBelowADInplaceOrView below;
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["section"] = section.vec();
    ctx->saved_data["backward"] = backward;
    return rotate(q, k, cos, sin, section, backward);
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    variable_list saved = ctx->get_saved_variables();
    std::vector<int64_t> section = ctx->saved_data["section"].toIntVector();
    variable_list d = rotate(grads[0], grads[1], saved[0], saved[1], section, !ctx->saved_data["backward"].toBool());
    return {d[0], d[1], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// c = silu(a) * b
struct SwiGlu : torch::autograd::Function<SwiGlu> {
  using Fwd = at::Tensor(const at::Tensor &, const at::Tensor &);
  using Bwd = std::tuple<at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &, const at::Tensor &);

  static variable_list forward(AutogradContext *ctx, const at::Tensor &a, const at::Tensor &b) {
    at::AutoDispatchBelowADInplaceOrView below;
    static auto op = opHandle<Fwd>("tigon::swiglu_fwd");
    ctx->save_for_backward({a, b});
    return {op.call(a, b)};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    static auto op = opHandle<Bwd>("tigon::swiglu_bwd");
    variable_list saved = ctx->get_saved_variables();
    auto [da, db] = op.call(grads[0].contiguous(), saved[0], saved[1]);
    return {da, db};
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

std::tuple<at::Tensor, at::Tensor> ropeAutograd(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                                const at::Tensor &sin, bool backward) {
  variable_list out = Rope::apply(q, k, cos, sin, backward);
  return {out[0], out[1]};
}

std::tuple<at::Tensor, at::Tensor> mropeAutograd(const at::Tensor &q, const at::Tensor &k, const at::Tensor &cos,
                                                 const at::Tensor &sin, at::IntArrayRef section, bool backward) {
  variable_list out = MRope::apply(q, k, cos, sin, section, backward);
  return {out[0], out[1]};
}

at::Tensor swigluAutograd(const at::Tensor &a, const at::Tensor &b) { return SwiGlu::apply(a, b)[0]; }

}  // namespace

}  // namespace tigon::ops

TORCH_LIBRARY_IMPL(tigon, Autograd, m) {
  m.impl("rms_norm_fwd", &tigon::ops::rmsNormAutograd);
  m.impl("layer_norm_fwd", &tigon::ops::layerNormAutograd);
  m.impl("rope", &tigon::ops::ropeAutograd);
  m.impl("mrope", &tigon::ops::mropeAutograd);
  m.impl("swiglu_fwd", &tigon::ops::swigluAutograd);
}
