// Tests of the reference interpreter, the argument checks and the 16-bit float conversions.
// The IR is built by hand (the front end is written separately), with a small builder below.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

#include "dsl/error.h"
#include "runtime/half.h"
#include "runtime/interpreter.h"

using namespace tigon;
using namespace tigon::ir;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Appends ops to the current block: the body, or the grid/loop body while one is being built.
struct Builder {
  Function f;
  Block *cur = &f.body;

  explicit Builder(std::string name) { f.name = std::move(name); }
  Builder(const Builder &) = delete;

  int tensor(std::string name, DType t, std::vector<std::string> dims, std::vector<int64_t> statics = {}) {
    Param p;
    p.kind = Param::Kind::Tensor;
    p.name = std::move(name);
    p.dtype = t;
    p.access = Access::InOut;
    p.staticDims = statics.empty() ? std::vector<int64_t>(dims.size(), -1) : statics;
    p.dimNames = std::move(dims);
    f.params.push_back(p);
    return int(f.params.size() - 1);
  }
  int scalar(std::string name, DType t) {
    Param p;
    p.name = std::move(name);
    p.dtype = t;
    f.params.push_back(p);
    return int(f.params.size() - 1);
  }

  Op &emit(OpKind k, std::vector<ValueId> operands, std::vector<Type> results) {
    Op op;
    op.kind = k;
    op.operands = std::move(operands);
    for (const Type &t : results) op.results.push_back(f.newValue(t));
    cur->ops.push_back(std::move(op));
    return cur->ops.back();
  }
  ValueId one(OpKind k, std::vector<ValueId> operands, Type t) { return emit(k, std::move(operands), {t}).results[0]; }
  Type type(ValueId v) const { return f.type(v); }

  ValueId cf(double v, DType t = DType::F32) {
    Op &op = emit(OpKind::Const, {}, {{t, {}}});
    op.fval = v;
    return op.results[0];
  }
  ValueId ci(int64_t v, DType t = DType::I32) {
    Op &op = emit(OpKind::Const, {}, {{t, {}}});
    op.ival = v;
    return op.results[0];
  }
  ValueId zero(DType t) { return isFloat(t) ? cf(0, t) : ci(0, t); }
  ValueId programInfo(OpKind k, int axis) {
    Op &op = emit(k, {}, {{DType::I32, {}}});
    op.axis = axis;
    return op.results[0];
  }
  ValueId pid(int axis) { return programInfo(OpKind::ProgramId, axis); }
  ValueId nprog(int axis) { return programInfo(OpKind::NumPrograms, axis); }
  ValueId dim(int param, int axis) {
    Op &op = emit(OpKind::TensorDim, {}, {{DType::I32, {}}});
    op.param = param;
    op.axis = axis;
    return op.results[0];
  }
  ValueId arg(int param) {
    Op &op = emit(OpKind::ScalarArg, {}, {{f.params[size_t(param)].dtype, {}}});
    op.param = param;
    return op.results[0];
  }
  ValueId iota(int64_t n) { return one(OpKind::Iota, {}, {DType::I32, {n}}); }
  ValueId un(UnaryOp u, ValueId x) {
    Op &op = emit(OpKind::Unary, {x}, {type(x)});
    op.uop = u;
    return op.results[0];
  }
  ValueId bin(BinaryOp b, ValueId x, ValueId y) {
    Type t = type(x);
    if (isComparison(b)) t.dtype = DType::Bool;
    Op &op = emit(OpKind::Binary, {x, y}, {t});
    op.bop = b;
    return op.results[0];
  }
  ValueId select(ValueId c, ValueId a, ValueId b) { return one(OpKind::Select, {c, a, b}, type(a)); }
  ValueId fma(ValueId a, ValueId b, ValueId c) { return one(OpKind::Fma, {a, b, c}, type(a)); }
  ValueId cast(ValueId x, DType t) { return one(OpKind::Cast, {x}, {t, type(x).shape}); }
  ValueId reduce(ReduceOp r, ValueId x, int axis) {
    Type t = type(x);
    t.shape.erase(t.shape.begin() + axis);
    if (r == ReduceOp::Argmax) t.dtype = DType::I32;
    Op &op = emit(OpKind::Reduce, {x}, {t});
    op.rop = r;
    op.axis = axis;
    return op.results[0];
  }
  ValueId bcast(ValueId x, std::vector<int64_t> shape) { return one(OpKind::Broadcast, {x}, {type(x).dtype, shape}); }
  ValueId expand(ValueId x, int axis) {
    Type t = type(x);
    t.shape.insert(t.shape.begin() + axis, 1);
    Op &op = emit(OpKind::ExpandDims, {x}, {t});
    op.axis = axis;
    return op.results[0];
  }
  ValueId load(int param, std::vector<ValueId> indices, ValueId other) {
    Type t{f.params[size_t(param)].dtype, {}};
    for (ValueId i : indices)
      if (type(i).rank() == 1) t.shape.push_back(type(i).shape[0]);
    indices.push_back(other);
    Op &op = emit(OpKind::Load, indices, {t});
    op.param = param;
    return op.results[0];
  }
  void store(int param, std::vector<ValueId> indices, ValueId value, OpKind k = OpKind::Store) {
    indices.push_back(value);
    emit(k, indices, {}).param = param;
  }
  void atomicAdd(int param, std::vector<ValueId> indices, ValueId value) { store(param, indices, value, OpKind::AtomicAdd); }

  using LoopBody = std::function<std::vector<ValueId>(ValueId iv, const std::vector<ValueId> &carried)>;
  std::vector<ValueId> loop(ValueId lo, ValueId hi, ValueId step, const std::vector<ValueId> &inits, const LoopBody &body) {
    Block blk;
    blk.args.push_back(f.newValue({DType::I32, {}}));
    std::vector<ValueId> carried;
    for (ValueId v : inits) {
      carried.push_back(f.newValue(type(v)));
      blk.args.push_back(carried.back());
    }
    Block *outer = cur;
    cur = &blk;
    emit(OpKind::Yield, body(blk.args[0], carried), {});
    cur = outer;
    std::vector<ValueId> operands{lo, hi, step};
    operands.insert(operands.end(), inits.begin(), inits.end());
    std::vector<Type> results;
    for (ValueId v : inits) results.push_back(type(v));
    Op &op = emit(OpKind::For, operands, results);
    op.regions.push_back(std::move(blk));
    return op.results;
  }

  void grid(const std::function<std::vector<ValueId>()> &sizes) {
    cur = &f.grid;
    emit(OpKind::Yield, sizes(), {});
    cur = &f.body;
  }
  void grid1() {
    grid([&] { return std::vector<ValueId>{ci(1)}; });
  }
};

// A host tensor: storage in the dtype's memory format (bf16/f16 as bit patterns, bool as
// bytes). Offsets are in elements.
struct Host {
  DType dtype;
  std::vector<int64_t> sizes, strides;
  std::vector<unsigned char> bytes;
  int64_t base = 0;  // the tensor starts at this element of the storage

  Host(DType t, std::vector<int64_t> sizes_, std::vector<int64_t> strides_ = {}, int64_t storage = -1)
      : dtype(t), sizes(std::move(sizes_)), strides(std::move(strides_)) {
    if (strides.empty()) {
      strides.assign(sizes.size(), 1);
      for (size_t d = sizes.size(); d-- > 1;) strides[d - 1] = strides[d] * sizes[d];
    }
    if (storage < 0) {
      storage = 1;
      for (size_t d = 0; d < sizes.size(); ++d) storage += (sizes[d] - 1) * strides[d];
    }
    bytes.assign(size_t(storage * dtypeBytes(t)), 0);
  }
  static Host floats(DType t, const std::vector<double> &v) {
    Host h(t, {int64_t(v.size())});
    for (size_t k = 0; k < v.size(); ++k) h.set(int64_t(k), v[k]);
    return h;
  }
  static Host ints(DType t, const std::vector<int64_t> &v) {
    Host h(t, {int64_t(v.size())});
    for (size_t k = 0; k < v.size(); ++k) h.setInt(int64_t(k), v[k]);
    return h;
  }
  int64_t storageSize() const { return int64_t(bytes.size()) / dtypeBytes(dtype); }
  unsigned char *at(int64_t off) { return bytes.data() + off * dtypeBytes(dtype); }

