// The reference interpreter: every op of dsl/ir.h evaluated element by element on the host,
// one program after another. It is the oracle of the GPU backends, so it favours exact,
// plainly written semantics over speed; edge cases are decided next to the code doing them.
#include "runtime/interpreter.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "dsl/error.h"
#include "runtime/half.h"

namespace tigon {
namespace {

using namespace ir;

// ---- tiles and element semantics -----------------------------------------------------------

// A tile's elements in row-major order. Which vector holds them depends on the value's dtype.
struct Tile {
  std::vector<double> f;   // f32, f16, bf16: each value exactly representable in the dtype
  std::vector<int64_t> i;  // i32 and i64 (wrapped to the dtype), bool (0 or 1)
};

size_t tileSize(const Tile &t, DType dt) { return isFloat(dt) ? t.f.size() : t.i.size(); }

// Rounds to the dtype. f32 goes through the hardware conversion (to nearest even).
double roundTo(DType t, double x) {
  switch (t) {
    case DType::F16: return roundToF16(x);
    case DType::BF16: return roundToBf16(x);
    default: return double(float(x));
  }
}

// Two's complement wrap to the integer dtype; bool keeps whether x is nonzero.
int64_t wrapTo(DType t, uint64_t x) {
  switch (t) {
    case DType::I32: return int32_t(uint32_t(x));
    case DType::Bool: return x != 0;
    default: return int64_t(x);
  }
}

// An integer as a double, rounded to odd when it has more than 53 significant bits. Rounding
// that double again to a float format of at most 24 significant bits then gives the correctly
// rounded integer (a plain double conversion could round twice the wrong way).
double intToDoubleRoundOdd(int64_t v) {
  uint64_t mag = v < 0 ? 0 - uint64_t(v) : uint64_t(v);
  int shift = 0;
  while ((mag >> shift) >> 53) ++shift;
  uint64_t kept = mag >> shift;
  if (mag & ((uint64_t(1) << shift) - 1)) kept |= 1;
  double d = std::ldexp(double(kept), shift);
  return v < 0 ? -d : d;
}

// Float to integer: truncates toward zero, saturates to the dtype's range, NaN gives 0.
int64_t floatToInt(DType t, double x) {
  if (std::isnan(x)) return 0;
  bool i32 = t == DType::I32;
  double limit = i32 ? 0x1p31 : 0x1p63;
  if (x >= limit) return i32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
  if (x <= -limit) return i32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
  return int64_t(std::trunc(x));
}

double castToFloat(DType to, int64_t v) { return roundTo(to, intToDoubleRoundOdd(v)); }

int64_t castFloatToInt(DType to, double v) { return to == DType::Bool ? v != 0 : floatToInt(to, v); }

// Min and max propagate NaN and order -0 below +0 (IEEE 754-2019 minimum/maximum).
double minOf(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}
double maxOf(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
int64_t minOf(int64_t a, int64_t b) { return a < b ? a : b; }
int64_t maxOf(int64_t a, int64_t b) { return a > b ? a : b; }

// Whether v replaces the current maximum for argmax: the first maximum wins, NaN counts as
// the largest value (like torch), so the first NaN wins.
bool beats(double v, double best) { return !std::isnan(best) && (std::isnan(v) || v > best); }
bool beats(int64_t v, int64_t best) { return v > best; }

// Comparisons: with NaN all are false except Ne, as in C++.
template <class T>
bool compare(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Lt: return a < b;
    case BinaryOp::Le: return a <= b;
    case BinaryOp::Gt: return a > b;
    case BinaryOp::Ge: return a >= b;
    case BinaryOp::Eq: return a == b;
    default: return a != b;
  }
}

// Float arithmetic in f32 (f16/bf16 operands are exact in f32); the caller rounds to the dtype.
double floatArith(BinaryOp op, double a, double b) {
  float x = float(a), y = float(b);
  switch (op) {
    case BinaryOp::Add: return x + y;
    case BinaryOp::Sub: return x - y;
    case BinaryOp::Mul: return x * y;
    case BinaryOp::Div: return x / y;  // IEEE: x/0 is +-inf or NaN
    case BinaryOp::Min: return minOf(a, b);
    default: return maxOf(a, b);
  }
}

// Integer arithmetic wrapping to the dtype. Division and remainder by zero give 0: the
// result is then defined (no trap, no undefined behaviour) and every backend can match it.
// Bool operands only reach And/Or, where bitwise on 0/1 is logical.
int64_t intArith(BinaryOp op, DType t, int64_t a, int64_t b) {
  uint64_t x = uint64_t(a), y = uint64_t(b);
  switch (op) {
    case BinaryOp::Add: return wrapTo(t, x + y);
    case BinaryOp::Sub: return wrapTo(t, x - y);
    case BinaryOp::Mul: return wrapTo(t, x * y);
    case BinaryOp::Div:
      if (b == 0) return 0;
      return b == -1 ? wrapTo(t, 0 - x) : a / b;  // MIN / -1 wraps to MIN
    case BinaryOp::Rem: return b == 0 || b == -1 ? 0 : a % b;
    case BinaryOp::Min: return minOf(a, b);
    case BinaryOp::Max: return maxOf(a, b);
    case BinaryOp::And: return a & b;
    default: return a | b;
  }
}

// Math functions are evaluated in double and rounded once to the dtype.
double floatUnary(UnaryOp op, DType t, double x) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Abs: return std::fabs(x);
    case UnaryOp::Exp: return roundTo(t, std::exp(x));
    case UnaryOp::Exp2: return roundTo(t, std::exp2(x));
    case UnaryOp::Log: return roundTo(t, std::log(x));
    case UnaryOp::Log2: return roundTo(t, std::log2(x));
    case UnaryOp::Sqrt: return roundTo(t, std::sqrt(x));
    case UnaryOp::Rsqrt: return roundTo(t, 1 / std::sqrt(x));
    case UnaryOp::Tanh: return roundTo(t, std::tanh(x));
    default: return roundTo(t, 1 / (1 + std::exp(-x)));  // Sigmoid
  }
}

