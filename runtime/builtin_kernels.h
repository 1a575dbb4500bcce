// The built-in ops: their .tile sources (embedded at build time from kernels_src/) and which
// kernels and parameters make up each op.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "dsl/ast.h"
#include "dsl/lower.h"

namespace tigon {

// file name ("rms_norm.tile") -> source text
const std::map<std::string, std::string> &builtinKernelSources();

struct BuiltinOp {
  std::string name;            // "rms_norm"
  std::string file;            // "rms_norm.tile"
  std::string forward;         // kernel names
  std::vector<std::string> backward;
  std::string hiddenParam;     // the const parameter that takes the hidden size ("" if none:
                               // every size is a run-time dim, as the vocab of cross_entropy)
  std::string dtypeParam;      // the dtype generic
  std::string summary;
  Bindings caseFlags = {};     // const flags that pick a case, at the common one (cross_entropy:
                               // CAPPED=0 SMOOTHED=0); bind them where a kernel declares them
};

// b plus op.caseFlags that `kernel` declares and b does not bind.
Bindings withCaseFlags(const BuiltinOp &op, const ast::Kernel &kernel, Bindings b);

const std::vector<BuiltinOp> &builtinOps();
// Throws tigon::Error listing the ops when `name` is not one.
const BuiltinOp &builtinOp(const std::string &name);

}  // namespace tigon
