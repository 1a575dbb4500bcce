// The front end: parsing, checking and lowering to tile IR.
#include <doctest/doctest.h>

#include "dsl/error.h"
#include "dsl/frontend.h"
#include "dsl/parser.h"
#include "runtime/builtin_kernels.h"

using namespace tigon;

namespace {

ir::Function lower(const std::string &src, const std::string &kernel, const Bindings &b) {
  return specialize(loadTileSource("t.tile", src), kernel, b);
}

// All ops of a block and its loops, in order.
void collect(const ir::Block &b, std::vector<const ir::Op *> &out) {
  for (const ir::Op &op : b.ops) {
    out.push_back(&op);
    for (const ir::Block &r : op.regions) collect(r, out);
  }
}

std::vector<const ir::Op *> ops(const ir::Function &f, ir::OpKind kind) {
  std::vector<const ir::Op *> all, out;
  collect(f.body, all);
  for (const ir::Op *op : all)
    if (op->kind == kind) out.push_back(op);
  return out;
}

}  // namespace

TEST_CASE("frontend: every built-in kernel checks and lowers at several sizes") {
  // every file checks; every kernel of every op lowers with the op's hidden size and dtype bound
  for (const auto &[file, source] : builtinKernelSources()) loadTileSource(file, source);
  for (const BuiltinOp &op : builtinOps()) {
    TileModule m = loadTileSource(op.file, builtinKernelSources().at(op.file));
    std::vector<std::string> kernels = {op.forward};
    kernels.insert(kernels.end(), op.backward.begin(), op.backward.end());
    // rotary widths are even (pairs of channels)
    bool even = op.name == "rope" || op.name == "mrope";
    for (const std::string &k : kernels)
      for (const char *n : {"1", "7", "128", "4096"})
        for (const char *t : {"f32", "f16", "bf16"}) {
          CAPTURE(k);
          CAPTURE(n);
          std::string size = even && std::string(n) != "128" && std::string(n) != "4096" ? std::to_string(2 * std::stoi(n)) : n;
          Bindings b = {{op.dtypeParam, t}};
          for (const std::string &p : op.hiddenParams) b[p] = size;
          ir::Function f = specialize(m, k, withOpDefaults(op, *m.ast.findKernel(k), b, std::stoi(size)));
          CHECK(ir::verify(f).empty());
          for (const std::string &p : op.hiddenParams) CHECK(f.bindings.at(p) == size);
        }
  }
}

TEST_CASE("frontend: shapes are static after specialization, tune values default to the first") {
  ir::Function f = specialize(loadTileSource("rms_norm.tile", builtinKernelSources().at("rms_norm.tile")),
                              "rms_norm_fwd", {{"N", "1000"}, {"T", "bf16"}});
  CHECK(f.warps == 4);
  CHECK(f.bindings.at("ROWS") == "1");
  CHECK(f.params[0].staticDims == std::vector<int64_t>{-1, 1000});
  auto loads = ops(f, ir::OpKind::Load);
  REQUIRE(loads.size() == 2);
  CHECK(f.type(loads[0]->results[0]) == ir::Type{ir::DType::BF16, {1, 1000}});
  CHECK(f.type(loads[1]->results[0]) == ir::Type{ir::DType::BF16, {1000}});
  auto reduces = ops(f, ir::OpKind::Reduce);
  REQUIRE(reduces.size() == 1);
  CHECK(reduces[0]->axis == 1);
  CHECK(f.type(reduces[0]->results[0]) == ir::Type{ir::DType::F32, {1}});
}

TEST_CASE("frontend: weak literals take the dtype they meet") {
  const char *src = R"(
kernel k<N: const>(x: bf16[N], y: out bf16[N], i: out i64[N]) grid 1 {
    let c = iota(N);
    y[c] = x[c] * 2 + 0.5;
    i[c] = i64(c) + 1;
})";
  ir::Function f = lower(src, "k", {{"N", "8"}});
  for (const ir::Op *op : ops(f, ir::OpKind::Const)) {
    ir::DType t = f.type(op->results[0]).dtype;
    CHECK((t == ir::DType::BF16 || t == ir::DType::I64));
  }
  CHECK_THROWS_WITH_AS(lower("kernel k(x: i32[N], y: out i32[N]) grid 1 { y[iota(4)] = x[iota(4)] + 0.5; }", "k", {}),
                       doctest::Contains("a float literal cannot meet i32[4]"), Error);
}

TEST_CASE("frontend: a const may be 0 (a flag), not negative; WARPS must still be 1 to 32") {
  const char *src = R"(
kernel k<F: const>(x: f32[M], y: out f32[1]) grid 1 {
    var s = zeros([32]);
    for c0 in range(0, where(F == 0, 0, M), 32) { s = s + x[c0 + iota(32)]; }
    y[0] = sum(s);
})";
  CHECK(lower(src, "k", {{"F", "0"}}).bindings.at("F") == "0");
  CHECK_THROWS_WITH_AS(lower(src, "k", {{"F", "-1"}}), doctest::Contains("F must be a non-negative integer, got -1"), Error);
  CHECK_THROWS_WITH_AS(lower("kernel k<WARPS: const>(y: out f32[1]) grid 1 { y[0] = 1.0; }", "k", {{"WARPS", "0"}}),
                       doctest::Contains("WARPS must be a power of two from 1 to 32, got 0"), Error);
  CHECK_THROWS_WITH_AS(lower("kernel k<N: const>(y: out f32[N]) grid 1 { y[iota(N)] = zeros([N]); }", "k", {{"N", "0"}}),
                       doctest::Contains("the length of iota must be between 1 and 2^20, got 0"), Error);
}

