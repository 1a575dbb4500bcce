// Test fixtures shared by the backend tests: a builder of tile IR by hand (the front end is
// tested apart), sample kernels using the constructs of the language, and ptxas.
// (No fmt here: the test target also sees LibTorch's bundled fmt headers.)
#pragma once
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "dsl/ir.h"

namespace tigon::test {

using ir::BinaryOp;
using ir::DType;
using ir::OpKind;
using ir::ReduceOp;
using ir::UnaryOp;
using ir::ValueId;

template <typename... Args>
std::string cat(const Args &...args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

inline bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

// Builds tile IR the way lowering does: every op explicit, operand types equal.
struct KernelBuilder {
  ir::Function f;
  std::vector<ir::Block *> blocks;  // where ops go: innermost last

  KernelBuilder(const std::string &name, int warps) {
    f.name = name;
    f.warps = warps;
    blocks.push_back(&f.body);
  }

  int tensor(const std::string &name, DType dtype, std::vector<std::string> dims, std::vector<int64_t> staticDims,
             ir::Access access = ir::Access::In) {
    ir::Param p;
    p.kind = ir::Param::Kind::Tensor;
    p.name = name;
    p.dtype = dtype;
    p.access = access;
    p.dimNames = std::move(dims);
    p.staticDims = std::move(staticDims);
    f.params.push_back(p);
    return int(f.params.size() - 1);
  }

  int scalar(const std::string &name, DType dtype) {
    ir::Param p;
    p.name = name;
    p.dtype = dtype;
    f.params.push_back(p);
    return int(f.params.size() - 1);
  }

  ValueId add(ir::Op op, const ir::Type &result) {
    ValueId r = f.newValue(result);
    op.results = {r};
    blocks.back()->ops.push_back(std::move(op));
    return r;
  }
  static ir::Op make(OpKind kind, std::vector<ValueId> operands = {}) {
    ir::Op op;
    op.kind = kind;
    op.operands = std::move(operands);
    return op;
  }
  const ir::Type &type(ValueId v) const { return f.type(v); }

  ValueId constant(double value, DType dtype = DType::F32) {
    ir::Op op = make(OpKind::Const);
    op.fval = value;
    op.ival = ir::isFloat(dtype) ? 0 : int64_t(value);
    return add(op, {dtype, {}});
  }
  ValueId scalarArg(int param) {
    ir::Op op = make(OpKind::ScalarArg);
    op.param = param;
    return add(op, {f.params[size_t(param)].dtype, {}});
  }
  ValueId dim(int param, int axis) {
    ir::Op op = make(OpKind::TensorDim);
    op.param = param;
    op.axis = axis;
    return add(op, {DType::I32, {}});
  }
  ValueId programId(int axis = 0) {
    ir::Op op = make(OpKind::ProgramId);
    op.axis = axis;
    return add(op, {DType::I32, {}});
  }
  ValueId iota(int64_t n) { return add(make(OpKind::Iota), {DType::I32, {n}}); }
  ValueId broadcast(ValueId x, std::vector<int64_t> shape) {
    return add(make(OpKind::Broadcast, {x}), {type(x).dtype, std::move(shape)});
  }
  ValueId expandDims(ValueId x, int axis) {
    ir::Type t = type(x);
    t.shape.insert(t.shape.begin() + axis, 1);
    ir::Op op = make(OpKind::ExpandDims, {x});
    op.axis = axis;
    return add(op, t);
  }
  ValueId unary(UnaryOp u, ValueId x) {
    ir::Op op = make(OpKind::Unary, {x});
    op.uop = u;
    return add(op, type(x));
  }
  ValueId binary(BinaryOp bop, ValueId a, ValueId b) {
    ir::Op op = make(OpKind::Binary, {a, b});
    op.bop = bop;
    ir::Type t = type(a);
    if (ir::isComparison(bop)) t.dtype = DType::Bool;
    return add(op, t);
  }
  ValueId select(ValueId c, ValueId a, ValueId b) { return add(make(OpKind::Select, {c, a, b}), type(a)); }
  ValueId cast(ValueId x, DType dtype) { return add(make(OpKind::Cast, {x}), {dtype, type(x).shape}); }
  ValueId reduce(ReduceOp rop, ValueId x, int axis) {
    ir::Type t = type(x);
    t.shape.erase(t.shape.begin() + axis);
    if (rop == ReduceOp::Argmax) t.dtype = DType::I32;
    ir::Op op = make(OpKind::Reduce, {x});
    op.rop = rop;
    op.axis = axis;
    return add(op, t);
  }
  ValueId load(int param, std::vector<ValueId> indices, ValueId other) {
    ir::Type t{f.params[size_t(param)].dtype, {}};
    for (ValueId i : indices)
      if (type(i).rank() == 1) t.shape.push_back(type(i).shape[0]);
    indices.push_back(other);
    ir::Op op = make(OpKind::Load, indices);
    op.param = param;
    return add(op, t);
  }
  void store(int param, std::vector<ValueId> indices, ValueId value, OpKind kind = OpKind::Store) {
    indices.push_back(value);
    ir::Op op = make(kind, indices);
    op.param = param;
    blocks.back()->ops.push_back(op);
  }
  // for iv in [lo, hi) step `step`, carrying `inits`; body returns the next carried values.
  std::vector<ValueId> loop(ValueId lo, ValueId hi, ValueId step, std::vector<ValueId> inits,
                            const std::function<std::vector<ValueId>(ValueId, std::vector<ValueId>)> &body) {
    ir::Op op = make(OpKind::For, {lo, hi, step});
    op.operands.insert(op.operands.end(), inits.begin(), inits.end());
    op.regions.resize(1);
    ir::Block &region = op.regions[0];
    region.args.push_back(f.newValue({DType::I32, {}}));
    std::vector<ValueId> carried;
    for (ValueId v : inits) carried.push_back(f.newValue(type(v)));
    region.args.insert(region.args.end(), carried.begin(), carried.end());
    blocks.push_back(&region);
    std::vector<ValueId> next = body(region.args[0], carried);
    blocks.back()->ops.push_back(make(OpKind::Yield, next));
    blocks.pop_back();
    for (ValueId v : inits) op.results.push_back(f.newValue(type(v)));
    std::vector<ValueId> results = op.results;
    blocks.back()->ops.push_back(std::move(op));
    return results;
  }
  // grid = cdiv(size(param, axis), per)
  void gridCdiv(int param, int axis, int64_t per) {
    blocks.push_back(&f.grid);
    ValueId n = dim(param, axis), p = constant(double(per), DType::I32);
    ValueId g = binary(BinaryOp::Div, binary(BinaryOp::Sub, binary(BinaryOp::Add, n, p), constant(1, DType::I32)), p);
    f.grid.ops.push_back(make(OpKind::Yield, {g}));
    blocks.pop_back();
  }
  // program_id(0) * rows + iota(rows)
  ValueId rowIndex(int64_t rows) {
    ValueId first = binary(BinaryOp::Mul, programId(), constant(double(rows), DType::I32));
    return binary(BinaryOp::Add, broadcast(first, {rows}), iota(rows));
  }
};

// The DSL's rms_norm forward: y = T(x * rstd) * w, rstd = rsqrt(mean(x^2) + eps).
ir::Function rmsNorm(DType t, int64_t n, int64_t rows, int warps);

// out[r] = sum(x[r, :]) for two rows of 4096 f32 per program, 8 warps.
ir::Function rowSum();

// out[r] = argmax(x[r, :]), one row of 1000 bf16 per program.
ir::Function rowArgmax();

// out[c] += sum(x[r, c] over the program's 64 rows), 32 columns of f32.
ir::Function colSumAtomic();

// out[r] = log(sum(exp(x[r, :]))) over a run-time number of columns, in blocks of 1024 with
// a running max and sum carried by a loop.
ir::Function logsumexp();

// out[i, j] = s[i] * s[j] with s = sum(x, axis=1) over a 64 x 64 f32 tile.
ir::Function outer();

// y[r, c] = x[r, c] * b[r] + 1 over a run-time number of columns V, in blocks of 256 with i64
// column indices: whole chunks store as vectors, the last partial chunk element by element.
ir::Function scaleRows();

// y_op[r, c] = op(x[r, c]) for every float unary op, in dtype t, two rows per program.
ir::Function unaryOps(DType t, int64_t n);

// Cross-entropy per row, one row per program: loss[m] = logsumexp(x[m, :]) - x[m, target[m]],
// 0 where target is -100; V is a run-time size walked in blocks of 512 with scalar carried
// values, the target's logit is a scalar gather and the loss a scalar store.
ir::Function crossEntropy();

// out[c] = argmax(x[r, c]) over 32 rows of 256 bf16, with 32 warps.
ir::Function colArgmax();

// Integer ops, casts between every pair of dtypes, bool logic, selects, fma, float min/max
// and integer reductions (sum, max, min, argmax of i32 and i64 along both axes).
ir::Function scalarOps();

// The kernels above that every backend lowers: every construct of the language, each in a
// few layouts.
std::vector<ir::Function> handBuiltKernels();

struct PtxasRun {
  int status = -1;
  std::string output;
};


// ptxas -v (PTXAS_EXECUTABLE) on the PTX for arch, through a temporary file.
PtxasRun ptxas(const std::string &ptx, const std::string &arch);

}  // namespace tigon::test
