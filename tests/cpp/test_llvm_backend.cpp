// The LLVM backend: tile IR built by hand (the front end is separate) -> PTX, checked by
// reading the PTX and by ptxas (PTXAS_EXECUTABLE) for sm_80 and sm_90.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <mutex>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "codegen/layout.h"
#include "codegen/llvm_backend.h"
#include "dsl/error.h"

// (No fmt here: the test target also sees LibTorch's bundled fmt headers.)
namespace {

template <typename... Args>
std::string cat(const Args &...args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

using namespace tigon;
using ir::BinaryOp;
using ir::DType;
using ir::OpKind;
using ir::ReduceOp;
using ir::UnaryOp;
using ir::ValueId;

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

struct PtxasRun {
  int status = -1;
  std::string output;
};

// ptxas -v on the PTX through a temporary file.
PtxasRun ptxas(const std::string &ptx, const std::string &arch) {
  static std::atomic<int> counter{0};
  namespace fs = std::filesystem;
  fs::path file = fs::temp_directory_path() /
                  cat("tigon_test_", ::getpid(), "_", counter++, ".ptx");
  std::FILE *out = std::fopen(file.c_str(), "w");
  REQUIRE(out);
  std::fwrite(ptx.data(), 1, ptx.size(), out);
  std::fclose(out);
  std::string cubin = file.string() + ".cubin";
  std::string cmd = cat(PTXAS_EXECUTABLE, " -arch=", arch, " -v ", file.string(), " -o ", cubin, " 2>&1");
  PtxasRun run;
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

bool contains(const std::string &s, const std::string &part) { return s.find(part) != std::string::npos; }

void checkAccepted(const ir::Function &f, const std::string &arch) {
  codegen::PtxResult r = codegen::compileToPtx(f, arch);
  PtxasRun run = ptxas(r.ptx, arch);
  INFO(f.name, " on ", arch, ": ", run.output);
  CHECK(run.status == 0);
}

// The largest per-thread element count of the rms_norm kernel's [ROWS, N] tiles, worked out
// from docs/ARCHITECTURE.md independently of the backend.
int64_t rmsElementsPerThread(DType t, int64_t n, int64_t rows, int warps) {
  int64_t threads = 32 * warps, v = 16 / ir::dtypeBytes(t), chunks = (n + v - 1) / v, tc = 1;
  while (tc < chunks && tc < threads) tc *= 2;
  int64_t tr = threads / tc;
  int64_t perRow = std::min(n, (chunks + tc - 1) / tc * v);
  return (rows + tr - 1) / tr * perRow;
}

}  // namespace

TEST_CASE("llvm: layout geometry follows ARCHITECTURE.md") {
  using codegen::Dist;
  codegen::Geometry g = codegen::computeGeometry(rmsNorm(DType::BF16, 4096, 1, 4));
  CHECK(g.threads == 128);
  CHECK(g.v == 8);
  CHECK(g.tc == 128);
  CHECK(g.tr == 1);
  g = codegen::computeGeometry(rmsNorm(DType::F32, 128, 4, 8));
  CHECK(g.v == 4);
  CHECK(g.tc == 32);
  CHECK(g.tr == 8);
  g = codegen::computeGeometry(rmsNorm(DType::F16, 1, 4, 1));
  CHECK(g.tc == 1);
  CHECK(g.tr == 32);

  // N = 1000, v = 8, tc = 128: one chunk per thread, lanes 125.. hold padding only.
  codegen::Geometry geo{128, 8, 128, 1};
  auto slots = codegen::axisSlots(geo, Dist::G1, 1000);
  REQUIRE(slots.size() == 8);
  CHECK(slots[0].offset == 0);
  CHECK_FALSE(slots[0].alwaysValid);
  // N = 4096: four chunks per thread, all in range.
  slots = codegen::axisSlots(geo, Dist::G1, 4096);
  REQUIRE(slots.size() == 32);
  CHECK(slots[8].offset == 1024);
  CHECK(std::all_of(slots.begin(), slots.end(), [](const codegen::Slot &s) { return s.alwaysValid; }));
  // N = 7 < v: one partial chunk, the missing columns are left out.
  CHECK(codegen::axisSlots(geo, Dist::G1, 7).size() == 7);
  // Rows: 4 rows over 8 row groups: one slot, valid only for g < 4.
  slots = codegen::axisSlots(codegen::Geometry{256, 8, 32, 8}, Dist::G0, 4);
  REQUIRE(slots.size() == 1);
  CHECK_FALSE(slots[0].alwaysValid);

  // rms_norm: the row reduction's result and everything computed from it is row-like (G0).
  ir::Function f = rmsNorm(DType::BF16, 128, 4, 8);
  codegen::LayoutPlan plan(f);
  for (size_t id = 0; id < f.values.size(); ++id) {
    const ir::Type &t = f.values[id];
    if (t.rank() == 1 && t.dtype == DType::F32 && t.shape[0] == 4) {
      INFO("%", id);
      CHECK(plan.home(ValueId(id)).dist[0] == Dist::G0);
    }
  }
}

TEST_CASE("llvm: rms_norm compiles and ptxas accepts it for every config") {
  struct Config {
    std::string arch;
    DType dtype;
    int64_t n, rows;
    int warps;
  };
  std::vector<Config> configs;
  for (const char *arch : {"sm_80", "sm_90"})
    for (DType t : {DType::F32, DType::F16, DType::BF16})
      for (int64_t n : {1, 7, 128, 1000, 4096, 8192})
        for (int64_t rows : {1, 4})
          for (int warps : {1, 4, 8}) configs.push_back({arch, t, n, rows, warps});

  std::mutex mu;
  std::vector<std::string> failures;
  int accepted = 0, rejected = 0;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < configs.size();) {
      const Config &c = configs[i];
      std::string name = cat(c.arch, " ", ir::dtypeName(c.dtype), " N=", c.n, " ROWS=", c.rows, " warps=", c.warps);
      bool tooLarge = rmsElementsPerThread(c.dtype, c.n, c.rows, c.warps) > 256;
      std::string problem;
      try {
        codegen::PtxResult r = codegen::compileToPtx(rmsNorm(c.dtype, c.n, c.rows, c.warps), c.arch);
        PtxasRun run = ptxas(r.ptx, c.arch);
        if (tooLarge) problem = "compiled, but the tile needs more than 256 elements per thread";
        else if (run.status != 0) problem = "ptxas: " + run.output;
      } catch (const Error &e) {
        if (!tooLarge || !contains(e.what(), "elements per thread") || !contains(e.what(), "more warps"))
          problem = std::string("error: ") + e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!problem.empty()) failures.push_back(name + ": " + problem);
      (tooLarge ? rejected : accepted)++;
    }
  };
  std::thread a(worker), b(worker);  // also: concurrent compiles
  a.join();
  b.join();
  for (const std::string &f : failures) FAIL_CHECK(f);
  CHECK(accepted == 204);
  CHECK(rejected == 12);  // N = 4096 and 8192, ROWS = 4, one warp: 512 or 1024 elements
}

