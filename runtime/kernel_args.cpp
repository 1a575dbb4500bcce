#include "runtime/kernel_args.h"

#include <fmt/format.h>

#include <limits>
#include <map>

#include "dsl/error.h"

namespace tigon {
namespace {

using namespace ir;

const char *argKindName(KernelArg::Kind k) {
  switch (k) {
    case KernelArg::Kind::Tensor: return "a tensor";
    case KernelArg::Kind::Float: return "a float scalar";
    case KernelArg::Kind::Int: return "an integer scalar";
  }
  return "?";
}

class ArgChecker {
 public:
  explicit ArgChecker(const Function &f) : f_(f) {}

  void check(size_t i, const KernelArg &a) {
    if (f_.params[i].kind == Param::Kind::Scalar) scalar(i, a);
    else tensor(i, a);
  }

 private:
  const Function &f_;
  // A named dimension's size and the parameter that first gave it.
  std::map<std::string, std::pair<int64_t, size_t>> dims_;

  [[noreturn]] void fail(size_t i, const std::string &msg) const {
    throw Error(fmt::format("{}: argument '{}' (parameter {}): {}", f_.name, f_.params[i].name, i + 1, msg));
  }

  // Float scalars for float dtypes, integer scalars for i32/i64/bool, no conversions between
  // them: a mismatch is more likely a misplaced argument than an intended conversion.
  void scalar(size_t i, const KernelArg &a) {
    DType t = f_.params[i].dtype;
    auto want = isFloat(t) ? KernelArg::Kind::Float : KernelArg::Kind::Int;
    if (a.kind != want) fail(i, fmt::format("expected {} scalar, got {}", dtypeName(t), argKindName(a.kind)));
    if (t == DType::I32 && (a.i < std::numeric_limits<int32_t>::min() || a.i > std::numeric_limits<int32_t>::max()))
      fail(i, fmt::format("value {} does not fit i32", a.i));
    if (t == DType::Bool && a.i != 0 && a.i != 1) fail(i, fmt::format("value {} is not a bool (0 or 1)", a.i));
  }

  void tensor(size_t i, const KernelArg &a) {
    const Param &p = f_.params[i];
    if (a.kind != KernelArg::Kind::Tensor)
      fail(i, fmt::format("expected {} tensor, got {}", dtypeName(p.dtype), argKindName(a.kind)));
    const TensorArg &t = a.tensor;
    if (t.dtype != p.dtype) fail(i, fmt::format("expected {} tensor, got {}", dtypeName(p.dtype), dtypeName(t.dtype)));
    if (t.sizes.size() != size_t(p.rank()))
      fail(i, fmt::format("expected rank {} [{}], got rank {}", p.rank(), fmt::join(p.dimNames, ", "), t.sizes.size()));
    if (t.strides.size() != t.sizes.size())
      fail(i, fmt::format("has {} sizes but {} strides", t.sizes.size(), t.strides.size()));
    bool empty = false;
    for (size_t d = 0; d < t.sizes.size(); ++d) {
      dimension(i, d, t.sizes[d]);
      if (t.strides[d] < 0) fail(i, fmt::format("dimension {} has negative stride {}", d, t.strides[d]));
      empty |= t.sizes[d] == 0;
    }
    int64_t last = t.sizes.empty() ? 1 : t.sizes.back();
    if (last > 1 && t.strides.back() != 1) fail(i, fmt::format("last stride must be 1, got {}", t.strides.back()));
    if (!empty && !t.data) fail(i, "data pointer is null");
  }

  // Tile IR sees sizes as i32 (TensorDim), so larger ones are rejected rather than wrapped.
  void dimension(size_t i, size_t d, int64_t size) {
    const Param &p = f_.params[i];
    const std::string &name = p.dimNames[d];
    std::string what = fmt::format("dimension {} ({})", d, name);
    if (size < 0) fail(i, fmt::format("{} has negative size {}", what, size));
    if (size > std::numeric_limits<int32_t>::max()) fail(i, fmt::format("{} has size {}, more than i32 holds", what, size));
    int64_t fixed = d < p.staticDims.size() ? p.staticDims[d] : -1;
    if (fixed >= 0 && size != fixed) fail(i, fmt::format("{} must be {}, got {}", what, fixed, size));
    if (name.empty()) return;
    auto [it, fresh] = dims_.try_emplace(name, size, i);
    if (!fresh && it->second.first != size)
      fail(i, fmt::format("{} is {}, but {} is {} in argument '{}'", what, size, name, it->second.first,
                          f_.params[it->second.second].name));
  }
};

}  // namespace

void checkArgs(const ir::Function &f, const std::vector<KernelArg> &args) {
  if (args.size() != f.params.size())
    throw Error(fmt::format("{}: expected {} arguments, got {}", f.name, f.params.size(), args.size()));
  ArgChecker checker(f);
  for (size_t i = 0; i < args.size(); ++i) checker.check(i, args[i]);
}

bool isAligned16(const TensorArg &t) {
  int64_t bytes = ir::dtypeBytes(t.dtype);
  bool ok = reinterpret_cast<uintptr_t>(t.data) % 16 == 0;
  // a dimension of size 1 is only read at index 0: its stride never moves an address
  for (size_t d = 0; d + 1 < t.strides.size(); ++d) ok = ok && (t.sizes[d] <= 1 || (t.strides[d] * bytes) % 16 == 0);
  return ok;
}

std::vector<bool> tensorAlignment(const std::vector<KernelArg> &args) {
  std::vector<bool> out;
  for (const KernelArg &a : args)
    if (a.kind == KernelArg::Kind::Tensor) out.push_back(isAligned16(a.tensor));
  return out;
}

}  // namespace tigon
