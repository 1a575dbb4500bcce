#include "codegen_fixtures.h"

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace tigon::test {

// The DSL's rms_norm forward: y = T(x * rstd) * w, rstd = rsqrt(mean(x^2) + eps).
ir::Function rmsNorm(DType t, int64_t n, int64_t rows, int warps) {
  KernelBuilder k("rms_norm_fwd", warps);
  k.f.bindings = {{"T", ir::dtypeName(t)}, {"N", std::to_string(n)}, {"ROWS", std::to_string(rows)}};
  int x = k.tensor("x", t, {"M", "N"}, {-1, n});
  int w = k.tensor("w", t, {"N"}, {n});
  int eps = k.scalar("eps", DType::F32);
  int y = k.tensor("y", t, {"M", "N"}, {-1, n}, ir::Access::Out);
  int rstd = k.tensor("rstd", DType::F32, {"M"}, {-1}, ir::Access::Out);
  k.gridCdiv(x, 0, rows);
  ValueId r = k.rowIndex(rows);
  ValueId c = k.iota(n);
  ValueId xs = k.cast(k.load(x, {r, c}, k.constant(0, t)), DType::F32);
  ValueId ss = k.reduce(ReduceOp::Sum, k.binary(BinaryOp::Mul, xs, xs), 1);
  ValueId mean = k.binary(BinaryOp::Div, ss, k.broadcast(k.constant(double(n)), {rows}));
  ValueId inv = k.unary(UnaryOp::Rsqrt, k.binary(BinaryOp::Add, mean, k.broadcast(k.scalarArg(eps), {rows})));
  k.store(rstd, {r}, inv);
  ValueId normed = k.cast(k.binary(BinaryOp::Mul, xs, k.broadcast(k.expandDims(inv, 1), {rows, n})), t);
  ValueId weight = k.broadcast(k.load(w, {c}, k.constant(0, t)), {rows, n});
  k.store(y, {r, c}, k.binary(BinaryOp::Mul, normed, weight));
  return k.f;
}

// out[r] = sum(x[r, :]) for two rows of 4096 f32 per program, 8 warps.
ir::Function rowSum() {
  KernelBuilder k("row_sum", 8);
  int x = k.tensor("x", DType::F32, {"M", "N"}, {-1, 4096});
  int out = k.tensor("out", DType::F32, {"M"}, {-1}, ir::Access::Out);
  k.gridCdiv(x, 0, 2);
  ValueId r = k.rowIndex(2);
  ValueId s = k.reduce(ReduceOp::Sum, k.load(x, {r, k.iota(4096)}, k.constant(0)), 1);
  k.store(out, {r}, s);
  return k.f;
}

// out[r] = argmax(x[r, :]), one row of 1000 bf16 per program.
ir::Function rowArgmax() {
  KernelBuilder k("row_argmax", 4);
  int x = k.tensor("x", DType::BF16, {"M", "N"}, {-1, 1000});
  int out = k.tensor("out", DType::I32, {"M"}, {-1}, ir::Access::Out);
  k.gridCdiv(x, 0, 1);
  ValueId r = k.rowIndex(1);
  ValueId xs = k.load(x, {r, k.iota(1000)}, k.constant(-INFINITY, DType::BF16));
  k.store(out, {r}, k.reduce(ReduceOp::Argmax, xs, 1));
  return k.f;
}

// out[c] += sum(x[r, c] over the program's 64 rows), 32 columns of f32.
ir::Function colSumAtomic() {
  KernelBuilder k("col_sum_atomic", 8);
  int x = k.tensor("x", DType::F32, {"M", "N"}, {-1, 32});
  int out = k.tensor("out", DType::F32, {"N"}, {32}, ir::Access::InOut);
  k.gridCdiv(x, 0, 64);
  ValueId c = k.iota(32);
  ValueId s = k.reduce(ReduceOp::Sum, k.load(x, {k.rowIndex(64), c}, k.constant(0)), 0);
  k.store(out, {c}, s, OpKind::AtomicAdd);
  return k.f;
}

// out[r] = log(sum(exp(x[r, :]))) over a run-time number of columns, in blocks of 1024 with
// a running max and sum carried by a loop.
ir::Function logsumexp() {
  constexpr int64_t rows = 2, block = 1024;
  KernelBuilder k("logsumexp", 4);
  int x = k.tensor("x", DType::F32, {"M", "V"}, {-1, -1});
  int out = k.tensor("out", DType::F32, {"M"}, {-1}, ir::Access::Out);
  k.gridCdiv(x, 0, rows);
  ValueId r = k.rowIndex(rows);
  ValueId ninf = k.constant(-INFINITY);
  ValueId m0 = k.broadcast(ninf, {rows}), s0 = k.broadcast(k.constant(0), {rows});
  auto results = k.loop(k.constant(0, DType::I32), k.dim(x, 1), k.constant(block, DType::I32), {m0, s0},
                        [&](ValueId c0, std::vector<ValueId> carried) -> std::vector<ValueId> {
                          ValueId cols = k.binary(BinaryOp::Add, k.broadcast(c0, {block}), k.iota(block));
                          ValueId xs = k.load(x, {r, cols}, ninf);
                          ValueId m = k.binary(BinaryOp::Max, carried[0], k.reduce(ReduceOp::Max, xs, 1));
                          ValueId shifted = k.binary(BinaryOp::Sub, xs, k.broadcast(k.expandDims(m, 1), {rows, block}));
                          ValueId e = k.reduce(ReduceOp::Sum, k.unary(UnaryOp::Exp, shifted), 1);
                          ValueId scale = k.unary(UnaryOp::Exp, k.binary(BinaryOp::Sub, carried[0], m));
                          return {m, k.binary(BinaryOp::Add, k.binary(BinaryOp::Mul, carried[1], scale), e)};
                        });
  k.store(out, {r}, k.binary(BinaryOp::Add, results[0], k.unary(UnaryOp::Log, results[1])));
  return k.f;
}

// out[i, j] = s[i] * s[j] with s = sum(x, axis=1) over a 64 x 64 f32 tile.
ir::Function outer() {
  constexpr int64_t n = 64;
  KernelBuilder k("outer", 4);
  int x = k.tensor("x", DType::F32, {"N", "N"}, {n, n});
  int out = k.tensor("out", DType::F32, {"N", "N"}, {n, n}, ir::Access::Out);
  k.gridCdiv(x, 0, n);
  ValueId i = k.iota(n);
  ValueId s = k.reduce(ReduceOp::Sum, k.load(x, {i, i}, k.constant(0)), 1);
  ValueId rowsOfS = k.broadcast(k.expandDims(s, 1), {n, n});
  ValueId colsOfS = k.broadcast(s, {n, n});
  k.store(out, {i, i}, k.binary(BinaryOp::Mul, rowsOfS, colsOfS));
  return k.f;
}

// y[r, c] = x[r, c] * b[r] + 1 over a run-time number of columns V, in blocks of 256 with i64
// column indices: whole chunks store as vectors, the last partial chunk element by element.
ir::Function scaleRows() {
  constexpr int64_t rows = 2, block = 256;
  KernelBuilder k("scale_rows", 2);
  int x = k.tensor("x", DType::F32, {"M", "V"}, {-1, -1});
  int b = k.tensor("b", DType::F32, {"M"}, {-1});
  int y = k.tensor("y", DType::F32, {"M", "V"}, {-1, -1}, ir::Access::Out);
  k.gridCdiv(x, 0, rows);
  ValueId r = k.rowIndex(rows);
  ValueId scale = k.broadcast(k.expandDims(k.load(b, {r}, k.constant(0)), 1), {rows, block});
  k.loop(k.constant(0, DType::I32), k.dim(x, 1), k.constant(block, DType::I32), {},
         [&](ValueId c0, std::vector<ValueId>) -> std::vector<ValueId> {
           ValueId cols = k.cast(k.binary(BinaryOp::Add, k.broadcast(c0, {block}), k.iota(block)), DType::I64);
           ValueId xs = k.load(x, {r, cols}, k.constant(0));
           ValueId one = k.broadcast(k.constant(1), {rows, block});
           k.store(y, {r, cols}, k.binary(BinaryOp::Add, k.binary(BinaryOp::Mul, xs, scale), one));
           return {};
         });
  return k.f;
}

// y_op[r, c] = op(x[r, c]) for every float unary op, in dtype t, two rows per program.
ir::Function unaryOps(DType t, int64_t n) {
  KernelBuilder k("unary_ops", 4);
  int x = k.tensor("x", t, {"M", "N"}, {-1, n});
  std::vector<UnaryOp> ops = {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Exp, UnaryOp::Exp2, UnaryOp::Log, UnaryOp::Log2,
                              UnaryOp::Sqrt, UnaryOp::Rsqrt, UnaryOp::Tanh, UnaryOp::Sigmoid};
  std::vector<int> outs;
  for (UnaryOp op : ops)
    outs.push_back(k.tensor(std::string("y_") + ir::unaryOpName(op), t, {"M", "N"}, {-1, n}, ir::Access::Out));
  k.gridCdiv(x, 0, 2);
  ValueId r = k.rowIndex(2), c = k.iota(n);
  ValueId xs = k.load(x, {r, c}, k.constant(0, t));
  for (size_t i = 0; i < ops.size(); ++i) k.store(outs[i], {r, c}, k.unary(ops[i], xs));
  return k.f;
}

// Cross-entropy per row, one row per program: loss[m] = logsumexp(x[m, :]) - x[m, target[m]],
// 0 where target is -100; V is a run-time size walked in blocks of 512 with scalar carried
// values, the target's logit is a scalar gather and the loss a scalar store.
ir::Function crossEntropy() {
  constexpr int64_t block = 512;
  KernelBuilder k("cross_entropy", 4);
  int x = k.tensor("x", DType::BF16, {"M", "V"}, {-1, -1});
  int target = k.tensor("target", DType::I64, {"M"}, {-1});
  int loss = k.tensor("loss", DType::F32, {"M"}, {-1}, ir::Access::Out);
  k.gridCdiv(x, 0, 1);
  ValueId row = k.programId();
  ValueId ninf = k.constant(-INFINITY);
  auto results = k.loop(k.constant(0, DType::I32), k.dim(x, 1), k.constant(block, DType::I32), {ninf, k.constant(0)},
                        [&](ValueId c0, std::vector<ValueId> carried) -> std::vector<ValueId> {
                          ValueId cols = k.binary(BinaryOp::Add, k.iota(block), k.broadcast(c0, {block}));
                          ValueId xs = k.cast(k.load(x, {row, cols}, k.constant(-INFINITY, DType::BF16)), DType::F32);
                          ValueId m = k.binary(BinaryOp::Max, carried[0], k.reduce(ReduceOp::Max, xs, 0));
                          ValueId e = k.unary(UnaryOp::Exp, k.binary(BinaryOp::Sub, xs, k.broadcast(m, {block})));
                          ValueId scale = k.unary(UnaryOp::Exp, k.binary(BinaryOp::Sub, carried[0], m));
                          ValueId sum = k.binary(BinaryOp::Add, k.binary(BinaryOp::Mul, carried[1], scale),
                                                 k.reduce(ReduceOp::Sum, e, 0));
                          return {m, sum};
                        });
  ValueId lse = k.binary(BinaryOp::Add, results[0], k.unary(UnaryOp::Log, results[1]));
  ValueId t = k.load(target, {row}, k.constant(-100, DType::I64));
  ValueId picked = k.cast(k.load(x, {row, t}, k.constant(0, DType::BF16)), DType::F32);
  ValueId valid = k.binary(BinaryOp::Ne, t, k.constant(-100, DType::I64));
  k.store(loss, {row}, k.select(valid, k.binary(BinaryOp::Sub, lse, picked), k.constant(0)));
  return k.f;
}

// out[c] = argmax(x[r, c]) over 32 rows of 256 bf16, with 32 warps.
ir::Function colArgmax() {
  KernelBuilder k("col_argmax", 32);
  k.f.bindings = {{"N", "256"}};
  int x = k.tensor("x", DType::BF16, {"M", "N"}, {-1, 256});
  int out = k.tensor("out", DType::I32, {"N"}, {256}, ir::Access::Out);
  k.gridCdiv(x, 0, 32);
  ValueId c = k.iota(256);
  ValueId xs = k.load(x, {k.rowIndex(32), c}, k.constant(0, DType::BF16));
  k.store(out, {c}, k.reduce(ReduceOp::Argmax, xs, 0));
  return k.f;
}

// Integer ops, casts between every pair of dtypes, bool logic, selects, fma, float min/max
// and integer reductions (sum, max, min, argmax of i32 and i64 along both axes).
ir::Function scalarOps() {
  constexpr int64_t rows = 4, n = 64;
  KernelBuilder k("scalar_ops", 4);
  const std::vector<DType> dtypes = {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I64, DType::Bool};
  std::vector<int> in, out;
  for (DType t : dtypes) in.push_back(k.tensor(cat("x_", ir::dtypeName(t)), t, {"M", "N"}, {-1, n}));
  for (DType t : dtypes) out.push_back(k.tensor(cat("y_", ir::dtypeName(t)), t, {"M", "N"}, {-1, n}, ir::Access::Out));
  int rowsOut = k.tensor("row_i32", DType::I32, {"M"}, {-1}, ir::Access::Out);
  int colsOut = k.tensor("col_i64", DType::I64, {"M", "N"}, {-1, n}, ir::Access::Out);  // a row per program
  k.gridCdiv(in[0], 0, rows);
  ValueId r = k.rowIndex(rows), c = k.iota(n);
  std::vector<ValueId> xs;
  for (size_t i = 0; i < dtypes.size(); ++i) xs.push_back(k.load(in[i], {r, c}, k.constant(0, dtypes[i])));
  for (size_t to = 0; to < dtypes.size(); ++to)
    for (size_t from = 0; from < dtypes.size(); ++from)
      if (from != to) k.store(out[to], {r, c}, k.cast(xs[from], dtypes[to]));
  for (size_t i : {3, 4}) {  // i32, i64
    ValueId a = xs[i], b = k.binary(BinaryOp::Add, a, k.broadcast(k.constant(3, dtypes[i]), {rows, n}));
    ValueId v = a;
    for (BinaryOp op : {BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Rem, BinaryOp::Min, BinaryOp::Max,
                        BinaryOp::And, BinaryOp::Or})
      v = k.binary(op, v, b);
    v = k.unary(UnaryOp::Abs, k.unary(UnaryOp::Neg, v));
    k.store(out[i], {r, c}, k.select(k.binary(BinaryOp::Lt, a, b), v, a));
  }
  ValueId bits = xs[5];
  for (BinaryOp op : {BinaryOp::And, BinaryOp::Or, BinaryOp::Eq, BinaryOp::Lt, BinaryOp::Ne})
    bits = k.binary(op, bits, k.unary(UnaryOp::Not, xs[5]));
  k.store(out[5], {r, c}, bits);
  for (size_t i : {0, 1, 2}) {  // f32, f16, bf16
    ValueId a = xs[i], b = k.unary(UnaryOp::Abs, a);
    ValueId fma = k.add(KernelBuilder::make(OpKind::Fma, {a, b, a}), k.type(a));
    ValueId v = k.binary(BinaryOp::Max, k.binary(BinaryOp::Min, a, b), fma);
    k.store(out[i], {r, c}, k.select(k.binary(BinaryOp::Ne, a, v), v, k.binary(BinaryOp::Div, a, b)));
  }
  ValueId rowSum = k.reduce(ReduceOp::Sum, xs[3], 1), rowMax = k.reduce(ReduceOp::Max, xs[3], 1);
  ValueId rowArgmax = k.reduce(ReduceOp::Argmax, xs[4], 1);
  k.store(rowsOut, {r}, k.binary(BinaryOp::Add, k.binary(BinaryOp::Add, rowSum, rowMax), rowArgmax));
  ValueId colMin = k.reduce(ReduceOp::Min, xs[4], 0), colSum = k.reduce(ReduceOp::Sum, xs[4], 0);
  ValueId colArgmax = k.cast(k.reduce(ReduceOp::Argmax, xs[3], 0), DType::I64);
  k.store(colsOut, {k.programId(), c}, k.binary(BinaryOp::Add, colMin, k.binary(BinaryOp::Add, colSum, colArgmax)));
  return k.f;
}

std::vector<ir::Function> handBuiltKernels() {
  return {rowSum(),     rowArgmax(),   colSumAtomic(), logsumexp(),          outer(),
          scaleRows(),  crossEntropy(), scalarOps(),   unaryOps(DType::F32, 1000), unaryOps(DType::F16, 7),
          unaryOps(DType::BF16, 1000), rmsNorm(DType::BF16, 1000, 4, 8), rmsNorm(DType::F32, 7, 2, 1)};
}

PtxasRun ptxas(const std::string &ptx, const std::string &arch) {
  static std::atomic<int> counter{0};
  namespace fs = std::filesystem;
  fs::path file = fs::temp_directory_path() /
                  cat("tigon_test_", ::getpid(), "_", counter++, ".ptx");
  PtxasRun run;
  std::FILE *out = std::fopen(file.c_str(), "w");
  if (!out) {
    run.output = "cannot write " + file.string();
    return run;
  }
  std::fwrite(ptx.data(), 1, ptx.size(), out);
  std::fclose(out);
  std::string cubin = file.string() + ".cubin";
  std::string cmd = cat(PTXAS_EXECUTABLE, " -arch=", arch, " -v ", file.string(), " -o ", cubin, " 2>&1");
  if (std::FILE *pipe = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) run.output.append(buf, n);
    run.status = ::pclose(pipe);
  }
  fs::remove(file);
  fs::remove(cubin);
  return run;
}

}  // namespace tigon::test
