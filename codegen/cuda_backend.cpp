#include "codegen/cuda_backend.h"

#include <fmt/format.h>

#include "codegen/cuda_emitter.h"
#include "codegen/cuda_scalar_ops.h"
#include "dsl/error.h"

namespace tigon::codegen {

std::string emitCuda(const ir::Function &f) {
  checkLowerable(f);
  return cuda::Emitter(f).emit();
}

namespace cuda {

using ir::OpKind;
using ir::ValueId;

std::string all(std::initializer_list<std::string> conds) {
  std::string out;
  for (const std::string &c : conds)
    if (!c.empty()) out += (out.empty() ? "" : " && ") + c;
  return out;
}

Emitter::Emitter(const ir::Function &f)
    : f_(f), plan_(f), geo_(plan_.geometry()), facts_(f, plan_.defs()), values_(geo_) {}

std::string Emitter::emit() {
  int lcBits = 0;
  while ((1 << lcBits) < geo_.tc) ++lcBits;
  prologue_ += fmt::format("  const int lc = threadIdx.x & {};  // column lane\n", geo_.tc - 1);
  prologue_ += fmt::format("  const int g = threadIdx.x >> {};  // row group\n", lcBits);
  prologue_ += fmt::format("  const int lcv = lc * {};\n", geo_.v);
  emitBlock(f_.body);
  scratch_.checkLimit(f_);
  std::string out = fmt::format("// {}: {} threads, v = {}, tc = {}, tr = {} (docs/ARCHITECTURE.md)\n", describeKernel(f_),
                                geo_.threads, geo_.v, geo_.tc, geo_.tr);
  out += prelude() + "\n" + signature() + " {\n";
  if (scratch_.bytes() > 0)
    out += fmt::format("  __shared__ __align__(16) unsigned char tg_scratch[{}];\n", scratch_.bytes());
  return out + prologue_ + body_ + "}\n";
}

std::string Emitter::signature() const {
  std::vector<std::string> params;
  for (const ir::Param &p : f_.params) {
    if (p.kind == ir::Param::Kind::Scalar) {
      params.push_back(fmt::format("{} p_{}", registerType(p.dtype), p.name));
      continue;
    }
    std::string t = fmt::format("{}{} *p_{}", p.access == ir::Access::In ? "const " : "", memoryType(p.dtype), p.name);
    for (int d = 0; d < p.rank(); ++d) t += fmt::format(", long long p_{}_size{}", p.name, d);
    for (int d = 0; d < p.rank(); ++d) t += fmt::format(", long long p_{}_stride{}", p.name, d);
    params.push_back(t);
  }
  return fmt::format("extern \"C\" __global__ void __launch_bounds__({}) {}(\n    {})", geo_.threads, f_.name,
                     fmt::join(params, ",\n    "));
}

std::string Emitter::size(const ir::Param &p, int d) const {
  int64_t s = p.staticDims[size_t(d)];
  return s >= 0 ? fmt::format("{}LL", s) : fmt::format("p_{}_size{}", p.name, d);
}

std::string Emitter::stride(const ir::Param &p, int d) const {
  return d == p.rank() - 1 ? "1LL" : fmt::format("p_{}_stride{}", p.name, d);  // the last is 1 by contract
}

void Emitter::emitBlock(const ir::Block &block) {
  for (const ir::Op &op : block.ops) emitOp(op);
}

void Emitter::emitOp(const ir::Op &op) {
  if (op.kind == OpKind::For) return emitFor(op);
  if (op.kind == OpKind::Yield) return;  // a loop's yield is read by emitFor
  try {
    if (op.kind == OpKind::Store || op.kind == OpKind::AtomicAdd) return emitStore(op);
    if (op.results.size() != 1) fail(op, "expected one result");
    ValueId r = op.results[0];
    const std::vector<Layout> &layouts = plan_.layouts(r);
    if (plan_.recomputed(r)) {
      for (size_t k = 0; k < layouts.size(); ++k) define(r, layouts[k], compute(op, layouts[k], valueName(r, k)));
    } else {
      define(r, layouts[0], compute(op, layouts[0], valueName(r, 0)));
      defineOtherLayouts(r);
    }
  } catch (const Error &e) {
    rethrowAt(f_, op, e);
  }
}

void Emitter::fail(const ir::Op &op, const std::string &msg) const { failAt(f_, op, msg); }

// for (iv = lo; iv < hi; iv += step) over the carried values, mutable locals (in their home
// layouts) declared before the loop; they hold the results after it.
void Emitter::emitFor(const ir::Op &op) {
  const ir::Block &body = op.regions[0];
  const ir::Op &yield = body.ops.back();
  const std::string &lo = get(op.operands[0], {})[0], &hi = get(op.operands[1], {})[0], &step = get(op.operands[2], {})[0];
  size_t carried = op.results.size();
  std::vector<Layout> layouts;
  std::vector<Names> vars;
  for (size_t i = 0; i < carried; ++i) {
    ValueId arg = body.args[i + 1];
    layouts.push_back(plan_.home(arg));
    vars.push_back(declare(registerType(f_.type(arg).dtype), valueName(arg, 0), get(op.operands[3 + i], layouts[i])));
  }
  std::string iv = valueName(body.args[0], 0);
  line(fmt::format("for (int {0} = {1}; {0} < {2}; {0} = tg_add({0}, {3})) {{", iv, lo, hi, step));
  ++depth_;
  scratch_.markInUse();  // the previous iteration may still read the scratch buffer
  define(body.args[0], {}, {iv});
  for (size_t i = 0; i < carried; ++i) {
    define(body.args[i + 1], layouts[i], vars[i]);
    defineOtherLayouts(body.args[i + 1]);
  }
  emitBlock(body);
  // The new values may read the carried ones: copy them all before assigning any.
  std::vector<Names> next;
  for (size_t i = 0; i < carried; ++i) {
    ValueId arg = body.args[i + 1];
    next.push_back(declare(registerType(f_.type(arg).dtype), valueName(arg, 0) + "n", get(yield.operands[i], layouts[i])));
  }
  for (size_t i = 0; i < carried; ++i)
    for (size_t e = 0; e < vars[i].size(); ++e) line(vars[i][e] + " = " + next[i][e] + ";");
  --depth_;
  line("}");
  scratch_.markInUse();
  for (size_t i = 0; i < carried; ++i) {
    if (plan_.home(op.results[i]) != layouts[i]) fail(op, "internal: a result's layout differs from its carried value's");
    define(op.results[i], layouts[i], vars[i]);
    defineOtherLayouts(op.results[i]);
  }
}

Names Emitter::compute(const ir::Op &op, const Layout &layout, const std::string &name) {
  ir::DType dtype = f_.type(op.results[0]).dtype;
  const char *type = registerType(dtype);
  std::vector<Layout> in = plan_.operandLayouts(op, layout);
  auto operand = [&](size_t i) -> const Names & { return get(op.operands[i], in[i]); };
  auto elementwise = [&](const std::function<std::string(size_t)> &fn) {
    Names exprs;
    for (size_t e = 0; e < operand(0).size(); ++e) exprs.push_back(fn(e));
    return declare(type, name, exprs);
  };
  switch (op.kind) {
    case OpKind::Const: return declare(type, name, {constant(dtype, op.fval, op.ival)});
    case OpKind::ScalarArg: {
      const ir::Param &p = f_.params.at(size_t(op.param));
      if (p.kind != ir::Param::Kind::Scalar) fail(op, "parameter '" + p.name + "' is not a scalar");
      return declare(type, name, {cast(p.dtype, dtype, "p_" + p.name)});
    }
    case OpKind::TensorDim: {
      const ir::Param &p = f_.params.at(size_t(op.param));
      if (p.kind != ir::Param::Kind::Tensor || op.axis < 0 || op.axis >= p.rank()) fail(op, "bad tensor dimension");
      return declare(type, name, {"(int)" + size(p, op.axis)});
    }
    case OpKind::ProgramId: case OpKind::NumPrograms:
      if (op.axis < 0 || op.axis > 2) fail(op, "axis must be 0, 1 or 2");
      return declare(type, name, {fmt::format("(int){}.{}", op.kind == OpKind::ProgramId ? "blockIdx" : "gridDim", "xyz"[op.axis])});
    case OpKind::Iota: return axis(layout.dist[0], layout.extent[0]).index;
    case OpKind::Broadcast: {
      const Names &x = operand(0);
      Names out;
      for (size_t src : broadcastSources(geo_, in[0], layout)) out.push_back(x[src]);
      return out;
    }
    case OpKind::ExpandDims: return operand(0);  // the new axis has extent 1: one slot
    case OpKind::Unary: return elementwise([&](size_t e) { return unary(op.uop, dtype, operand(0)[e]); });
    case OpKind::Binary: {
      ir::DType t = f_.type(op.operands[0]).dtype;
      return elementwise([&](size_t e) { return binary(op.bop, t, operand(0)[e], operand(1)[e]); });
    }
    case OpKind::Select:
      return elementwise([&](size_t e) { return "(" + operand(0)[e] + " ? " + operand(1)[e] + " : " + operand(2)[e] + ")"; });
    case OpKind::Fma:
      return elementwise([&](size_t e) { return fma(dtype, operand(0)[e], operand(1)[e], operand(2)[e]); });
    case OpKind::Cast: {
      ir::DType from = f_.type(op.operands[0]).dtype;
      return elementwise([&](size_t e) { return cast(from, dtype, operand(0)[e]); });
    }
    case OpKind::Reduce: return emitReduce(op, layout, name);
    case OpKind::Load: return emitLoad(op, layout, name);
    default: fail(op, "not an op with one result");
  }
}

Names Emitter::declare(const char *type, const std::string &name, const Names &exprs) {
  Names names;
  for (size_t e = 0; e < exprs.size(); ++e) {
    names.push_back(exprs.size() == 1 ? name : fmt::format("{}_{}", name, e));
    line(fmt::format("{} {} = {};", type, names.back(), exprs[e]));
  }
  return names;
}

std::string Emitter::valueName(ValueId id, size_t layoutIndex) const {
  return layoutIndex == 0 ? fmt::format("v{}", id) : fmt::format("v{}l{}", id, layoutIndex);
}

void Emitter::defineOtherLayouts(ValueId id) {
  const std::vector<Layout> &layouts = plan_.layouts(id);
  for (size_t k = 1; k < layouts.size(); ++k) define(id, layouts[k], convert(id, layouts[0], layouts[k], valueName(id, k)));
}

const Emitter::AxisView &Emitter::axis(Dist d, int64_t extent) {
  auto [it, fresh] = axes_.try_emplace({d, extent});
  AxisView &view = it->second;
  if (!fresh) return view;
  view.slots = axisSlots(geo_, d, extent);
  for (size_t s = 0; s < view.slots.size(); ++s) {
    const Slot &slot = view.slots[s];
    if (d == Dist::Rep) {
      view.index.push_back("0");
      view.valid.push_back("");
      continue;
    }
    std::string name = fmt::format("{}{}_{}", d == Dist::G0 ? "r" : "c", extent, s);
    prologue_ += fmt::format("  const int {} = {} + {};\n", name, d == Dist::G0 ? "g" : "lcv", slot.offset);
    view.index.push_back(name);
    view.valid.push_back(slot.alwaysValid ? "" : name + "_ok");
    if (!slot.alwaysValid) prologue_ += fmt::format("  const bool {}_ok = {} < {};\n", name, name, extent);
  }
  return view;
}

std::string Emitter::firstReplica(const Layout &l) const {
  ReplicaGuard guard = codegen::firstReplica(geo_, l);
  return all({guard.rowZero ? "g == 0" : "", guard.laneZero ? "lc == 0" : ""});
}

// Runs of items with the same condition share one branch.
void Emitter::emitGuarded(const std::vector<Guarded> &items) {
  for (size_t i = 0; i < items.size();) {
    size_t end = i;
    bool otherwise = false;
    for (; end < items.size() && items[end].cond == items[i].cond; ++end) otherwise = otherwise || items[end].otherwise;
    auto run = [&](bool then) {
      for (size_t k = i; k < end; ++k)
        if (const auto &fn = then ? items[k].then : items[k].otherwise) fn();
    };
    if (items[i].cond.empty()) {
      run(true);
    } else {
      line("if (" + items[i].cond + ") {");
      ++depth_;
      run(true);
      --depth_;
      if (otherwise) {
        line("} else {");
        ++depth_;
        run(false);
        --depth_;
      }
      line("}");
    }
    i = end;
  }
}

void Emitter::line(const std::string &code) { body_ += std::string(size_t(2 * depth_), ' ') + code + "\n"; }

std::string Emitter::fresh(const char *prefix) { return fmt::format("{}{}", prefix, counter_++); }

}  // namespace cuda
}  // namespace tigon::codegen