// ---- host memory ---------------------------------------------------------------------------

double readFloat(const void *data, DType t, int64_t off) {
  const char *p = static_cast<const char *>(data) + off * dtypeBytes(t);
  if (t == DType::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, p, 2);
  return t == DType::F16 ? f16BitsToFloat(h) : bf16BitsToFloat(h);
}

int64_t readInt(const void *data, DType t, int64_t off) {
  const char *p = static_cast<const char *>(data) + off * dtypeBytes(t);
  if (t == DType::I32) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return v;
  }
  if (t == DType::I64) {
    int64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  return *reinterpret_cast<const uint8_t *>(p) != 0;
}

void writeFloat(void *data, DType t, int64_t off, double v) {
  char *p = static_cast<char *>(data) + off * dtypeBytes(t);
  if (t == DType::F32) {
    auto x = float(v);
    std::memcpy(p, &x, 4);
    return;
  }
  uint16_t h = t == DType::F16 ? floatToF16Bits(float(v)) : floatToBf16Bits(float(v));
  std::memcpy(p, &h, 2);
}

void writeInt(void *data, DType t, int64_t off, int64_t v) {
  char *p = static_cast<char *>(data) + off * dtypeBytes(t);
  if (t == DType::I32) {
    auto x = int32_t(v);
    std::memcpy(p, &x, 4);
  } else if (t == DType::I64) {
    std::memcpy(p, &v, 8);
  } else {
    *reinterpret_cast<uint8_t *>(p) = v != 0;
  }
}

// Row-major offsets of an orthogonal product: result[i0, i1, ...] = axes[0][i0] + axes[1][i1]
// + ...; a -1 in any axis (a masked index) makes the whole sum -1.
std::vector<int64_t> outerSum(const std::vector<std::vector<int64_t>> &axes) {
  std::vector<int64_t> offs{0}, next;
  for (const auto &axis : axes) {
    next.clear();
    next.reserve(offs.size() * axis.size());
    for (int64_t o : offs)
      for (int64_t a : axis) next.push_back(o < 0 || a < 0 ? -1 : o + a);
    offs.swap(next);
  }
  return offs;
}

