// The code generators the JIT and the tools choose from, by name:
//   llvm:  tile IR -> LLVM IR -> PTX (codegen/llvm_backend.h), the default;
//   nvrtc: tile IR -> CUDA C++ (codegen/cuda_backend.h) -> PTX through NVRTC (runtime/nvrtc.h).
// Both give PTX, which the driver compiles to a cubin.
#pragma once
#include <string>
#include <vector>

#include "dsl/ir.h"

namespace tigon {

const std::vector<std::string> &backendNames();  // {"llvm", "nvrtc"}
// Throws tigon::Error naming the backends when `name` is not one.
void checkBackend(const std::string &name);

// The backend TIGON_BACKEND names (llvm when unset); throws for an unknown name.
std::string defaultBackend();

// The version of the backend's compiler ("19.1.7" for LLVM, "13.0" for NVRTC): part of every
// cache key, so a new compiler never serves old code.
std::string backendVersion(const std::string &backend);

// The kernel's PTX for arch "sm_XY" by the backend.
std::string compilePtx(const ir::Function &f, const std::string &arch, const std::string &backend);

}  // namespace tigon
