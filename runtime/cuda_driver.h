// The CUDA driver API, loaded with dlopen("libcuda.so.1") on first use, so every tool and
// library works on a machine with no GPU and fails only where a GPU is actually needed.
#pragma once
#include <cuda.h>

#include <string>

namespace tigon::cuda {

// The driver entry points tigon uses, resolved once.
struct Driver {
  CUresult (*cuInit)(unsigned int);
  CUresult (*cuDriverGetVersion)(int *);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetAttribute)(int *, CUdevice_attribute, CUdevice);
  CUresult (*cuDeviceGetName)(char *, int, CUdevice);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxGetCurrent)(CUcontext *);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuCtxSynchronize)();
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned int, CUjit_option *, void **);
  CUresult (*cuModuleUnload)(CUmodule);
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
  CUresult (*cuFuncGetAttribute)(int *, CUfunction_attribute, CUfunction);
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CUstream, void **, void **);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuMemcpyDtoD)(CUdeviceptr, CUdeviceptr, size_t);
  CUresult (*cuMemsetD8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*cuEventCreate)(CUevent *, unsigned int);
  CUresult (*cuEventRecord)(CUevent, CUstream);
  CUresult (*cuEventSynchronize)(CUevent);
  CUresult (*cuEventElapsedTime)(float *, CUevent, CUevent);
  CUresult (*cuEventDestroy)(CUevent);
  CUresult (*cuGetErrorString)(CUresult, const char **);
  CUresult (*cuLinkCreate)(unsigned int, CUjit_option *, void **, CUlinkState *);
  CUresult (*cuLinkAddData)(CUlinkState, CUjitInputType, void *, size_t, const char *, unsigned int, CUjit_option *,
                            void **);
  CUresult (*cuLinkComplete)(CUlinkState, void **, size_t *);
  CUresult (*cuLinkDestroy)(CUlinkState);
};

// The loaded driver, or nullptr when there is none (no libcuda, or cuInit fails).
const Driver *tryDriver();
// The loaded driver; throws tigon::Error saying why there is none.
const Driver &driver();
// Throws "<what>: <driver message> (CUDA error N)", then `detail` (a compiler log) on its own
// lines if any: tigon::OutOfMemory for CUDA_ERROR_OUT_OF_MEMORY, else tigon::Error.
[[noreturn]] void fail(CUresult r, const std::string &what, const std::string &detail = {});
// fail(r, what) when r is not CUDA_SUCCESS.
void check(CUresult r, const std::string &what);

// A device's compute capability as "sm_XY"; throws when there is no GPU.
std::string nativeArch(int device = 0);

}  // namespace tigon::cuda
