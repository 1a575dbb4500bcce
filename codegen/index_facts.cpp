#include "codegen/index_facts.h"

#include <algorithm>

namespace tigon::codegen {

using ir::BinaryOp;
using ir::OpKind;

Contiguity IndexFacts::contiguity(ir::ValueId id) const {
  int align = offsetAlignLog2(id);
  if (align < 0) return {};
  return Contiguity{true, align, align >= bits(id)};
}

int IndexFacts::offsetAlignLog2(ir::ValueId id) const {
  const ir::Op *op = defs_.at(size_t(id)).op;
  if (!op || f_.type(id).rank() != 1 || !ir::isInt(f_.type(id).dtype)) return -1;
  switch (op->kind) {
    case OpKind::Iota: return bits(id);
    case OpKind::Broadcast:
      return f_.type(op->operands[0]) == f_.type(id) ? offsetAlignLog2(op->operands[0]) : -1;
    case OpKind::Cast: {  // widening keeps consecutive values consecutive (and 0 stays 0)
      ir::ValueId x = op->operands[0];
      if (!ir::isInt(f_.type(x).dtype) || bits(x) > bits(id)) return -1;
      int a = offsetAlignLog2(x);
      return a >= bits(x) ? bits(id) : a;
    }
    case OpKind::Binary: {
      if (op->bop != BinaryOp::Add && op->bop != BinaryOp::Sub) return -1;
      ir::ValueId a = op->operands[0], b = op->operands[1];
      int ca = offsetAlignLog2(a), ub = uniformAlignLog2(b);
      if (ca >= 0 && ub >= 0) return std::min(ca, ub);
      if (op->bop == BinaryOp::Sub) return -1;
      int cb = offsetAlignLog2(b), ua = uniformAlignLog2(a);
      return cb >= 0 && ua >= 0 ? std::min(cb, ua) : -1;
    }
    default: return -1;
  }
}

int IndexFacts::uniformAlignLog2(ir::ValueId id) const {
  const ir::Op *op = defs_.at(size_t(id)).op;
  if (!op || op->kind != OpKind::Broadcast || f_.type(op->operands[0]).rank() != 0) return -1;
  return alignLog2(op->operands[0]);
}

int IndexFacts::alignLog2(ir::ValueId id) const {
  if (!ir::isInt(f_.type(id).dtype)) return 0;
  const ValueDef &def = defs_.at(size_t(id));
  if (!def.op) {  // a loop's induction variable takes lo, lo + step, ...
    if (def.arg != 0) return 0;
    return std::min(alignLog2(def.loop->operands[0]), alignLog2(def.loop->operands[2]));
  }
  const ir::Op &op = *def.op;
  switch (op.kind) {
    case OpKind::Const: {
      int n = 0;
      for (uint64_t v = uint64_t(op.ival); (v & 1) == 0 && n < bits(id); v >>= 1) ++n;
      return n;
    }
    case OpKind::Cast: {
      ir::ValueId x = op.operands[0];
      if (!ir::isInt(f_.type(x).dtype)) return 0;
      int a = alignLog2(x);
      return a >= bits(x) ? bits(id) : std::min(a, bits(id));
    }
    case OpKind::Unary: return op.uop == ir::UnaryOp::Neg ? alignLog2(op.operands[0]) : 0;
    case OpKind::Binary:
      switch (op.bop) {
        case BinaryOp::Mul: return std::min(bits(id), alignLog2(op.operands[0]) + alignLog2(op.operands[1]));
        case BinaryOp::Add: case BinaryOp::Sub:
          return std::min(alignLog2(op.operands[0]), alignLog2(op.operands[1]));
        default: return 0;
      }
    default: return 0;
  }
}

}  // namespace tigon::codegen
