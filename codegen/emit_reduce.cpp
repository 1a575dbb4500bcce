// Reductions and layout conversions: in-thread folds, butterfly shuffles over the lane bits of
// the reduced grid axis, one shared-memory round over its warp bits, and the shared scratch
// buffer that rank-1 G0 <-> G1 conversions also go through.
#include <fmt/format.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include <limits>

#include "codegen/kernel_emitter.h"
#include "codegen/scalar_ops.h"
#include "dsl/error.h"

namespace tigon::codegen {

using ir::ReduceOp;
using llvm::Value;

namespace {

// A partial result: the value (f32 for floats, which reduce in f32) and, for argmax, the
// index of that value along the reduced axis.
struct Acc {
  Value *value = nullptr;
  Value *index = nullptr;
};

Acc combine(llvm::IRBuilder<> &b, ReduceOp op, bool isFloat, Acc x, Acc y) {
  switch (op) {
    case ReduceOp::Sum: return {isFloat ? b.CreateFAdd(x.value, y.value) : b.CreateAdd(x.value, y.value)};
    case ReduceOp::Max: return {isFloat ? b.CreateMaximum(x.value, y.value) : b.CreateBinaryIntrinsic(llvm::Intrinsic::smax, x.value, y.value)};
    case ReduceOp::Min: return {isFloat ? b.CreateMinimum(x.value, y.value) : b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, x.value, y.value)};
    case ReduceOp::Argmax: {
      // y wins when it is larger, or NaN where x is not, or equal (both NaN included) with a
      // smaller index: the first index of the maximum, NaN counting as the maximum. This
      // order is total, so the combine is commutative and every lane ends with one answer.
      Value *greater, *equal, *yNaNOnly = b.getFalse();
      if (isFloat) {
        Value *xNaN = b.CreateFCmpUNO(x.value, x.value), *yNaN = b.CreateFCmpUNO(y.value, y.value);
        greater = b.CreateFCmpOGT(y.value, x.value);
        equal = b.CreateOr(b.CreateFCmpOEQ(y.value, x.value), b.CreateAnd(xNaN, yNaN));
        yNaNOnly = b.CreateAnd(yNaN, b.CreateNot(xNaN));
      } else {
        greater = b.CreateICmpSGT(y.value, x.value);
        equal = b.CreateICmpEQ(y.value, x.value);
      }
      Value *takeY = b.CreateOr(b.CreateOr(yNaNOnly, greater), b.CreateAnd(equal, b.CreateICmpSLT(y.index, x.index)));
      return {b.CreateSelect(takeY, y.value, x.value), b.CreateSelect(takeY, y.index, x.index)};
    }
  }
  return {};
}

Acc identity(llvm::IRBuilder<> &b, ReduceOp op, llvm::Type *type) {
  bool isFloat = type->isFloatTy();
  unsigned bits = isFloat ? 32 : type->getIntegerBitWidth();
  auto floatOr = [&](double f, const llvm::APInt &i) -> Value * {
    return isFloat ? static_cast<Value *>(llvm::ConstantFP::get(type, f)) : llvm::ConstantInt::get(type, i);
  };
  double inf = std::numeric_limits<double>::infinity();
  switch (op) {
    case ReduceOp::Sum: return {floatOr(-0.0, llvm::APInt(bits, 0))};  // -0.0 + x == x for every x
    case ReduceOp::Max: return {floatOr(-inf, llvm::APInt::getSignedMinValue(bits))};
    case ReduceOp::Min: return {floatOr(inf, llvm::APInt::getSignedMaxValue(bits))};
    case ReduceOp::Argmax:
      return {floatOr(-inf, llvm::APInt::getSignedMinValue(bits)), b.getInt32(std::numeric_limits<int32_t>::max())};
  }
  return {};
}

}  // namespace