template <class T>
void gather(const std::vector<T> &src, const std::vector<int64_t> &offs, std::vector<T> &dst) {
  dst.resize(offs.size());
  for (size_t k = 0; k < offs.size(); ++k) dst[k] = src[size_t(offs[k])];
}

// ---- the interpreter -----------------------------------------------------------------------

class Interpreter {
 public:
  Interpreter(const Function &f, const std::vector<KernelArg> &args)
      : f_(f), args_(args), env_(f.values.size()) {}

  std::array<int64_t, 3> grid();
  void runProgram(const std::array<int64_t, 3> &pid, const std::array<int64_t, 3> &num);

 private:
  const Function &f_;
  const std::vector<KernelArg> &args_;
  std::vector<Tile> env_;  // by ValueId
  std::array<int64_t, 3> pid_{}, num_{};
  bool inGrid_ = false;

  [[noreturn]] void fail(const Op &op, const std::string &msg) const {
    std::string where = op.loc.line > 0 ? fmt::format("{}:{}: ", op.loc.line, op.loc.col) : "";
    throw Error(fmt::format("{}: {}{}: {}", f_.name, where, opKindName(op.kind), msg));
  }
  const Type &type(ValueId v) const { return f_.type(v); }
  DType dtype(ValueId v) const { return f_.type(v).dtype; }
  const Tile &in(const Op &op, size_t k) const { return env_[size_t(op.operands[k])]; }
  Tile &out(const Op &op, size_t k = 0) { return env_[size_t(op.results[k])]; }
  int64_t numel(ValueId v) const { return type(v).numel(); }
  int64_t scalarInt(const Op &op, size_t k) const;
  const Param &param(const Op &op, Param::Kind kind) const;
  void requireFloat(const Op &op, DType t) const;

  const Op *runBlock(const Block &b);
  void exec(const Op &op);
  void execConst(const Op &op);
  void execScalarArg(const Op &op);
  void execTensorDim(const Op &op);
  void execProgramInfo(const Op &op);
  void execIota(const Op &op);
  void execBroadcast(const Op &op);
  void execExpandDims(const Op &op);
  void execUnary(const Op &op);
  void execBinary(const Op &op);
  void execSelect(const Op &op);
  void execFma(const Op &op);
  void execCast(const Op &op);
  void execReduce(const Op &op);
  std::vector<int64_t> indexOffsets(const Op &op, const TensorArg &t) const;
  void execLoad(const Op &op);
  void execStore(const Op &op);
  void execAtomicAdd(const Op &op);
  void execFor(const Op &op);
};

int64_t Interpreter::scalarInt(const Op &op, size_t k) const {
  const Type &t = type(op.operands[k]);
  if (t.rank() != 0 || !isInt(t.dtype)) fail(op, fmt::format("operand {} must be a 0-D integer, got {}", k, typeString(t)));
  return in(op, k).i[0];
}

const Param &Interpreter::param(const Op &op, Param::Kind kind) const {
  if (op.param < 0 || size_t(op.param) >= f_.params.size()) fail(op, fmt::format("bad parameter index {}", op.param));
  const Param &p = f_.params[size_t(op.param)];
  if (p.kind != kind)
    fail(op, fmt::format("parameter '{}' is not a {}", p.name, kind == Param::Kind::Tensor ? "tensor" : "scalar"));
  return p;
}

void Interpreter::requireFloat(const Op &op, DType t) const {
  if (!isFloat(t)) fail(op, fmt::format("needs a float dtype, got {}", dtypeName(t)));
}

const Op *Interpreter::runBlock(const Block &b) {
  for (const Op &op : b.ops) {
    if (op.kind == OpKind::Yield) return &op;
    exec(op);
  }
  return nullptr;
}

