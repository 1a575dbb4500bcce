// The LLVM backend: tile IR built by hand (the front end is separate) -> PTX, checked by
// reading the PTX and by ptxas (PTXAS_EXECUTABLE) for sm_80 and sm_90.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "codegen/layout.h"
#include "codegen/llvm_backend.h"
#include "codegen_fixtures.h"
#include "dsl/error.h"
#include "dsl/frontend.h"

namespace {

using namespace tigon;
using namespace tigon::test;

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

// The sm_90 PTX of kernel k of `src` with its const F bound to `flag`.
static std::string flagKernelPtx(const char *src, const char *flag) {
  return codegen::compileToPtx(specialize(loadTileSource("flag.tile", src), "k", {{"F", flag}}), "sm_90").ptx;
}

TEST_CASE("llvm: a loop behind a const flag of 0 is gone from the PTX, its reduction's barrier too") {
  // how cross_entropy.tile compiles each case as its own kernel (CAPPED, SMOOTHED)
  const char *src = R"(
kernel k<F: const>(x: f32[M], y: out f32[1]) grid 1 {
    var s = 0.0;
    for once in range(where(F == 0, 0, 1)) { s = sum(x[iota(256)]); }
    y[0] = s;
})";
  std::string on = flagKernelPtx(src, "1"), off = flagKernelPtx(src, "0");
  CHECK(contains(on, "bar.sync"));
  CHECK(contains(on, "ld.global"));
  CHECK_FALSE(contains(off, "bar.sync"));
  CHECK_FALSE(contains(off, "ld.global"));
}

TEST_CASE("llvm: a where on a const flag computes only the side it keeps") {
  // how cross_entropy.tile applies the softcap (tanh) only in its CAPPED=1 kernel
  const char *src = R"(
kernel k<F: const>(x: f32[M], y: out f32[M]) grid cdiv(M, 256) {
    let i = program_id() * 256 + iota(256);
    let v = x[i];
    y[i] = where(F != 0, tanh(v) * 3.0, v);
})";
  std::string on = flagKernelPtx(src, "1"), off = flagKernelPtx(src, "0");
  CHECK(contains(on, "tanh"));
  CHECK_FALSE(contains(off, "tanh"));
  CHECK_FALSE(contains(off, "selp"));
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
    CHECK(contains(p.ptx, "ex2.approx.ftz.f32"));
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

TEST_CASE("llvm: cross-entropy with scalar loop-carried values, a scalar gather and a scalar store") {
  ir::Function f = crossEntropy();
  for (const char *arch : {"sm_80", "sm_90"}) {
    codegen::PtxResult p = codegen::compileToPtx(f, arch);
    CHECK(contains(p.ptx, "ld.global.v4"));
    CHECK(contains(p.ptx, "ld.global.u64"));  // the target
    checkAccepted(f, arch);
  }
}

TEST_CASE("llvm: every supported arch compiles the approximate ops and ptxas accepts them") {
  for (const char *arch : {"sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_90a"})
    for (DType t : {DType::F32, DType::BF16}) {
      ir::Function f = unaryOps(t, 1000);
      codegen::PtxResult p = codegen::compileToPtx(f, arch);
      INFO(arch, " ", ir::dtypeName(t));
      for (const char *instr : {"ex2.approx.ftz.f32", "lg2.approx.f32", "rsqrt.approx.f32", "tanh.approx.f32", "sqrt.rn.f32"})
        CHECK(contains(p.ptx, instr));
      checkAccepted(f, arch);
    }
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