TEST_CASE("llvm: rms_norm bf16 N=4096 uses 16-byte accesses and does not spill") {
  for (const char *arch : {"sm_80", "sm_90"})
    for (int64_t rows : {1, 4})
      for (int warps : {4, 8}) {
        codegen::PtxResult r = codegen::compileToPtx(rmsNorm(DType::BF16, 4096, rows, warps), arch, true);
        INFO(arch, " ROWS=", rows, " warps=", warps);
        CHECK(contains(r.ptx, "ld.global.v4"));
        CHECK(contains(r.ptx, "st.global.v4"));
        CHECK(contains(r.ptx, cat(".maxntid ", 32 * warps, ", 1, 1")));
        CHECK(contains(r.ptx, "rsqrt.approx.f32"));
        CHECK(contains(r.llvmIR, "define ptx_kernel void @rms_norm_fwd(ptr addrspace(1)"));
        PtxasRun run = ptxas(r.ptx, arch);
        INFO(run.output);
        CHECK(run.status == 0);
        CHECK(contains(run.output, "0 bytes stack frame"));
        CHECK(contains(run.output, "0 bytes spill stores"));
        CHECK(contains(run.output, "0 bytes spill loads"));
      }
}

TEST_CASE("llvm: kernel ABI is pointer, sizes, strides per tensor, then scalars") {
  codegen::PtxResult r = codegen::compileToPtx(rmsNorm(DType::F32, 128, 4, 4), "sm_90");
  size_t entry = r.ptx.find(".entry rms_norm_fwd(");
  REQUIRE(entry != std::string::npos);
  std::string params = r.ptx.substr(entry, r.ptx.find(')', entry) - entry);
  // x: ptr, 2 sizes, 2 strides; w: ptr, size, stride; eps; y: 5; rstd: 3.
  int u64 = 0, f32 = 0;
  for (size_t at = 0; (at = params.find(".param .u64", at)) != std::string::npos; ++at) ++u64;
  for (size_t at = 0; (at = params.find(".param .f32", at)) != std::string::npos; ++at) ++f32;
  CHECK(u64 == 16);
  CHECK(f32 == 1);
  CHECK(params.find(".param .f32") > params.find("rms_norm_fwd_param_7"));  // eps is the 9th
}

