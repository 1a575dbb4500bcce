// Autograd in C++ (the Autograd dispatch key) of the ops called once per layer or step, whose
// forward+backward at small and medium sizes is host time: the norms (tigon::rms_norm_fwd,
// tigon::layer_norm_fwd), the rotary embeddings (tigon::rope, tigon::mrope), SwiGLU
// (tigon::swiglu_fwd) and the losses (tigon::cross_entropy_fwd,
// tigon::fused_linear_cross_entropy_fwd). A Python autograd (torch.library.register_autograd)
// cost about as much again as the ops themselves.
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

// ---- the losses -------------------------------------------------------------------------
// With reduction "mean" or "sum" and a gradient wanted, the forward computes the gradients
// (saved, and marked non-differentiable outputs); the backward multiplies them by the
// upstream gradient g in place (tigon::scale_unless_one_: no pass at all when g is 1, no host
// sync) and hands them out: no copy, so they serve one backward only, and a second one
// through the same graph (retain_graph=True) raises. Traced by torch.compile (fake or
// functional tensors) it is `grad * g`, out of place. A forward run with check_targets false
// left its bad-target check (a host sync) to the backward, after the backward's launch.

// Whether g is a tensor of a tracer (FakeTensor, FunctionalTensor), not real memory.
bool traced(const at::Tensor &g) {
  return g.key_set().has_any(c10::DispatchKeySet({c10::DispatchKey::Python, c10::DispatchKey::Functionalize}));
}

void saveDeferredCheck(AutogradContext *ctx, bool checked, const at::Tensor &error, int64_t classes, int64_t ignoreIndex) {
  if (checked) return;
  ctx->saved_data["error"] = error;
  ctx->saved_data["classes"] = classes;
  ctx->saved_data["ignore_index"] = ignoreIndex;
}

void checkDeferredTargets(AutogradContext *ctx) {
  if (!ctx->saved_data.count("error")) return;
  static auto op = opHandle<void(const at::Tensor &, int64_t, int64_t)>("tigon::raise_on_bad_target");
  op.call(ctx->saved_data["error"].toTensor(), ctx->saved_data["classes"].toInt(), ctx->saved_data["ignore_index"].toInt());
}

// The first `count` saved tensors (the gradients the forward computed) times g (0-dim).
variable_list fusedGrads(AutogradContext *ctx, const char *op, const at::Tensor &g, size_t count) {
  bool tracing = traced(g);
  if (!tracing) {  // checked before the saved tensors are unpacked (the first backward bumped their version)
    TORCH_CHECK(!ctx->saved_data.count("grads_used"), "tigon.", op,
                ": a second backward through the same loss (retain_graph=True) is not supported with "
                "reduction=\"mean\" or \"sum\": the forward computed the gradient, and the first backward scaled it in "
                "place by its upstream gradient and handed it out, so it cannot serve again (it would come out scaled "
                "twice, and alias the first result). Use reduction=\"none\" and reduce the rows yourself (its backward "
                "recomputes the gradient every time), or call the loss again before each backward.");
    ctx->saved_data["grads_used"] = true;
  }
  variable_list saved = ctx->get_saved_variables();
  variable_list grads(saved.begin(), saved.begin() + long(count));
  if (tracing) {
    for (at::Tensor &t : grads) t = t.mul(g);
    return grads;
  }
  static auto scale = opHandle<void(at::TensorList, const at::Tensor &)>("tigon::scale_unless_one_");
  scale.call(grads, g);
  return grads;
}

struct CrossEntropy : torch::autograd::Function<CrossEntropy> {
  using Fwd = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(const at::Tensor &, const at::Tensor &, int64_t,
                                                                         double, double, double, bool, bool,
                                                                         c10::string_view, bool);
  using Bwd = at::Tensor(const at::Tensor &, const at::Tensor &, const at::Tensor &, const at::Tensor &, int64_t, double,
                         double, double, bool);

  static variable_list forward(AutogradContext *ctx, const at::Tensor &logits, const at::Tensor &target,
                               int64_t ignore_index, double label_smoothing, double lse_square_scale, double softcap,
                               bool with_grad, bool grad_in_logits, c10::string_view reduction, bool check_targets) {
    at::AutoDispatchBelowADInplaceOrView below;
    static auto op = opHandle<Fwd>("tigon::cross_entropy_fwd");
    auto [loss, lse, grad, error] = op.call(logits, target, ignore_index, label_smoothing, lse_square_scale, softcap,
                                            with_grad, grad_in_logits, reduction, check_targets);
    ctx->mark_non_differentiable({lse, grad, error});
    ctx->set_materialize_grads(false);
    saveDeferredCheck(ctx, check_targets, error, logits.size(-1), ignore_index);
    ctx->saved_data["fused"] = with_grad;
    ctx->saved_data["options"] = std::vector<double>{double(ignore_index), label_smoothing, lse_square_scale, softcap};
    if (with_grad)  // the gradient of the reduced loss, from the forward
      ctx->save_for_backward({grad});
    else
      ctx->save_for_backward({logits, target, lse});
    return {loss, lse, grad, error};
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    variable_list none(10);
    if (!grads[0].defined()) {
      checkDeferredTargets(ctx);
      return none;
    }
    if (ctx->saved_data["fused"].toBool()) {
      none[0] = fusedGrads(ctx, "cross_entropy", grads[0], 1)[0];
      checkDeferredTargets(ctx);
      return none;
    }
    static auto op = opHandle<Bwd>("tigon::cross_entropy_bwd");  // reduction="none": one gradient per row
    variable_list saved = ctx->get_saved_variables();
    std::vector<double> o = ctx->saved_data["options"].toDoubleVector();
    none[0] = op.call(saved[0], saved[1], saved[2], grads[0], int64_t(o[0]), o[1], o[2], o[3], false);
    return none;
  }
};