Elements KernelEmitter::emitReduce(const ir::Op &op, const Layout &result) {
  ir::ValueId x = op.operands[0];
  Layout in = plan_.operandLayouts(op, result)[0];
  const Elements &xs = get(x, in);
  ir::DType dtype = f_.type(x).dtype;
  bool isFloat = ir::isFloat(dtype);
  ReducePlan plan = planReduce(f_, geo_, op, in, result);
  const AxisView &view = axis(plan.reduced, in.extent[size_t(op.axis)]);
  llvm::Type *accType = isFloat ? b_.getFloatTy() : registerType(ctx_, dtype);

  // In-thread: fold the thread's valid elements, in slot order.
  std::vector<Acc> accs;
  for (size_t k = 0; k < plan.nKept; ++k) {
    Acc acc = identity(b_, op.rop, accType);
    for (size_t r = 0; r < plan.nRed; ++r) {
      Value *x = xs[plan.element(k, r)];
      Acc e{isFloat ? widen(b_, dtype, x) : x, view.index[r]};
      Acc c = combine(b_, op.rop, isFloat, acc, e);
      if (Value *valid = view.valid[r])
        c = {b_.CreateSelect(valid, c.value, acc.value), c.index ? b_.CreateSelect(valid, c.index, acc.index) : nullptr};
      acc = c;
    }
    accs.push_back(acc);
  }

  // Across threads: shuffles, then one round through shared memory.
  for (int mask : plan.laneMasks)
    for (Acc &acc : accs) {
      Acc other{shuffleXor(acc.value, mask), acc.index ? shuffleXor(acc.index, mask) : nullptr};
      acc = combine(b_, op.rop, isFloat, acc, other);
    }
  if (plan.warpParts > 1) {
    Value *part = plan.partIsLane ? lc_ : g_, *keptCoord = plan.partIsLane ? g_ : lc_;
    Value *divisor = prologue_.getInt32(uint32_t(plan.partDivisor));
    Value *warpCoord = prologue_.CreateUDiv(part, divisor);
    Value *writer = prologue_.CreateICmpEQ(prologue_.CreateURem(part, divisor), prologue_.getInt32(0));
    uint64_t accBytes = accType->getPrimitiveSizeInBits() / 8;
    int64_t valueBytes = plan.entries() * int64_t(accBytes);
    beginScratchWrite(valueBytes + (op.rop == ReduceOp::Argmax ? plan.entries() * 4 : 0));
    Value *rowBase = b_.CreateMul(keptCoord, b_.getInt32(uint32_t(plan.warpParts)));
    auto entry = [&](size_t k, Value *w) {
      return b_.CreateAdd(b_.CreateAdd(rowBase, b_.getInt32(uint32_t(k * size_t(plan.keptCount * plan.warpParts)))), w);
    };
    std::vector<Guarded> writes;
    for (size_t k = 0; k < plan.nKept; ++k)
      writes.push_back({writer, [&, k] {
                          Value *at = entry(k, warpCoord);
                          b_.CreateAlignedStore(accs[k].value, scratchAddress(at, accType, 0), llvm::Align(accBytes));
                          if (accs[k].index)
                            b_.CreateAlignedStore(accs[k].index, scratchAddress(at, b_.getInt32Ty(), valueBytes), llvm::Align(4));
                          return Elements{};
                        }, {}});
    emitGuarded(writes);
    barrier();
    for (size_t k = 0; k < plan.nKept; ++k) {
      Acc acc;
      for (int w = 0; w < plan.warpParts; ++w) {
        Value *at = entry(k, b_.getInt32(uint32_t(w)));
        Acc part{b_.CreateAlignedLoad(accType, scratchAddress(at, accType, 0), llvm::Align(accBytes)),
                 accs[k].index ? b_.CreateAlignedLoad(b_.getInt32Ty(), scratchAddress(at, b_.getInt32Ty(), valueBytes), llvm::Align(4))
                               : nullptr};
        acc = w == 0 ? part : combine(b_, op.rop, isFloat, acc, part);
      }
      accs[k] = acc;
    }
    scratchUse_.markInUse();
  }

  Elements out;
  for (const Acc &acc : accs)
    out.push_back(op.rop == ReduceOp::Argmax ? acc.index : isFloat ? narrow(b_, dtype, acc.value) : acc.value);
  return out;
}

