// Global loads, stores and atomic adds as CUDA C++, following AccessPlan like the LLVM
// backend's emit_memory.cpp: a vectorized chunk is one or more 16-byte accesses (uint4, or
// ulonglong2 for 64-bit elements) through reinterpret_cast, other elements go one by one.
#include <fmt/format.h>

#include "codegen/cuda_emitter.h"
#include "codegen/cuda_scalar_ops.h"
#include "dsl/error.h"

namespace tigon::codegen::cuda {

namespace {

const char kWord[] = "xyzw";

// The 16-byte vector type that carries elements of dtype t: two 64-bit or four 32-bit words.
const char *vectorType(ir::DType t) { return ir::dtypeBytes(t) == 8 ? "ulonglong2" : "uint4"; }

// Element k of the 16-byte vector `r` (of vectorType(t)) of elements of dtype t.
std::string vectorElement(ir::DType t, const std::string &r, int k) {
  auto word = [&](int w) { return r + "." + kWord[w]; };
  switch (ir::dtypeBytes(t)) {
    case 8: return "(long long)" + word(k);
    case 4: return t == ir::DType::F32 ? "__uint_as_float(" + word(k) + ")" : "(int)" + word(k);
    case 2: return fromMemory(t, fmt::format("(unsigned short)({}{})", word(k / 2), k % 2 ? " >> 16" : ""));
    default: return fromMemory(t, fmt::format("(({} >> {}) & 0xffu)", word(k / 4), 8 * (k % 4)));
  }
}

// The 16-byte vector (of vectorType(t)) holding elements xs of dtype t.
std::string vectorOf(ir::DType t, const Names &xs) {
  std::vector<std::string> words;
  int bytes = ir::dtypeBytes(t);
  for (size_t w = 0; w < size_t(bytes == 8 ? 2 : 4); ++w) {
    switch (bytes) {
      case 8: words.push_back("(unsigned long long)" + xs[w]); break;
      case 4: words.push_back(t == ir::DType::F32 ? "__float_as_uint(" + xs[w] + ")" : "(unsigned)" + xs[w]); break;
      default: {
        size_t per = size_t(4 / bytes);
        std::string word;
        for (size_t k = 0; k < per; ++k)
          word += fmt::format("{}((unsigned){} << {})", k ? " | " : "", toMemory(t, xs[w * per + k]), 8 * size_t(bytes) * k);
        words.push_back("(" + word + ")");
      }
    }
  }
  return fmt::format("{}{{{}}}", vectorType(t), fmt::join(words, ", "));
}

std::string sum(const std::string &a, const std::string &b) {
  if (a == "0LL") return b;
  if (b == "0LL") return a;
  return a + " + " + b;
}

}  // namespace

Emitter::Access Emitter::prepareAccess(const ir::Op &op, const Layout &layout, const std::vector<Layout> &indexLayouts,
                                       bool store) {
  const ir::Param &p = f_.params.at(size_t(op.param));
  if (p.kind != ir::Param::Kind::Tensor) fail(op, "parameter '" + p.name + "' is not a tensor");
  Access a;
  a.plan = planAccess(f_, facts_, geo_, op, layout);
  a.dtype = p.dtype;
  a.base = "p_" + p.name;
  int rank = p.rank(), k = layout.rank();
  std::string prefix = fresh("a");
  auto term = [&](int d, const std::string &idx) {
    return d == rank - 1 ? "(long long)" + idx : "(long long)" + idx + " * " + stride(p, d);
  };
  auto inBounds = [&](int d, const std::string &idx) { return "tg_in_bounds(" + idx + ", " + size(p, d) + ")"; };
  auto named = [&](const char *type, const std::string &name, const std::string &expr) {
    if (expr.empty() || expr == "0LL") return expr;
    line(fmt::format("const {} {} = {};", type, name, expr));
    return name;
  };

  // Scalar indices go into every element; the k-th 1-D index walks tile axis k.
  std::string scalarOffset = "0LL", scalarCond = store ? firstReplica(layout) : "";
  for (int d : a.plan.scalarDims) {
    const std::string &idx = get(op.operands[size_t(d)], {})[0];
    scalarOffset = sum(scalarOffset, term(d, idx));
    scalarCond = all({scalarCond, inBounds(d, idx)});
  }
  scalarOffset = named("long long", prefix + "s", scalarOffset);
  scalarCond = named("bool", prefix + "s_ok", scalarCond);
  auto axisTerms = [&](int ax, const std::string &tag, const std::string &baseOffset, const std::string &baseCond,
                       Names &offsets, Names &conds) {
    const AxisView &view = axis(layout.dist[size_t(ax)], layout.extent[size_t(ax)]);
    const AccessPlan::Axis &plan = a.plan.axes[size_t(ax)];
    const Names &index = get(op.operands[size_t(plan.dim)], indexLayouts[size_t(plan.dim)]);
    for (size_t s = 0; s < view.slots.size(); ++s) {
      std::string name = fmt::format("{}{}{}", prefix, tag, s);
      offsets.push_back(named("long long", name, sum(baseOffset, term(plan.dim, index[s]))));
      conds.push_back(named("bool", name + "_ok", all({baseCond, view.valid[s], plan.boundsImplied ? "" : inBounds(plan.dim, index[s])})));
    }
  };
  if (k == 2) {
    axisTerms(0, "r", scalarOffset, scalarCond, a.outerOffset, a.outerCond);
  } else {
    a.outerOffset = {scalarOffset};
    a.outerCond = {scalarCond};
  }
  if (k >= 1) {
    axisTerms(k - 1, "c", "0LL", "", a.innerOffset, a.innerCond);
  } else {
    a.innerOffset = {"0LL"};
    a.innerCond = {""};
  }
  if (!a.plan.vectorized) return a;
  const AxisView &view = axis(Dist::G1, layout.extent[size_t(k - 1)]);
  const AccessPlan::Axis &lastAxis = a.plan.axes.back();
  const Names &index = get(op.operands[size_t(lastAxis.dim)], indexLayouts[size_t(lastAxis.dim)]);
  size_t v = size_t(geo_.v);
  for (size_t j = 0; j < a.plan.chunks; ++j) {
    std::string bounds;
    if (!lastAxis.boundsImplied) {
      const std::string &first = index[j * v];
      bounds = fmt::format("{} >= 0 && (long long){} + {} <= {}", first, first, v, size(p, rank - 1));
    }
    a.chunkCond.push_back(named("bool", fmt::format("{}v{}_ok", prefix, j), all({view.valid[j * v + v - 1], bounds})));
  }
  return a;
}

// Guarded code runs before the function that builds it returns: it may refer to its locals.
void Emitter::emitAccess(const Access &a, const AccessCode &element, const AccessCode &elementSkipped,
                         const AccessCode &chunk, const AccessCode &chunkSkipped) {
  size_t v = size_t(geo_.v);
  auto offset = [&a](size_t o, size_t i) { return sum(a.outerOffset[o], a.innerOffset[i]); };
  auto elementItem = [&](size_t o, size_t i) {
    size_t flat = o * a.plan.innerCount + i;
    std::string at = offset(o, i);
    std::function<void()> otherwise;
    if (elementSkipped) otherwise = [&elementSkipped, flat, at] { elementSkipped(flat, at); };
    return Guarded{all({a.outerCond[o], a.innerCond[i]}), [&element, flat, at] { element(flat, at); }, otherwise};
  };
  std::vector<Guarded> items;
  for (const AccessPlan::Step &step : a.plan.steps) {
    if (!step.chunk) {
      items.push_back(elementItem(step.outer, step.inner));
      continue;
    }
    size_t first = step.outer * a.plan.innerCount + step.inner;
    std::string at = offset(step.outer, step.inner);
    std::function<void()> otherwise;
    if (a.plan.partial) {
      std::vector<Guarded> elements;
      for (size_t e = step.inner; e < step.inner + v; ++e) elements.push_back(elementItem(step.outer, e));
      otherwise = [this, elements] { emitGuarded(elements); };
    } else if (chunkSkipped) {
      otherwise = [&chunkSkipped, first, at] { chunkSkipped(first, at); };
    }
    items.push_back({all({a.outerCond[step.outer], a.chunkCond[step.inner / v]}), [&chunk, first, at] { chunk(first, at); },
                     otherwise});
  }
  emitGuarded(items);
}

Names Emitter::emitLoad(const ir::Op &op, const Layout &layout, const std::string &name) {
  std::vector<Layout> in = plan_.operandLayouts(op, layout);
  Access a = prepareAccess(op, layout, in, false);
  const std::string &other = get(op.operands.back(), {})[0];
  if (f_.type(op.operands.back()).dtype != a.dtype) fail(op, "`other` must have the tensor's dtype");
  size_t count = a.plan.outerCount * a.plan.innerCount, v = size_t(geo_.v);
  int perVector = 16 / ir::dtypeBytes(a.dtype);
  Names out;
  for (size_t e = 0; e < count; ++e) out.push_back(count == 1 ? name : fmt::format("{}_{}", name, e));
  line(fmt::format("{} {};", registerType(a.dtype), fmt::join(out, ", ")));
  emitAccess(
      a, [&](size_t e, const std::string &at) { line(out[e] + " = " + fromMemory(a.dtype, a.base + "[" + at + "]") + ";"); },
      [&](size_t e, const std::string &) { line(out[e] + " = " + other + ";"); },
      [&](size_t first, const std::string &at) {
        line("{");
        ++depth_;
        for (int k = 0; k < a.plan.vectorsPerChunk; ++k)
          line(fmt::format("const {0} vec{1} = *reinterpret_cast<const {0} *>({2} + {3});", vectorType(a.dtype), k, a.base,
                           sum(at, fmt::format("{}LL", k * perVector))));
        for (size_t e = 0; e < v; ++e)
          line(out[first + e] + " = " +
               vectorElement(a.dtype, fmt::format("vec{}", e / size_t(perVector)), int(e % size_t(perVector))) + ";");
        --depth_;
        line("}");
      },
      [&](size_t first, const std::string &) {
        for (size_t e = 0; e < v; ++e) line(out[first + e] + " = " + other + ";");
      });
  return out;
}

void Emitter::emitStore(const ir::Op &op) {
  std::vector<Layout> in = plan_.operandLayouts(op);
  const Layout &layout = in.back();
  const Names &values = get(op.operands.back(), layout);
  bool atomic = op.kind == ir::OpKind::AtomicAdd;
  Access a = prepareAccess(op, layout, in, true);
  if (f_.type(op.operands.back()).dtype != a.dtype) fail(op, "the value must have the tensor's dtype");
  if (atomic && a.dtype != ir::DType::F32 && a.dtype != ir::DType::I32)
    fail(op, fmt::format("atomic_add needs an f32 or i32 tensor, not {}", ir::dtypeName(a.dtype)));
  int perVector = 16 / ir::dtypeBytes(a.dtype);
  emitAccess(
      a,
      [&](size_t e, const std::string &at) {
        if (atomic) line(fmt::format("atomicAdd({} + {}, {});", a.base, at, values[e]));
        else line(fmt::format("{}[{}] = {};", a.base, at, toMemory(a.dtype, values[e])));
      },
      {},
      [&](size_t first, const std::string &at) {
        for (int k = 0; k < a.plan.vectorsPerChunk; ++k) {
          Names xs(values.begin() + long(first) + k * perVector, values.begin() + long(first) + (k + 1) * perVector);
          line(fmt::format("*reinterpret_cast<{} *>({} + {}) = {};", vectorType(a.dtype), a.base,
                           sum(at, fmt::format("{}LL", k * perVector)), vectorOf(a.dtype, xs)));
        }
      },
      {});
}

}  // namespace tigon::codegen::cuda
