// NVRTC, NVIDIA's run-time CUDA C++ compiler, loaded with dlopen on first use (never linked),
// so tigon builds and runs on machines without it and fails only when the nvrtc backend is
// asked for. Tried in order, newest first: libnvrtc.so.13, libnvrtc.so.12, libnvrtc.so, each in
// the default search path, in $CUDA_HOME/lib64, in /usr/local/cuda/lib64, and in the pip
// packages beside a loaded LibTorch (site-packages/nvidia/cu13/lib, .../cuda_nvrtc/lib). With a
// CUDA driver present, an NVRTC newer than the driver is used only if there is no other: its
// PTX would not load.
#pragma once
#include <string>

namespace tigon::nvrtc {

// Whether NVRTC can be loaded; if not, why (in *whyNot).
bool available(std::string *whyNot = nullptr);

// NVRTC's version ("13.0"), part of the cache key of the kernels it compiles. Throws
// tigon::Error when NVRTC cannot be loaded.
std::string version();
// The file it was loaded from.
std::string libraryPath();

// CUDA C++ -> PTX for the GPU arch "sm_XY" (compiled for the virtual arch compute_XY, with
// IEEE arithmetic and no fma contraction). A compile error is a tigon::Error naming the
// kernel, with NVRTC's log and the source lines it points at.
std::string compileCuda(const std::string &source, const std::string &kernelName, const std::string &arch);

}  // namespace tigon::nvrtc
