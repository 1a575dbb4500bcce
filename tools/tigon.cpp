// The tigon command-line tool: check .tile files and print every stage of what tigon makes
// of them (AST, tile IR, LLVM IR or CUDA C++, PTX).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "codegen/cuda_backend.h"
#include "codegen/llvm_backend.h"
#include "dsl/error.h"
#include "dsl/frontend.h"
#include "dsl/parser.h"
#include "runtime/backend.h"
#include "runtime/builtin_kernels.h"
#include "runtime/cuda_driver.h"
#include "runtime/disk_cache.h"

namespace {

using namespace tigon;

const char *kUsage = R"(tigon: a JIT kernel compiler for fused LLM training kernels

usage:
  tigon check FILE.tile...                 report diagnostics only
  tigon compile FILE.tile [--kernel NAME] [-D NAME=VALUE]... [--dtype T=bf16]...
                [--arch sm_90|native] [--backend llvm|nvrtc] [--emit ast|ir|llvm|cuda|ptx]
                [--unaligned] [-o FILE]     print one stage (default: ptx)
  tigon ptx OP --hidden N [--dtype bf16] [--arch sm_90] [--backward | --kernel NAME]
                [-D NAME=VALUE]... [--backend llvm|nvrtc] [--emit ir|llvm|cuda|ptx] [-o FILE]
                                           PTX of a built-in op's kernel (forward, the
                                           first backward kernel, or the one named)
  tigon list                               the built-in ops
  tigon cache path|list|clear              the kernel cache ($TIGON_CACHE_DIR, else
                                           $XDG_CACHE_HOME/tigon, else ~/.cache/tigon)
  tigon --version

--arch defaults to the GPU of this machine (native). -D binds const and tune parameters;
tune parameters left out take their first value, dtype parameters f32. --backend picks the
code generator of the PTX (default: $TIGON_BACKEND, else llvm): llvm, or nvrtc (CUDA C++
compiled by NVRTC); --emit llvm shows the first's output, --emit cuda the second's.
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Options {
  std::vector<std::string> positional;
  std::string kernel, arch, emit = "ptx", output, backend;
  Bindings bindings;
  std::optional<int64_t> hidden;
  std::string dtype = "bf16";
  bool dtypeGiven = false;  // --dtype bf16 (without NAME=)
  bool backward = false, unaligned = false;
};

void bindingArg(const std::string &text, Bindings &b) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError(fmt::format("expected NAME=VALUE, got '{}'", text));
  b[text.substr(0, eq)] = text.substr(eq + 1);
}

Options parseOptions(int argc, char **argv, int first) {
  Options o;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(fmt::format("{} needs a value", a));
      return argv[++i];
    };
    if (a == "--kernel") o.kernel = value();
    else if (a == "--arch") o.arch = value();
    else if (a == "--emit") o.emit = value();
    else if (a == "--backend") o.backend = value();
    else if (a == "-o") o.output = value();
    else if (a == "-D") bindingArg(value(), o.bindings);
    else if (a.rfind("-D", 0) == 0 && a.size() > 2) bindingArg(a.substr(2), o.bindings);
    else if (a == "--dtype") {
      std::string v = value();
      if (v.find('=') != std::string::npos) bindingArg(v, o.bindings);
      else o.dtype = v, o.dtypeGiven = true;
    } else if (a == "--hidden") {
      std::string v = value();
      char *end = nullptr;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end || n < 1) throw UsageError(fmt::format("--hidden needs a positive integer, got '{}'", v));
      o.hidden = n;
    } else if (a == "--backward") o.backward = true;
    else if (a == "--unaligned") o.unaligned = true;
    else if (!a.empty() && a[0] == '-') throw UsageError(fmt::format("unknown option '{}'", a));
    else o.positional.push_back(a);
  }
  return o;
}

std::string resolveArch(const std::string &requested) {
  if (!requested.empty() && requested != "native") return requested;
  if (!cuda::tryDriver()) {
    try {
      cuda::driver();
    } catch (const Error &e) {
      throw UsageError(fmt::format("cannot detect the GPU ({}); pass --arch sm_90 (or another sm_XY) to compile for it", e.what()));
    }
  }
  return cuda::nativeArch();
}

void write(const Options &o, const std::string &text) {
  if (o.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return;
  }
  std::ofstream out(o.output, std::ios::binary);
  out << text;
  if (!out) throw Error(fmt::format("cannot write '{}'", o.output));
}

std::string emitStage(const Options &o, ir::Function f) {
  if (o.unaligned)
    for (ir::Param &p : f.params) p.aligned16 = false;
  std::string backend = o.backend.empty() ? defaultBackend() : o.backend;
  checkBackend(backend);
  if (o.emit == "ir") return ir::print(f);
  if (o.emit == "cuda") return codegen::emitCuda(f);
  if (o.emit == "llvm") {
    if (backend != "llvm") throw UsageError("--emit llvm shows the llvm backend's output; --emit cuda the nvrtc backend's");
    return codegen::compileToPtx(f, resolveArch(o.arch), true).llvmIR;
  }
  return compilePtx(f, resolveArch(o.arch), backend);
}

