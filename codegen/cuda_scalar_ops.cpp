#include "codegen/cuda_scalar_ops.h"

#include <fmt/format.h>
#include <llvm/ADT/APFloat.h>

#include <cmath>
#include <cstdlib>
#include <cstring>

#include "dsl/error.h"

namespace tigon::codegen::cuda {

using ir::BinaryOp;
using ir::DType;
using ir::UnaryOp;

const std::string &prelude() {
  static const std::string text = R"(// tigon: helpers for the tile IR's semantics (dsl/ir.h). f16 and bf16 values live in f32
// registers holding values of their dtype.
__device__ __forceinline__ float tg_bf16_to_f32(unsigned short h) { return __uint_as_float((unsigned)h << 16); }
__device__ __forceinline__ unsigned short tg_f32_to_bf16(float x) {
#if __CUDA_ARCH__ >= 800
  unsigned short h;
  asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x));
  return h;
#else
  unsigned u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);  // NaN stays NaN, quiet
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);                  // to nearest even
#endif
}
__device__ __forceinline__ float tg_f16_to_f32(unsigned short h) {
  float x;
  asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
  return x;
}
__device__ __forceinline__ unsigned short tg_f32_to_f16(float x) {
  unsigned short h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
  return h;
}
__device__ __forceinline__ float tg_rn_bf16(float x) { return tg_bf16_to_f32(tg_f32_to_bf16(x)); }
__device__ __forceinline__ float tg_rn_f16(float x) { return tg_f16_to_f32(tg_f32_to_f16(x)); }

