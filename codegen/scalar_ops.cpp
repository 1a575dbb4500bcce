#include "codegen/scalar_ops.h"

#include <fmt/format.h>
#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include "dsl/error.h"

namespace tigon::codegen {

using ir::BinaryOp;
using ir::DType;
using ir::UnaryOp;
using llvm::Value;

llvm::Type *registerType(llvm::LLVMContext &ctx, DType t) {
  switch (t) {
    case DType::F32: return llvm::Type::getFloatTy(ctx);
    case DType::F16: return llvm::Type::getHalfTy(ctx);
    case DType::BF16: return llvm::Type::getBFloatTy(ctx);
    case DType::I32: return llvm::Type::getInt32Ty(ctx);
    case DType::I64: return llvm::Type::getInt64Ty(ctx);
    case DType::Bool: return llvm::Type::getInt1Ty(ctx);
  }
  return nullptr;
}

llvm::Type *memoryType(llvm::LLVMContext &ctx, DType t) {
  return t == DType::Bool ? llvm::Type::getInt8Ty(ctx) : registerType(ctx, t);
}

Value *toMemory(llvm::IRBuilder<> &b, DType t, Value *x) {
  return t == DType::Bool ? b.CreateZExt(x, b.getInt8Ty()) : x;
}

Value *fromMemory(llvm::IRBuilder<> &b, DType t, Value *x) {
  return t == DType::Bool ? b.CreateICmpNE(x, b.getInt8(0)) : x;
}

Value *widen(llvm::IRBuilder<> &b, DType t, Value *x) {
  return t == DType::F32 ? x : b.CreateFPExt(x, b.getFloatTy());
}

Value *narrow(llvm::IRBuilder<> &b, DType t, Value *x) {
  return t == DType::F32 ? x : b.CreateFPTrunc(x, registerType(b.getContext(), t));
}

namespace {

[[noreturn]] void unsupported(const char *op, DType t) {
  throw Error(fmt::format("{} is not defined for {}", op, ir::dtypeName(t)));
}

// ftz: one MUFU.EX2; without it ptxas wraps each in a denormal range fix-up (three more
// instructions). Only results below 2^-126 change (they become 0).
Value *ex2(llvm::IRBuilder<> &b, Value *x) {
  return b.CreateIntrinsic(b.getFloatTy(), llvm::Intrinsic::nvvm_ex2_approx_ftz_f, {x});
}

Value *lg2(llvm::IRBuilder<> &b, Value *x) {
  return b.CreateIntrinsic(b.getFloatTy(), llvm::Intrinsic::nvvm_lg2_approx_f, {x});
}

Value *fastExp(llvm::IRBuilder<> &b, Value *x) {
  return ex2(b, b.CreateFMul(x, llvm::ConstantFP::get(b.getFloatTy(), 1.4426950408889634)));
}

// tanh.approx.f32 (sm_75+) has no LLVM 19 intrinsic.
Value *fastTanh(llvm::IRBuilder<> &b, Value *x) {
  auto *type = llvm::FunctionType::get(b.getFloatTy(), {b.getFloatTy()}, false);
  return b.CreateCall(llvm::InlineAsm::get(type, "tanh.approx.f32 $0, $1;", "=f,f", false), {x});
}

Value *floatUnary(llvm::IRBuilder<> &b, UnaryOp op, Value *x) {
  llvm::Type *f32 = b.getFloatTy();
  switch (op) {
    case UnaryOp::Exp: return fastExp(b, x);
    case UnaryOp::Exp2: return ex2(b, x);
    case UnaryOp::Log: return b.CreateFMul(lg2(b, x), llvm::ConstantFP::get(f32, 0.6931471805599453));
    case UnaryOp::Log2: return lg2(b, x);
    case UnaryOp::Sqrt: return b.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, x);
    case UnaryOp::Rsqrt: return b.CreateIntrinsic(f32, llvm::Intrinsic::nvvm_rsqrt_approx_f, {x});
    case UnaryOp::Tanh: return fastTanh(b, x);
    case UnaryOp::Sigmoid: {
      llvm::Constant *one = llvm::ConstantFP::get(f32, 1.0);
      return b.CreateFDiv(one, b.CreateFAdd(one, fastExp(b, b.CreateFNeg(x))));
    }
    default: return nullptr;
  }
}

// a / b and a % b with C semantics, but 0 where b is 0 and no overflow trap for MIN / -1.
Value *intDivRem(llvm::IRBuilder<> &b, bool rem, Value *x, Value *y) {
  llvm::Type *t = x->getType();
  Value *zero = llvm::ConstantInt::get(t, 0), *one = llvm::ConstantInt::get(t, 1);
  Value *isZero = b.CreateICmpEQ(y, zero);
  Value *isMinusOne = b.CreateICmpEQ(y, llvm::ConstantInt::get(t, -1, true));
  Value *safe = b.CreateSelect(b.CreateOr(isZero, isMinusOne), one, y);
  Value *r = rem ? b.CreateSRem(x, safe) : b.CreateSDiv(x, safe);
  r = b.CreateSelect(isMinusOne, rem ? zero : b.CreateNeg(x), r);
  return b.CreateSelect(isZero, zero, r);
}

}  // namespace

Value *emitConst(llvm::IRBuilder<> &b, DType t, double fval, int64_t ival) {
  llvm::Type *type = registerType(b.getContext(), t);
  if (ir::isFloat(t)) return llvm::ConstantFP::get(type, fval);
  if (t == DType::Bool) return b.getInt1(ival != 0);
  return llvm::ConstantInt::get(type, uint64_t(ival), true);
}