int cmdCheck(const Options &o) {
  if (o.positional.empty()) throw UsageError("check needs at least one .tile file");
  int failed = 0;
  for (const std::string &path : o.positional) {
    try {
      loadTileFile(path);
    } catch (const Error &e) {
      std::fputs(e.what(), stderr);
      ++failed;
    }
  }
  return failed ? 1 : 0;
}

int cmdCompile(const Options &o) {
  if (o.positional.size() != 1) throw UsageError("compile needs exactly one .tile file");
  static const std::vector<std::string> stages = {"ast", "ir", "llvm", "cuda", "ptx"};
  if (std::find(stages.begin(), stages.end(), o.emit) == stages.end())
    throw UsageError(fmt::format("--emit takes ast, ir, llvm, cuda or ptx, not '{}'", o.emit));
  TileModule m = loadTileFile(o.positional[0]);
  if (o.emit == "ast") {
    write(o, printAst(m.ast));
    return 0;
  }
  std::string kernel = o.kernel;
  if (kernel.empty()) {
    if (m.ast.kernels.size() != 1) throw UsageError("the file has several kernels; choose one with --kernel NAME");
    kernel = m.ast.kernels[0].name;
  }
  Bindings b = o.bindings;
  if (o.dtypeGiven) {
    // --dtype bf16 binds the kernel's one dtype parameter
    std::vector<std::string> dtypeParams;
    if (const ast::Kernel *k = m.ast.findKernel(kernel))
      for (const ast::GenericParam &g : k->generics)
        if (g.kind == ast::GenericParam::Kind::DType) dtypeParams.push_back(g.name);
    if (dtypeParams.size() != 1)
      throw UsageError(fmt::format("--dtype {} is ambiguous: kernel '{}' has {} dtype parameters; write --dtype NAME={}", o.dtype,
                                   kernel, dtypeParams.size(), o.dtype));
    b[dtypeParams[0]] = o.dtype;
  }
  write(o, emitStage(o, specialize(m, kernel, b)));
  return 0;
}

int cmdPtx(const Options &o) {
  if (o.positional.size() != 1) throw UsageError("ptx needs one op name (tigon list shows them)");
  if (!o.hidden) throw UsageError("ptx needs --hidden N");
  const BuiltinOp &op = builtinOp(o.positional[0]);
  TileModule m = loadTileSource(op.file, builtinKernelSources().at(op.file));
  Bindings b = o.bindings;
  // the hidden size binds each of the op's size parameters that -D leaves free (none: all
  // sizes are run-time); e.g. rope --hidden 128 -D R=64 is a partial rotary of 128-wide heads
  for (const std::string &p : op.hiddenParams) b.emplace(p, std::to_string(*o.hidden));
  b[op.dtypeParam] = o.dtype;
  // one kernel per module: the forward, the first backward kernel, or any of the op's by --kernel
  std::vector<std::string> all;
  for (const ast::Kernel &k : m.ast.kernels) all.push_back(k.name);
  std::string kernel = !o.kernel.empty() ? o.kernel : o.backward ? op.backward.front() : op.forward;
  if (std::find(all.begin(), all.end(), kernel) == all.end())
    throw UsageError(fmt::format("op {} has no kernel '{}' (its kernels: {})", op.name, kernel, fmt::join(all, ", ")));
  write(o, emitStage(o, specialize(m, kernel, withOpDefaults(op, *m.ast.findKernel(kernel), b, *o.hidden))));
  return 0;
}

int cmdList() {
  for (const BuiltinOp &op : builtinOps())
    fmt::print("{:<14} {}\n               forward: {}; backward: {}\n", op.name, op.summary, op.forward,
               fmt::join(op.backward, ", "));
  return 0;
}

int cmdCache(const Options &o) {
  if (o.positional.size() != 1) throw UsageError("cache takes one of: path, list, clear");
  const std::string &what = o.positional[0];
  if (what == "path") {
    fmt::print("{}\n", DiskCache::defaultDir());
    return 0;
  }
  if (what != "list" && what != "clear") throw UsageError(fmt::format("cache takes path, list or clear, not '{}'", what));
  DiskCache cache(DiskCache::defaultDir());
  if (what == "clear") {
    fmt::print("removed {} entries from {}\n", cache.clear(), cache.dir());
    return 0;
  }
  for (const DiskCache::Listing &l : cache.list())
    fmt::print("{}  {:>9} bytes  {}\n", l.file, l.bytes, l.key.empty() ? "(invalid entry)" : l.key);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  try {
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (cmd == "--version" || cmd == "version") {
      fmt::print("tigon {}\n", TIGON_VERSION);
      return 0;
    }
    Options o = parseOptions(argc, argv, 2);
    if (cmd == "check") return cmdCheck(o);
    if (cmd == "compile") return cmdCompile(o);
    if (cmd == "ptx") return cmdPtx(o);
    if (cmd == "list") return cmdList();
    if (cmd == "cache") return cmdCache(o);
    throw UsageError(fmt::format("unknown command '{}'", cmd));
  } catch (const UsageError &e) {
    fmt::print(stderr, "tigon: {}\n(see tigon --help)\n", e.what());
    return 2;
  } catch (const Error &e) {
    std::string msg = e.what();
    std::fputs(msg.c_str(), stderr);
    if (msg.empty() || msg.back() != '\n') std::fputc('\n', stderr);
    return 1;
  }
}
