#include <fmt/format.h>

#include "dsl/error.h"
#include "runtime/builtin_kernels.h"

namespace tigon {

const std::vector<BuiltinOp> &builtinOps() {
  static const std::vector<BuiltinOp> ops = {
      {"rms_norm", "rms_norm.tile", "rms_norm_fwd", {"rms_norm_bwd"}, "N", "T",
       "RMSNorm over the last dimension (Llama casting), backward gives dx and dw"},
      {"layer_norm", "layer_norm.tile", "layer_norm_fwd", {"layer_norm_bwd"}, "N", "T",
       "LayerNorm over the last dimension (torch/HF), optional weight and bias, backward gives dx, dw, db"},
      {"rope", "rope.tile", "rope_fwd", {"rope_bwd"}, "R", "T",
       "HF rotate-half RoPE on strided (B, H, S, D) q or k, partial rotary R <= D, vision layout"},
      {"mrope", "mrope.tile", "mrope_fwd", {"mrope_bwd"}, "D", "T",
       "Qwen2-VL multimodal RoPE: per-channel t/h/w tables by mrope_section"},
      {"swiglu", "swiglu.tile", "swiglu_fwd", {"swiglu_bwd"}, "N", "T",
       "SwiGLU silu(a) * b in f32, backward recomputes silu from a"},
      {"cross_entropy", "cross_entropy.tile", "cross_entropy_fwd",
       {"cross_entropy_fwd_bwd", "cross_entropy_fwd_bwd_inplace", "cross_entropy_bwd", "cross_entropy_bwd_inplace"}, "", "T",
       "cross-entropy over a run-time vocab: ignore_index, label smoothing, z-loss, softcap; gradient fused or from lse",
       {{"CAPPED", "0"}, {"SMOOTHED", "0"}}},
  };
  return ops;
}

Bindings withCaseFlags(const BuiltinOp &op, const ast::Kernel &kernel, Bindings b) {
  for (const auto &[name, value] : op.caseFlags)
    for (const ast::GenericParam &g : kernel.generics)
      if (g.name == name) b.emplace(name, value);  // emplace: a binding already there stays
  return b;
}

const BuiltinOp &builtinOp(const std::string &name) {
  for (const BuiltinOp &op : builtinOps())
    if (op.name == name) return op;
  std::vector<std::string> names;
  for (const BuiltinOp &op : builtinOps()) names.push_back(op.name);
  throw Error(fmt::format("unknown op '{}' (ops: {})", name, fmt::join(names, ", ")));
}

}  // namespace tigon
