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
  unsigned bits = type->getIntegerBitWidth();
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
  if (!isFloat && !ir::isInt(dtype)) fail(op, fmt::format("cannot reduce {}", ir::dtypeName(dtype)));
  int a = op.axis;
  if (a < 0 || a >= in.rank()) fail(op, "bad axis");
  Layout kept = in;
  kept.dist.erase(kept.dist.begin() + a);
  kept.extent.erase(kept.extent.begin() + a);
  if (kept != result) fail(op, "internal: the result layout is not the kept axis's");

  Dist reduced = in.dist[size_t(a)];
  const AxisView &view = axis(reduced, in.extent[size_t(a)]);
  std::vector<size_t> counts = slotCounts(in);
  size_t nRed = counts[size_t(a)], nKept = in.rank() == 2 ? counts[size_t(1 - a)] : 1;
  llvm::Type *accType = isFloat ? b_.getFloatTy() : registerType(ctx_, dtype);

  // In-thread: fold the thread's valid elements, in slot order.
  std::vector<Acc> accs;
  for (size_t k = 0; k < nKept; ++k) {
    Acc acc = identity(b_, op.rop, accType);
    for (size_t r = 0; r < nRed; ++r) {
      size_t flat = in.rank() == 1 ? r : a == 1 ? k * nRed + r : r * nKept + k;
      Acc e{isFloat ? widen(b_, dtype, xs[flat]) : xs[flat], view.index[r]};
      Acc c = combine(b_, op.rop, isFloat, acc, e);
      if (Value *valid = view.valid[r])
        c = {b_.CreateSelect(valid, c.value, acc.value), c.index ? b_.CreateSelect(valid, c.index, acc.index) : nullptr};
      acc = c;
    }
    accs.push_back(acc);
  }

  // Across threads: the reduced axis's thread bits are the bits of lc (G1) or of g (G0).
  // Those inside a warp go by butterfly shuffles; those above, through shared memory.
  int tc = geo_.tc;
  std::vector<int> laneMasks;
  int warpParts = 1;                       // partials per kept position after the shuffles
  Value *keptCoord = nullptr, *warpCoord = nullptr, *writer = nullptr;
  int keptCount = 0;
  if (reduced == Dist::G1) {
    for (int m = 1; m < std::min(tc, 32); m *= 2) laneMasks.push_back(m);
    warpParts = std::max(1, tc / 32);
    keptCount = geo_.tr;
    keptCoord = g_;
    warpCoord = prologue_.CreateLShr(lc_, 5);
    writer = prologue_.CreateICmpEQ(prologue_.CreateAnd(lc_, 31), prologue_.getInt32(0));
  } else if (reduced == Dist::G0) {
    for (int m = tc; m < 32; m *= 2) laneMasks.push_back(m);
    int rowsPerWarp = std::max(1, 32 / tc);
    warpParts = geo_.tr / rowsPerWarp;
    keptCount = tc;
    keptCoord = lc_;
    warpCoord = prologue_.CreateUDiv(g_, prologue_.getInt32(uint32_t(rowsPerWarp)));
    writer = prologue_.CreateICmpEQ(prologue_.CreateURem(g_, prologue_.getInt32(uint32_t(rowsPerWarp))), prologue_.getInt32(0));
  }
  for (int mask : laneMasks)
    for (Acc &acc : accs) {
      Acc other{shuffleXor(acc.value, mask), acc.index ? shuffleXor(acc.index, mask) : nullptr};
      acc = combine(b_, op.rop, isFloat, acc, other);
    }
  if (warpParts > 1) {
    // Entry (k * keptCount + keptCoord) * warpParts + w holds the partial of warp part w.
    int64_t entries = int64_t(nKept) * keptCount * warpParts;
    uint64_t accBytes = accType->getPrimitiveSizeInBits() / 8;
    int64_t valueBytes = entries * int64_t(accBytes);
    beginScratchWrite(valueBytes + (op.rop == ReduceOp::Argmax ? entries * 4 : 0));
    Value *rowBase = b_.CreateMul(keptCoord, b_.getInt32(uint32_t(warpParts)));
    auto entry = [&](size_t k, Value *w) {
      return b_.CreateAdd(b_.CreateAdd(rowBase, b_.getInt32(uint32_t(k * size_t(keptCount * warpParts)))), w);
    };
    std::vector<Guarded> writes;
    for (size_t k = 0; k < nKept; ++k)
      writes.push_back({writer, [&, k] {
                          Value *at = entry(k, warpCoord);
                          b_.CreateAlignedStore(accs[k].value, scratchAddress(at, accType, 0), llvm::Align(accBytes));
                          if (accs[k].index)
                            b_.CreateAlignedStore(accs[k].index, scratchAddress(at, b_.getInt32Ty(), valueBytes), llvm::Align(4));
                          return Elements{};
                        }, {}});
    emitGuarded(writes);
    barrier();
    for (size_t k = 0; k < nKept; ++k) {
      Acc acc;
      for (int w = 0; w < warpParts; ++w) {
        Value *at = entry(k, b_.getInt32(uint32_t(w)));
        Acc part{b_.CreateAlignedLoad(accType, scratchAddress(at, accType, 0), llvm::Align(accBytes)),
                 accs[k].index ? b_.CreateAlignedLoad(b_.getInt32Ty(), scratchAddress(at, b_.getInt32Ty(), valueBytes), llvm::Align(4))
                               : nullptr};
        acc = w == 0 ? part : combine(b_, op.rop, isFloat, acc, part);
      }
      accs[k] = acc;
    }
    scratchDirty_ = true;
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
  scratchDirty_ = true;
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
  if (scratchDirty_) barrier();
  scratchBytes_ = std::max(scratchBytes_, bytes);
}

void KernelEmitter::barrier() { b_.CreateIntrinsic(llvm::Intrinsic::nvvm_barrier0, {}, {}); }

// The scratch buffer's size is known only now: replace the placeholder by the real array.
void KernelEmitter::finishScratch() {
  if (scratchBytes_ > kMaxSharedBytes)
    throw Error(fmt::format(
        "kernel {}: needs {} bytes of shared memory for its reductions and layout conversions (at most {}); "
        "use a smaller tile or fewer rows per program",
        describeKernel(f_), scratchBytes_, kMaxSharedBytes));
  if (scratchBytes_ > 0) {
    auto *type = llvm::ArrayType::get(b_.getInt8Ty(), uint64_t(scratchBytes_));
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