  void set(int64_t off, double v) {
    auto x = float(v);
    uint16_t h = dtype == DType::F16 ? floatToF16Bits(x) : floatToBf16Bits(x);
    if (dtype == DType::F32) std::memcpy(at(off), &x, 4);
    else std::memcpy(at(off), &h, 2);
  }
  double get(int64_t off) {
    if (dtype == DType::F32) {
      float x;
      std::memcpy(&x, at(off), 4);
      return x;
    }
    uint16_t h;
    std::memcpy(&h, at(off), 2);
    return dtype == DType::F16 ? f16BitsToFloat(h) : bf16BitsToFloat(h);
  }
  void setInt(int64_t off, int64_t v) {
    auto x32 = int32_t(v);
    auto b = uint8_t(v);
    if (dtype == DType::I32) std::memcpy(at(off), &x32, 4);
    else if (dtype == DType::I64) std::memcpy(at(off), &v, 8);
    else std::memcpy(at(off), &b, 1);
  }
  int64_t getInt(int64_t off) {
    int32_t x32;
    int64_t x64;
    if (dtype == DType::I32) return std::memcpy(&x32, at(off), 4), x32;
    if (dtype == DType::I64) return std::memcpy(&x64, at(off), 8), x64;
    return *at(off);
  }
  KernelArg arg() { return KernelArg::of(TensorArg{at(base), dtype, sizes, strides}); }
};

// Runs out[i] = fn(in_0[i], in_1[i], ...) over 1-D tensors of one length; returns `out`.
Host runMap(DType outType, std::vector<Host> inputs, const std::function<ValueId(Builder &, std::vector<ValueId>)> &fn) {
  Builder b("map");
  int64_t n = inputs.at(0).sizes[0];
  b.grid1();
  ValueId i = b.iota(n);
  std::vector<ValueId> loaded;
  for (size_t k = 0; k < inputs.size(); ++k) {
    int p = b.tensor("in" + std::to_string(k), inputs[k].dtype, {"N"});
    loaded.push_back(b.load(p, {i}, b.zero(inputs[k].dtype)));
  }
  int out = b.tensor("out", outType, {"N"});
  b.store(out, {i}, fn(b, loaded));
  Host result(outType, {n});
  std::vector<KernelArg> args;
  for (Host &h : inputs) args.push_back(h.arg());
  args.push_back(result.arg());
  interpret(b.f, args);
  return result;
}

Host unary(UnaryOp op, DType t, const std::vector<double> &x) {
  return runMap(t, {Host::floats(t, x)}, [&](Builder &b, auto v) { return b.un(op, v[0]); });
}

Host binaryF(BinaryOp op, DType t, const std::vector<double> &x, const std::vector<double> &y) {
  DType rt = isComparison(op) ? DType::Bool : t;
  return runMap(rt, {Host::floats(t, x), Host::floats(t, y)}, [&](Builder &b, auto v) { return b.bin(op, v[0], v[1]); });
}

Host binaryI(BinaryOp op, DType t, const std::vector<int64_t> &x, const std::vector<int64_t> &y) {
  DType rt = isComparison(op) ? DType::Bool : t;
  return runMap(rt, {Host::ints(t, x), Host::ints(t, y)}, [&](Builder &b, auto v) { return b.bin(op, v[0], v[1]); });
}

Host castF(DType from, DType to, const std::vector<double> &x) {
  return runMap(to, {Host::floats(from, x)}, [&](Builder &b, auto v) { return b.cast(v[0], to); });
}

Host castI(DType from, DType to, const std::vector<int64_t> &x) {
  return runMap(to, {Host::ints(from, x)}, [&](Builder &b, auto v) { return b.cast(v[0], to); });
}

// Exact comparison that treats NaN as equal to NaN and tells -0 from +0.
bool same(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return a == b && std::signbit(a) == std::signbit(b);
}

void checkFloats(Host &h, const std::vector<double> &want) {
  for (size_t k = 0; k < want.size(); ++k) {
    CAPTURE(k);
    CAPTURE(h.get(int64_t(k)));
    CAPTURE(want[k]);
    CHECK(same(h.get(int64_t(k)), want[k]));
  }
}

void checkInts(Host &h, const std::vector<int64_t> &want) {
  for (size_t k = 0; k < want.size(); ++k) {
    CAPTURE(k);
    CHECK(h.getInt(int64_t(k)) == want[k]);
  }
}

constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max(), kI32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max(), kI64Min = std::numeric_limits<int64_t>::min();

}  // namespace

// ---- 16-bit floats ---------------------------------------------------------------------------

TEST_CASE("interp: half: known bit patterns") {
  struct Case { uint32_t f32; uint16_t bf16, f16; };
  const Case cases[] = {
      {0x3f800000, 0x3f80, 0x3c00},  // 1
      {0xc0000000, 0xc000, 0xc000},  // -2
      {0x80000000, 0x8000, 0x8000},  // -0
      {0x3f808000, 0x3f80, 0x3c04},  // 1 + 2^-8: a bf16 tie, to even (down)
      {0x3f818000, 0x3f82, 0x3c0c},  // 1 + 3*2^-8: a bf16 tie, to even (up)
      {0x3f808001, 0x3f81, 0x3c04},  // just above a tie
      {0x3f801000, 0x3f80, 0x3c00},  // 1 + 2^-11: an f16 tie, to even (down)
      {0x3f803000, 0x3f80, 0x3c02},  // 1 + 3*2^-11: an f16 tie, to even (up)
      {0x3dcccccd, 0x3dcd, 0x2e66},  // 0.1
      {0x3eaaaaab, 0x3eab, 0x3555},  // 1/3
      {0x477fe000, 0x4780, 0x7bff},  // 65504, the largest f16
      {0x477fefff, 0x4780, 0x7bff},  // just below 65520
      {0x477ff000, 0x4780, 0x7c00},  // 65520 rounds to f16 inf
      {0x7f7fffff, 0x7f80, 0x7c00},  // FLT_MAX rounds to bf16 inf
      {0x7f7f0000, 0x7f7f, 0x7c00},  // the largest bf16
      {0x38800000, 0x3880, 0x0400},  // 2^-14, the smallest normal f16
      {0x387fe000, 0x3880, 0x0400},  // 2^-14 - 2^-25: a tie between 0x3ff and 0x400, to even
      {0x33800000, 0x3380, 0x0001},  // 2^-24, the smallest f16 subnormal
      {0x33000000, 0x3300, 0x0000},  // 2^-25: a tie, to even (zero)
      {0x33400000, 0x3340, 0x0001},  // 1.5 * 2^-25 rounds up
      {0x34400000, 0x3440, 0x0003},  // 3 * 2^-24
      {0x00000001, 0x0000, 0x0000},  // the smallest f32 subnormal
      {0x00018000, 0x0002, 0x0000},  // an f32 subnormal, bf16 tie to even (up)
      {0x7f800000, 0x7f80, 0x7c00},  // inf
      {0xff800000, 0xff80, 0xfc00},  // -inf
      {0x7fc00000, 0x7fc0, 0x7e00},  // quiet NaN
      {0xffc00000, 0xffc0, 0xfe00},  // negative NaN
      {0x7f800001, 0x7fc0, 0x7e00},  // signalling NaN becomes quiet
  };
  for (const Case &c : cases) {
    CAPTURE(c.f32);
    CHECK(floatToBf16Bits(bitsToFloat(c.f32)) == c.bf16);
    CHECK(floatToF16Bits(bitsToFloat(c.f32)) == c.f16);
  }
  CHECK(f16BitsToFloat(0x0001) == 0x1p-24f);
  CHECK(f16BitsToFloat(0x03ff) == 1023 * 0x1p-24f);
  CHECK(f16BitsToFloat(0x3555) == 0.333251953125f);
  CHECK(f16BitsToFloat(0x7bff) == 65504.f);
  CHECK(f16BitsToFloat(0xc000) == -2.f);
  CHECK(floatBits(f16BitsToFloat(0x8000)) == 0x80000000);
  CHECK(f16BitsToFloat(0xfc00) == -INFINITY);
  CHECK(std::isnan(f16BitsToFloat(0x7e00)));
  CHECK(std::isnan(f16BitsToFloat(0x7c01)));
  CHECK(bf16BitsToFloat(0x3f81) == 1.0078125f);
  CHECK(bf16BitsToFloat(0x0001) == 0x1p-133f);
}

TEST_CASE("interp: half: every 16-bit pattern round-trips") {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    auto h = uint16_t(b);
    CAPTURE(h);
    float f16 = f16BitsToFloat(h), bf16 = bf16BitsToFloat(h);
    if (std::isnan(f16)) {
      CHECK(std::isnan(f16BitsToFloat(floatToF16Bits(f16))));
    } else {
      CHECK(floatToF16Bits(f16) == h);
      CHECK(roundToF16(f16) == double(f16));
    }
    if (std::isnan(bf16)) {
      CHECK(std::isnan(bf16BitsToFloat(floatToBf16Bits(bf16))));
    } else {
      CHECK(floatToBf16Bits(bf16) == h);
      CHECK(roundToBf16(bf16) == double(bf16));
    }
  }
}