// Approximate ops: the PTX instructions the LLVM backend uses.
__device__ __forceinline__ float tg_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float tg_log2(float x) {
  float y;
  asm("lg2.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float tg_rsqrt(float x) {
  float y;
  asm("rsqrt.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float tg_tanh(float x) {
  float y;
  asm("tanh.approx.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
__device__ __forceinline__ float tg_exp(float x) { return tg_exp2(__fmul_rn(x, __int_as_float(0x3fb8aa3b))); }  // log2(e)
__device__ __forceinline__ float tg_log(float x) { return __fmul_rn(tg_log2(x), __int_as_float(0x3f317218)); }  // ln(2)
__device__ __forceinline__ float tg_sigmoid(float x) { return __fdiv_rn(1.0f, __fadd_rn(1.0f, tg_exp(-x))); }

// min and max propagate NaN and order -0 below +0 (fminf and fmaxf do neither).
__device__ __forceinline__ float tg_fmin(float a, float b) {
#if __CUDA_ARCH__ >= 800
  float r;
  asm("min.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  if (a != a || b != b) return __int_as_float(0x7fffffff);
  if (a == b) return (__float_as_uint(a) >> 31) ? a : b;
  return a < b ? a : b;
#endif
}
__device__ __forceinline__ float tg_fmax(float a, float b) {
#if __CUDA_ARCH__ >= 800
  float r;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
#else
  if (a != a || b != b) return __int_as_float(0x7fffffff);
  if (a == b) return (__float_as_uint(a) >> 31) ? b : a;
  return a > b ? a : b;
#endif
}

// Integers wrap (computed unsigned: signed overflow would be undefined); division and
// remainder by 0 give 0, MIN / -1 wraps to MIN.
#define TG_INT_OPS(T, U)                                                                           \
  __device__ __forceinline__ T tg_add(T a, T b) { return (T)((U)a + (U)b); }                      \
  __device__ __forceinline__ T tg_sub(T a, T b) { return (T)((U)a - (U)b); }                      \
  __device__ __forceinline__ T tg_mul(T a, T b) { return (T)((U)a * (U)b); }                      \
  __device__ __forceinline__ T tg_neg(T a) { return (T)((U)0 - (U)a); }                           \
  __device__ __forceinline__ T tg_abs(T a) { return a < 0 ? tg_neg(a) : a; }                      \
  __device__ __forceinline__ T tg_div(T a, T b) { return b == 0 ? 0 : b == -1 ? tg_neg(a) : a / b; } \
  __device__ __forceinline__ T tg_rem(T a, T b) { return b == 0 || b == -1 ? 0 : a % b; }         \
  __device__ __forceinline__ void tg_argmax(T &x, int &xi, T y, int yi) {                         \
    bool take = y > x || (y == x && yi < xi);                                                      \
    x = take ? y : x;                                                                              \
    xi = take ? yi : xi;                                                                           \
  }
TG_INT_OPS(int, unsigned)
TG_INT_OPS(long long, unsigned long long)
#undef TG_INT_OPS

// Argmax's combine: y wins when it is larger, or NaN where x is not, or equal (both NaN
// included) with a smaller index: the first index of the maximum, NaN counting as the maximum.
__device__ __forceinline__ void tg_argmax(float &x, int &xi, float y, int yi) {
  bool xn = x != x, yn = y != y;
  bool take = (yn && !xn) || y > x || ((y == x || (xn && yn)) && yi < xi);
  x = take ? y : x;
  xi = take ? yi : xi;
}

// An integer as f32 rounded to odd: rounding that to f16 or bf16 rounds the integer once.
__device__ __forceinline__ float tg_i32_to_f32_odd(int x) {
  float f = __int2float_rz(x);
  return __float2int_rz(f) == x ? f : __uint_as_float(__float_as_uint(f) | 1u);
}
__device__ __forceinline__ float tg_i64_to_f32_odd(long long x) {
  float f = __ll2float_rz(x);
  return __float2ll_rz(f) == x ? f : __uint_as_float(__float_as_uint(f) | 1u);
}

// index in [0, size)
__device__ __forceinline__ bool tg_in_bounds(long long i, long long size) {
  return (unsigned long long)i < (unsigned long long)size;
}
)";
  return text;
}

const char *registerType(DType t) {
  switch (t) {
    case DType::F32: case DType::F16: case DType::BF16: return "float";
    case DType::I32: return "int";
    case DType::I64: return "long long";
    case DType::Bool: return "bool";
  }
  return "";
}

const char *memoryType(DType t) {
  switch (t) {
    case DType::F32: return "float";
    case DType::F16: case DType::BF16: return "unsigned short";
    case DType::I32: return "int";
    case DType::I64: return "long long";
    case DType::Bool: return "unsigned char";
  }
  return "";
}

std::string fromMemory(DType t, const std::string &bits) {
  switch (t) {
    case DType::F16: return "tg_f16_to_f32(" + bits + ")";
    case DType::BF16: return "tg_bf16_to_f32(" + bits + ")";
    case DType::Bool: return "(" + bits + " != 0)";
    default: return bits;
  }
}

std::string toMemory(DType t, const std::string &x) {
  switch (t) {
    case DType::F16: return "tg_f32_to_f16(" + x + ")";
    case DType::BF16: return "tg_f32_to_bf16(" + x + ")";
    case DType::Bool: return "(unsigned char)" + x;
    default: return x;
  }
}

std::string narrow(DType t, const std::string &x) {
  switch (t) {
    case DType::F16: return "tg_rn_f16(" + x + ")";
    case DType::BF16: return "tg_rn_bf16(" + x + ")";
    default: return x;
  }
}

namespace {

[[noreturn]] void unsupported(const char *op, DType t) {
  throw Error(fmt::format("{} is not defined for {}", op, ir::dtypeName(t)));
}

// The shortest decimal that reads back as x, else its bits.
std::string floatLiteral(float x) {
  if (std::isfinite(x)) {
    for (int digits = 1; digits <= 9; ++digits) {
      std::string s = fmt::format("{:.{}g}", x, digits);
      if (std::strtof(s.c_str(), nullptr) != x || std::signbit(std::strtof(s.c_str(), nullptr)) != std::signbit(x)) continue;
      if (s.find_first_of(".e") == std::string::npos) s += ".0";
      return s + "f";
    }
  }
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  return fmt::format("__int_as_float(0x{:08x})", bits);
}

// fval rounded once to the float dtype t (to nearest even), as an f32.
float roundConstant(DType t, double fval) {
  llvm::APFloat v(fval);
  bool lost = false;
  const llvm::fltSemantics &sem = t == DType::F16    ? llvm::APFloat::IEEEhalf()
                                  : t == DType::BF16 ? llvm::APFloat::BFloat()
                                                     : llvm::APFloat::IEEEsingle();
  v.convert(sem, llvm::APFloat::rmNearestTiesToEven, &lost);
  v.convert(llvm::APFloat::IEEEsingle(), llvm::APFloat::rmNearestTiesToEven, &lost);  // exact
  return v.convertToFloat();
}

std::string call(const char *fn, const std::string &x) { return std::string(fn) + "(" + x + ")"; }
std::string call(const char *fn, const std::string &x, const std::string &y) {
  return std::string(fn) + "(" + x + ", " + y + ")";
}

}  // namespace

std::string constant(DType t, double fval, int64_t ival) {
  switch (t) {
    case DType::Bool: return ival != 0 ? "true" : "false";
    case DType::I32: {
      auto v = int32_t(uint32_t(uint64_t(ival)));
      return v == INT32_MIN ? "(-2147483647 - 1)" : std::to_string(v);
    }
    case DType::I64: return ival == INT64_MIN ? "(-9223372036854775807LL - 1)" : std::to_string(ival) + "LL";
    default: return floatLiteral(roundConstant(t, fval));
  }
}

std::string unary(UnaryOp op, DType t, const std::string &x) {
  const char *name = ir::unaryOpName(op);
  switch (op) {
    case UnaryOp::Neg:
      if (ir::isFloat(t)) return "(-(" + x + "))";
      if (ir::isInt(t)) return call("tg_neg", x);
      unsupported(name, t);
    case UnaryOp::Not:
      if (ir::isFloat(t)) unsupported(name, t);
      return t == DType::Bool ? "(!" + x + ")" : "(~" + x + ")";
    case UnaryOp::Abs:
      if (ir::isFloat(t)) return call("fabsf", x);
      if (ir::isInt(t)) return call("tg_abs", x);
      unsupported(name, t);
    default: break;
  }
  if (!ir::isFloat(t)) unsupported(name, t);
  const char *fn = nullptr;
  switch (op) {
    case UnaryOp::Exp: fn = "tg_exp"; break;
    case UnaryOp::Exp2: fn = "tg_exp2"; break;
    case UnaryOp::Log: fn = "tg_log"; break;
    case UnaryOp::Log2: fn = "tg_log2"; break;
    case UnaryOp::Sqrt: fn = "__fsqrt_rn"; break;
    case UnaryOp::Rsqrt: fn = "tg_rsqrt"; break;
    case UnaryOp::Tanh: fn = "tg_tanh"; break;
    default: fn = "tg_sigmoid"; break;
  }
  return narrow(t, call(fn, x));
}

std::string binary(BinaryOp op, DType t, const std::string &x, const std::string &y) {
  const char *name = ir::binaryOpName(op);
  auto infix = [&](const char *sym) { return "(" + x + " " + sym + " " + y + ")"; };
  switch (op) {  // comparisons: C++'s are the IR's (false with NaN except !=; bools unsigned)
    case BinaryOp::Lt: return infix("<");
    case BinaryOp::Le: return infix("<=");
    case BinaryOp::Gt: return infix(">");
    case BinaryOp::Ge: return infix(">=");
    case BinaryOp::Eq: return infix("==");
    case BinaryOp::Ne: return infix("!=");
    default: break;
  }
  if (ir::isFloat(t)) {
    switch (op) {
      case BinaryOp::Add: return narrow(t, call("__fadd_rn", x, y));
      case BinaryOp::Sub: return narrow(t, call("__fsub_rn", x, y));
      case BinaryOp::Mul: return narrow(t, call("__fmul_rn", x, y));
      case BinaryOp::Div: return narrow(t, call("__fdiv_rn", x, y));
      case BinaryOp::Min: return narrow(t, call("tg_fmin", x, y));
      case BinaryOp::Max: return narrow(t, call("tg_fmax", x, y));
      default: unsupported(name, t);
    }
  }
  bool isBool = t == DType::Bool;
  switch (op) {
    case BinaryOp::And: return infix(isBool ? "&&" : "&");
    case BinaryOp::Or: return infix(isBool ? "||" : "|");
    case BinaryOp::Min: return isBool ? infix("&&") : "(" + x + " < " + y + " ? " + x + " : " + y + ")";
    case BinaryOp::Max: return isBool ? infix("||") : "(" + x + " > " + y + " ? " + x + " : " + y + ")";
    default: break;
  }
  if (isBool) unsupported(name, t);
  switch (op) {
    case BinaryOp::Add: return call("tg_add", x, y);
    case BinaryOp::Sub: return call("tg_sub", x, y);
    case BinaryOp::Mul: return call("tg_mul", x, y);
    case BinaryOp::Div: return call("tg_div", x, y);
    case BinaryOp::Rem: return call("tg_rem", x, y);
    default: unsupported(name, t);
  }
}

std::string fma(DType t, const std::string &x, const std::string &y, const std::string &z) {
  if (!ir::isFloat(t)) unsupported("fma", t);
  return narrow(t, "__fmaf_rn(" + x + ", " + y + ", " + z + ")");
}

std::string cast(DType from, DType to, const std::string &x) {
  if (from == to) return x;
  if (ir::isFloat(from)) {
    if (ir::isFloat(to)) return narrow(to, x);
    if (to == DType::Bool) return "(" + x + " != 0.0f)";
    return call(to == DType::I32 ? "__float2int_rz" : "__float2ll_rz", x);  // saturating, NaN -> 0
  }
  if (from == DType::Bool) {
    if (ir::isFloat(to)) return "(" + x + " ? 1.0f : 0.0f)";
    return std::string("(") + registerType(to) + ")" + x;
  }
  if (to == DType::Bool) return "(" + x + " != 0)";
  if (to == DType::F32) return call(from == DType::I32 ? "__int2float_rn" : "__ll2float_rn", x);
  if (ir::isFloat(to)) return narrow(to, call(from == DType::I32 ? "tg_i32_to_f32_odd" : "tg_i64_to_f32_odd", x));
  return std::string("(") + registerType(to) + ")" + x;
}

}  // namespace tigon::codegen::cuda
