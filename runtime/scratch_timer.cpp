#include "runtime/scratch_timer.h"

#include <algorithm>

#include "runtime/cuda_driver.h"

namespace tigon {

size_t tensorExtentBytes(const TensorArg &t) {
  int64_t last = 0;
  for (size_t d = 0; d < t.sizes.size(); ++d) {
    if (t.sizes[d] == 0) return 0;
    last += (t.sizes[d] - 1) * t.strides[d];
  }
  return size_t(last + 1) * size_t(ir::dtypeBytes(t.dtype));
}

namespace {

// Device buffers freed on every path out.
struct Scratch {
  std::vector<CUdeviceptr> buffers;
  CUevent events[2] = {nullptr, nullptr};
  ~Scratch() {
    const cuda::Driver &d = cuda::driver();
    for (CUdeviceptr p : buffers) d.cuMemFree(p);
    for (CUevent e : events)
      if (e) d.cuEventDestroy(e);
  }
};

}  // namespace

double timeOnScratch(const GpuKernel &kernel, const ir::Function &f, std::vector<KernelArg> args, CUstream stream,
                     int warmup, int reps) {
  const cuda::Driver &d = cuda::driver();
  // the allocations come before any launch: a thread that has not touched the GPU yet (PyTorch's
  // autograd worker tuning a backward kernel) has no current context
  ensureContext(kernel.device());
  Scratch s;
  for (size_t p = 0; p < args.size() && p < f.params.size(); ++p) {
    if (f.params[p].kind != ir::Param::Kind::Tensor || f.params[p].access == ir::Access::In) continue;
    TensorArg &t = args[p].tensor;
    size_t bytes = tensorExtentBytes(t);
    if (bytes == 0) continue;
    CUdeviceptr buf = 0;
    cuda::check(d.cuMemAlloc(&buf, bytes), "allocating autotuning scratch memory");
    s.buffers.push_back(buf);
    if (f.params[p].access == ir::Access::InOut)
      cuda::check(d.cuMemcpyDtoD(buf, CUdeviceptr(reinterpret_cast<uintptr_t>(t.data)), bytes), "copying to scratch");
    t.data = reinterpret_cast<void *>(uintptr_t(buf));
  }
  for (int i = 0; i < warmup; ++i) kernel.launch(args, stream);
  cuda::check(d.cuEventCreate(&s.events[0], CU_EVENT_DEFAULT), "cuEventCreate");
  cuda::check(d.cuEventCreate(&s.events[1], CU_EVENT_DEFAULT), "cuEventCreate");
  std::vector<float> times;
  for (int i = 0; i < reps; ++i) {
    cuda::check(d.cuEventRecord(s.events[0], stream), "cuEventRecord");
    kernel.launch(args, stream);
    cuda::check(d.cuEventRecord(s.events[1], stream), "cuEventRecord");
    cuda::check(d.cuEventSynchronize(s.events[1]), "cuEventSynchronize");
    float ms = 0;
    cuda::check(d.cuEventElapsedTime(&ms, s.events[0], s.events[1]), "cuEventElapsedTime");
    times.push_back(ms);
  }
  std::nth_element(times.begin(), times.begin() + long(times.size() / 2), times.end());
  return times[times.size() / 2];
}

}  // namespace tigon