TEST_CASE("interp: half: rounding agrees with independent implementations") {
  std::mt19937_64 rng(42);
  auto randomDouble = [&](int minExp, int maxExp) {
    std::uniform_int_distribution<int> e(minExp, maxExp);
    std::uniform_int_distribution<uint64_t> m(0, (uint64_t(1) << 52) - 1);
    double x = std::ldexp(1.0 + std::ldexp(double(m(rng)), -52), e(rng));
    return rng() & 1 ? -x : x;
  };
  for (int k = 0; k < 200000; ++k) {
    // The generic routine, set up as f32, against the hardware's double -> float.
    double x = randomDouble(-160, 130);
    CHECK(same(roundToFormat(x, 23, -126, 127), double(float(x))));
    // f16 from double and from float against the compiler's _Float16 conversions.
    double y = randomDouble(-30, 17);
    CHECK(same(roundToF16(y), double(_Float16(y))));
    auto fy = float(y);
    _Float16 h = _Float16(fy);
    uint16_t hb;
    std::memcpy(&hb, &h, 2);
    CHECK(floatToF16Bits(fy) == hb);
    // bf16 from float against the usual integer rounding trick.
    uint32_t u = floatBits(float(randomDouble(-140, 128)));
    if ((u & 0x7fffffff) <= 0x7f800000) CHECK(floatToBf16Bits(bitsToFloat(u)) == uint16_t((u + 0x7fff + ((u >> 16) & 1)) >> 16));
  }
  // Rounding a double straight to bf16 differs from rounding it to f32 first.
  double justAboveTie = 1 + 0x1p-8 + 0x1p-30;
  CHECK(roundToBf16(justAboveTie) == 1 + 0x1p-7);
  CHECK(double(bf16BitsToFloat(floatToBf16Bits(float(justAboveTie)))) == 1.0);
}

// ---- elementwise ops -------------------------------------------------------------------------

TEST_CASE("interp: f32 arithmetic is IEEE single precision") {
  std::vector<double> a{0.1, 1, -1, 0, 3, kNaN, -0.0, 3e38};
  std::vector<double> b{0.2, 0, 0, 0, 7, 1, 0.0, 3e38};
  auto f = [](double x) { return float(x); };
  Host add = binaryF(BinaryOp::Add, DType::F32, a, b);
  CHECK(add.get(0) == double(f(0.1) + f(0.2)));
  CHECK(add.get(7) == kInf);
  Host div = binaryF(BinaryOp::Div, DType::F32, a, b);
  checkFloats(div, {double(f(0.1) / f(0.2)), kInf, -kInf, kNaN, double(3.f / 7.f), kNaN, kNaN, 1});
  Host mul = binaryF(BinaryOp::Mul, DType::F32, a, b);
  CHECK(mul.get(0) == double(f(0.1) * f(0.2)));
  CHECK(mul.get(7) == kInf);
  Host sub = binaryF(BinaryOp::Sub, DType::F32, a, b);
  checkFloats(sub, {double(f(0.1) - f(0.2)), 1, -1, 0, -4, kNaN, -0.0, 0});
  // min/max propagate NaN (from either side) and order -0 below +0.
  Host mn = binaryF(BinaryOp::Min, DType::F32, {1, kNaN, 2, -0.0, 0.0}, {kNaN, 1, -3, 0.0, -0.0});
  checkFloats(mn, {kNaN, kNaN, -3, -0.0, -0.0});
  Host mx = binaryF(BinaryOp::Max, DType::F32, {1, kNaN, 2, -0.0, 0.0}, {kNaN, 1, -3, 0.0, -0.0});
  checkFloats(mx, {kNaN, kNaN, 2, 0.0, 0.0});
}

TEST_CASE("interp: bf16 and f16 round after every op") {
  // 1 + 2^-8 is a bf16 tie that rounds to 1, so adding 2^-8 twice leaves 1 (in f32 it would
  // reach 1 + 2^-7, a bf16 value).
  Host bf = runMap(DType::BF16, {Host::floats(DType::BF16, {1, 3}), Host::floats(DType::BF16, {0x1p-8, 0x1p-7})},
                   [](Builder &b, auto v) { return b.bin(BinaryOp::Add, b.bin(BinaryOp::Add, v[0], v[1]), v[1]); });
  checkFloats(bf, {1, 3});
  Host f32 = runMap(DType::F32, {Host::floats(DType::F32, {1}), Host::floats(DType::F32, {0x1p-8})},
                    [](Builder &b, auto v) { return b.bin(BinaryOp::Add, b.bin(BinaryOp::Add, v[0], v[1]), v[1]); });
  checkFloats(f32, {1 + 0x1p-7});
  // bf16 products: 1.0078125^2 = 1.01568603515625 rounds to 1.015625.
  Host bm = binaryF(BinaryOp::Mul, DType::BF16, {1.0078125, 1e38, 3}, {1.0078125, 1e3, 0.1});
  checkFloats(bm, {1.015625, kInf, double(bf16BitsToFloat(floatToBf16Bits(3 * bf16BitsToFloat(floatToBf16Bits(0.1f)))))});
  // f16: overflow to inf, ties to even, subnormals.
  Host fa = binaryF(BinaryOp::Add, DType::F16, {60000, 1, 1, 0x1p-24, -65504}, {10000, 0x1p-11, 3 * 0x1p-11, 0x1p-24, -16});
  checkFloats(fa, {kInf, 1, 1 + 0x1p-9, 0x1p-23, -kInf});
  Host fm = binaryF(BinaryOp::Mul, DType::F16, {0x1p-24, 3 * 0x1p-24, 0x1p-14}, {0.5, 0.5, 0.75});
  checkFloats(fm, {0, 0x1p-23, 0x1p-14 * 0.75});
  Host fd = binaryF(BinaryOp::Div, DType::F16, {1, -1}, {3, 0});
  checkFloats(fd, {double(f16BitsToFloat(0x3555)), -kInf});
}

TEST_CASE("interp: comparisons, including NaN") {
  std::vector<double> a{1, 2, kNaN, 1, -0.0}, b{2, 2, 1, kNaN, 0.0};
  struct Case { BinaryOp op; std::vector<int64_t> want; };
  const Case cases[] = {
      {BinaryOp::Lt, {1, 0, 0, 0, 0}}, {BinaryOp::Le, {1, 1, 0, 0, 1}}, {BinaryOp::Gt, {0, 0, 0, 0, 0}},
      {BinaryOp::Ge, {0, 1, 0, 0, 1}}, {BinaryOp::Eq, {0, 1, 0, 0, 1}}, {BinaryOp::Ne, {1, 0, 1, 1, 0}},
  };
  for (const Case &c : cases) {
    CAPTURE(binaryOpName(c.op));
    Host f = binaryF(c.op, DType::F32, a, b);
    checkInts(f, c.want);
    Host h = binaryF(c.op, DType::BF16, a, b);
    checkInts(h, c.want);
  }
  Host lt = binaryI(BinaryOp::Lt, DType::I64, {kI64Min, 5, -1}, {kI64Max, 5, 0});
  checkInts(lt, {1, 0, 1});
  Host eq = binaryI(BinaryOp::Eq, DType::Bool, {0, 1, 1}, {0, 0, 1});
  checkInts(eq, {1, 0, 1});
}

