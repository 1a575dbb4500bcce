// The CUDA C++ backend and NVRTC, without a GPU: every built-in kernel's generated CUDA C++
// compiles with NVRTC for sm_80 and sm_90 and ptxas accepts the PTX; hand-built kernels cover
// the constructs the built-in kernels do not use; the two backends are compared where ptxas
// can tell (vector accesses, registers, spills).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "codegen/cuda_backend.h"
#include "codegen/ir_query.h"
#include "codegen/llvm_backend.h"
#include "codegen_fixtures.h"
#include "dsl/error.h"
#include "dsl/frontend.h"
#include "runtime/autotune.h"
#include "runtime/backend.h"
#include "runtime/builtin_kernels.h"
#include "runtime/jit.h"
#include "runtime/nvrtc.h"

namespace {

using namespace tigon;
using namespace tigon::test;

const char *const kArchs[] = {"sm_80", "sm_90"};

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The kinds of global memory accesses in the PTX: "ld.v4.32", "st.64", "atom.32", ... (the
// instruction, its vector width and element bits); both backends must use the same kinds.
// (Counts differ: NVVM unrolls loops the LLVM backend leaves rolled.)
std::set<std::string> globalAccesses(const std::string &ptx) {
  static const std::regex access(R"(\t(ld|st|atom|red)\.global(?:\.nc)?(?:\.\w+)??(\.v[24])?\.[a-z]+(\d+)\s)");
  std::set<std::string> kinds;
  for (auto it = std::sregex_iterator(ptx.begin(), ptx.end(), access); it != std::sregex_iterator(); ++it)
    kinds.insert((*it)[1].str() + (*it)[2].str() + "." + (*it)[3].str());
  return kinds;
}

std::string str(const std::set<std::string> &s) {
  std::string out;
  for (const std::string &x : s) out += x + " ";
  return out;
}

// The lines of ptxas -v that give registers, stack and spills.
std::string resources(const std::string &ptxasOutput) {
  std::string out;
  std::istringstream in(ptxasOutput);
  for (std::string l; std::getline(in, l);)
    if (contains(l, "registers") || contains(l, "spill")) out += l.substr(l.find_first_not_of(" \t")) + "; ";
  return out;
}

ir::Function builtin(const std::string &kernel, const Bindings &b) {
  static const TileModule m = loadTileSource("rms_norm.tile", builtinKernelSources().at("rms_norm.tile"));
  static const TileModule sums = loadTileSource("column_sum.tile", builtinKernelSources().at("column_sum.tile"));
  return specialize(kernel == "column_sum" ? sums : m, kernel, b);
}

}  // namespace

TEST_CASE("nvrtc: NVRTC is found") {
  std::string why;
  REQUIRE_MESSAGE(nvrtc::available(&why), why);
  MESSAGE(cat("NVRTC ", nvrtc::version(), " from ", nvrtc::libraryPath()));
  CHECK(nvrtc::version() == backendVersion("nvrtc"));
}

// Generating CUDA C++ takes milliseconds, so every config of every tune space is generated (a
// config is refused only by the layout's limits, as by the LLVM backend). NVRTC and ptxas take
// about 0.15 s a kernel, so they get a sample: for each kernel, arch, dtype and N one config of
// the tune space, taken in turn (the next one where the layout refuses a config), and each
// tune value of each kernel must be compiled at least once.
TEST_CASE("nvrtc: every built-in kernel compiles over its tune space for sm_80 and sm_90") {
  struct Job {
    std::string name;
    ir::Function f;
    std::string arch;
  };
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Job> jobs;
  std::map<std::string, std::set<std::string>> wanted, compiled;  // "kernel TUNE" -> values
  int generated = 0, refused = 0, kernels = 0;
  for (const auto &[file, source] : builtinKernelSources()) {
    TileModule m = loadTileSource(file, source);
    for (const ast::Kernel &k : m.ast.kernels) {
      ++kernels;
      for (const ast::GenericParam &g : k.generics)
        if (g.kind == ast::GenericParam::Kind::Tune)
          for (int64_t v : g.choices) wanted[k.name + " " + g.name].insert(std::to_string(v));
      size_t turn = 0;
      for (const char *dtype : {"f32", "f16", "bf16"})
        for (int64_t n : {128, 1024, 4096, 8192}) {
          Bindings fixed;
          for (const ast::GenericParam &g : k.generics) {
            if (g.kind == ast::GenericParam::Kind::DType) fixed[g.name] = dtype;
            if (g.kind == ast::GenericParam::Kind::Const) fixed[g.name] = std::to_string(n);
          }
          std::vector<Bindings> space = tuneSpace(k, fixed);
          std::vector<std::optional<ir::Function>> ok(space.size());
          for (size_t i = 0; i < space.size(); ++i) {
            ir::Function f = specialize(m, k.name, space[i]);
            try {
              codegen::emitCuda(f);
              ok[i] = f;
              ++generated;
            } catch (const Error &e) {
              INFO(k.name, " ", configString(space[i]));
              CHECK_MESSAGE((contains(e.what(), "elements per thread") || contains(e.what(), "bytes of shared memory")),
                            e.what());
              ++refused;
            }
          }
          for (const char *arch : kArchs) {
            size_t tried = 0;
            while (tried < space.size() && !ok[turn % space.size()]) ++tried, ++turn;
            if (tried == space.size()) continue;
            const Bindings &config = space[turn++ % space.size()];
            jobs.push_back({k.name + " " + configString(config), *ok[(turn - 1) % space.size()], arch});
            for (const auto &[name, value] : config) compiled[k.name + " " + name].insert(value);
          }
          // a config for any tune value the turns have not reached yet (large tune spaces)
          for (size_t i = 0; i < space.size(); ++i) {
            if (!ok[i]) continue;
            bool fresh = false;
            for (const auto &[name, value] : space[i]) fresh = fresh || !compiled[k.name + " " + name].count(value);
            if (!fresh) continue;
            jobs.push_back({k.name + " " + configString(space[i]), *ok[i], kArchs[i % std::size(kArchs)]});
            for (const auto &[name, value] : space[i]) compiled[k.name + " " + name].insert(value);
          }
        }
    }
  }
  double generating = secondsSince(t0);

  std::mutex mu;
  std::vector<std::string> failures;
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next++) < jobs.size();) {
      const Job &job = jobs[i];
      std::string problem;
      try {
        PtxasRun run = ptxas(compilePtx(job.f, job.arch, "nvrtc"), job.arch);
        if (run.status != 0) problem = "ptxas: " + run.output;
      } catch (const Error &e) {
        problem = e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!problem.empty()) failures.push_back(job.arch + " " + job.name + ": " + problem);
    }
  };
  std::thread a(worker), b(worker);
  a.join();
  b.join();
  for (const std::string &f : failures) FAIL_CHECK(f);
  for (const auto &[param, values] : wanted) {
    INFO(param);
    CHECK(compiled[param] == values);
  }
  MESSAGE(cat(kernels, " kernels: CUDA C++ for ", generated, " configs (", refused, " refused by the layout limits) in ",
              generating, " s; ", jobs.size(), " of them through NVRTC and ptxas in ", secondsSince(t0) - generating, " s"));
}

