// The tile IR: typed, SSA, every shape static. Produced by dsl/lower.cpp for one
// specialization (dtypes, const and tune values bound), consumed by the interpreter and the
// code generators. Keep the op set small: the fewest kinds that express the language.
//
// Semantics (docs/LANGUAGE.md section 7 says the same for users; every backend follows them):
// - f16/bf16 arithmetic is computed in f32 and rounded to nearest even after every op;
// - min/max propagate NaN and order -0 below +0; comparisons with NaN are false except Ne;
// - ints wrap; Div truncates toward zero; Div and Rem by zero give 0;
// - float->int casts truncate and saturate (NaN -> 0); other casts round to nearest even;
// - Reduce Sum of f16/bf16 accumulates in at least f32 and rounds once; Argmax gives the
//   first index of the maximum, a NaN counting as the maximum.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tigon::ir {

enum class DType : uint8_t { F32, F16, BF16, I32, I64, Bool };

const char *dtypeName(DType t);  // "f32", "f16", "bf16", "i32", "i64", "bool"
int dtypeBytes(DType t);         // bool counts 1
bool isFloat(DType t);
bool isInt(DType t);  // i32 and i64 (not bool)
bool parseDType(const std::string &name, DType *out);

struct Type {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty: a scalar (0-D)
  int rank() const { return int(shape.size()); }
  int64_t numel() const;
  bool operator==(const Type &o) const { return dtype == o.dtype && shape == o.shape; }
  bool operator!=(const Type &o) const { return !(*this == o); }
};
std::string typeString(const Type &t);  // "bf16[4, 128]", "f32"

struct SourceLoc {
  int line = 0, col = 0;
};

using ValueId = int32_t;  // index into Function::values

enum class OpKind : uint8_t {
  Const,        // attr: fval (floats) or ival (ints, bool); result 0-D of `type`
  ScalarArg,    // attr: param (index into Function::params, a scalar param); 0-D
  TensorDim,    // attr: param (a tensor param), axis; 0-D i32: run-time size of that dimension
  ProgramId,    // attr: axis (0..2); 0-D i32
  NumPrograms,  // attr: axis (0..2); 0-D i32
  Iota,         // result i32[n]: 0, 1, ..., n-1
  Broadcast,    // operand x; result has x's dtype and the result shape; numpy rules
                // (x's axes aligned right, each 1 or equal; rank may grow)
  ExpandDims,   // operand x; attr axis: inserts a size-1 axis at `axis`
  Unary,        // attr uop; operand x; result same type (Not: bool)
  Binary,       // attr bop; operands a, b of the same type; comparisons give bool of that shape
  Select,       // operands cond (bool), a, b, all the same shape; a and b the same dtype
  Fma,          // operands a, b, c of one float type: a*b+c with a single rounding (f32)
  Cast,         // operand x; result dtype = type.dtype
  Reduce,       // attr rop, axis; operand x; result drops `axis` (argmax gives i32)
  Load,         // attr param (tensor); operands: one index per tensor dim (each 0-D or 1-D, i32
                // or i64), then `other` (0-D, tensor dtype). Orthogonal indexing: the result
                // shape is the concatenation of the 1-D index shapes in order. An element is
                // read when every index is in [0, size) of its dimension, else it is `other`.
  Store,        // attr param; operands: indices as for Load, then the value (shape = the
                // concatenation of the 1-D index shapes, tensor dtype). Out-of-bounds
                // elements are skipped. No results.
  AtomicAdd,    // as Store, but adds (f32 or i32 tensors); order unspecified.
  For,          // operands lo, hi, step (0-D i32), then the initial carried values.
                // regions[0]: block args (iv, carried...), ends with Yield of the new carried
                // values. Runs iv = lo, lo+step, ... while iv < hi (step > 0).
                // results: the carried values after the last iteration.
  Yield,        // terminator of a For body and of the grid block; operands: the values.
};

enum class UnaryOp : uint8_t { Neg, Not, Abs, Exp, Exp2, Log, Log2, Sqrt, Rsqrt, Tanh, Sigmoid };
enum class BinaryOp : uint8_t {
  Add, Sub, Mul, Div, Rem, Min, Max,  // arithmetic (Rem: C semantics, ints only)
  Lt, Le, Gt, Ge, Eq, Ne,             // comparisons -> bool
  And, Or,                            // bool or int
};
enum class ReduceOp : uint8_t { Sum, Max, Min, Argmax };

const char *opKindName(OpKind k);
const char *unaryOpName(UnaryOp op);
const char *binaryOpName(BinaryOp op);
const char *reduceOpName(ReduceOp op);
bool isComparison(BinaryOp op);
// Approximate ops: exp, exp2, log, log2, rsqrt, tanh, sigmoid on f32 may use the hardware's
// fast approximations (relative error below 2^-20); sqrt and division are IEEE exact.
bool isApproximate(UnaryOp op);

struct Block;

struct Op {
  OpKind kind = OpKind::Const;
  std::vector<ValueId> operands;
  std::vector<ValueId> results;
  std::vector<Block> regions;
  // attributes (which ones are meaningful depends on kind, see OpKind)
  double fval = 0;
  int64_t ival = 0;
  int axis = 0;
  int param = -1;
  UnaryOp uop = UnaryOp::Neg;
  BinaryOp bop = BinaryOp::Add;
  ReduceOp rop = ReduceOp::Sum;
  SourceLoc loc;
};

struct Block {
  std::vector<ValueId> args;
  std::vector<Op> ops;
};

enum class Access : uint8_t { In, Out, InOut };

struct Param {
  enum class Kind : uint8_t { Tensor, Scalar } kind = Kind::Scalar;
  std::string name;
  DType dtype = DType::F32;
  // tensors only:
  Access access = Access::In;
  std::vector<std::string> dimNames;  // as declared, e.g. {"M", "N"}
  std::vector<int64_t> staticDims;    // the bound value of a const dim, else -1 (run time)
  // Caller's promise, part of the specialization: the base pointer is 16-byte aligned and
  // every stride but the last is a multiple of 16 bytes. The last stride is always 1.
  bool aligned16 = true;
  int rank() const { return int(dimNames.size()); }
};

// A kernel after specialization. Values are numbered; `values[id]` is the type of value id.
struct Function {
  std::string name;
  std::vector<Param> params;
  std::vector<Type> values;
  Block body;                                  // the program run by each thread block
  Block grid;                                  // scalar ops only; ends with Yield of 1 to 3 i32
  int warps = 4;                               // threads per program = 32 * warps
  std::map<std::string, std::string> bindings;  // what was specialized ("T" -> "bf16", "N" -> "4096")

  ValueId newValue(const Type &t) {
    values.push_back(t);
    return ValueId(values.size() - 1);
  }
  const Type &type(ValueId v) const { return values.at(size_t(v)); }
};

// Human-readable text (`tigon compile --emit ir`).
std::string print(const Function &f);

// Structural checks: operand counts and types per op, dominance within blocks, terminators.
// Returns the problems found (empty: valid).
std::vector<std::string> verify(const Function &f);

}  // namespace tigon::ir