TEST_CASE("interp: integer arithmetic wraps; division truncates; by zero gives 0") {
  Host add = binaryI(BinaryOp::Add, DType::I32, {kI32Max, kI32Min, 5}, {1, -1, -7});
  checkInts(add, {kI32Min, kI32Max, -2});
  Host sub = binaryI(BinaryOp::Sub, DType::I32, {kI32Min, 0}, {1, kI32Min});
  checkInts(sub, {kI32Max, kI32Min});
  Host mul = binaryI(BinaryOp::Mul, DType::I32, {65536, 123456789, -3}, {65536, 1000, 7});
  checkInts(mul, {0, int32_t(uint32_t(123456789u * 1000u)), -21});
  Host div = binaryI(BinaryOp::Div, DType::I32, {7, -7, 7, -7, 5, kI32Min, kI32Min}, {2, 2, -2, -2, 0, -1, 1});
  checkInts(div, {3, -3, -3, 3, 0, kI32Min, kI32Min});
  Host rem = binaryI(BinaryOp::Rem, DType::I32, {7, -7, 7, -7, 5, kI32Min}, {2, 2, -2, -2, 0, -1});
  checkInts(rem, {1, -1, 1, -1, 0, 0});
  Host mn = binaryI(BinaryOp::Min, DType::I32, {3, -4}, {-2, 9});
  checkInts(mn, {-2, -4});
  Host mx = binaryI(BinaryOp::Max, DType::I32, {3, -4}, {-2, 9});
  checkInts(mx, {3, 9});
  Host band = binaryI(BinaryOp::And, DType::I32, {0b1100, -1}, {0b1010, 0x7f});
  checkInts(band, {0b1000, 0x7f});
  Host bor = binaryI(BinaryOp::Or, DType::I32, {0b1100, kI32Min}, {0b1010, 1});
  checkInts(bor, {0b1110, kI32Min + 1});

  Host add64 = binaryI(BinaryOp::Add, DType::I64, {kI64Max, int64_t(1) << 40}, {1, int64_t(1) << 40});
  checkInts(add64, {kI64Min, int64_t(1) << 41});
  Host mul64 = binaryI(BinaryOp::Mul, DType::I64, {int64_t(1) << 62, 3'000'000'000}, {4, 3});
  checkInts(mul64, {0, 9'000'000'000});
  Host div64 = binaryI(BinaryOp::Div, DType::I64, {kI64Min, -9'000'000'001, 1}, {-1, 2, 0});
  checkInts(div64, {kI64Min, -4'500'000'000, 0});
  Host rem64 = binaryI(BinaryOp::Rem, DType::I64, {kI64Min, -9'000'000'001, 1}, {-1, 2, 0});
  checkInts(rem64, {0, -1, 0});

  Host neg = runMap(DType::I32, {Host::ints(DType::I32, {kI32Min, 5, -5, 0})}, [](Builder &b, auto v) { return b.un(UnaryOp::Neg, v[0]); });
  checkInts(neg, {kI32Min, -5, 5, 0});
  Host abs = runMap(DType::I32, {Host::ints(DType::I32, {kI32Min, 5, -5, 0})}, [](Builder &b, auto v) { return b.un(UnaryOp::Abs, v[0]); });
  checkInts(abs, {kI32Min, 5, 5, 0});
  Host abs64 = runMap(DType::I64, {Host::ints(DType::I64, {kI64Min, -kI64Max})}, [](Builder &b, auto v) { return b.un(UnaryOp::Abs, v[0]); });
  checkInts(abs64, {kI64Min, kI64Max});
}

TEST_CASE("interp: bool logic and select") {
  Host band = binaryI(BinaryOp::And, DType::Bool, {0, 0, 1, 1}, {0, 1, 0, 1});
  checkInts(band, {0, 0, 0, 1});
  Host bor = binaryI(BinaryOp::Or, DType::Bool, {0, 0, 1, 1}, {0, 1, 0, 1});
  checkInts(bor, {0, 1, 1, 1});
  Host bnot = runMap(DType::Bool, {Host::ints(DType::Bool, {0, 1})}, [](Builder &b, auto v) { return b.un(UnaryOp::Not, v[0]); });
  checkInts(bnot, {1, 0});
  Host sel = runMap(DType::F32, {Host::ints(DType::Bool, {1, 0, 1}), Host::floats(DType::F32, {1, 2, kNaN}), Host::floats(DType::F32, {-1, -2, 5})},
                    [](Builder &b, auto v) { return b.select(v[0], v[1], v[2]); });
  checkFloats(sel, {1, -2, kNaN});
  Host seli = runMap(DType::I64, {Host::ints(DType::Bool, {1, 0}), Host::ints(DType::I64, {kI64Max, 2}), Host::ints(DType::I64, {-1, kI64Min})},
                     [](Builder &b, auto v) { return b.select(v[0], v[1], v[2]); });
  checkInts(seli, {kI64Max, kI64Min});
}

TEST_CASE("interp: math functions are computed in double and rounded once") {
  std::vector<double> x{1, 0.5, -2, 0, 10};
  auto r32 = [](double v) { return double(float(v)); };
  auto rbf = [](double v) { return roundToBf16(v); };
  struct Case { UnaryOp op; double (*fn)(double); };
  const Case cases[] = {
      {UnaryOp::Exp, [](double v) { return std::exp(v); }},
      {UnaryOp::Exp2, [](double v) { return std::exp2(v); }},
      {UnaryOp::Log, [](double v) { return std::log(v); }},
      {UnaryOp::Log2, [](double v) { return std::log2(v); }},
      {UnaryOp::Sqrt, [](double v) { return std::sqrt(v); }},
      {UnaryOp::Rsqrt, [](double v) { return 1 / std::sqrt(v); }},
      {UnaryOp::Tanh, [](double v) { return std::tanh(v); }},
      {UnaryOp::Sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }},
  };
  for (const Case &c : cases) {
    CAPTURE(unaryOpName(c.op));
    Host f = unary(c.op, DType::F32, x);
    Host b = unary(c.op, DType::BF16, x);
    for (size_t k = 0; k < x.size(); ++k) {
      CAPTURE(x[k]);
      CHECK(same(f.get(int64_t(k)), r32(c.fn(x[k]))));
      CHECK(same(b.get(int64_t(k)), rbf(c.fn(x[k]))));
    }
  }
  Host special = unary(UnaryOp::Sqrt, DType::F32, {-1, -0.0, kInf});
  checkFloats(special, {kNaN, -0.0, kInf});
  Host rs = unary(UnaryOp::Rsqrt, DType::F32, {0, 4, -1});
  checkFloats(rs, {kInf, 0.5, kNaN});
  Host sg = unary(UnaryOp::Sigmoid, DType::F16, {-1000, 1000, 0});
  checkFloats(sg, {0, 1, 0.5});
  Host lg = unary(UnaryOp::Log, DType::F32, {0, -1});
  checkFloats(lg, {-kInf, kNaN});
  Host ex = unary(UnaryOp::Exp, DType::F16, {12, -20});  // e^12 > 65504; e^-20 is below f16's subnormals
  checkFloats(ex, {kInf, 0});
  Host ng = unary(UnaryOp::Neg, DType::BF16, {1.5, -0.0, kNaN});
  checkFloats(ng, {-1.5, 0.0, kNaN});
  Host ab = unary(UnaryOp::Abs, DType::F16, {-1.5, -0.0, -kInf});
  checkFloats(ab, {1.5, 0.0, kInf});
}

TEST_CASE("interp: fma rounds once") {
  // (1 + 2^-20)^2 = 1 + 2^-19 + 2^-40: the product alone rounds the 2^-40 away.
  double a = 1 + 0x1p-20, c = -(1 + 0x1p-19);
  Host f = runMap(DType::F32, {Host::floats(DType::F32, {a}), Host::floats(DType::F32, {c})},
                  [](Builder &b, auto v) { return b.fma(v[0], v[0], v[1]); });
  checkFloats(f, {0x1p-40});
  Host m = runMap(DType::F32, {Host::floats(DType::F32, {a}), Host::floats(DType::F32, {c})},
                  [](Builder &b, auto v) { return b.bin(BinaryOp::Add, b.bin(BinaryOp::Mul, v[0], v[0]), v[1]); });
  checkFloats(m, {0});
  // bf16: computed in f32 (1.0078125^2 + 1 = 2.01568603515625), then rounded to bf16.
  Host h = runMap(DType::BF16, {Host::floats(DType::BF16, {1.0078125}), Host::floats(DType::BF16, {1})},
                  [](Builder &b, auto v) { return b.fma(v[0], v[0], v[1]); });
  checkFloats(h, {2.015625});
}

TEST_CASE("interp: casts") {
  Host fi = castF(DType::F32, DType::I32, {2.7, -2.7, 3e9, -3e9, kNaN, kInf, -kInf, -0.5, 2147483520.0});
  checkInts(fi, {2, -2, kI32Max, kI32Min, 0, kI32Max, kI32Min, 0, 2147483520});
  Host fl = castF(DType::F32, DType::I64, {1e19, -1e19, 9.2e18, kNaN, -123456789012.0});
  checkInts(fl, {kI64Max, kI64Min, 9200000267938955264, 0, -123456790528});
  Host fb = castF(DType::F32, DType::BF16, {1 + 0x1p-8, 1 + 3 * 0x1p-8, 1e39 /* inf in f32 already */, 3.4e38, kNaN});
  checkFloats(fb, {1, 1 + 0x1p-6, kInf, kInf, kNaN});
  Host fh = castF(DType::F32, DType::F16, {65519, 65520, 0x1p-25, 0x1p-24 * 1.5, 0.1});
  checkFloats(fh, {65504, kInf, 0, 0x1p-23, double(f16BitsToFloat(0x2e66))});
  Host hf = castF(DType::BF16, DType::F16, {1e5, 1 + 0x1p-7});
  checkFloats(hf, {kInf, 1 + 0x1p-7});
  Host hb = castF(DType::F16, DType::BF16, {1 + 0x1p-10, 1 + 0x1p-10 + 0x1p-8});
  checkFloats(hb, {1, 1 + 0x1p-7});  // the second lies above the midpoint 1 + 2^-8
  Host fbool = castF(DType::F32, DType::Bool, {0, -0.0, 0.5, kNaN, -kInf});
  checkInts(fbool, {0, 0, 1, 1, 1});

  Host i2f = castI(DType::I32, DType::F32, {16777217, 16777219, -16777217, kI32Max});
  checkFloats(i2f, {16777216, 16777220, -16777216, 2147483648.0});
  // 2^60 + 2^52 + 1 lies just above a bf16 midpoint; via double it would look like a tie and
  // round down.
  int64_t big = (int64_t(1) << 60) + (int64_t(1) << 52) + 1;
  Host i2b = castI(DType::I64, DType::BF16, {big, -big, 257, 259, kI64Min});
  checkFloats(i2b, {0x1p60 + 0x1p53, -(0x1p60 + 0x1p53), 256, 260, -0x1p63});
  Host i2h = castI(DType::I32, DType::F16, {65519, 65520, 2049, 2051, -70000});
  checkFloats(i2h, {65504, kInf, 2048, 2052, -kInf});
  Host i64to32 = castI(DType::I64, DType::I32, {(int64_t(1) << 32) + 5, -1, int64_t(kI32Max) + 1});
  checkInts(i64to32, {5, -1, kI32Min});
  Host i32to64 = castI(DType::I32, DType::I64, {-5, kI32Min});
  checkInts(i32to64, {-5, kI32Min});
  Host ib = castI(DType::I32, DType::Bool, {0, -3, 1});
  checkInts(ib, {0, 1, 1});
  Host bf = castI(DType::Bool, DType::F32, {0, 1});
  checkFloats(bf, {0, 1});
  Host bi = castI(DType::Bool, DType::I64, {1, 0});
  checkInts(bi, {1, 0});
}

// ---- reductions, broadcasts ------------------------------------------------------------------

namespace {
// Loads a [R, C] tensor into a tile, applies fn, and stores the 1-D result of length n.
Host runRows(Host input, DType outType, int64_t n, const std::function<ValueId(Builder &, ValueId)> &fn) {
  Builder b("rows");
  b.grid1();
  int x = b.tensor("x", input.dtype, {"R", "C"});
  int out = b.tensor("out", outType, {"K"});
  ValueId tile = b.load(x, {b.iota(input.sizes[0]), b.iota(input.sizes[1])}, b.zero(input.dtype));
  b.store(out, {b.iota(n)}, fn(b, tile));
  Host result(outType, {n});
  interpret(b.f, {input.arg(), result.arg()});
  return result;
}

Host matrix(DType t, int64_t rows, int64_t cols, const std::vector<double> &v) {
  Host h(t, {rows, cols});
  for (size_t k = 0; k < v.size(); ++k) h.set(int64_t(k), v[k]);
  return h;
}
}  // namespace

TEST_CASE("interp: reductions along each axis") {
  Host m = matrix(DType::F32, 2, 3, {1, 5, -2, 4, 0.5, 8});
  struct Case { ReduceOp op; int axis; std::vector<double> want; };
  const Case cases[] = {
      {ReduceOp::Sum, 0, {5, 5.5, 6}}, {ReduceOp::Sum, 1, {4, 12.5}},
      {ReduceOp::Max, 0, {4, 5, 8}},   {ReduceOp::Max, 1, {5, 8}},
      {ReduceOp::Min, 0, {1, 0.5, -2}}, {ReduceOp::Min, 1, {-2, 0.5}},
  };
  for (const Case &c : cases) {
    CAPTURE(reduceOpName(c.op));
    CAPTURE(c.axis);
    Host r = runRows(m, DType::F32, int64_t(c.want.size()), [&](Builder &b, ValueId t) { return b.reduce(c.op, t, c.axis); });
    checkFloats(r, c.want);
  }
  Host a0 = runRows(m, DType::I32, 3, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Argmax, t, 0); });
  checkInts(a0, {1, 0, 1});
  Host a1 = runRows(m, DType::I32, 2, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Argmax, t, 1); });
  checkInts(a1, {1, 2});
  // A rank-3 tile (an orthogonal load of three 1-D indices) reduced over its middle axis.
  Host cube(DType::I32, {2, 3, 2});
  for (int64_t k = 0; k < 12; ++k) cube.setInt(k, k * k);
  Builder b("cube");
  b.grid1();
  int x = b.tensor("x", DType::I32, {"A", "B", "C"});
  int out = b.tensor("out", DType::I32, {"A", "C"});
  ValueId tile = b.load(x, {b.iota(2), b.iota(3), b.iota(2)}, b.ci(0));
  b.store(out, {b.iota(2), b.iota(2)}, b.reduce(ReduceOp::Sum, tile, 1));
  Host r(DType::I32, {2, 2});
  interpret(b.f, {cube.arg(), r.arg()});
  checkInts(r, {0 + 4 + 16, 1 + 9 + 25, 36 + 64 + 100, 49 + 81 + 121});
}

TEST_CASE("interp: reductions with NaN, ties, wrapping and a single rounding") {
  Host m = matrix(DType::F32, 2, 4, {1, kNaN, 3, kNaN, 2, 7, 7, -1});
  Host mx = runRows(m, DType::F32, 2, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Max, t, 1); });
  checkFloats(mx, {kNaN, 7});
  Host mn = runRows(m, DType::F32, 2, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Min, t, 1); });
  checkFloats(mn, {kNaN, -1});
  Host sm = runRows(m, DType::F32, 2, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Sum, t, 1); });
  checkFloats(sm, {kNaN, 15});
  Host am = runRows(m, DType::I32, 2, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Argmax, t, 1); });
  checkInts(am, {1, 1});  // the first NaN; the first of the tied 7s
  Host inf = matrix(DType::F32, 1, 3, {-kInf, -kInf, -kInf});
  Host ai = runRows(inf, DType::I32, 1, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Argmax, t, 1); });
  checkInts(ai, {0});
  // bf16: summed in double, rounded once: 1 + 2^-8 + 2^-8 = 1 + 2^-7 (rounding after each add
  // would stay at 1).
  Host bsum = runRows(matrix(DType::BF16, 1, 3, {1, 0x1p-8, 0x1p-8}), DType::BF16, 1,
                      [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Sum, t, 1); });
  checkFloats(bsum, {1 + 0x1p-7});
  // f32: 2^24 + 1 + 1 is exact in double, then representable in f32.
  Host fsum = runRows(matrix(DType::F32, 1, 3, {0x1p24, 1, 1}), DType::F32, 1,
                      [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Sum, t, 1); });
  checkFloats(fsum, {0x1p24 + 2});
  Host ints(DType::I32, {1, 3});
  ints.setInt(0, kI32Max);
  ints.setInt(1, 1);
  ints.setInt(2, 5);
  Host isum = runRows(ints, DType::I32, 1, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Sum, t, 1); });
  checkInts(isum, {kI32Min + 5});
  Host imax = runRows(ints, DType::I32, 1, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Max, t, 1); });
  checkInts(imax, {kI32Max});
  Host iarg = runRows(ints, DType::I32, 1, [](Builder &b, ValueId t) { return b.reduce(ReduceOp::Argmax, t, 1); });
  checkInts(iarg, {0});
}