TEST_CASE("nvrtc: hand-built kernels with every construct compile, and ptxas accepts both backends' PTX") {
  // argmax, atomic_add, loops carrying scalars and tiles, run-time sizes, i64 indices, casts,
  // layout conversions, every unary op; each with the same 16-byte accesses as the LLVM backend.
  for (const ir::Function &f : handBuiltKernels())
    for (const char *arch : kArchs) {
      std::string cudaPtx = compilePtx(f, arch, "nvrtc"), llvmPtx = codegen::compileToPtx(f, arch).ptx;
      INFO(codegen::describeKernel(f), " on ", std::string(arch));
      PtxasRun cuda = ptxas(cudaPtx, arch), llvm = ptxas(llvmPtx, arch);
      INFO(cuda.output);
      CHECK(cuda.status == 0);
      CHECK(llvm.status == 0);
      CHECK(str(globalAccesses(cudaPtx)) == str(globalAccesses(llvmPtx)));
    }
}

TEST_CASE("nvrtc: the built-in kernels make the LLVM backend's accesses and spill no more than it") {
  for (const char *t : {"f32", "bf16"})
    for (const char *kernel : {"rms_norm_fwd", "rms_norm_bwd", "column_sum"}) {
      Bindings b = {{"T", t}, {"N", "4096"}, {"WARPS", "4"}};
      b[std::string(kernel) == "column_sum" ? "BLOCK" : "ROWS"] = std::string(kernel) == "column_sum" ? "512" : "1";
      ir::Function f = builtin(kernel, b);
      std::string cudaPtx = compilePtx(f, "sm_90", "nvrtc"), llvmPtx = compilePtx(f, "sm_90", "llvm");
      INFO(codegen::describeKernel(f));
      CHECK(str(globalAccesses(cudaPtx)) == str(globalAccesses(llvmPtx)));
      CHECK(contains(str(globalAccesses(cudaPtx)), "ld.v4.32"));
      PtxasRun cuda = ptxas(cudaPtx, "sm_90"), llvm = ptxas(llvmPtx, "sm_90");
      INFO(resources(cuda.output), " vs LLVM ", resources(llvm.output));
      CHECK(contains(llvm.output, "0 bytes stack frame"));
      CHECK(contains(cuda.output, "0 bytes stack frame"));
    }
}

