// What the GPU programs share: whether there is a GPU, tensors on the host (in their dtype's
// bytes) and on the device.
#pragma once
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dsl/error.h"
#include "dsl/ir.h"
#include "runtime/cuda_driver.h"
#include "runtime/half.h"
#include "runtime/kernel_args.h"

namespace tigon {

// Whether a GPU can be used; if not, says so ("SKIPPED: no GPU (why); <what>").
inline bool haveGpu(const char *what) {
  if (cuda::tryDriver()) return true;
  try {
    cuda::driver();
  } catch (const Error &e) {
    fmt::print("SKIPPED: no GPU ({}); {}\n", e.what(), what);
  }
  return false;
}

// One element in its dtype's bytes, as a double (floats rounded to nearest even on writes).
inline double readElement(const uint8_t *p, ir::DType dt) {
  uint16_t h;
  float f;
  int32_t i32;
  int64_t i64;
  switch (dt) {
    case ir::DType::F32: std::memcpy(&f, p, 4); return f;
    case ir::DType::BF16: std::memcpy(&h, p, 2); return bf16BitsToFloat(h);
    case ir::DType::F16: std::memcpy(&h, p, 2); return f16BitsToFloat(h);
    case ir::DType::I32: std::memcpy(&i32, p, 4); return i32;
    case ir::DType::I64: std::memcpy(&i64, p, 8); return double(i64);
    case ir::DType::Bool: return *p ? 1 : 0;
  }
  return 0;
}

inline void writeElement(uint8_t *p, ir::DType dt, double v) {
  float f = float(v);
  uint16_t h;
  int32_t i32 = int32_t(v);
  int64_t i64 = int64_t(v);
  switch (dt) {
    case ir::DType::F32: std::memcpy(p, &f, 4); break;
    case ir::DType::BF16: h = floatToBf16Bits(f); std::memcpy(p, &h, 2); break;
    case ir::DType::F16: h = floatToF16Bits(f); std::memcpy(p, &h, 2); break;
    case ir::DType::I32: std::memcpy(p, &i32, 4); break;
    case ir::DType::I64: std::memcpy(p, &i64, 8); break;
    case ir::DType::Bool: *p = v != 0; break;
  }
}

// Row-major strides (in elements) of a contiguous tensor of these sizes.
inline std::vector<int64_t> contiguousStrides(const std::vector<int64_t> &sizes) {
  std::vector<int64_t> s(sizes.size(), 1);
  for (int d = int(sizes.size()) - 2; d >= 0; --d) s[size_t(d)] = s[size_t(d) + 1] * sizes[size_t(d) + 1];
  return s;
}

// A host tensor stored in its dtype's bytes, read and written as doubles.
struct HostTensor {
  ir::DType dt;
  std::vector<int64_t> sizes;
  std::vector<uint8_t> bytes;

  HostTensor(ir::DType d, std::vector<int64_t> s) : dt(d), sizes(std::move(s)) {
    bytes.assign(size_t(numel()) * size_t(ir::dtypeBytes(dt)), 0xff);  // 0xff..: NaN, "unwritten"
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : sizes) n *= s;
    return n;
  }
  double get(int64_t i) const { return readElement(bytes.data() + size_t(i) * size_t(ir::dtypeBytes(dt)), dt); }
  void set(int64_t i, double v) { writeElement(bytes.data() + size_t(i) * size_t(ir::dtypeBytes(dt)), dt, v); }
  TensorArg arg(void *data) const {
    TensorArg t;
    t.data = data;
    t.dtype = dt;
    t.sizes = sizes;
    t.strides = contiguousStrides(sizes);
    return t;
  }
};

struct DeviceTensor {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  explicit DeviceTensor(const HostTensor &h) : bytes(h.bytes.size()) {
    cuda::check(cuda::driver().cuMemAlloc(&ptr, std::max<size_t>(bytes, 16)), "cuMemAlloc");
    cuda::check(cuda::driver().cuMemcpyHtoD(ptr, h.bytes.data(), bytes), "cuMemcpyHtoD");
  }
  ~DeviceTensor() { cuda::driver().cuMemFree(ptr); }
  DeviceTensor(const DeviceTensor &) = delete;  // owns its memory
  DeviceTensor &operator=(const DeviceTensor &) = delete;
  void download(HostTensor &h) const { cuda::check(cuda::driver().cuMemcpyDtoH(h.bytes.data(), ptr, bytes), "cuMemcpyDtoH"); }
  void *data() const { return reinterpret_cast<void *>(uintptr_t(ptr)); }
};

}  // namespace tigon