void Interpreter::exec(const Op &op) {
  // The verifier guarantees dominance, not that a value was computed on this path (a loop body
  // value used after a loop that never ran): check sizes so malformed IR cannot read past a tile.
  for (ValueId v : op.operands)
    if (tileSize(env_[size_t(v)], dtype(v)) != size_t(numel(v))) fail(op, fmt::format("operand %{} has no value here", v));
  switch (op.kind) {
    case OpKind::Const: return execConst(op);
    case OpKind::ScalarArg: return execScalarArg(op);
    case OpKind::TensorDim: return execTensorDim(op);
    case OpKind::ProgramId: case OpKind::NumPrograms: return execProgramInfo(op);
    case OpKind::Iota: return execIota(op);
    case OpKind::Broadcast: return execBroadcast(op);
    case OpKind::ExpandDims: return execExpandDims(op);
    case OpKind::Unary: return execUnary(op);
    case OpKind::Binary: return execBinary(op);
    case OpKind::Select: return execSelect(op);
    case OpKind::Fma: return execFma(op);
    case OpKind::Cast: return execCast(op);
    case OpKind::Reduce: return execReduce(op);
    case OpKind::Load: return execLoad(op);
    case OpKind::Store: return execStore(op);
    case OpKind::AtomicAdd: return execAtomicAdd(op);
    case OpKind::For: return execFor(op);
    case OpKind::Yield: fail(op, "yield outside a loop body");
  }
}

void Interpreter::execConst(const Op &op) {
  DType t = dtype(op.results[0]);
  if (isFloat(t)) out(op).f.assign(1, roundTo(t, op.fval));
  else out(op).i.assign(1, wrapTo(t, uint64_t(op.ival)));
}

void Interpreter::execScalarArg(const Op &op) {
  const Param &p = param(op, Param::Kind::Scalar);
  const Type &t = type(op.results[0]);
  if (t.rank() != 0 || t.dtype != p.dtype) fail(op, fmt::format("result must be {}, got {}", dtypeName(p.dtype), typeString(t)));
  const KernelArg &a = args_[size_t(op.param)];
  if (isFloat(t.dtype)) out(op).f.assign(1, roundTo(t.dtype, a.f));
  else out(op).i.assign(1, wrapTo(t.dtype, uint64_t(a.i)));
}

void Interpreter::execTensorDim(const Op &op) {
  const Param &p = param(op, Param::Kind::Tensor);
  if (op.axis < 0 || op.axis >= p.rank()) fail(op, fmt::format("axis {} out of range for '{}'", op.axis, p.name));
  out(op).i.assign(1, args_[size_t(op.param)].tensor.sizes[size_t(op.axis)]);  // checkArgs: fits i32
}

void Interpreter::execProgramInfo(const Op &op) {
  if (inGrid_) fail(op, "not available in the grid block");
  if (op.axis < 0 || op.axis > 2) fail(op, fmt::format("axis {} out of range", op.axis));
  const auto &v = op.kind == OpKind::ProgramId ? pid_ : num_;
  out(op).i.assign(1, v[size_t(op.axis)]);
}

void Interpreter::execIota(const Op &op) {
  auto &r = out(op).i;
  r.resize(size_t(numel(op.results[0])));
  for (size_t k = 0; k < r.size(); ++k) r[k] = int64_t(k);
}

// numpy broadcasting: each result axis reads the source axis aligned with it from the right,
// or stays on element 0 where the source axis is 1 or missing.
void Interpreter::execBroadcast(const Op &op) {
  const auto &from = type(op.operands[0]).shape, &to = type(op.results[0]).shape;
  std::vector<std::vector<int64_t>> axes(to.size());
  int64_t stride = 1;
  for (size_t d = to.size(); d-- > 0;) {
    size_t lead = to.size() - from.size();
    bool reads = d >= lead && from[d - lead] != 1;
    for (int64_t k = 0; k < to[d]; ++k) axes[d].push_back(reads ? k * stride : 0);
    if (d >= lead) stride *= from[d - lead];
  }
  std::vector<int64_t> offs = outerSum(axes);
  if (isFloat(dtype(op.results[0]))) gather(in(op, 0).f, offs, out(op).f);
  else gather(in(op, 0).i, offs, out(op).i);
}