struct FusedLinearCrossEntropy : torch::autograd::Function<FusedLinearCrossEntropy> {
  using Fwd = std::vector<at::Tensor>(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                      const std::optional<at::Tensor> &, int64_t, double, double, double, bool,
                                      c10::string_view, bool, int64_t, bool);
  using Bwd = std::vector<at::Tensor>(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                      const std::optional<at::Tensor> &, const at::Tensor &, const at::Tensor &, int64_t,
                                      double, double, double, bool, int64_t);

  static variable_list forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &weight,
                               const at::Tensor &target, const std::optional<at::Tensor> &bias, int64_t ignore_index,
                               double label_smoothing, double lse_square_scale, double softcap, bool with_grad,
                               c10::string_view reduction, bool accum_f32, int64_t chunk_rows, bool check_targets) {
    at::AutoDispatchBelowADInplaceOrView below;
    static auto op = opHandle<Fwd>("tigon::fused_linear_cross_entropy_fwd");
    std::vector<at::Tensor> out = op.call(x, weight, target, bias, ignore_index, label_smoothing, lse_square_scale,
                                          softcap, with_grad, reduction, accum_f32, chunk_rows, check_targets);
    ctx->mark_non_differentiable({out[1], out[2], out[3], out[4], out[5]});
    ctx->set_materialize_grads(false);
    saveDeferredCheck(ctx, check_targets, out[5], weight.size(0), ignore_index);
    ctx->saved_data["fused"] = with_grad;
    ctx->saved_data["has_bias"] = bias.has_value();
    ctx->saved_data["options"] = std::vector<double>{double(ignore_index), label_smoothing, lse_square_scale, softcap};
    ctx->saved_data["accum_f32"] = accum_f32;
    ctx->saved_data["chunk_rows"] = chunk_rows;
    if (with_grad)  // the gradients of the reduced loss, from the forward: dx, dw (and db)
      ctx->save_for_backward(bias ? variable_list{out[2], out[3], out[4]} : variable_list{out[2], out[3]});
    else
      ctx->save_for_backward({x, weight, target, orUndefined(bias), out[1]});
    return out;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    variable_list none(13);
    bool hasBias = ctx->saved_data["has_bias"].toBool();
    if (!grads[0].defined()) {
      checkDeferredTargets(ctx);
      return none;
    }
    variable_list g;
    if (ctx->saved_data["fused"].toBool()) {
      g = fusedGrads(ctx, "fused_linear_cross_entropy", grads[0], hasBias ? 3 : 2);
      checkDeferredTargets(ctx);
    } else {  // reduction="none": one gradient per row, the logits recomputed
      static auto op = opHandle<Bwd>("tigon::fused_linear_cross_entropy_bwd");
      variable_list saved = ctx->get_saved_variables();
      std::vector<double> o = ctx->saved_data["options"].toDoubleVector();
      g = op.call(saved[0], saved[1], saved[2], optionalOf(saved[3]), saved[4], grads[0], int64_t(o[0]), o[1], o[2], o[3],
                  ctx->saved_data["accum_f32"].toBool(), ctx->saved_data["chunk_rows"].toInt());
    }
    none[0] = g[0];
    none[1] = g[1];
    if (hasBias) none[3] = g[2];
    return none;
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

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> crossEntropyAutograd(
    const at::Tensor &logits, const at::Tensor &target, int64_t ignore_index, double label_smoothing,
    double lse_square_scale, double softcap, bool with_grad, bool grad_in_logits, c10::string_view reduction,
    bool check_targets) {
  variable_list out = CrossEntropy::apply(logits, target, ignore_index, label_smoothing, lse_square_scale, softcap,
                                          with_grad, grad_in_logits, reduction, check_targets);
  return {out[0], out[1], out[2], out[3]};
}

std::vector<at::Tensor> fusedLinearCrossEntropyAutograd(const at::Tensor &x, const at::Tensor &weight,
                                                        const at::Tensor &target, const std::optional<at::Tensor> &bias,
                                                        int64_t ignore_index, double label_smoothing,
                                                        double lse_square_scale, double softcap, bool with_grad,
                                                        c10::string_view reduction, bool accum_f32, int64_t chunk_rows,
                                                        bool check_targets) {
  return FusedLinearCrossEntropy::apply(x, weight, target, bias, ignore_index, label_smoothing, lse_square_scale,
                                        softcap, with_grad, reduction, accum_f32, chunk_rows, check_targets);
}

}  // namespace

}  // namespace tigon::ops

TORCH_LIBRARY_IMPL(tigon, Autograd, m) {
  m.impl("rms_norm_fwd", &tigon::ops::rmsNormAutograd);
  m.impl("layer_norm_fwd", &tigon::ops::layerNormAutograd);
  m.impl("rope", &tigon::ops::ropeAutograd);
  m.impl("mrope", &tigon::ops::mropeAutograd);
  m.impl("swiglu_fwd", &tigon::ops::swigluAutograd);
  m.impl("cross_entropy_fwd", &tigon::ops::crossEntropyAutograd);
  m.impl("fused_linear_cross_entropy_fwd", &tigon::ops::fusedLinearCrossEntropyAutograd);
}
