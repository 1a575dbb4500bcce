#include <algorithm>

#include <fmt/format.h>

#include "dsl/error.h"
#include "runtime/builtin_kernels.h"

namespace tigon {

const std::vector<BuiltinOp> &builtinOps() {
  static const std::vector<BuiltinOp> ops = {
      {"rms_norm", "rms_norm.tile", "rms_norm_fwd", {"rms_norm_bwd"}, {"N"}, "T",
       "RMSNorm over the last dimension (Llama casting), backward gives dx and dw"},
      {"layer_norm", "layer_norm.tile", "layer_norm_fwd", {"layer_norm_bwd"}, {"N"}, "T",
       "LayerNorm over the last dimension (torch/HF), optional weight and bias, backward gives dx, dw, db"},
      {"rope", "rope.tile", "rope_fwd", {"rope_bwd"}, {"R", "D"}, "T",
       "HF rotate-half RoPE on strided (B, H, S, D) q and k in one launch, partial rotary R <= D, vision layout",
       {{"HQ", "32"}, {"HK", "8"}}},
      {"mrope", "mrope.tile", "mrope_fwd", {"mrope_bwd"}, {"D"}, "T",
       "Qwen2-VL multimodal RoPE of q and k: per-channel t/h/w tables by mrope_section",
       {{"HQ", "28"}, {"HK", "4"}}},
      {"swiglu", "swiglu.tile", "swiglu_fwd", {"swiglu_bwd"}, {"N"}, "T",
       "SwiGLU silu(a) * b in f32, backward recomputes silu from a"},
      {"cross_entropy", "cross_entropy.tile", "cross_entropy_fwd",
       {"cross_entropy_fwd_bwd", "cross_entropy_fwd_bwd_inplace", "cross_entropy_bwd", "cross_entropy_bwd_inplace"}, {}, "T",
       "cross-entropy over a run-time vocab: ignore_index, label smoothing, z-loss, softcap; gradient fused or from lse",
       {{"CAPPED", "0"}, {"SMOOTHED", "0"}}, "W"},
  };
  return ops;
}

int64_t chunkWidth(int64_t columns, int64_t elementBytes) {
  int64_t w = std::max<int64_t>(1, 16 / elementBytes);
  while (columns % w != 0) w /= 2;
  return w;
}

Bindings withOpDefaults(const BuiltinOp &op, const ast::Kernel &kernel, Bindings b, int64_t hidden) {
  auto declares = [&](const std::string &name) {
    for (const ast::GenericParam &g : kernel.generics)
      if (g.name == name) return true;
    return false;
  };
  for (const auto &[name, value] : op.defaults)
    if (declares(name)) b.emplace(name, value);  // emplace: a binding already there stays
  ir::DType dt;
  auto dtype = b.find(op.dtypeParam);
  if (!op.chunkParam.empty() && declares(op.chunkParam) && dtype != b.end() && ir::parseDType(dtype->second, &dt))
    b.emplace(op.chunkParam, std::to_string(chunkWidth(hidden, ir::dtypeBytes(dt))));
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