TEST_CASE("interp: broadcast and expand_dims") {
  Builder b("bcast");
  b.grid1();
  int out = b.tensor("out", DType::F32, {"R", "C"});
  int out2 = b.tensor("out2", DType::F32, {"R", "C"});
  ValueId row = b.cast(b.iota(3), DType::F32);                                     // [0, 1, 2]
  ValueId col = b.expand(b.cast(b.bin(BinaryOp::Mul, b.iota(2), b.bcast(b.ci(10), {2})), DType::F32), 1);  // [[0], [10]]
  ValueId sum = b.bin(BinaryOp::Add, b.bcast(row, {2, 3}), b.bcast(col, {2, 3}));
  ValueId scalar = b.bcast(b.cf(0.5), {2, 3});
  b.store(out, {b.iota(2), b.iota(3)}, b.bin(BinaryOp::Add, sum, scalar));
  ValueId rowAsCol = b.expand(b.expand(row, 0), 2);  // [1, 3, 1]
  b.store(out2, {b.iota(2), b.iota(3)}, b.reduce(ReduceOp::Sum, b.bcast(rowAsCol, {2, 3, 4}), 2));
  Host r(DType::F32, {2, 3}), r2(DType::F32, {2, 3});
  interpret(b.f, {r.arg(), r2.arg()});
  checkFloats(r, {0.5, 1.5, 2.5, 10.5, 11.5, 12.5});
  checkFloats(r2, {0, 4, 8, 0, 4, 8});
}