Value *emitUnary(llvm::IRBuilder<> &b, UnaryOp op, DType t, Value *x) {
  const char *name = ir::unaryOpName(op);
  switch (op) {
    case UnaryOp::Neg:
      if (ir::isFloat(t)) return b.CreateFNeg(x);
      if (ir::isInt(t)) return b.CreateNeg(x);
      unsupported(name, t);
    case UnaryOp::Not:
      if (ir::isFloat(t)) unsupported(name, t);
      return b.CreateNot(x);
    case UnaryOp::Abs:
      if (ir::isFloat(t)) return b.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x);
      if (ir::isInt(t)) return b.CreateBinaryIntrinsic(llvm::Intrinsic::abs, x, b.getFalse());
      unsupported(name, t);
    default:
      if (!ir::isFloat(t)) unsupported(name, t);
      return narrow(b, t, floatUnary(b, op, widen(b, t, x)));
  }
}

Value *emitBinary(llvm::IRBuilder<> &b, BinaryOp op, DType t, Value *x, Value *y) {
  const char *name = ir::binaryOpName(op);
  if (ir::isFloat(t)) {
    Value *fx = widen(b, t, x), *fy = widen(b, t, y);
    switch (op) {
      case BinaryOp::Add: return narrow(b, t, b.CreateFAdd(fx, fy));
      case BinaryOp::Sub: return narrow(b, t, b.CreateFSub(fx, fy));
      case BinaryOp::Mul: return narrow(b, t, b.CreateFMul(fx, fy));
      case BinaryOp::Div: return narrow(b, t, b.CreateFDiv(fx, fy));
      case BinaryOp::Min: return narrow(b, t, b.CreateMinimum(fx, fy));  // NaN-propagating
      case BinaryOp::Max: return narrow(b, t, b.CreateMaximum(fx, fy));
      case BinaryOp::Lt: return b.CreateFCmpOLT(fx, fy);
      case BinaryOp::Le: return b.CreateFCmpOLE(fx, fy);
      case BinaryOp::Gt: return b.CreateFCmpOGT(fx, fy);
      case BinaryOp::Ge: return b.CreateFCmpOGE(fx, fy);
      case BinaryOp::Eq: return b.CreateFCmpOEQ(fx, fy);
      case BinaryOp::Ne: return b.CreateFCmpUNE(fx, fy);
      case BinaryOp::Rem: case BinaryOp::And: case BinaryOp::Or: unsupported(name, t);
    }
  }
  bool isBool = t == DType::Bool;  // bools compare and order as unsigned 0 < 1
  switch (op) {
    case BinaryOp::And: return b.CreateAnd(x, y);
    case BinaryOp::Or: return b.CreateOr(x, y);
    case BinaryOp::Min: return b.CreateBinaryIntrinsic(isBool ? llvm::Intrinsic::umin : llvm::Intrinsic::smin, x, y);
    case BinaryOp::Max: return b.CreateBinaryIntrinsic(isBool ? llvm::Intrinsic::umax : llvm::Intrinsic::smax, x, y);
    case BinaryOp::Lt: return isBool ? b.CreateICmpULT(x, y) : b.CreateICmpSLT(x, y);
    case BinaryOp::Le: return isBool ? b.CreateICmpULE(x, y) : b.CreateICmpSLE(x, y);
    case BinaryOp::Gt: return isBool ? b.CreateICmpUGT(x, y) : b.CreateICmpSGT(x, y);
    case BinaryOp::Ge: return isBool ? b.CreateICmpUGE(x, y) : b.CreateICmpSGE(x, y);
    case BinaryOp::Eq: return b.CreateICmpEQ(x, y);
    case BinaryOp::Ne: return b.CreateICmpNE(x, y);
    default: break;
  }
  if (isBool) unsupported(name, t);
  switch (op) {
    case BinaryOp::Add: return b.CreateAdd(x, y);
    case BinaryOp::Sub: return b.CreateSub(x, y);
    case BinaryOp::Mul: return b.CreateMul(x, y);
    case BinaryOp::Div: return intDivRem(b, false, x, y);
    case BinaryOp::Rem: return intDivRem(b, true, x, y);
    default: unsupported(name, t);
  }
}

Value *emitFma(llvm::IRBuilder<> &b, DType t, Value *x, Value *y, Value *z) {
  if (!ir::isFloat(t)) unsupported("fma", t);
  Value *r = b.CreateIntrinsic(b.getFloatTy(), llvm::Intrinsic::fma, {widen(b, t, x), widen(b, t, y), widen(b, t, z)});
  return narrow(b, t, r);
}

Value *emitCast(llvm::IRBuilder<> &b, DType from, DType to, Value *x) {
  if (from == to) return x;
  llvm::Type *target = registerType(b.getContext(), to);
  if (ir::isFloat(from)) {
    if (ir::isFloat(to)) return narrow(b, to, widen(b, from, x));
    if (to == DType::Bool) return b.CreateFCmpUNE(x, llvm::ConstantFP::get(x->getType(), 0.0));
    // Saturating, NaN -> 0.
    return b.CreateIntrinsic(llvm::Intrinsic::fptosi_sat, {target, b.getFloatTy()}, {widen(b, from, x)});
  }
  if (from == DType::Bool) {
    if (ir::isFloat(to)) return narrow(b, to, b.CreateUIToFP(x, b.getFloatTy()));
    return b.CreateZExt(x, target);
  }
  if (to == DType::Bool) return b.CreateICmpNE(x, llvm::ConstantInt::get(x->getType(), 0));
  if (ir::isFloat(to)) return narrow(b, to, b.CreateSIToFP(x, b.getFloatTy()));
  return b.CreateSExtOrTrunc(x, target);
}

}  // namespace tigon::codegen
