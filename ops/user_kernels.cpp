// User kernels from .tile files (tigon.load): describe a file's kernels to Python, and launch
// one on tensors and scalars, binding dtype and const parameters from the tensors given.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <mutex>

#include "ops/ops.h"
#include "ops/torch_bridge.h"
#include "runtime/autotune.h"
#include "runtime/disk_cache.h"

namespace tigon::ops {

namespace {

// Parsed modules by path and source hash: an edited file is parsed again.
const TileModule &userModule(const std::string &path, const std::string &source) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<TileModule>> modules;
  std::string key = path + "|" + hex64(fnv1a64(source));
  std::lock_guard<std::mutex> lock(mutex);
  auto &m = modules[key];
  if (!m) m = std::make_unique<TileModule>(loadTileSource(path, source));
  return *m;
}

const ast::Kernel &findKernel(const TileModule &m, const std::string &name) {
  if (const ast::Kernel *k = m.ast.findKernel(name)) return *k;
  TORCH_CHECK_VALUE(false, m.path, ": no kernel '", name, "'");
}

bool isDtypeGeneric(const ast::Kernel &k, const std::string &name) {
  for (const ast::GenericParam &g : k.generics)
    if (g.name == name) return g.kind == ast::GenericParam::Kind::DType;
  return false;
}

bool isConstGeneric(const ast::Kernel &k, const std::string &name) {
  for (const ast::GenericParam &g : k.generics)
    if (g.name == name) return g.kind == ast::GenericParam::Kind::Const;
  return false;
}

// Adds a binding, or checks that it agrees with one made from an earlier argument.
void addBinding(Bindings &b, const std::string &name, const std::string &value, const std::string &from) {
  auto [it, fresh] = b.emplace(name, value);
  TORCH_CHECK_VALUE(fresh || it->second == value, from, " gives ", name, "=", value, " but an earlier argument gave ",
                    name, "=", it->second);
}

}  // namespace

std::string describe_tile(c10::string_view path, c10::string_view source) {
  return guarded([&] {
    const TileModule &m = userModule(std::string(path), std::string(source));
    std::string out;
    for (const ast::Kernel &k : m.ast.kernels) {
      out += "kernel " + k.name + "\n";
      for (const ast::GenericParam &g : k.generics) {
        const char *kind = g.kind == ast::GenericParam::Kind::DType ? "dtype"
                           : g.kind == ast::GenericParam::Kind::Const ? "const"
                                                                      : "tune";
        out += fmt::format("generic {} {}\n", g.name, kind);
      }
      for (const ast::Param &p : k.params) {
        const char *access = p.access == ir::Access::Out ? "out" : p.access == ir::Access::InOut ? "inout" : "in";
        out += fmt::format("param {} {} {} {}\n", p.name, p.isTensor ? "tensor" : "scalar", p.typeName, access);
      }
    }
    return out;
  });
}

void launch_tile(c10::string_view path, c10::string_view source, c10::string_view kernel, c10::string_view bindings,
                 at::TensorList tensors, at::ArrayRef<double> floats, at::ArrayRef<int64_t> ints) {
  const TileModule &m = guarded([&]() -> const TileModule & { return userModule(std::string(path), std::string(source)); });
  const ast::Kernel &k = findKernel(m, std::string(kernel));
  Bindings fixed = guarded([&] { return parseConfig(std::string(bindings)); });
  std::vector<KernelArg> args;
  size_t t = 0, fi = 0, ii = 0;
  std::optional<at::Device> device;
  int64_t rows = 1;
  std::vector<at::Tensor> kept;  // contiguous copies must live until the launch is queued
  for (const ast::Param &p : k.params) {
    std::string what = fmt::format("{}: argument '{}'", k.name, p.name);
    if (!p.isTensor) {
      ir::DType dt;
      bool isFloat = ir::parseDType(p.typeName, &dt) && ir::isFloat(dt);
      if (isFloat) {
        TORCH_CHECK_VALUE(fi < floats.size(), what, " is missing");
        args.push_back(KernelArg::ofFloat(floats[fi++]));
      } else {
        TORCH_CHECK_VALUE(ii < ints.size(), what, " is missing");
        args.push_back(KernelArg::ofInt(ints[ii++]));
      }
      continue;
    }
    TORCH_CHECK_VALUE(t < tensors.size(), what, " is missing");
    const at::Tensor &x = tensors[t++];
    TORCH_CHECK_VALUE(!device || x.device() == *device, what, " is on ", x.device(), " but earlier tensors are on ", *device);
    device = x.device();
    TORCH_CHECK_VALUE(x.dim() == int64_t(p.dims.size()), what, " must have ", p.dims.size(), " dimensions, got ", x.dim());
    TORCH_CHECK_VALUE(x.dim() == 0 || x.stride(-1) == 1 || x.size(-1) <= 1, what,
                      " must be contiguous in its last dimension (call .contiguous())");

    if (isDtypeGeneric(k, p.typeName)) addBinding(fixed, p.typeName, ir::dtypeName(dtypeOf(x)), what);
    for (size_t d = 0; d < p.dims.size(); ++d)
      if (isConstGeneric(k, p.dims[d].name)) addBinding(fixed, p.dims[d].name, std::to_string(x.size(int64_t(d))), what);
    if (args.empty() || rows == 1) rows = x.dim() ? x.size(0) : 1;
    args.push_back(tensorArg(x));
  }
  TORCH_CHECK_VALUE(t == tensors.size() && fi == floats.size() && ii == ints.size(), k.name, ": too many arguments");
  TORCH_CHECK_VALUE(device.has_value(), k.name, ": a kernel needs at least one tensor argument");
  runKernel(m, k.name, fixed, args, *device, rows);
}

}  // namespace tigon::ops