TEST_CASE("frontend: constant expressions fold and size tiles") {
  ir::Function f = lower("kernel k<N: const>(y: out f32[M]) grid 1 { let h = N / 2 + 1; y[iota(h)] = f32(iota(h)); }",
                         "k", {{"N", "10"}});
  CHECK(f.type(ops(f, ir::OpKind::Iota)[0]->results[0]).shape == std::vector<int64_t>{6});
}

TEST_CASE("frontend: loops carry the vars they assign") {
  const char *src = R"(
kernel k<B: const>(x: f32[M, V], out_sum: out f32[M], out_max: out f32[M]) grid M {
    let r = program_id();
    var total = 0.0;
    var m = -inf;
    var unused = 1.0;
    for c0 in range(0, V, B) {
        let v = x[r, c0 + iota(B)] else -inf;
        total += sum(where(v == -inf, 0.0, v));
        m = max(m, max(v));
    }
    out_sum[r] = total;
    out_max[r] = m;
})";
  ir::Function f = lower(src, "k", {{"B", "256"}});
  auto loops = ops(f, ir::OpKind::For);
  REQUIRE(loops.size() == 1);
  CHECK(loops[0]->results.size() == 2);            // total and m, not unused
  CHECK(loops[0]->regions[0].args.size() == 3);    // iv, total, m
  const ir::Op &yield = loops[0]->regions[0].ops.back();
  CHECK(yield.kind == ir::OpKind::Yield);
  CHECK(yield.operands.size() == 2);
}

TEST_CASE("frontend: helper functions are inlined") {
  const char *src = R"(
fn silu(x) = x * sigmoid(x);
kernel k<N: const>(a: f32[N], c: out f32[N]) grid 1 { let i = iota(N); c[i] = silu(a[i]); })";
  ir::Function f = lower(src, "k", {{"N", "4"}});
  CHECK(ops(f, ir::OpKind::Unary).size() == 1);
  CHECK(ops(f, ir::OpKind::Binary).size() == 1);
}

TEST_CASE("frontend: the grid is its own block of scalar ops") {
  ir::Function f = lower("kernel k<R: tune[4]>(x: f32[M], n: i32) grid (cdiv(M, R), n) { }", "k", {});
  REQUIRE(f.grid.ops.back().kind == ir::OpKind::Yield);
  CHECK(f.grid.ops.back().operands.size() == 2);
}

TEST_CASE("frontend: the AST printer shows every statement") {
  Diagnostics d("t.tile", "");
  ast::Module m = parse("kernel k<N: const>(x: f32[M, N]) grid M { var a = 1.0; for i in range(3) { a += 2.0; } }", d);
  REQUIRE_FALSE(d.hasErrors());
  std::string text = printAst(m);
  CHECK(text.find("var a = 1.0 @1:43") != std::string::npos);
  CHECK(text.find("for i in range(3)") != std::string::npos);
  CHECK(text.find("a += 2.0") != std::string::npos);
}

TEST_CASE("frontend: IR printer and verifier") {
  ir::Function f = lower("kernel k<N: const>(x: f32[N], y: out f32[N]) grid 1 { let i = iota(N); y[i] = exp(x[i]); }", "k",
                         {{"N", "16"}});
  std::string text = ir::print(f);
  CHECK(text.find("unary exp") != std::string::npos);
  CHECK(text.find("store y") != std::string::npos);
  CHECK(ir::verify(f).empty());
  // a broken function is reported, not accepted
  f.body.ops[0].operands.push_back(9999);
  CHECK_FALSE(ir::verify(f).empty());
}

// Found by tests/fuzz/fuzz_frontend (corpus: stress_long_line.tile): a long flat chain
// `1 + 1 + ... + 1` (or `x[0][0]...`) was parsed in a loop into a left-deep tree, and the
// checker, the lowering and the destructor then recursed once per link: stack overflow.
TEST_CASE("frontend: long operator and index chains are reported as too deep, not recursed into") {
  auto chain = [](const std::string &start, const std::string &link, int n) {
    std::string s = "kernel k(x: f32[4], y: out f32[4]) grid 1 { let a = " + start;
    for (int i = 0; i < n; ++i) s += link;
    return s + "; y[iota(4)] = f32(a); }";
  };
  CHECK_NOTHROW(lower(chain("x[iota(4)]", " + 1.0", 50), "k", {}));
  CHECK_THROWS_WITH_AS(lower(chain("x[iota(4)]", " + 1.0", 100000), "k", {}), doctest::Contains("nesting is too deep"), Error);
  CHECK_THROWS_WITH_AS(lower(chain("x", "[0]", 100000), "k", {}), doctest::Contains("nesting is too deep"), Error);
}
