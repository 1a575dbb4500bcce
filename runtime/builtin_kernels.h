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
  std::vector<std::string> hiddenParams;  // the const parameters that take the hidden size (none:
                                          // every size is a run-time dim, as the vocab of
                                          // cross_entropy; rope: R and D, a full rotary)
  std::string dtypeParam;      // the dtype generic
  std::string summary;
  Bindings defaults = {};      // consts the op binds from its inputs, at a common value: flags
                               // that pick a case (cross_entropy: CAPPED=0 SMOOTHED=0) and head
                               // counts (rope: HQ=32 HK=8); bound where a kernel declares them
  std::string chunkParam = {}; // a const that takes chunkWidth of the hidden size (cross_entropy's
                               // W: its forward kernels see a row as chunks of W)
};

// The widest chunk of a row of `columns` elements of `elementBytes` bytes: the elements in 16
// bytes, halved until it divides the row (1 for an odd count).
int64_t chunkWidth(int64_t columns, int64_t elementBytes);

// b plus what `kernel` declares and b does not bind: op.defaults, and op.chunkParam as the
// chunk width of rows of `hidden` elements of the dtype b binds to op.dtypeParam.
Bindings withOpDefaults(const BuiltinOp &op, const ast::Kernel &kernel, Bindings b, int64_t hidden);

const std::vector<BuiltinOp> &builtinOps();
// Throws tigon::Error listing the ops when `name` is not one.
const BuiltinOp &builtinOp(const std::string &name);

}  // namespace tigon