void Interpreter::execExpandDims(const Op &op) {
  std::vector<int64_t> shape = type(op.operands[0]).shape;
  if (op.axis < 0 || size_t(op.axis) > shape.size()) fail(op, fmt::format("axis {} out of range", op.axis));
  shape.insert(shape.begin() + op.axis, 1);
  if (type(op.results[0]) != Type{dtype(op.operands[0]), shape}) fail(op, "result type does not match");
  out(op) = in(op, 0);  // row-major order is unchanged
}

void Interpreter::execUnary(const Op &op) {
  DType t = dtype(op.operands[0]);
  const Tile &x = in(op, 0);
  Tile &r = out(op);
  if (isFloat(t)) {
    if (op.uop == UnaryOp::Not) fail(op, fmt::format("not needs bool, got {}", dtypeName(t)));
    r.f.resize(x.f.size());
    for (size_t k = 0; k < x.f.size(); ++k) r.f[k] = floatUnary(op.uop, t, x.f[k]);
    return;
  }
  bool boolNot = t == DType::Bool && op.uop == UnaryOp::Not;
  bool intNegAbs = isInt(t) && (op.uop == UnaryOp::Neg || op.uop == UnaryOp::Abs);
  if (!boolNot && !intNegAbs) fail(op, fmt::format("{} is not defined on {}", unaryOpName(op.uop), dtypeName(t)));
  r.i.resize(x.i.size());
  for (size_t k = 0; k < x.i.size(); ++k) {
    int64_t v = x.i[k];
    if (boolNot) r.i[k] = !v;
    else r.i[k] = op.uop == UnaryOp::Neg || v < 0 ? wrapTo(t, 0 - uint64_t(v)) : v;  // wraps at MIN
  }
}

void Interpreter::execBinary(const Op &op) {
  DType t = dtype(op.operands[0]);
  const Tile &a = in(op, 0), &b = in(op, 1);
  Tile &r = out(op);
  if (isComparison(op.bop)) {
    r.i.resize(tileSize(a, t));
    for (size_t k = 0; k < r.i.size(); ++k)
      r.i[k] = isFloat(t) ? compare(op.bop, a.f[k], b.f[k]) : compare(op.bop, a.i[k], b.i[k]);
    return;
  }
  bool logical = op.bop == BinaryOp::And || op.bop == BinaryOp::Or;
  if (isFloat(t)) {
    if (logical || op.bop == BinaryOp::Rem) fail(op, fmt::format("{} is not defined on {}", binaryOpName(op.bop), dtypeName(t)));
    r.f.resize(a.f.size());
    for (size_t k = 0; k < a.f.size(); ++k) r.f[k] = roundTo(t, floatArith(op.bop, a.f[k], b.f[k]));
    return;
  }
  if (t == DType::Bool && !logical) fail(op, fmt::format("{} is not defined on bool", binaryOpName(op.bop)));
  r.i.resize(a.i.size());
  for (size_t k = 0; k < a.i.size(); ++k) r.i[k] = intArith(op.bop, t, a.i[k], b.i[k]);
}

void Interpreter::execSelect(const Op &op) {
  const Type &c = type(op.operands[0]), &rt = type(op.results[0]);
  if (c.shape != rt.shape || type(op.operands[1]) != rt || type(op.operands[2]) != rt)
    fail(op, "condition, operands and result must have one shape, operands the result's type");
  const auto &cond = in(op, 0).i;
  Tile &r = out(op);
  const Tile &a = in(op, 1), &b = in(op, 2);
  if (isFloat(rt.dtype)) {
    r.f.resize(cond.size());
    for (size_t k = 0; k < cond.size(); ++k) r.f[k] = cond[k] ? a.f[k] : b.f[k];
  } else {
    r.i.resize(cond.size());
    for (size_t k = 0; k < cond.size(); ++k) r.i[k] = cond[k] ? a.i[k] : b.i[k];
  }
}

