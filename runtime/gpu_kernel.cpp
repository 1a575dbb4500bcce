#include "runtime/gpu_kernel.h"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <mutex>

#include "dsl/error.h"
#include "runtime/autotune.h"
#include "runtime/cuda_driver.h"
#include "runtime/interpreter.h"

namespace tigon {

void ensureContext(int device) {
  const cuda::Driver &d = cuda::driver();
  static std::mutex mutex;
  static std::map<int, CUcontext> primary;  // retained once per device, never released
  CUcontext want;
  {
    std::lock_guard<std::mutex> lock(mutex);
    CUcontext &ctx = primary[device];
    if (!ctx) {
      CUdevice dev;
      cuda::check(d.cuDeviceGet(&dev, device), fmt::format("cuDeviceGet({})", device));
      cuda::check(d.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
    }
    want = ctx;
  }
  CUcontext current = nullptr;
  cuda::check(d.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
  if (current != want) cuda::check(d.cuCtxSetCurrent(want), "cuCtxSetCurrent");
}

std::string ptxToCubin(const std::string &ptx, const std::string &kernelName, int device) {
  ensureContext(device);
  const cuda::Driver &d = cuda::driver();
  char log[8192] = {0};
  CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log)))};
  CUlinkState link = nullptr;
  cuda::check(d.cuLinkCreate(2, opts, vals, &link), "cuLinkCreate");
  std::string cubin;
  CUresult r = d.cuLinkAddData(link, CU_JIT_INPUT_PTX, const_cast<char *>(ptx.c_str()), ptx.size() + 1,
                               kernelName.c_str(), 0, nullptr, nullptr);
  void *image = nullptr;
  size_t size = 0;
  if (r == CUDA_SUCCESS) r = d.cuLinkComplete(link, &image, &size);
  if (r == CUDA_SUCCESS) cubin.assign(static_cast<const char *>(image), size);
  d.cuLinkDestroy(link);
  if (r != CUDA_SUCCESS) cuda::fail(r, fmt::format("compiling the PTX of '{}'", kernelName), log);
  return cubin;
}

GpuKernel::GpuKernel(const ir::Function &f, const std::string &image, int device) : f_(f), device_(device) {
  ensureContext(device);
  const cuda::Driver &d = cuda::driver();
  char log[8192] = {0};
  CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log)))};
  CUresult r = d.cuModuleLoadDataEx(&module_, image.c_str(), 2, opts, vals);
  if (r != CUDA_SUCCESS) cuda::fail(r, fmt::format("loading kernel '{}'", f.name), log);
  cuda::check(d.cuModuleGetFunction(&function_, module_, f.name.c_str()), "cuModuleGetFunction " + f.name);
  int maxThreads = 0;
  cuda::check(d.cuFuncGetAttribute(&maxThreads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, function_), "cuFuncGetAttribute");
  if (maxThreads < 32 * f.warps) {
    int regs = registersPerThread();
    d.cuModuleUnload(module_);
    module_ = nullptr;
    throw Error(fmt::format("kernel '{}' ({}) does not fit: {} registers per thread allow {} threads per block, it needs {}",
                            f.name, configString(f.bindings), regs, maxThreads, 32 * f.warps));
  }
}

int GpuKernel::localBytesPerThread() const {
  int bytes = 0;
  cuda::check(cuda::driver().cuFuncGetAttribute(&bytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, function_), "cuFuncGetAttribute");
  return bytes;
}

GpuKernel::~GpuKernel() {
  if (module_) cuda::driver().cuModuleUnload(module_);
}

int GpuKernel::registersPerThread() const {
  int regs = 0;
  cuda::check(cuda::driver().cuFuncGetAttribute(&regs, CU_FUNC_ATTRIBUTE_NUM_REGS, function_), "cuFuncGetAttribute");
  return regs;
}

void GpuKernel::launch(const std::vector<KernelArg> &args, CUstream stream) const {
  ensureContext(device_);
  std::array<int64_t, 3> grid = evalGrid(f_, args);  // checks the arguments too
  // a vector access on an unaligned address would kill the CUDA context: refuse instead
  for (size_t p = 0; p < args.size(); ++p)
    if (f_.params[p].kind == ir::Param::Kind::Tensor && f_.params[p].aligned16 && !isAligned16(args[p].tensor))
      throw Error(fmt::format("kernel '{}': argument '{}' is not 16-byte aligned but the kernel was compiled for "
                              "aligned tensors", f_.name, f_.params[p].name));
  for (int64_t g : grid)
    if (g == 0) return;
  for (int i = 0; i < 3; ++i)
    if (grid[size_t(i)] < 0 || grid[size_t(i)] > (i == 0 ? 0x7fffffffLL : 65535LL))
      throw Error(fmt::format("kernel '{}': grid size {} along axis {} is out of range", f_.name, grid[size_t(i)], i));
  // flatten into 8-byte slots (every ABI value fits one), then point at each
  std::vector<uint64_t> slots;
  for (size_t p = 0; p < args.size(); ++p) {
    const KernelArg &a = args[p];
    if (a.kind == KernelArg::Kind::Tensor) {
      slots.push_back(uint64_t(reinterpret_cast<uintptr_t>(a.tensor.data)));
      for (int64_t s : a.tensor.sizes) slots.push_back(uint64_t(s));
      for (int64_t s : a.tensor.strides) slots.push_back(uint64_t(s));
    } else if (f_.params[p].dtype == ir::DType::F32) {
      float v = float(a.f);
      uint64_t bits = 0;
      std::memcpy(&bits, &v, sizeof v);
      slots.push_back(bits);
    } else if (f_.params[p].dtype == ir::DType::I32) {
      int32_t v = int32_t(a.i);
      uint64_t bits = 0;
      std::memcpy(&bits, &v, sizeof v);
      slots.push_back(bits);
    } else {
      slots.push_back(uint64_t(a.i));
    }
  }
  std::vector<void *> ptrs;
  for (uint64_t &s : slots) ptrs.push_back(&s);
  unsigned threads = unsigned(32 * f_.warps);
  CUresult r = cuda::driver().cuLaunchKernel(function_, unsigned(grid[0]), unsigned(grid[1]), unsigned(grid[2]), threads, 1,
                                              1, 0, stream, ptrs.data(), nullptr);
  if (r != CUDA_SUCCESS)  // the message is formatted only on failure: this is every call's path
    cuda::check(r, fmt::format("launching kernel '{}' ({})", f_.name, configString(f_.bindings)));
}

}  // namespace tigon
