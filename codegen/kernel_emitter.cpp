#include "codegen/kernel_emitter.h"

#include <fmt/format.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include "codegen/scalar_ops.h"
#include "dsl/error.h"

namespace tigon::codegen {

using ir::OpKind;
using ir::ValueId;
using llvm::Value;

KernelEmitter::KernelEmitter(const ir::Function &f, llvm::Module &m)
    : f_(f), m_(m), ctx_(m.getContext()), plan_(f), geo_(plan_.geometry()), facts_(f, plan_.defs()),
      b_(ctx_), prologue_(ctx_), values_(geo_) {}

void KernelEmitter::emit() {
  createFunction();
  emitThreadCoordinates();
  emitBlock(f_.body);
  b_.CreateRetVoid();
  finishScratch();
}

void KernelEmitter::createFunction() {
  std::vector<llvm::Type *> types;
  std::vector<std::string> names;
  llvm::Type *i64 = b_.getInt64Ty();
  for (const ir::Param &p : f_.params) {
    if (p.kind == ir::Param::Kind::Tensor) {
      types.push_back(llvm::PointerType::get(ctx_, 1));
      names.push_back(p.name);
      for (int d = 0; d < p.rank(); ++d) types.push_back(i64), names.push_back(fmt::format("{}.size{}", p.name, d));
      for (int d = 0; d < p.rank(); ++d) types.push_back(i64), names.push_back(fmt::format("{}.stride{}", p.name, d));
    } else {
      types.push_back(registerType(ctx_, p.dtype));  // checkLowerable: f32, i32 or i64
      names.push_back(p.name);
    }
  }
  auto *type = llvm::FunctionType::get(b_.getVoidTy(), types, false);
  fn_ = llvm::Function::Create(type, llvm::Function::ExternalLinkage, f_.name, m_);
  fn_->setCallingConv(llvm::CallingConv::PTX_Kernel);
  fn_->addFnAttr(llvm::Attribute::NoUnwind);
  for (size_t i = 0; i < names.size(); ++i) fn_->getArg(unsigned(i))->setName(names[i]);

  auto annotate = [&](const char *key, int value) {
    llvm::Metadata *md[] = {llvm::ValueAsMetadata::get(fn_), llvm::MDString::get(ctx_, key),
                            llvm::ValueAsMetadata::get(b_.getInt32(uint32_t(value)))};
    m_.getOrInsertNamedMetadata("nvvm.annotations")->addOperand(llvm::MDNode::get(ctx_, md));
  };
  annotate("kernel", 1);
  annotate("maxntidx", geo_.threads);

  unsigned arg = 0;
  for (const ir::Param &p : f_.params) {
    TensorArgs t;
    Value *scalar = nullptr;
    if (p.kind == ir::Param::Kind::Tensor) {
      t.base = fn_->getArg(arg++);
      for (int d = 0; d < p.rank(); ++d, ++arg)
        t.sizes.push_back(p.staticDims[size_t(d)] >= 0 ? b_.getInt64(uint64_t(p.staticDims[size_t(d)]))
                                                        : static_cast<Value *>(fn_->getArg(arg)));
      for (int d = 0; d < p.rank(); ++d, ++arg)  // the last stride is 1 by contract
        t.strides.push_back(d == p.rank() - 1 ? b_.getInt64(1) : static_cast<Value *>(fn_->getArg(arg)));
    } else {
      scalar = fn_->getArg(arg++);
    }
    tensors_.push_back(t);
    scalarArgs_.push_back(scalar);
  }

  scratch_ = new llvm::GlobalVariable(m_, llvm::ArrayType::get(b_.getInt8Ty(), 0), false,
                                      llvm::GlobalValue::InternalLinkage, nullptr, "scratch.placeholder",
                                      nullptr, llvm::GlobalValue::NotThreadLocal, 3);
  auto *entry = llvm::BasicBlock::Create(ctx_, "entry", fn_);
  auto *body = llvm::BasicBlock::Create(ctx_, "body", fn_);
  prologue_.SetInsertPoint(llvm::BranchInst::Create(body, entry));
  b_.SetInsertPoint(body);
}

void KernelEmitter::emitThreadCoordinates() {
  Value *t = prologue_.CreateIntrinsic(b_.getInt32Ty(), llvm::Intrinsic::nvvm_read_ptx_sreg_tid_x, {}, nullptr, "t");
  int lcBits = 0;
  while ((1 << lcBits) < geo_.tc) ++lcBits;
  lc_ = prologue_.CreateAnd(t, uint64_t(geo_.tc - 1), "lc");
  g_ = prologue_.CreateLShr(t, uint64_t(lcBits), "g");
  lcTimesV_ = prologue_.CreateMul(lc_, prologue_.getInt32(uint32_t(geo_.v)), "lcv");
}

void KernelEmitter::emitBlock(const ir::Block &block) {
  for (const ir::Op &op : block.ops) emitOp(op);
}

void KernelEmitter::emitOp(const ir::Op &op) {
  if (op.kind == OpKind::For) return emitFor(op);
  if (op.kind == OpKind::Yield) return;  // a loop's yield is read by emitFor
  try {
    if (op.kind == OpKind::Store || op.kind == OpKind::AtomicAdd) return emitStore(op);
    if (op.results.size() != 1) fail(op, "expected one result");
    ValueId r = op.results[0];
    if (plan_.recomputed(r)) {
      for (const Layout &l : plan_.layouts(r)) define(r, l, compute(op, l));
    } else {
      define(r, plan_.home(r), compute(op, plan_.home(r)));
      defineOtherLayouts(r);
    }
  } catch (const Error &e) {
    rethrowAt(f_, op, e);
  }
}

void KernelEmitter::fail(const ir::Op &op, const std::string &msg) const { failAt(f_, op, msg); }

// for (iv = lo; iv < hi; iv += step): a header with phis for iv and every element of every
// carried value (each in its home layout), the body, and the exit where the results are the
// header's phis.
void KernelEmitter::emitFor(const ir::Op &op) {
  const ir::Block &body = op.regions[0];
  const ir::Op &yield = body.ops.back();
  Value *lo = get(op.operands[0], {})[0], *hi = get(op.operands[1], {})[0], *step = get(op.operands[2], {})[0];
  size_t carried = op.results.size();
  std::vector<Layout> layouts;
  for (size_t i = 0; i < carried; ++i) layouts.push_back(plan_.home(body.args[i + 1]));

  llvm::BasicBlock *pre = b_.GetInsertBlock();
  auto *header = llvm::BasicBlock::Create(ctx_, "loop", fn_);
  auto *bodyBB = llvm::BasicBlock::Create(ctx_, "loop.body", fn_);
  auto *exit = llvm::BasicBlock::Create(ctx_, "loop.exit", fn_);
  b_.CreateBr(header);
  b_.SetInsertPoint(header);
  llvm::PHINode *iv = b_.CreatePHI(b_.getInt32Ty(), 2, "iv");
  iv->addIncoming(lo, pre);
  std::vector<std::vector<llvm::PHINode *>> phis(carried);
  for (size_t i = 0; i < carried; ++i)
    for (Value *init : get(op.operands[3 + i], layouts[i])) {
      phis[i].push_back(b_.CreatePHI(init->getType(), 2));
      phis[i].back()->addIncoming(init, pre);
    }
  b_.CreateCondBr(b_.CreateICmpSLT(iv, hi), bodyBB, exit);

  auto phiElements = [&](size_t i) { return Elements(phis[i].begin(), phis[i].end()); };
  b_.SetInsertPoint(bodyBB);
  scratchUse_.markInUse();  // the previous iteration may still read the scratch buffer
  define(body.args[0], {}, {iv});
  for (size_t i = 0; i < carried; ++i) {
    define(body.args[i + 1], layouts[i], phiElements(i));
    defineOtherLayouts(body.args[i + 1]);
  }
  emitBlock(body);
  std::vector<Elements> next;
  for (size_t i = 0; i < carried; ++i) next.push_back(get(yield.operands[i], layouts[i]));
  llvm::BasicBlock *latch = b_.GetInsertBlock();
  iv->addIncoming(b_.CreateAdd(iv, step, "iv.next"), latch);
  for (size_t i = 0; i < carried; ++i)
    for (size_t e = 0; e < next[i].size(); ++e) phis[i][e]->addIncoming(next[i][e], latch);
  b_.CreateBr(header);

  b_.SetInsertPoint(exit);
  scratchUse_.markInUse();
  for (size_t i = 0; i < carried; ++i) {
    if (plan_.home(op.results[i]) != layouts[i]) fail(op, "internal: a result's layout differs from its carried value's");
    define(op.results[i], layouts[i], phiElements(i));
    defineOtherLayouts(op.results[i]);
  }
}

Elements KernelEmitter::compute(const ir::Op &op, const Layout &layout) {
  ir::DType dtype = f_.type(op.results[0]).dtype;
  std::vector<Layout> in = plan_.operandLayouts(op, layout);
  auto operand = [&](size_t i) -> const Elements & { return get(op.operands[i], in[i]); };
  auto elementwise = [&](const std::function<Value *(size_t)> &fn) {
    Elements out;
    for (size_t e = 0; e < operand(0).size(); ++e) out.push_back(fn(e));
    return out;
  };
  switch (op.kind) {
    case OpKind::Const: return {emitConst(b_, dtype, op.fval, op.ival)};
    case OpKind::ScalarArg: {
      const ir::Param &p = f_.params.at(size_t(op.param));
      if (p.kind != ir::Param::Kind::Scalar) fail(op, "parameter '" + p.name + "' is not a scalar");
      return {emitCast(b_, p.dtype, dtype, scalarArgs_[size_t(op.param)])};
    }
    case OpKind::TensorDim: {
      const ir::Param &p = f_.params.at(size_t(op.param));
      if (p.kind != ir::Param::Kind::Tensor || op.axis < 0 || op.axis >= p.rank()) fail(op, "bad tensor dimension");
      return {b_.CreateTrunc(tensors_[size_t(op.param)].sizes[size_t(op.axis)], b_.getInt32Ty())};
    }
    case OpKind::ProgramId: case OpKind::NumPrograms: {
      static const llvm::Intrinsic::ID ids[2][3] = {
          {llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_x, llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_y,
           llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_z},
          {llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_x, llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_y,
           llvm::Intrinsic::nvvm_read_ptx_sreg_nctaid_z}};
      if (op.axis < 0 || op.axis > 2) fail(op, "axis must be 0, 1 or 2");
      return {b_.CreateIntrinsic(b_.getInt32Ty(), ids[op.kind == OpKind::NumPrograms][op.axis], {})};
    }
    case OpKind::Iota: {
      const AxisView &a = axis(layout.dist[0], layout.extent[0]);
      return a.index;
    }
    case OpKind::Broadcast: return broadcast(op, layout);
    case OpKind::ExpandDims: return operand(0);  // the new axis has extent 1: one slot
    case OpKind::Unary:
      return elementwise([&](size_t e) { return emitUnary(b_, op.uop, dtype, operand(0)[e]); });
    case OpKind::Binary: {
      ir::DType t = f_.type(op.operands[0]).dtype;
      return elementwise([&](size_t e) { return emitBinary(b_, op.bop, t, operand(0)[e], operand(1)[e]); });
    }
    case OpKind::Select:
      return elementwise([&](size_t e) { return b_.CreateSelect(operand(0)[e], operand(1)[e], operand(2)[e]); });
    case OpKind::Fma:
      return elementwise([&](size_t e) { return emitFma(b_, dtype, operand(0)[e], operand(1)[e], operand(2)[e]); });
    case OpKind::Cast: {
      ir::DType from = f_.type(op.operands[0]).dtype;
      return elementwise([&](size_t e) { return emitCast(b_, from, dtype, operand(0)[e]); });
    }
    case OpKind::Reduce: return emitReduce(op, layout);
    case OpKind::Load: return emitLoad(op, layout);
    default: fail(op, "not an op with one result");
  }
}

Elements KernelEmitter::broadcast(const ir::Op &op, const Layout &layout) {
  Layout in = plan_.operandLayouts(op, layout)[0];
  const Elements &x = get(op.operands[0], in);
  Elements out;
  for (size_t src : broadcastSources(geo_, in, layout)) out.push_back(x[src]);
  return out;
}

void KernelEmitter::defineOtherLayouts(ValueId id) {
  const std::vector<Layout> &layouts = plan_.layouts(id);
  for (size_t i = 1; i < layouts.size(); ++i) define(id, layouts[i], convert(id, layouts[0], layouts[i]));
}

const KernelEmitter::AxisView &KernelEmitter::axis(Dist d, int64_t extent) {
  auto [it, fresh] = axes_.try_emplace({d, extent});
  AxisView &view = it->second;
  if (!fresh) return view;
  view.slots = axisSlots(geo_, d, extent);
  for (const Slot &s : view.slots) {
    Value *index = prologue_.getInt32(uint32_t(s.offset));
    if (d == Dist::G0) index = prologue_.CreateAdd(g_, index);
    if (d == Dist::G1) index = prologue_.CreateAdd(lcTimesV_, index);
    view.index.push_back(index);
    view.valid.push_back(s.alwaysValid ? nullptr : prologue_.CreateICmpSLT(index, prologue_.getInt32(uint32_t(extent))));
  }
  return view;
}

Value *KernelEmitter::all(std::initializer_list<Value *> conds) {
  Value *out = nullptr;
  for (Value *c : conds) {
    if (!c) continue;
    if (auto *k = llvm::dyn_cast<llvm::ConstantInt>(c)) {
      if (k->isZero()) return c;
      continue;
    }
    out = out ? b_.CreateAnd(out, c) : c;
  }
  return out;
}

Value *KernelEmitter::firstReplica(const Layout &l) {
  ReplicaGuard guard = codegen::firstReplica(geo_, l);
  Value *rowZero = guard.rowZero ? prologue_.CreateICmpEQ(g_, prologue_.getInt32(0)) : nullptr;
  Value *laneZero = guard.laneZero ? prologue_.CreateICmpEQ(lc_, prologue_.getInt32(0)) : nullptr;
  if (rowZero && laneZero) return prologue_.CreateAnd(rowZero, laneZero);
  return rowZero ? rowZero : laneZero;
}

// Runs of items with the same condition share one branch.
Elements KernelEmitter::emitGuarded(const std::vector<Guarded> &items) {
  Elements out;
  for (size_t i = 0; i < items.size();) {
    size_t end = i;
    while (end < items.size() && items[end].cond == items[i].cond) ++end;
    auto run = [&](bool then) {
      Elements r;
      for (size_t k = i; k < end; ++k) {
        const auto &fn = then ? items[k].then : items[k].otherwise;
        if (!fn) continue;
        Elements e = fn();
        r.insert(r.end(), e.begin(), e.end());
      }
      return r;
    };
    Value *cond = items[i].cond;
    auto *constant = llvm::dyn_cast_or_null<llvm::ConstantInt>(cond);
    if (!cond || constant) {
      Elements r = run(!constant || constant->isOne());
      out.insert(out.end(), r.begin(), r.end());
    } else {
      auto *thenBB = llvm::BasicBlock::Create(ctx_, "then", fn_);
      auto *elseBB = llvm::BasicBlock::Create(ctx_, "else", fn_);
      auto *merge = llvm::BasicBlock::Create(ctx_, "merge", fn_);
      b_.CreateCondBr(cond, thenBB, elseBB);
      b_.SetInsertPoint(thenBB);
      Elements t = run(true);
      llvm::BasicBlock *thenEnd = b_.GetInsertBlock();
      b_.CreateBr(merge);
      b_.SetInsertPoint(elseBB);
      Elements e = run(false);
      llvm::BasicBlock *elseEnd = b_.GetInsertBlock();
      b_.CreateBr(merge);
      b_.SetInsertPoint(merge);
      if (t.size() != e.size()) throw Error("internal: guarded code yields unequal value counts");
      for (size_t k = 0; k < t.size(); ++k) {
        llvm::PHINode *phi = b_.CreatePHI(t[k]->getType(), 2);
        phi->addIncoming(t[k], thenEnd);
        phi->addIncoming(e[k], elseEnd);
        out.push_back(phi);
      }
    }
    i = end;
  }
  return out;
}

}  // namespace tigon::codegen