// One rounding in f32 (std::fma), then rounded to f16/bf16.
void Interpreter::execFma(const Op &op) {
  DType t = dtype(op.operands[0]);
  requireFloat(op, t);
  const auto &a = in(op, 0).f, &b = in(op, 1).f, &c = in(op, 2).f;
  auto &r = out(op).f;
  r.resize(a.size());
  for (size_t k = 0; k < a.size(); ++k) r[k] = roundTo(t, std::fma(float(a[k]), float(b[k]), float(c[k])));
}

// float -> float rounds; float -> int truncates and saturates (NaN: 0); int -> float rounds;
// int -> int wraps; bool -> number is 0/1; number -> bool is x != 0.
void Interpreter::execCast(const Op &op) {
  DType from = dtype(op.operands[0]), to = dtype(op.results[0]);
  if (type(op.operands[0]).shape != type(op.results[0]).shape) fail(op, "operand and result shapes differ");
  const Tile &x = in(op, 0);
  Tile &r = out(op);
  size_t n = tileSize(x, from);
  if (isFloat(to)) r.f.resize(n);
  else r.i.resize(n);
  for (size_t k = 0; k < n; ++k) {
    if (isFloat(from) && isFloat(to)) r.f[k] = roundTo(to, x.f[k]);
    else if (isFloat(from)) r.i[k] = castFloatToInt(to, x.f[k]);
    else if (isFloat(to)) r.f[k] = castToFloat(to, x.i[k]);
    else r.i[k] = wrapTo(to, uint64_t(x.i[k]));
  }
}

// Reduces the n elements x[0], x[stride], ... into element `dst` of r. Sums accumulate in
// index order, floats in double rounded once to the dtype, ints wrapping.
template <class T>
void reduceLine(ReduceOp rop, DType t, const T *x, int64_t n, int64_t stride, Tile &r, size_t dst) {
  if (rop == ReduceOp::Argmax) {
    int64_t best = 0;
    for (int64_t k = 1; k < n; ++k)
      if (beats(x[k * stride], x[best * stride])) best = k;
    r.i[dst] = best;
    return;
  }
  T acc = n ? x[0] : T(0);
  for (int64_t k = 1; k < n; ++k) {
    T v = x[k * stride];
    if (rop == ReduceOp::Max) acc = maxOf(acc, v);
    else if (rop == ReduceOp::Min) acc = minOf(acc, v);
    else if constexpr (std::is_same_v<T, double>) acc += v;
    else acc = int64_t(uint64_t(acc) + uint64_t(v));
  }
  if constexpr (std::is_same_v<T, double>) r.f[dst] = rop == ReduceOp::Sum ? roundTo(t, acc) : acc;
  else r.i[dst] = rop == ReduceOp::Sum ? wrapTo(t, uint64_t(acc)) : acc;
}

void Interpreter::execReduce(const Op &op) {
  const Type &xt = type(op.operands[0]);
  if (op.axis < 0 || op.axis >= xt.rank()) fail(op, fmt::format("axis {} out of range for {}", op.axis, typeString(xt)));
  Type want{op.rop == ReduceOp::Argmax ? DType::I32 : xt.dtype, xt.shape};
  want.shape.erase(want.shape.begin() + op.axis);
  if (type(op.results[0]) != want) fail(op, fmt::format("result must be {}", typeString(want)));
  if (xt.dtype == DType::Bool && op.rop == ReduceOp::Sum) fail(op, "sum is not defined on bool");
  int64_t n = xt.shape[size_t(op.axis)];
  if (n == 0 && op.rop != ReduceOp::Sum) fail(op, fmt::format("{} over an empty axis", reduceOpName(op.rop)));
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < op.axis; ++d) outer *= xt.shape[size_t(d)];
  for (int d = op.axis + 1; d < xt.rank(); ++d) inner *= xt.shape[size_t(d)];
  const Tile &x = in(op, 0);
  Tile &r = out(op);
  size_t count = size_t(outer * inner);
  if (isFloat(want.dtype)) r.f.resize(count);
  else r.i.resize(count);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      size_t base = size_t(o * n * inner + j), dst = size_t(o * inner + j);
      if (isFloat(xt.dtype)) reduceLine(op.rop, xt.dtype, x.f.data() + base, n, inner, r, dst);
      else reduceLine(op.rop, xt.dtype, x.i.data() + base, n, inner, r, dst);
    }
}