// A rank-1 value from one orientation to the other: the first replica of each element writes
// it to the scratch buffer, then every thread reads the elements of its new slots.
Elements KernelEmitter::convert(ir::ValueId id, const Layout &from, const Layout &to) {
  if (from.rank() != 1 || to.rank() != 1 || from.extent != to.extent)
    throw Error(fmt::format("internal: cannot convert %{} from {} to {}", id, layoutString(from), layoutString(to)));
  ir::DType dtype = f_.type(id).dtype;
  llvm::Type *mem = memoryType(ctx_, dtype);
  int bytes = ir::dtypeBytes(dtype);
  const Elements &xs = get(id, from);
  const AxisView &src = axis(from.dist[0], from.extent[0]);
  const AxisView &dst = axis(to.dist[0], to.extent[0]);
  beginScratchWrite(from.extent[0] * bytes);
  Value *writer = firstReplica(from);
  std::vector<Guarded> writes;
  for (size_t s = 0; s < src.slots.size(); ++s)
    writes.push_back({all({writer, src.valid[s]}), [&, s] {
                        b_.CreateAlignedStore(toMemory(b_, dtype, xs[s]), scratchAddress(src.index[s], mem, 0),
                                              llvm::Align(uint64_t(bytes)));
                        return Elements{};
                      }, {}});
  emitGuarded(writes);
  barrier();
  Elements out;
  for (size_t s = 0; s < dst.slots.size(); ++s) {
    // Padding slots read element 0 instead of past the end.
    Value *at = dst.valid[s] ? b_.CreateSelect(dst.valid[s], dst.index[s], b_.getInt32(0)) : dst.index[s];
    Value *x = b_.CreateAlignedLoad(mem, scratchAddress(at, mem, 0), llvm::Align(uint64_t(bytes)));
    out.push_back(fromMemory(b_, dtype, x));
  }
  scratchUse_.markInUse();
  return out;
}

Value *KernelEmitter::shuffleXor(Value *x, int laneMask) {
  Value *full = b_.getInt32(0xffffffffu), *mask = b_.getInt32(uint32_t(laneMask)), *clamp = b_.getInt32(0x1f);
  llvm::Type *type = x->getType();
  if (type->isFloatTy())
    return b_.CreateIntrinsic(type, llvm::Intrinsic::nvvm_shfl_sync_bfly_f32, {full, x, mask, clamp});
  if (type->isIntegerTy(32))
    return b_.CreateIntrinsic(type, llvm::Intrinsic::nvvm_shfl_sync_bfly_i32, {full, x, mask, clamp});
  if (type->isIntegerTy(64)) {  // as two halves
    Value *lo = shuffleXor(b_.CreateTrunc(x, b_.getInt32Ty()), laneMask);
    Value *hi = shuffleXor(b_.CreateTrunc(b_.CreateLShr(x, 32), b_.getInt32Ty()), laneMask);
    return b_.CreateOr(b_.CreateZExt(lo, type), b_.CreateShl(b_.CreateZExt(hi, type), 32));
  }
  throw Error("internal: no shuffle for this type");
}

Value *KernelEmitter::scratchAddress(Value *index, llvm::Type *elem, int64_t baseBytes) {
  Value *base = b_.CreateConstGEP1_64(b_.getInt8Ty(), scratch_, uint64_t(baseBytes));
  return b_.CreateGEP(elem, base, index);
}

void KernelEmitter::beginScratchWrite(int64_t bytes) {
  if (scratchUse_.beginWrite(bytes)) barrier();
}

void KernelEmitter::barrier() { b_.CreateIntrinsic(llvm::Intrinsic::nvvm_barrier0, {}, {}); }

// The scratch buffer's size is known only now: replace the placeholder by the real array.
void KernelEmitter::finishScratch() {
  scratchUse_.checkLimit(f_);
  if (scratchUse_.bytes() > 0) {
    auto *type = llvm::ArrayType::get(b_.getInt8Ty(), uint64_t(scratchUse_.bytes()));
    auto *real = new llvm::GlobalVariable(m_, type, false, llvm::GlobalValue::InternalLinkage,
                                          llvm::UndefValue::get(type), "scratch", nullptr,
                                          llvm::GlobalValue::NotThreadLocal, 3);
    real->setAlignment(llvm::Align(16));
    scratch_->replaceAllUsesWith(real);
  }
  scratch_->eraseFromParent();
  scratch_ = nullptr;
}

}  // namespace tigon::codegen
