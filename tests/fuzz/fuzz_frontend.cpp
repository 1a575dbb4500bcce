// libFuzzer target over the front end and the reference interpreter: any input must give
// either a module or tigon::Error diagnostics, never a crash, a sanitizer report or a hang.
// Kernels that specialize and verify are also run in the interpreter on tiny arguments
// (tensors of a few elements, run-time dims 4, scalars 1) when that is cheap (small tiles,
// small grid, small loop bounds).
#include <cstring>

#include "runtime/interpreter.h"
#include "runtime/kernel_args.h"
#include "tests/fuzz/fuzz_common.h"

using namespace tigon;

namespace {

constexpr int64_t kMaxTileElems = 4096;   // largest value (tile) the kernel may hold
constexpr int64_t kMaxTensorElems = 1 << 16;
constexpr int64_t kMaxPrograms = 16;
constexpr int64_t kMaxLoopConst = 64;     // with a loop, every int constant at most this

// Walks a block: the largest tile, whether there is a loop, the largest int constant.
void scan(const ir::Function &f, const ir::Block &b, int64_t *maxElems, bool *hasLoop, int64_t *maxConst) {
  for (const ir::Op &op : b.ops) {
    for (ir::ValueId r : op.results) {
      int64_t n = 1;
      for (int64_t d : f.type(r).shape) {
        if (d <= 0 || d > kMaxTileElems) { n = kMaxTileElems + 1; break; }
        n *= d;
        if (n > kMaxTileElems) break;
      }
      if (n > *maxElems) *maxElems = n;
    }
    if (op.kind == ir::OpKind::For) *hasLoop = true;
    if (op.kind == ir::OpKind::Const && !op.operands.size() && !op.results.empty() &&
        ir::isInt(f.type(op.results[0]).dtype)) {
      int64_t v = op.ival < 0 ? (op.ival == INT64_MIN ? INT64_MAX : -op.ival) : op.ival;
      if (v > *maxConst) *maxConst = v;
    }
    for (const ir::Block &r : op.regions) scan(f, r, maxElems, hasLoop, maxConst);
  }
}

void fill(void *p, ir::DType t, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    switch (t) {
      case ir::DType::F32: { float v = 0.25f * float(i % 7) - 0.5f; std::memcpy((char *)p + 4 * i, &v, 4); break; }
      case ir::DType::F16: { uint16_t v = 0x3C00; std::memcpy((char *)p + 2 * i, &v, 2); break; }  // 1.0
      case ir::DType::BF16: { uint16_t v = 0x3F80; std::memcpy((char *)p + 2 * i, &v, 2); break; } // 1.0
      case ir::DType::I32: { int32_t v = int32_t(i % 3); std::memcpy((char *)p + 4 * i, &v, 4); break; }
      case ir::DType::I64: { int64_t v = i % 3; std::memcpy((char *)p + 8 * i, &v, 8); break; }
      case ir::DType::Bool: ((uint8_t *)p)[i] = uint8_t(i & 1); break;
    }
  }
}

void tryInterpret(const ir::Function &f) {
  if (!ir::verify(f).empty()) return;
  int64_t maxElems = 0, maxConst = 0;
  bool hasLoop = false;
  scan(f, f.body, &maxElems, &hasLoop, &maxConst);
  scan(f, f.grid, &maxElems, &hasLoop, &maxConst);
  if (maxElems > kMaxTileElems || (hasLoop && maxConst > kMaxLoopConst)) return;

  std::vector<std::vector<uint64_t>> storage;  // 8-byte aligned backing memory
  std::vector<KernelArg> args;
  for (const ir::Param &p : f.params) {
    if (p.kind == ir::Param::Kind::Scalar) {
      args.push_back(ir::isFloat(p.dtype) ? KernelArg::ofFloat(1.0) : KernelArg::ofInt(1));
      continue;
    }
    TensorArg t;
    t.dtype = p.dtype;
    int64_t n = 1;
    for (int i = 0; i < p.rank(); ++i) {
      int64_t d = i < int(p.staticDims.size()) && p.staticDims[i] >= 0 ? p.staticDims[i] : 4;
      if (d > kMaxTensorElems) return;
      t.sizes.push_back(d);
      n *= d;
      if (n > kMaxTensorElems) return;
    }
    t.strides.assign(t.sizes.size(), 1);
    for (int i = int(t.sizes.size()) - 2; i >= 0; --i) t.strides[i] = t.strides[i + 1] * t.sizes[i + 1];
    storage.emplace_back(size_t((n * ir::dtypeBytes(p.dtype) + 7) / 8 + 2), 0);
    // aligned16 is promised by default: a 16-byte aligned base (2 spare words to align in)
    uintptr_t base = (reinterpret_cast<uintptr_t>(storage.back().data()) + 15) & ~uintptr_t(15);
    t.data = reinterpret_cast<void *>(base);
    fill(t.data, p.dtype, n);
    args.push_back(KernelArg::of(std::move(t)));
  }
  try {
    checkArgs(f, args);
    std::array<int64_t, 3> g = evalGrid(f, args);
    int64_t programs = 1;
    for (int64_t d : g) {
      if (d < 0 || d > kMaxPrograms) return;
      programs *= d;
    }
    if (programs > kMaxPrograms) return;
    interpret(f, args);
  } catch (const Error &) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (const ir::Function &f : fuzz::specializeAll(data, size)) tryInterpret(f);
  return 0;
}