// ---- memory ----------------------------------------------------------------------------------

TEST_CASE("interp: load and store mask out-of-bounds indices") {
  Builder b("mask");
  b.grid1();
  int x = b.tensor("x", DType::F32, {"N"});
  int y = b.tensor("y", DType::F32, {"M"});
  int z = b.tensor("z", DType::I64, {"R", "C"});
  // x[i - 2] for i in 0..7: indices -2..5 over a tensor of 5, `other` = -1.
  ValueId idx = b.bin(BinaryOp::Sub, b.iota(8), b.bcast(b.ci(2), {8}));
  ValueId v = b.load(x, {idx}, b.cf(-1));
  // y[i + 3] = v: only indices 3..5 of y (size 6) are written.
  b.store(y, {b.bin(BinaryOp::Add, b.iota(8), b.bcast(b.ci(3), {8}))}, v);
  // z[1, c] with a 0-D row index and i64 column indices 0..3 over 3 columns, other = 77.
  ValueId cols = b.cast(b.iota(4), DType::I64);
  ValueId zr = b.load(z, {b.ci(1, DType::I64), cols}, b.ci(77, DType::I64));
  b.store(z, {b.ci(0), cols}, zr);  // row 0 := row 1 (the 4th column is out of bounds)
  b.store(z, {b.ci(5), cols}, zr);  // row 5 does not exist: nothing is written
  Host hx = Host::floats(DType::F32, {10, 11, 12, 13, 14});
  Host hy(DType::F32, {6}, {1}, 7);  // one more element of storage past the end, a sentinel
  for (int64_t k = 0; k < 7; ++k) hy.set(k, 100 + double(k));
  Host hz(DType::I64, {2, 3}, {3, 1}, 7);
  for (int64_t k = 0; k < 7; ++k) hz.setInt(k, k);
  interpret(b.f, {hx.arg(), hy.arg(), hz.arg()});
  // v = [-1, -1, 10, 11, 12, 13, 14, -1] lands at y[3..10]; only y[3], y[4], y[5] exist.
  checkFloats(hy, {100, 101, 102, -1, -1, 10, 106});
  checkInts(hz, {3, 4, 5, 3, 4, 5, 6});
}

TEST_CASE("interp: strided tensors") {
  // x: [3, 4] viewed inside storage with rows 6 apart, starting at element 1. y: [3, 4] with
  // rows 5 apart. y = 2 * x; the gaps must stay untouched.
  Builder b("strided");
  b.grid1();
  int x = b.tensor("x", DType::BF16, {"R", "C"});
  int y = b.tensor("y", DType::BF16, {"R", "C"});
  ValueId rows = b.iota(3), cols = b.iota(4);
  ValueId v = b.load(x, {rows, cols}, b.cf(0, DType::BF16));
  b.store(y, {rows, cols}, b.bin(BinaryOp::Mul, v, b.bcast(b.cf(2, DType::BF16), {3, 4})));
  Host hx(DType::BF16, {3, 4}, {6, 1}, 20);
  hx.base = 1;
  for (int64_t k = 0; k < 20; ++k) hx.set(k, double(k));
  Host hy(DType::BF16, {3, 4}, {5, 1}, 15);
  for (int64_t k = 0; k < 15; ++k) hy.set(k, -1);
  interpret(b.f, {hx.arg(), hy.arg()});
  checkFloats(hy, {2, 4, 6, 8, -1, 14, 16, 18, 20, -1, 26, 28, 30, 32, -1});
  // A size-1 last dimension may have any stride; a zero stride repeats an element.
  Builder c("bcast_view");
  c.grid1();
  int p = c.tensor("p", DType::F32, {"R", "C"});
  int q = c.tensor("q", DType::F32, {"R", "C"});
  c.store(q, {c.iota(2), c.iota(3)}, c.load(p, {c.iota(2), c.iota(3)}, c.cf(0)));
  Host hp(DType::F32, {2, 3}, {0, 1}, 3);
  for (int64_t k = 0; k < 3; ++k) hp.set(k, double(k + 1));
  Host hq(DType::F32, {2, 3});
  Host col(DType::F32, {2, 1}, {1, 7}, 2);
  interpret(c.f, {hp.arg(), hq.arg()});
  checkFloats(hq, {1, 2, 3, 1, 2, 3});
  CHECK_NOTHROW(checkArgs(c.f, {col.arg(), col.arg()}));
}

TEST_CASE("interp: atomic_add across programs") {
  Builder b("atomic");
  b.grid([&] { return std::vector<ValueId>{b.ci(4)}; });
  int f = b.tensor("f", DType::F32, {"N"});
  int i = b.tensor("i", DType::I32, {"K"});
  ValueId pid = b.pid(0);
  ValueId one = b.bin(BinaryOp::Add, pid, b.ci(1));
  // f[k] += (pid + 1) * 0.25 for k in 0..7 (f has 6 elements: 6 and 7 are skipped);
  // i[pid] += 2^30 (i[0] starts at 2^31 - 1 - 2^30 + 1, so it wraps).
  ValueId add = b.bcast(b.bin(BinaryOp::Mul, b.cast(one, DType::F32), b.cf(0.25)), {8});
  b.atomicAdd(f, {b.iota(8)}, add);
  b.atomicAdd(i, {pid}, b.ci(1 << 30));
  b.atomicAdd(i, {b.ci(3)}, b.ci(1));
  Host hf = Host::floats(DType::F32, {0, 1, 2, 3, 4, 5});
  Host hi = Host::ints(DType::I32, {kI32Max - (1 << 30) + 1, 0, -(1 << 30), 0});
  interpret(b.f, {hf.arg(), hi.arg()});
  checkFloats(hf, {2.5, 3.5, 4.5, 5.5, 6.5, 7.5});
  checkInts(hi, {kI32Min, 1 << 30, 0, (1 << 30) + 4});
}

// ---- control flow and the grid ---------------------------------------------------------------

TEST_CASE("interp: for loop with carried values") {
  Builder b("loop");
  b.grid1();
  int out = b.tensor("out", DType::I32, {"N"});
  int tile = b.tensor("tile", DType::F32, {"K"});
  int lo = b.scalar("lo", DType::I32), hi = b.scalar("hi", DType::I32), st = b.scalar("step", DType::I32);
  // Carried: a sum of iv, a trip count, and two tiles swapped each iteration (the yield names
  // the block arguments in the other order).
  ValueId t0 = b.bcast(b.cf(1), {3}), t1 = b.bcast(b.cf(2), {3});
  std::vector<ValueId> res = b.loop(b.arg(lo), b.arg(hi), b.arg(st), {b.ci(0), b.ci(0), t0, t1},
                                    [&](ValueId iv, const std::vector<ValueId> &c) {
                                      return std::vector<ValueId>{b.bin(BinaryOp::Add, c[0], iv),
                                                                  b.bin(BinaryOp::Add, c[1], b.ci(1)), c[3], c[2]};
                                    });
  b.store(out, {b.ci(0)}, res[0]);
  b.store(out, {b.ci(1)}, res[1]);
  b.store(tile, {b.iota(3)}, res[2]);
  auto run = [&](int64_t l, int64_t h, int64_t s) {
    Host ho = Host::ints(DType::I32, {-9, -9});
    Host ht(DType::F32, {3});
    interpret(b.f, {ho.arg(), ht.arg(), KernelArg::ofInt(l), KernelArg::ofInt(h), KernelArg::ofInt(s)});
    return std::make_tuple(ho.getInt(0), ho.getInt(1), ht.get(0));
  };
  CHECK(run(0, 10, 3) == std::make_tuple(0 + 3 + 6 + 9, 4, 1.0));  // swapped 4 times
  CHECK(run(-5, 0, 1) == std::make_tuple(-15, 5, 2.0));
  CHECK(run(5, 5, 1) == std::make_tuple(0, 0, 1.0));  // no iteration: the initial values
  CHECK(run(7, 3, 1) == std::make_tuple(0, 0, 1.0));
  CHECK(run(kI32Max - 2, kI32Max, 5) == std::make_tuple(kI32Max - 2, 1, 2.0));  // iv + step past i32
  CHECK_THROWS_WITH_AS(run(0, 10, 0), "loop: for: step must be positive, got 0", Error);
  CHECK_THROWS_WITH_AS(run(0, 10, -1), "loop: for: step must be positive, got -1", Error);
}