TEST_CASE("nvrtc: registers and spills of rms_norm bf16 N=4096 from both backends (ptxas -v, sm_90)") {
  for (const char *rows : {"1", "4"}) {
    ir::Function f = builtin("rms_norm_fwd", {{"T", "bf16"}, {"N", "4096"}, {"ROWS", rows}, {"WARPS", "4"}});
    PtxasRun cuda = ptxas(compilePtx(f, "sm_90", "nvrtc"), "sm_90"), llvm = ptxas(compilePtx(f, "sm_90", "llvm"), "sm_90");
    MESSAGE(cat(codegen::describeKernel(f), "\n  nvrtc: ", resources(cuda.output), "\n  llvm:  ", resources(llvm.output)));
    CHECK(contains(cuda.output, "0 bytes spill stores, 0 bytes spill loads"));
    CHECK(contains(llvm.output, "0 bytes spill stores, 0 bytes spill loads"));
  }
}

TEST_CASE("nvrtc: the kernel has the PTX ABI of the LLVM backend and includes no header") {
  ir::Function f = rmsNorm(DType::F32, 128, 4, 4);
  std::string cuda = codegen::emitCuda(f);
  CHECK_FALSE(contains(cuda, "#include"));
  CHECK(contains(cuda, "extern \"C\" __global__ void __launch_bounds__(128) rms_norm_fwd("));
  std::string ptx = compilePtx(f, "sm_90", "nvrtc");
  CHECK(contains(ptx, ".maxntid 128, 1, 1"));
  size_t entry = ptx.find(".entry rms_norm_fwd(");
  REQUIRE(entry != std::string::npos);
  std::string params = ptx.substr(entry, ptx.find(')', entry) - entry);
  // x: ptr, 2 sizes, 2 strides; w: ptr, size, stride; eps; y: 5; rstd: 3.
  int u64 = 0, f32 = 0;
  for (size_t at = 0; (at = params.find(".param .u64", at)) != std::string::npos; ++at) ++u64;
  for (size_t at = 0; (at = params.find(".param .f32", at)) != std::string::npos; ++at) ++f32;
  CHECK(u64 == 16);
  CHECK(f32 == 1);
  CHECK(params.find(".param .f32") > params.find("rms_norm_fwd_param_7"));
}

TEST_CASE("nvrtc: limits are the LLVM backend's errors") {
  auto sameError = [](const ir::Function &f, const std::string &part) {
    std::string llvm, cuda;
    try {
      codegen::compileToPtx(f, "sm_90");
    } catch (const Error &e) {
      llvm = e.what();
    }
    try {
      codegen::emitCuda(f);
    } catch (const Error &e) {
      cuda = e.what();
    }
    CHECK(contains(cuda, part));
    CHECK(cuda == llvm);
  };
  sameError(colArgmax(), "col_argmax [N=256, warps=32]: needs 65536 bytes of shared memory");
  sameError(rmsNorm(DType::BF16, 8192, 4, 1), "needs 1024 elements per thread");
  sameError(rmsNorm(DType::BF16, 8192, 4, 3), "power of two");
}

TEST_CASE("nvrtc: a compile error names the kernel and shows the source line NVRTC points at") {
  std::string source = "extern \"C\" __global__ void broken(float *p) {\n  p[0] = undefined_name;\n}\n";
  CHECK_THROWS_WITH_AS(nvrtc::compileCuda(source, "broken", "sm_90"),
                       doctest::Contains("kernel broken: NVRTC"), Error);
  CHECK_THROWS_WITH_AS(nvrtc::compileCuda(source, "broken", "sm_90"),
                       doctest::Contains("broken.cu(2):   p[0] = undefined_name;"), Error);
  CHECK_THROWS_WITH_AS(nvrtc::compileCuda(source, "broken", "compute_90"), doctest::Contains("sm_XY"), Error);
}

TEST_CASE("nvrtc: the backend and its compiler version are part of the cache key") {
  TileModule m = loadTileSource("rms_norm.tile", builtinKernelSources().at("rms_norm.tile"));
  Bindings b = {{"T", "bf16"}, {"N", "4096"}, {"ROWS", "1"}, {"WARPS", "4"}};
  std::string llvm = kernelKey(m, "rms_norm_fwd", b, "sm_90", "llvm", {true, true, true, true});
  std::string cuda = kernelKey(m, "rms_norm_fwd", b, "sm_90", "nvrtc", {true, true, true, true});
  CHECK(llvm != cuda);
  CHECK(contains(cuda, "nvrtc " + nvrtc::version()));
  CHECK(contains(llvm, "llvm " + codegen::compilerVersion()));
  CHECK_THROWS_WITH_AS(checkBackend("gcc"), doctest::Contains("available: llvm, nvrtc"), Error);
}
