#include "runtime/cuda_driver.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

#include "dsl/error.h"

namespace tigon::cuda {

namespace {

std::string g_whyNoDriver;

const Driver *load() {
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    g_whyNoDriver = "no CUDA driver on this machine (libcuda.so.1 not found)";
    return nullptr;
  }
  static Driver d;
  bool ok = true;
  // Entry points are resolved with cuGetProcAddress as of CUDA 12.0, whose signatures are
  // the ones Driver declares: asking for the newest could give another variant (CUDA 13's
  // cuCtxSynchronize takes a context), and so could a plain dlsym of a _v2 name.
  constexpr int kAbiVersion = 12000;
  using GetProc = CUresult (*)(const char *, void **, int, cuuint64_t, CUdriverProcAddressQueryResult *);
  auto getProc = reinterpret_cast<GetProc>(dlsym(lib, "cuGetProcAddress_v2"));
  if (!getProc) {
    g_whyNoDriver = "the CUDA driver is too old (no cuGetProcAddress_v2; CUDA 12 or newer is needed)";
    return nullptr;
  }
  auto sym = [&](auto &fn, const char *name) {
    void *p = nullptr;
    CUdriverProcAddressQueryResult status;
    if (getProc(name, &p, kAbiVersion, CU_GET_PROC_ADDRESS_DEFAULT, &status) != CUDA_SUCCESS || !p) {
      g_whyNoDriver = fmt::format("the CUDA driver lacks {} (as of CUDA 12.0)", name);
      ok = false;
    }
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  sym(d.cuInit, "cuInit");
  sym(d.cuDriverGetVersion, "cuDriverGetVersion");
  sym(d.cuDeviceGetCount, "cuDeviceGetCount");
  sym(d.cuDeviceGet, "cuDeviceGet");
  sym(d.cuDeviceGetAttribute, "cuDeviceGetAttribute");
  sym(d.cuDeviceGetName, "cuDeviceGetName");
  sym(d.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  sym(d.cuCtxGetCurrent, "cuCtxGetCurrent");
  sym(d.cuCtxSetCurrent, "cuCtxSetCurrent");
  sym(d.cuCtxSynchronize, "cuCtxSynchronize");
  sym(d.cuModuleLoadDataEx, "cuModuleLoadDataEx");
  sym(d.cuModuleUnload, "cuModuleUnload");
  sym(d.cuModuleGetFunction, "cuModuleGetFunction");
  sym(d.cuFuncGetAttribute, "cuFuncGetAttribute");
  sym(d.cuLaunchKernel, "cuLaunchKernel");
  sym(d.cuMemAlloc, "cuMemAlloc");
  sym(d.cuMemFree, "cuMemFree");
  sym(d.cuMemcpyHtoD, "cuMemcpyHtoD");
  sym(d.cuMemcpyDtoH, "cuMemcpyDtoH");
  sym(d.cuMemcpyDtoD, "cuMemcpyDtoD");
  sym(d.cuMemsetD8, "cuMemsetD8");
  sym(d.cuEventCreate, "cuEventCreate");
  sym(d.cuEventRecord, "cuEventRecord");
  sym(d.cuEventSynchronize, "cuEventSynchronize");
  sym(d.cuEventElapsedTime, "cuEventElapsedTime");
  sym(d.cuEventDestroy, "cuEventDestroy");
  sym(d.cuGetErrorString, "cuGetErrorString");
  sym(d.cuLinkCreate, "cuLinkCreate");
  sym(d.cuLinkAddData, "cuLinkAddData");
  sym(d.cuLinkComplete, "cuLinkComplete");
  sym(d.cuLinkDestroy, "cuLinkDestroy");
  if (!ok) return nullptr;
  CUresult r = d.cuInit(0);
  int count = 0;
  if (r == CUDA_SUCCESS) r = d.cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS || count == 0) {
    const char *msg = nullptr;
    d.cuGetErrorString(r, &msg);
    g_whyNoDriver = r != CUDA_SUCCESS ? fmt::format("the CUDA driver failed to start: {}", msg ? msg : "unknown error")
                                      : "no CUDA GPU found";
    return nullptr;
  }
  return &d;
}

}  // namespace

const Driver *tryDriver() {
  static std::once_flag once;
  static const Driver *d = nullptr;
  std::call_once(once, [] { d = load(); });
  return d;
}

const Driver &driver() {
  const Driver *d = tryDriver();
  if (!d) throw Error(g_whyNoDriver);
  return *d;
}

void fail(CUresult r, const std::string &what, const std::string &detail) {
  const char *msg = nullptr;
  if (const Driver *d = tryDriver()) d->cuGetErrorString(r, &msg);
  std::string text = fmt::format("{}: {} (CUDA error {})", what, msg ? msg : "unknown error", int(r));
  if (!detail.empty()) text += "\n" + detail;
  if (r == CUDA_ERROR_OUT_OF_MEMORY) throw OutOfMemory(text);
  throw Error(text);
}

void check(CUresult r, const std::string &what) {
  if (r != CUDA_SUCCESS) fail(r, what);
}

std::string nativeArch(int device) {
  const Driver &d = driver();
  CUdevice dev;
  check(d.cuDeviceGet(&dev, device), "cuDeviceGet");
  int major = 0, minor = 0;
  check(d.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
  check(d.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
  return fmt::format("sm_{}{}", major, minor);
}

}  // namespace tigon::cuda
