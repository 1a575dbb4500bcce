#include <fmt/format.h>

#include "dsl/error.h"
#include "runtime/builtin_kernels.h"

namespace tigon {

const std::vector<BuiltinOp> &builtinOps() {
  static const std::vector<BuiltinOp> ops = {
      {"rms_norm", "rms_norm.tile", "rms_norm_fwd", {"rms_norm_bwd", "rms_norm_dw_reduce"}, "N", "T",
       "RMSNorm over the last dimension (Llama casting), backward gives dx and dw"},
  };
  return ops;
}

const BuiltinOp &builtinOp(const std::string &name) {
  for (const BuiltinOp &op : builtinOps())
    if (op.name == name) return op;
  std::vector<std::string> names;
  for (const BuiltinOp &op : builtinOps()) names.push_back(op.name);
  throw Error(fmt::format("unknown op '{}' (ops: {})", name, fmt::join(names, ", ")));
}

}  // namespace tigon
