// What is known about integer index values at compile time, to decide whether a global
// access is contiguous and 16-byte aligned per chunk (one vector load or store per chunk).
#pragma once
#include <vector>

#include "codegen/ir_query.h"
#include "dsl/ir.h"

namespace tigon::codegen {

struct Contiguity {
  bool contiguous = false;  // the value is iota(n) + s, s a scalar (the same in every thread)
  int alignLog2 = 0;        // s is a known multiple of 2^alignLog2
  bool zeroOffset = false;  // s is known to be 0
};

class IndexFacts {
 public:
  IndexFacts(const ir::Function &f, const std::vector<ValueDef> &defs) : f_(f), defs_(defs) {}

  // For a 1-D integer value.
  Contiguity contiguity(ir::ValueId id) const;

 private:
  // log2 of the largest power of two known to divide the integer value id (modulo 2^bits, so
  // a result equal to its bit width means the value is 0). For contiguous 1-D values: of s.
  int alignLog2(ir::ValueId id) const;
  int offsetAlignLog2(ir::ValueId id) const;  // -1: not contiguous
  int uniformAlignLog2(ir::ValueId id) const;  // a 1-D broadcast of a scalar; -1 otherwise
  int bits(ir::ValueId id) const { return 8 * ir::dtypeBytes(f_.type(id).dtype); }

  const ir::Function &f_;
  const std::vector<ValueDef> &defs_;
};

}  // namespace tigon::codegen