TEST_CASE("interp: nested loops") {
  Builder b("nested");
  b.grid1();
  int out = b.tensor("out", DType::I64, {"N"});
  // sum over i < 4, j < i of (i * 10 + j), as i64.
  std::vector<ValueId> r = b.loop(b.ci(0), b.ci(4), b.ci(1), {b.ci(0, DType::I64)}, [&](ValueId i, const std::vector<ValueId> &c) {
    return b.loop(b.ci(0), i, b.ci(1), {c[0]}, [&](ValueId j, const std::vector<ValueId> &d) {
      ValueId term = b.bin(BinaryOp::Add, b.bin(BinaryOp::Mul, i, b.ci(10)), j);
      return std::vector<ValueId>{b.bin(BinaryOp::Add, d[0], b.cast(term, DType::I64))};
    });
  });
  b.store(out, {b.ci(0)}, r[0]);
  Host h(DType::I64, {1});
  interpret(b.f, {h.arg()});
  CHECK(h.getInt(0) == (10) + (20 + 21) + (30 + 31 + 32));
}

TEST_CASE("interp: grid evaluation and program ids") {
  Builder b("grid3");
  int m = b.tensor("m", DType::I32, {"Z", "Y", "X"});
  int rows = b.scalar("rows", DType::I32);
  // grid = (cdiv(rows, 4), Y, Z) where Y, Z come from m's dims.
  b.grid([&] {
    ValueId x = b.bin(BinaryOp::Div, b.bin(BinaryOp::Add, b.arg(rows), b.ci(3)), b.ci(4));
    return std::vector<ValueId>{x, b.dim(m, 1), b.dim(m, 0)};
  });
  // m[z, y, x] += 1000 * num_programs(0) + 100 * z + 10 * y + x: each program once.
  ValueId px = b.pid(0), py = b.pid(1), pz = b.pid(2);
  ValueId v = b.bin(BinaryOp::Mul, b.nprog(0), b.ci(1000));
  v = b.bin(BinaryOp::Add, v, b.bin(BinaryOp::Mul, pz, b.ci(100)));
  v = b.bin(BinaryOp::Add, v, b.bin(BinaryOp::Mul, py, b.ci(10)));
  v = b.bin(BinaryOp::Add, v, px);
  v = b.bin(BinaryOp::Add, v, b.bin(BinaryOp::Mul, b.nprog(1), b.bin(BinaryOp::Mul, b.nprog(2), b.ci(10000))));
  b.atomicAdd(m, {pz, py, px}, v);
  Host h(DType::I32, {2, 3, 3});
  std::vector<KernelArg> args{h.arg(), KernelArg::ofInt(9)};
  CHECK(evalGrid(b.f, args) == std::array<int64_t, 3>{3, 3, 2});
  interpret(b.f, args);
  for (int64_t z = 0; z < 2; ++z)
    for (int64_t y = 0; y < 3; ++y)
      for (int64_t x = 0; x < 3; ++x) CHECK(h.getInt(z * 9 + y * 3 + x) == 60000 + 3000 + 100 * z + 10 * y + x);
  CHECK(evalGrid(b.f, {h.arg(), KernelArg::ofInt(8)}) == std::array<int64_t, 3>{2, 3, 2});
  // A zero grid runs nothing; a negative one is an error.
  Host before = h;
  CHECK(evalGrid(b.f, {h.arg(), KernelArg::ofInt(-3)}) == std::array<int64_t, 3>{0, 3, 2});
  interpret(b.f, {h.arg(), KernelArg::ofInt(-3)});
  CHECK(h.bytes == before.bytes);
  CHECK_THROWS_WITH_AS(evalGrid(b.f, {h.arg(), KernelArg::ofInt(-8)}), "grid3: grid size along x is negative (-1)", Error);
  CHECK_THROWS_WITH_AS(interpret(b.f, {h.arg(), KernelArg::ofInt(-8)}), "grid3: grid size along x is negative (-1)", Error);
  // Missing grid sizes are 1.
  Builder one("one");
  one.grid([&] { return std::vector<ValueId>{one.ci(5)}; });
  CHECK(evalGrid(one.f, {}) == std::array<int64_t, 3>{5, 1, 1});
}

// ---- errors ----------------------------------------------------------------------------------

TEST_CASE("interp: checkArgs errors") {
  Builder b("rms_norm_fwd");
  b.grid1();
  b.tensor("out", DType::F32, {"M", "N"});
  b.tensor("x", DType::BF16, {"M", "N"});
  b.tensor("w", DType::BF16, {"N"}, {8});
  b.scalar("eps", DType::F32);
  b.scalar("n", DType::I32);
  b.scalar("flag", DType::Bool);
  Host out(DType::F32, {4, 8}), x(DType::BF16, {4, 8}), w(DType::BF16, {8});
  auto args = [&] {
    return std::vector<KernelArg>{out.arg(), x.arg(), w.arg(), KernelArg::ofFloat(1e-6), KernelArg::ofInt(3), KernelArg::ofInt(1)};
  };
  CHECK_NOTHROW(checkArgs(b.f, args()));
  auto expect = [&](std::vector<KernelArg> a, const std::string &msg) {
    CHECK_THROWS_WITH_AS(checkArgs(b.f, a), msg.c_str(), Error);
    CHECK_THROWS_WITH_AS(interpret(b.f, a), msg.c_str(), Error);
  };
  auto with = [&](size_t i, KernelArg v) {
    std::vector<KernelArg> a = args();
    a[i] = std::move(v);
    return a;
  };
  auto withTensor = [&](size_t i, const std::function<void(TensorArg &)> &edit) {
    std::vector<KernelArg> a = args();
    edit(a[i].tensor);
    return a;
  };
  std::vector<KernelArg> few = args();
  few.pop_back();
  expect(few, "rms_norm_fwd: expected 6 arguments, got 5");
  expect(with(1, Host(DType::F32, {4, 8}).arg()), "rms_norm_fwd: argument 'x' (parameter 2): expected bf16 tensor, got f32");
  expect(with(1, KernelArg::ofFloat(1)), "rms_norm_fwd: argument 'x' (parameter 2): expected bf16 tensor, got a float scalar");
  expect(with(3, KernelArg::ofInt(1)), "rms_norm_fwd: argument 'eps' (parameter 4): expected f32 scalar, got an integer scalar");
  expect(with(3, x.arg()), "rms_norm_fwd: argument 'eps' (parameter 4): expected f32 scalar, got a tensor");
  expect(with(4, KernelArg::ofFloat(3)), "rms_norm_fwd: argument 'n' (parameter 5): expected i32 scalar, got a float scalar");
  expect(with(4, KernelArg::ofInt(int64_t(1) << 31)), "rms_norm_fwd: argument 'n' (parameter 5): value 2147483648 does not fit i32");
  expect(with(5, KernelArg::ofInt(2)), "rms_norm_fwd: argument 'flag' (parameter 6): value 2 is not a bool (0 or 1)");
  expect(with(2, Host(DType::BF16, {2, 4}).arg()), "rms_norm_fwd: argument 'w' (parameter 3): expected rank 1 [N], got rank 2");
  expect(with(2, Host(DType::BF16, {4}).arg()), "rms_norm_fwd: argument 'w' (parameter 3): dimension 0 (N) must be 8, got 4");
  expect(with(1, Host(DType::BF16, {3, 8}).arg()), "rms_norm_fwd: argument 'x' (parameter 2): dimension 0 (M) is 3, but M is 4 in argument 'out'");
  expect(withTensor(1, [](TensorArg &t) { t.strides = {1}; }), "rms_norm_fwd: argument 'x' (parameter 2): has 2 sizes but 1 strides");
  expect(withTensor(1, [](TensorArg &t) { t.strides = {16, 2}; }), "rms_norm_fwd: argument 'x' (parameter 2): last stride must be 1, got 2");
  expect(withTensor(1, [](TensorArg &t) { t.strides = {-8, 1}; }), "rms_norm_fwd: argument 'x' (parameter 2): dimension 0 has negative stride -8");
  expect(withTensor(0, [](TensorArg &t) { t.sizes = {-1, 8}; }), "rms_norm_fwd: argument 'out' (parameter 1): dimension 0 (M) has negative size -1");
  expect(withTensor(0, [](TensorArg &t) { t.sizes = {int64_t(1) << 31, 8}; }),
         "rms_norm_fwd: argument 'out' (parameter 1): dimension 0 (M) has size 2147483648, more than i32 holds");
  expect(withTensor(0, [](TensorArg &t) { t.data = nullptr; }), "rms_norm_fwd: argument 'out' (parameter 1): data pointer is null");
  // Empty tensors need no data.
  std::vector<KernelArg> empty = args();
  empty[0].tensor = TensorArg{nullptr, DType::F32, {0, 8}, {8, 1}};
  empty[1].tensor = TensorArg{nullptr, DType::BF16, {0, 8}, {8, 1}};
  CHECK_NOTHROW(checkArgs(b.f, empty));
}

