// Global loads, stores and atomic adds. Address: base + sum(i64(index_d) * stride_d), with the
// last stride 1. An element is accessed where it is no padding and every index is within
// [0, size_d). A contiguous, aligned last-axis index makes each whole chunk of v elements one
// or more 16-byte vector accesses; chunks that may be partly valid fall back to elements.
#include <fmt/format.h>

#include "codegen/kernel_emitter.h"
#include "codegen/scalar_ops.h"
#include "dsl/error.h"

namespace tigon::codegen {

using llvm::Value;

KernelEmitter::Access KernelEmitter::prepareAccess(const ir::Op &op, const Layout &layout,
                                                   const std::vector<Layout> &indexLayouts, bool store) {
  const ir::Param &p = f_.params.at(size_t(op.param));
  if (p.kind != ir::Param::Kind::Tensor) fail(op, "parameter '" + p.name + "' is not a tensor");
  const TensorArgs &t = tensors_[size_t(op.param)];
  Access a;
  a.plan = planAccess(f_, facts_, geo_, op, layout);
  a.dtype = p.dtype;
  a.base = t.base;
  int rank = p.rank(), k = layout.rank();
  auto wide = [&](Value *x) { return b_.CreateSExtOrTrunc(x, b_.getInt64Ty()); };
  auto term = [&](int d, Value *idx) {
    return d == rank - 1 ? wide(idx) : b_.CreateMul(wide(idx), t.strides[size_t(d)]);
  };
  auto inBounds = [&](int d, Value *idx) { return b_.CreateICmpULT(wide(idx), t.sizes[size_t(d)]); };

  // Scalar indices go into every element; the k-th 1-D index walks tile axis k.
  Value *scalarOffset = b_.getInt64(0);
  Value *scalarCond = store ? firstReplica(layout) : nullptr;
  for (int d : a.plan.scalarDims) {
    Value *idx = get(op.operands[size_t(d)], {})[0];
    scalarOffset = b_.CreateAdd(scalarOffset, term(d, idx));
    scalarCond = all({scalarCond, inBounds(d, idx)});
  }
  auto axisTerms = [&](int ax, Value *baseOffset, Value *baseCond, std::vector<Value *> &offsets,
                       std::vector<Value *> &conds) {
    const AxisView &view = axis(layout.dist[size_t(ax)], layout.extent[size_t(ax)]);
    const AccessPlan::Axis &plan = a.plan.axes[size_t(ax)];
    const Elements &index = get(op.operands[size_t(plan.dim)], indexLayouts[size_t(plan.dim)]);
    for (size_t s = 0; s < view.slots.size(); ++s) {
      offsets.push_back(baseOffset ? b_.CreateAdd(baseOffset, term(plan.dim, index[s])) : term(plan.dim, index[s]));
      conds.push_back(all({baseCond, view.valid[s], plan.boundsImplied ? nullptr : inBounds(plan.dim, index[s])}));
    }
  };
  if (k == 2) {
    axisTerms(0, scalarOffset, scalarCond, a.outerOffset, a.outerCond);
  } else {
    a.outerOffset = {scalarOffset};
    a.outerCond = {scalarCond};
  }
  if (k >= 1) {
    axisTerms(k - 1, nullptr, nullptr, a.innerOffset, a.innerCond);
  } else {
    a.innerOffset = {b_.getInt64(0)};
    a.innerCond = {nullptr};
  }
  if (!a.plan.vectorized) return a;
  const AxisView &view = axis(Dist::G1, layout.extent[size_t(k - 1)]);
  const AccessPlan::Axis &lastAxis = a.plan.axes.back();
  const Elements &index = get(op.operands[size_t(lastAxis.dim)], indexLayouts[size_t(lastAxis.dim)]);
  size_t v = size_t(geo_.v);
  for (size_t j = 0; j < a.plan.chunks; ++j) {
    Value *bounds = nullptr;
    if (!lastAxis.boundsImplied) {
      Value *first = wide(index[j * v]);
      bounds = b_.CreateAnd(b_.CreateICmpSGE(first, b_.getInt64(0)),
                            b_.CreateICmpSLE(b_.CreateAdd(first, b_.getInt64(uint64_t(v))), t.sizes[size_t(rank - 1)]));
    }
    a.chunkCond.push_back(all({view.valid[j * v + v - 1], bounds}));
  }
  return a;
}

Value *KernelEmitter::elementAddress(const Access &a, Value *offset) {
  return b_.CreateGEP(memoryType(ctx_, a.dtype), a.base, offset);
}

// A chunk is carried as 16-byte <4 x i32> vectors through the merge of its guarded branch
// and unpacked after it: with extractelement as its only users, LLVM would split the vector
// load into scalars and could sink them into the element-wise fallback path.
Elements KernelEmitter::packChunk(ir::DType dtype, const Elements &elems) {
  llvm::Type *mem = memoryType(ctx_, dtype);
  size_t perVector = size_t(16 / ir::dtypeBytes(dtype));
  Elements out;
  for (size_t k = 0; k < elems.size(); k += perVector) {
    Value *vec = llvm::PoisonValue::get(llvm::FixedVectorType::get(mem, unsigned(perVector)));
    for (size_t e = 0; e < perVector; ++e) vec = b_.CreateInsertElement(vec, toMemory(b_, dtype, elems[k + e]), uint64_t(e));
    out.push_back(b_.CreateBitCast(vec, llvm::FixedVectorType::get(b_.getInt32Ty(), 4)));
  }
  return out;
}

Elements KernelEmitter::unpackChunk(ir::DType dtype, const Elements &vectors) {
  llvm::Type *mem = memoryType(ctx_, dtype);
  unsigned perVector = unsigned(16 / ir::dtypeBytes(dtype));
  Elements out;
  for (Value *raw : vectors) {
    Value *vec = b_.CreateBitCast(raw, llvm::FixedVectorType::get(mem, perVector));
    for (unsigned e = 0; e < perVector; ++e) out.push_back(fromMemory(b_, dtype, b_.CreateExtractElement(vec, uint64_t(e))));
  }
  return out;
}

Elements KernelEmitter::emitLoad(const ir::Op &op, const Layout &layout) {
  std::vector<Layout> in = plan_.operandLayouts(op, layout);
  Access a = prepareAccess(op, layout, in, false);
  Value *other = get(op.operands.back(), {})[0];
  if (f_.type(op.operands.back()).dtype != a.dtype) fail(op, "`other` must have the tensor's dtype");
  llvm::Type *mem = memoryType(ctx_, a.dtype);
  int bytes = ir::dtypeBytes(a.dtype), v = geo_.v, perVector = 16 / bytes;
  size_t vectorsPerChunk = size_t(a.plan.vectorsPerChunk);
  auto scalarLoad = [&, mem, bytes](Value *offset) -> Elements {
    Value *x = b_.CreateAlignedLoad(mem, elementAddress(a, offset), llvm::Align(uint64_t(bytes)));
    return {fromMemory(b_, a.dtype, x)};
  };
  auto vectorLoad = [&, vectorsPerChunk, perVector](Value *offset) -> Elements {
    Elements out;
    for (size_t k = 0; k < vectorsPerChunk; ++k) {
      Value *ptr = elementAddress(a, b_.CreateAdd(offset, b_.getInt64(k * size_t(perVector))));
      out.push_back(b_.CreateAlignedLoad(llvm::FixedVectorType::get(b_.getInt32Ty(), 4), ptr, llvm::Align(16)));
    }
    return out;
  };
  auto elementItem = [&](size_t o, size_t i) {
    Value *offset = b_.CreateAdd(a.outerOffset[o], a.innerOffset[i]);
    return Guarded{all({a.outerCond[o], a.innerCond[i]}), [=, &scalarLoad] { return scalarLoad(offset); },
                   [other] { return Elements{other}; }};
  };
  std::vector<Guarded> items;
  const std::vector<AccessPlan::Step> &steps = a.plan.steps;
  for (const AccessPlan::Step &step : steps) {
    if (!step.chunk) {
      items.push_back(elementItem(step.outer, step.inner));
      continue;
    }
    Value *offset = b_.CreateAdd(a.outerOffset[step.outer], a.innerOffset[step.inner]);
    std::function<Elements()> otherwise = [this, other, v, dtype = a.dtype] {
      return packChunk(dtype, Elements(size_t(v), other));
    };
    if (a.plan.partial) {
      std::vector<Guarded> elements;
      for (size_t e = step.inner; e < step.inner + size_t(v); ++e) elements.push_back(elementItem(step.outer, e));
      otherwise = [this, elements, dtype = a.dtype] { return packChunk(dtype, emitGuarded(elements)); };
    }
    items.push_back({all({a.outerCond[step.outer], a.chunkCond[step.inner / size_t(v)]}),
                     [=, &vectorLoad] { return vectorLoad(offset); }, otherwise});
  }
  Elements raw = emitGuarded(items), out;
  for (size_t item = 0, at = 0; item < items.size(); ++item) {
    if (!steps[item].chunk) {
      out.push_back(raw[at++]);
      continue;
    }
    Elements chunk = unpackChunk(a.dtype, Elements(raw.begin() + long(at), raw.begin() + long(at + vectorsPerChunk)));
    out.insert(out.end(), chunk.begin(), chunk.end());
    at += vectorsPerChunk;
  }
  return out;
}

void KernelEmitter::emitStore(const ir::Op &op) {
  std::vector<Layout> in = plan_.operandLayouts(op);
  const Layout &layout = in.back();
  const Elements &values = get(op.operands.back(), layout);
  bool atomic = op.kind == ir::OpKind::AtomicAdd;
  Access a = prepareAccess(op, layout, in, true);
  if (f_.type(op.operands.back()).dtype != a.dtype) fail(op, "the value must have the tensor's dtype");
  if (atomic && a.dtype != ir::DType::F32 && a.dtype != ir::DType::I32)
    fail(op, fmt::format("atomic_add needs an f32 or i32 tensor, not {}", ir::dtypeName(a.dtype)));
  int bytes = ir::dtypeBytes(a.dtype), v = geo_.v, perVector = 16 / bytes;
  size_t nInner = a.innerOffset.size();

  auto scalarStore = [&, atomic, bytes](Value *offset, Value *x) -> Elements {
    Value *ptr = elementAddress(a, offset);
    if (atomic)
      b_.CreateAtomicRMW(a.dtype == ir::DType::F32 ? llvm::AtomicRMWInst::FAdd : llvm::AtomicRMWInst::Add, ptr, x,
                         llvm::Align(uint64_t(bytes)), llvm::AtomicOrdering::Monotonic);
    else
      b_.CreateAlignedStore(toMemory(b_, a.dtype, x), ptr, llvm::Align(uint64_t(bytes)));
    return {};
  };
  auto vectorStore = [&, v, perVector](Value *offset, size_t first) -> Elements {
    Elements chunk(values.begin() + long(first), values.begin() + long(first) + v);
    Elements vectors = packChunk(a.dtype, chunk);
    for (size_t k = 0; k < vectors.size(); ++k) {
      Value *ptr = elementAddress(a, b_.CreateAdd(offset, b_.getInt64(k * size_t(perVector))));
      b_.CreateAlignedStore(vectors[k], ptr, llvm::Align(16));
    }
    return {};
  };
  auto elementItem = [&](size_t o, size_t i) {
    Value *offset = b_.CreateAdd(a.outerOffset[o], a.innerOffset[i]);
    Value *x = values[o * nInner + i];
    return Guarded{all({a.outerCond[o], a.innerCond[i]}), [=, &scalarStore] { return scalarStore(offset, x); }, {}};
  };
  std::vector<Guarded> items;
  for (const AccessPlan::Step &step : a.plan.steps) {
    if (!step.chunk) {
      items.push_back(elementItem(step.outer, step.inner));
      continue;
    }
    Value *offset = b_.CreateAdd(a.outerOffset[step.outer], a.innerOffset[step.inner]);
    std::function<Elements()> otherwise;
    if (a.plan.partial) {
      std::vector<Guarded> elements;
      for (size_t e = step.inner; e < step.inner + size_t(v); ++e) elements.push_back(elementItem(step.outer, e));
      otherwise = [this, elements] { return emitGuarded(elements); };
    }
    size_t first = step.outer * nInner + step.inner;
    items.push_back({all({a.outerCond[step.outer], a.chunkCond[step.inner / size_t(v)]}),
                     [=, &vectorStore] { return vectorStore(offset, first); }, otherwise});
  }
  emitGuarded(items);
}

}  // namespace tigon::codegen