// Element offsets of an orthogonal index (operands 0..rank-1 of a load/store), -1 where any
// index is outside [0, size) of its dimension.
std::vector<int64_t> Interpreter::indexOffsets(const Op &op, const TensorArg &t) const {
  std::vector<std::vector<int64_t>> axes(t.sizes.size());
  for (size_t d = 0; d < axes.size(); ++d)
    for (int64_t idx : in(op, d).i) axes[d].push_back(idx >= 0 && idx < t.sizes[d] ? idx * t.strides[d] : -1);
  return outerSum(axes);
}

void Interpreter::execLoad(const Op &op) {
  const Param &p = param(op, Param::Kind::Tensor);
  const TensorArg &t = args_[size_t(op.param)].tensor;
  const Type &other = type(op.operands.back());
  if (other.rank() != 0 || other.dtype != p.dtype || dtype(op.results[0]) != p.dtype)
    fail(op, fmt::format("`other` and the result must have the dtype of '{}' ({}), `other` 0-D", p.name, dtypeName(p.dtype)));
  std::vector<int64_t> offs = indexOffsets(op, t);
  const Tile &o = in(op, op.operands.size() - 1);
  Tile &r = out(op);
  if (isFloat(p.dtype)) {
    r.f.resize(offs.size());
    for (size_t k = 0; k < offs.size(); ++k) r.f[k] = offs[k] < 0 ? o.f[0] : readFloat(t.data, p.dtype, offs[k]);
  } else {
    r.i.resize(offs.size());
    for (size_t k = 0; k < offs.size(); ++k) r.i[k] = offs[k] < 0 ? o.i[0] : readInt(t.data, p.dtype, offs[k]);
  }
}

void Interpreter::execStore(const Op &op) {
  const Param &p = param(op, Param::Kind::Tensor);
  const TensorArg &t = args_[size_t(op.param)].tensor;
  if (dtype(op.operands.back()) != p.dtype) fail(op, fmt::format("the value must have the dtype of '{}' ({})", p.name, dtypeName(p.dtype)));
  std::vector<int64_t> offs = indexOffsets(op, t);
  const Tile &v = in(op, op.operands.size() - 1);
  for (size_t k = 0; k < offs.size(); ++k) {
    if (offs[k] < 0) continue;
    if (isFloat(p.dtype)) writeFloat(t.data, p.dtype, offs[k], v.f[k]);
    else writeInt(t.data, p.dtype, offs[k], v.i[k]);
  }
}

// Programs run one at a time, so an atomic add is a plain read-add-write: f32 adds in float,
// i32 wraps.
void Interpreter::execAtomicAdd(const Op &op) {
  const Param &p = param(op, Param::Kind::Tensor);
  const TensorArg &t = args_[size_t(op.param)].tensor;
  if (p.dtype != DType::F32 && p.dtype != DType::I32) fail(op, fmt::format("needs an f32 or i32 tensor, '{}' is {}", p.name, dtypeName(p.dtype)));
  if (dtype(op.operands.back()) != p.dtype) fail(op, fmt::format("the value must have the dtype of '{}' ({})", p.name, dtypeName(p.dtype)));
  std::vector<int64_t> offs = indexOffsets(op, t);
  const Tile &v = in(op, op.operands.size() - 1);
  for (size_t k = 0; k < offs.size(); ++k) {
    if (offs[k] < 0) continue;
    if (p.dtype == DType::F32)
      writeFloat(t.data, p.dtype, offs[k], float(readFloat(t.data, p.dtype, offs[k])) + float(v.f[k]));
    else
      writeInt(t.data, p.dtype, offs[k], intArith(BinaryOp::Add, p.dtype, readInt(t.data, p.dtype, offs[k]), v.i[k]));
  }
}