TEST_CASE("kernel args: the 16-byte alignment the JIT specializes on") {
  alignas(16) static float data[64];
  auto t = [](void *p, std::vector<int64_t> sizes, std::vector<int64_t> strides) {
    return TensorArg{p, DType::F32, std::move(sizes), std::move(strides)};
  };
  CHECK(isAligned16(t(data, {4, 8}, {8, 1})));
  CHECK_FALSE(isAligned16(t(data + 1, {4, 8}, {8, 1})));  // base
  CHECK_FALSE(isAligned16(t(data, {4, 7}, {7, 1})));      // row stride of 28 bytes
  CHECK(isAligned16(t(data, {1, 7}, {7, 1})));            // one row: its stride never moves an address
  CHECK_FALSE(isAligned16(t(data, {1, 2, 7}, {14, 7, 1})));  // the middle row stride counts
  CHECK(isAligned16(t(data, {2, 1, 8}, {8, 3, 1})));
}

TEST_CASE("interp: malformed IR and ill-typed ops are errors") {
  {
    Builder b("no_grid");
    b.cf(1);
    CHECK_THROWS_WITH_AS(interpret(b.f, {}), "no_grid: invalid IR: grid block must end with a yield", Error);
  }
  {
    Builder b("bad_param");
    b.grid1();
    Op &op = b.emit(OpKind::Load, {b.ci(0), b.cf(0)}, {{DType::F32, {}}});
    op.param = 7;
    CHECK_THROWS_WITH_AS(interpret(b.f, {}), doctest::Contains("bad_param: invalid IR: 0:0: load: bad parameter index"), Error);
  }
  {
    // A loop-body value used after a loop that never ran: the verifier allows it.
    Builder b("escape");
    b.grid1();
    ValueId inner = -1;
    b.loop(b.ci(0), b.ci(0), b.ci(1), {}, [&](ValueId iv, const std::vector<ValueId> &) {
      inner = b.bin(BinaryOp::Add, iv, iv);
      return std::vector<ValueId>{};
    });
    b.bin(BinaryOp::Add, inner, inner);
    CHECK_THROWS_WITH_AS(interpret(b.f, {}), doctest::Contains("escape: binary: operand %"), Error);
    CHECK_THROWS_WITH_AS(interpret(b.f, {}), doctest::Contains("has no value here"), Error);
  }
  auto typeError = [](const char *name, const std::function<void(Builder &)> &body, const char *msg) {
    Builder b(name);
    b.grid1();
    body(b);
    CHECK_THROWS_WITH_AS(interpret(b.f, {}), msg, Error);
  };
  typeError("not_f32", [](Builder &b) { b.un(UnaryOp::Not, b.cf(1)); }, "not_f32: unary: not needs bool, got f32");
  typeError("exp_i32", [](Builder &b) { b.un(UnaryOp::Exp, b.ci(1)); }, "exp_i32: unary: exp is not defined on i32");
  typeError("rem_f32", [](Builder &b) { b.bin(BinaryOp::Rem, b.cf(1), b.cf(2)); }, "rem_f32: binary: rem is not defined on f32");
  typeError("add_bool", [](Builder &b) { b.bin(BinaryOp::Add, b.ci(1, DType::Bool), b.ci(0, DType::Bool)); },
            "add_bool: binary: add is not defined on bool");
  typeError("fma_i32", [](Builder &b) { b.fma(b.ci(1), b.ci(1), b.ci(1)); }, "fma_i32: fma: needs a float dtype, got i32");
  typeError("pid_grid", [](Builder &b) {
    b.f.grid.ops.clear();
    b.grid([&] { return std::vector<ValueId>{b.pid(0)}; });
  }, "pid_grid: program_id: not available in the grid block");
  typeError("reduce_axis", [](Builder &b) {
    Op &op = b.emit(OpKind::Reduce, {b.iota(4)}, {{DType::I32, {}}});
    op.axis = 1;
  }, "reduce_axis: reduce: axis 1 out of range for i32[4]");
  typeError("grid_f32", [](Builder &b) {
    b.f.grid.ops.clear();
    b.grid([&] { return std::vector<ValueId>{b.cf(2)}; });
  }, "grid_f32: yield: grid sizes must be 0-D i32 values, got f32");
}

TEST_CASE("interp: scalar arguments and tensor dims") {
  Builder b("scalars");
  b.grid1();
  int out = b.tensor("out", DType::F32, {"A", "B"});
  int outi = b.tensor("outi", DType::I64, {"K"});
  int s = b.scalar("s", DType::F32), h = b.scalar("h", DType::BF16), l = b.scalar("l", DType::I64);
  b.store(out, {b.ci(0), b.ci(0)}, b.arg(s));
  b.store(out, {b.ci(0), b.ci(1)}, b.cast(b.arg(h), DType::F32));
  b.store(out, {b.ci(0), b.ci(2)}, b.cast(b.dim(out, 1), DType::F32));
  b.store(outi, {b.ci(0)}, b.arg(l));
  b.store(outi, {b.ci(1)}, b.cast(b.dim(out, 0), DType::I64));
  Host ho(DType::F32, {1, 3}), hi(DType::I64, {2});
  interpret(b.f, {ho.arg(), hi.arg(), KernelArg::ofFloat(0.1), KernelArg::ofFloat(1 + 0x1p-8 + 0x1p-20), KernelArg::ofInt(kI64Min + 7)});
  checkFloats(ho, {double(0.1f), 1 + 0x1p-7, 3});
  checkInts(hi, {kI64Min + 7, 1});
}

// ---- a whole kernel --------------------------------------------------------------------------

namespace {
// y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w, one row per program. The column tile
// (BLOCK) may be wider than N: the extra lanes load 0 and are not stored.
void buildRmsNorm(Builder &b, int64_t block) {
  int x = b.tensor("x", DType::F32, {"M", "N"});
  int w = b.tensor("w", DType::F32, {"N"});
  int y = b.tensor("y", DType::F32, {"M", "N"});
  int eps = b.scalar("eps", DType::F32);
  b.grid([&] { return std::vector<ValueId>{b.dim(x, 0)}; });
  ValueId row = b.pid(0), cols = b.iota(block);
  ValueId xv = b.load(x, {row, cols}, b.cf(0));
  ValueId ss = b.reduce(ReduceOp::Sum, b.bin(BinaryOp::Mul, xv, xv), 0);
  ValueId mean = b.bin(BinaryOp::Div, ss, b.cast(b.dim(x, 1), DType::F32));
  ValueId r = b.un(UnaryOp::Rsqrt, b.bin(BinaryOp::Add, mean, b.arg(eps)));
  ValueId wv = b.load(w, {cols}, b.cf(0));
  b.store(y, {row, cols}, b.bin(BinaryOp::Mul, b.bin(BinaryOp::Mul, xv, b.bcast(r, {block})), wv));
}

void checkRmsNorm(int64_t rows, int64_t n, int64_t block, int64_t rowStride) {
  Builder b("rms_norm_fwd");
  buildRmsNorm(b, block);
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0, 2);
  Host x(DType::F32, {rows, n}, {rowStride, 1}), w(DType::F32, {n}), y(DType::F32, {rows, n}, {rowStride, 1});
  for (int64_t k = 0; k < x.storageSize(); ++k) x.set(k, dist(rng));
  for (int64_t k = 0; k < n; ++k) w.set(k, dist(rng));
  for (int64_t k = 0; k < y.storageSize(); ++k) y.set(k, 12345);
  const double eps = 1e-5;
  interpret(b.f, {x.arg(), w.arg(), y.arg(), KernelArg::ofFloat(eps)});
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < n; ++c) ss += x.get(r * rowStride + c) * x.get(r * rowStride + c);
    double inv = 1 / std::sqrt(ss / double(n) + double(float(eps)));
    for (int64_t c = 0; c < n; ++c) {
      double want = x.get(r * rowStride + c) * inv * w.get(c);
      worst = std::max(worst, std::fabs(y.get(r * rowStride + c) - want) / std::max(std::fabs(want), 1e-30));
    }
    for (int64_t c = n; c < rowStride && r * rowStride + c < y.storageSize(); ++c) CHECK(y.get(r * rowStride + c) == 12345);
  }
  CHECK(worst < 1e-6);  // a few f32 roundings (bf16 would be ~4e-3)
}
}  // namespace

TEST_CASE("interp: rms_norm forward, one row per program") {
  SUBCASE("block equals N") { checkRmsNorm(5, 64, 64, 64); }
  SUBCASE("block wider than N, padded rows") { checkRmsNorm(7, 300, 512, 320); }
  SUBCASE("64 rows of 4096") { checkRmsNorm(64, 4096, 4096, 4096); }
}