TEST_CASE("llvm: row sum over more than 32 lanes goes through shared memory") {
  // tc = 256 > 32: shuffles inside each warp, then one shared-memory round over 8 warps.
  ir::Function f = rowSum();
  CHECK(codegen::computeGeometry(f).tc == 256);
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "shfl.sync.bfly.b32"));
    CHECK(contains(p.ptx, "bar.sync"));
    CHECK(contains(p.ptx, "st.shared.f32"));
    CHECK(contains(p.ptx, "ld.global.v4.f32"));
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: argmax over a row keeps value and index through shuffles and shared memory") {
  ir::Function f = rowArgmax();
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "shfl.sync.bfly.b32"));
    CHECK(contains(p.ptx, "bar.sync"));
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: column sums with atomic_add add each element once") {
  // sum over rows (axis 0, over g: lane bits then shared memory) -> [32] column-like,
  // replicated over row groups: only row group 0 adds.
  ir::Function f = colSumAtomic();
  codegen::Geometry g = codegen::computeGeometry(f);
  CHECK(g.tc == 8);
  CHECK(g.tr == 32);
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "atom.global.add.f32"));  // ptxas turns it into RED (result unused)
    CHECK(contains(p.ptx, "bar.sync"));
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: for loop computes an online logsumexp over column blocks") {
  // V is a run-time size: whole chunks load as vectors, chunks at the end element by element.
  ir::Function f = logsumexp();
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "ld.global.v4.f32"));
    CHECK(contains(p.ptx, "ex2.approx.f32"));
    CHECK(contains(p.ptx, "lg2.approx.f32"));
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: a row reduction used as a column is converted through shared memory") {
  // out[i, j] = s[i] * s[j] with s = sum(x, axis=1): s is row-like; its column use is
  // converted once through shared memory.
  ir::Function f = outer();
  ValueId s = 0, i = 0;  // the row sums and the iota: the reduction's result and operand
  for (const ir::Op &op : f.body.ops) {
    if (op.kind == OpKind::Reduce) s = op.results[0];
    if (op.kind == OpKind::Iota) i = op.results[0];
  }
  codegen::LayoutPlan plan(f);
  REQUIRE(plan.layouts(s).size() == 2);
  CHECK_FALSE(plan.recomputed(s));
  CHECK(plan.recomputed(i));
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "st.shared.f32"));
    CHECK(contains(p.ptx, "ld.shared"));
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: stores over a run-time size use vectors for whole chunks and elements at the end") {
  ir::Function f = scaleRows();
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "ld.global.v4.f32"));
    CHECK(contains(p.ptx, "st.global.v4.f32"));
    CHECK(contains(p.ptx, "st.global.f32"));  // the element-wise fallback
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: only the value a use needs in the other orientation is converted") {
  // s = sum(x, axis=1) is row-like; t = s * s too; only t is used as a column.
  constexpr int64_t n = 64;
  KernelBuilder k("convert_once", 4);
  int x = k.tensor("x", DType::F32, {"N", "N"}, {n, n});
  int out = k.tensor("out", DType::F32, {"N", "N"}, {n, n}, ir::Access::Out);
  k.gridCdiv(x, 0, n);
  ValueId i = k.iota(n);
  ValueId s = k.reduce(ReduceOp::Sum, k.load(x, {i, i}, k.constant(0)), 1);
  ValueId t = k.binary(BinaryOp::Mul, s, s);
  ValueId rowsOfS = k.broadcast(k.expandDims(s, 1), {n, n});
  k.store(out, {i, i}, k.binary(BinaryOp::Mul, rowsOfS, k.broadcast(t, {n, n})));
  codegen::LayoutPlan plan(k.f);
  CHECK(plan.layouts(s).size() == 1);
  REQUIRE(plan.layouts(t).size() == 2);
  CHECK(plan.home(t).dist[0] == codegen::Dist::G0);
  CHECK(plan.layouts(t)[1].dist[0] == codegen::Dist::G1);
  checkAccepted(k.f, "sm_90");
}

TEST_CASE("llvm: an unknown arch is a tigon::Error naming the supported ones") {
  ir::Function f = rmsNorm(DType::F32, 128, 1, 4);
  CHECK_THROWS_WITH_AS(codegen::compileToPtx(f, "sm_12"), doctest::Contains("sm_80"), Error);
  CHECK_THROWS_WITH_AS(codegen::compileToPtx(f, "compute_90"), doctest::Contains("unknown GPU arch"), Error);
}

TEST_CASE("llvm: resource limits are tigon::Errors naming the kernel and config") {
  // argmax over axis 0 of bf16[32, 256] with 32 warps: 32 warp partials of (f32, i32) for each
  // of 8 column slots of 32 lanes: 64 KiB of shared memory.
  ir::Function f = colArgmax();
  CHECK_THROWS_WITH_AS(codegen::compileToPtx(f, "sm_90"),
                       doctest::Contains("col_argmax [N=256, warps=32]: needs 65536 bytes of shared memory"), Error);

  CHECK_THROWS_WITH_AS(codegen::compileToPtx(rmsNorm(DType::BF16, 8192, 4, 1), "sm_90"),
                       doctest::Contains("needs 1024 elements per thread"), Error);
  CHECK_THROWS_WITH_AS(codegen::compileToPtx(rmsNorm(DType::BF16, 8192, 4, 3), "sm_90"),
                       doctest::Contains("power of two"), Error);
}

TEST_CASE("llvm: rms_norm bf16 N=4096 compile time") {
  ir::Function f = rmsNorm(DType::BF16, 4096, 1, 4);
  std::vector<double> ms;
  for (int i = 0; i < 7; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    codegen::compileToPtx(f, "sm_90");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  MESSAGE(cat("rms_norm bf16 N=4096 ROWS=1 warps=4 -> PTX: median ", ms[3], " ms (min ", ms.front(), ", max ",
              ms.back(), ")"));
  CHECK(ms[3] < 2000);
}