void Interpreter::execFor(const Op &op) {
  const Block &body = op.regions.at(0);
  size_t n = op.operands.size() - 3;
  const Op &yield = body.ops.back();  // the verifier checked it is a yield of n values
  for (size_t k = 0; k < n; ++k) {
    ValueId arg = body.args[k + 1];
    if (arg < 0 || size_t(arg) >= f_.values.size()) fail(op, fmt::format("bad block argument %{}", arg));
    const Type &t = type(op.operands[k + 3]);
    if (type(arg) != t || type(op.results[k]) != t || type(yield.operands[k]) != t)
      fail(op, fmt::format("carried value {} must keep type {}", k, typeString(t)));
  }
  ValueId iv = body.args[0];
  if (iv < 0 || size_t(iv) >= f_.values.size() || type(iv) != Type{DType::I32, {}}) fail(op, "the induction variable must be a 0-D i32");
  int64_t lo = scalarInt(op, 0), hi = scalarInt(op, 1), step = scalarInt(op, 2);
  if (step <= 0) fail(op, fmt::format("step must be positive, got {}", step));
  std::vector<Tile> carried(n);
  for (size_t k = 0; k < n; ++k) carried[k] = in(op, k + 3);
  for (int64_t i = lo; i < hi; i += step) {  // i32 bounds: i + step cannot overflow int64
    env_[size_t(iv)].i.assign(1, i);
    for (size_t k = 0; k < n; ++k) env_[size_t(body.args[k + 1])] = std::move(carried[k]);
    runBlock(body);
    for (size_t k = 0; k < n; ++k) carried[k] = env_[size_t(yield.operands[k])];  // copies: may alias
  }
  for (size_t k = 0; k < n; ++k) out(op, k) = std::move(carried[k]);
}

std::array<int64_t, 3> Interpreter::grid() {
  inGrid_ = true;
  const Op *yield = runBlock(f_.grid);
  inGrid_ = false;
  if (!yield || yield->operands.empty() || yield->operands.size() > 3)
    throw Error(fmt::format("{}: the grid block must end with a yield of 1 to 3 sizes", f_.name));
  std::array<int64_t, 3> g{1, 1, 1};
  for (size_t k = 0; k < yield->operands.size(); ++k) {
    ValueId v = yield->operands[k];
    if (type(v) != Type{DType::I32, {}} || env_[size_t(v)].i.size() != 1)
      fail(*yield, fmt::format("grid sizes must be 0-D i32 values, got {}", typeString(type(v))));
    g[k] = env_[size_t(v)].i[0];
    if (g[k] < 0) throw Error(fmt::format("{}: grid size along {} is negative ({})", f_.name, "xyz"[k], g[k]));
  }
  return g;
}

void Interpreter::runProgram(const std::array<int64_t, 3> &pid, const std::array<int64_t, 3> &num) {
  pid_ = pid;
  num_ = num;
  runBlock(f_.body);
}

void checkAll(const Function &f, const std::vector<KernelArg> &args) {
  checkArgs(f, args);
  std::vector<std::string> problems = verify(f);
  if (!problems.empty()) throw Error(fmt::format("{}: invalid IR: {}", f.name, fmt::join(problems, "; ")));
}

}  // namespace

std::array<int64_t, 3> evalGrid(const Function &f, const std::vector<KernelArg> &args) {
  checkArgs(f, args);  // no verify(): this runs on every GPU launch, of IR verified when lowered
  return Interpreter(f, args).grid();
}

void interpret(const Function &f, const std::vector<KernelArg> &args) {
  checkAll(f, args);
  Interpreter in(f, args);
  std::array<int64_t, 3> g = in.grid();
  for (int64_t z = 0; z < g[2]; ++z)
    for (int64_t y = 0; y < g[1]; ++y)
      for (int64_t x = 0; x < g[0]; ++x) in.runProgram({x, y, z}, g);
}

}  // namespace tigon
