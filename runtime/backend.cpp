#include "runtime/backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include "codegen/cuda_backend.h"
#include "codegen/llvm_backend.h"
#include "dsl/error.h"
#include "runtime/nvrtc.h"

namespace tigon {

const std::vector<std::string> &backendNames() {
  static const std::vector<std::string> names = {"llvm", "nvrtc"};
  return names;
}

void checkBackend(const std::string &name) {
  const auto &names = backendNames();
  if (std::find(names.begin(), names.end(), name) == names.end())
    throw Error(fmt::format("unknown backend '{}' (available: {})", name, fmt::join(names, ", ")));
}

std::string defaultBackend() {
  const char *b = std::getenv("TIGON_BACKEND");
  std::string name = b && *b ? b : "llvm";
  try {
    checkBackend(name);
  } catch (const Error &e) {
    throw Error(fmt::format("TIGON_BACKEND={}: {}", name, e.what()));
  }
  return name;
}

std::string backendVersion(const std::string &backend) {
  checkBackend(backend);
  return backend == "nvrtc" ? nvrtc::version() : codegen::compilerVersion();
}

std::string compilePtx(const ir::Function &f, const std::string &arch, const std::string &backend) {
  checkBackend(backend);
  if (backend == "nvrtc") return nvrtc::compileCuda(codegen::emitCuda(f), f.name, arch);
  return codegen::compileToPtx(f, arch).ptx;
}

}  // namespace tigon
