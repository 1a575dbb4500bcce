// Reductions and layout conversions as CUDA C++, following ReducePlan like the LLVM backend's
// emit_reduce.cpp: in-thread folds, __shfl_xor_sync butterflies, one round through the
// shared scratch buffer; rank-1 G0 <-> G1 conversions through the same buffer.
#include <fmt/format.h>

#include <limits>

#include "codegen/cuda_emitter.h"
#include "codegen/cuda_scalar_ops.h"
#include "dsl/error.h"

namespace tigon::codegen::cuda {

using ir::ReduceOp;

namespace {

// The identity of the reduction for an accumulator of dtype acc (f32 for floats).
std::string identity(ReduceOp op, ir::DType acc) {
  bool i32 = acc == ir::DType::I32;
  int64_t min = i32 ? std::numeric_limits<int32_t>::min() : std::numeric_limits<int64_t>::min();
  int64_t max = i32 ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int64_t>::max();
  double inf = std::numeric_limits<double>::infinity();
  switch (op) {
    case ReduceOp::Sum: return constant(acc, -0.0, 0);  // -0.0 + x == x for every x
    case ReduceOp::Min: return constant(acc, inf, max);
    default: return constant(acc, -inf, min);  // Max, Argmax
  }
}

// acc (and its index) combined with (x, xi), as a statement.
std::string combine(ReduceOp op, ir::DType acc, const std::string &value, const std::string &index, const std::string &x,
                    const std::string &xi) {
  if (op == ReduceOp::Argmax) return fmt::format("tg_argmax({}, {}, {}, {});", value, index, x, xi);
  ir::BinaryOp bop = op == ReduceOp::Sum ? ir::BinaryOp::Add : op == ReduceOp::Max ? ir::BinaryOp::Max : ir::BinaryOp::Min;
  return fmt::format("{} = {};", value, binary(bop, acc, value, x));
}

}  // namespace

Names Emitter::emitReduce(const ir::Op &op, const Layout &result, const std::string &name) {
  ir::ValueId x = op.operands[0];
  Layout in = plan_.operandLayouts(op, result)[0];
  const Names &xs = get(x, in);
  ir::DType dtype = f_.type(x).dtype;
  bool isFloat = ir::isFloat(dtype), argmax = op.rop == ReduceOp::Argmax;
  ReducePlan plan = planReduce(f_, geo_, op, in, result);
  const AxisView &view = axis(plan.reduced, in.extent[size_t(op.axis)]);
  ir::DType acc = isFloat ? ir::DType::F32 : dtype;
  const char *accType = registerType(acc);
  std::string prefix = fresh("acc");

  // In-thread: fold the thread's valid elements, in slot order.
  Names values, indices;
  for (size_t k = 0; k < plan.nKept; ++k) {
    values.push_back(fmt::format("{}_{}", prefix, k));
    indices.push_back(fmt::format("{}i_{}", prefix, k));
    line(fmt::format("{} {} = {};", accType, values[k], identity(op.rop, acc)));
    if (argmax) line(fmt::format("int {} = {};", indices[k], std::numeric_limits<int32_t>::max()));
    for (size_t r = 0; r < plan.nRed; ++r) {
      std::string step = combine(op.rop, acc, values[k], indices[k], xs[plan.element(k, r)], view.index[r]);
      line(view.valid[r].empty() ? step : "if (" + view.valid[r] + ") " + step);
    }
  }

  // Across threads: shuffles, then one round through shared memory.
  for (int mask : plan.laneMasks)
    for (size_t k = 0; k < plan.nKept; ++k) {
      line("{");
      ++depth_;
      line(fmt::format("{} x = __shfl_xor_sync(0xffffffffu, {}, {});", accType, values[k], mask));
      if (argmax) line(fmt::format("int xi = __shfl_xor_sync(0xffffffffu, {}, {});", indices[k], mask));
      line(combine(op.rop, acc, values[k], indices[k], "x", "xi"));
      --depth_;
      line("}");
    }
  if (plan.warpParts > 1) {
    std::string part = plan.partIsLane ? "lc" : "g", kept = plan.partIsLane ? "g" : "lc";
    std::string warp = fmt::format("{} / {}", part, plan.partDivisor);
    std::string writer = fmt::format("{} % {} == 0", part, plan.partDivisor);
    int64_t valueBytes = plan.entries() * ir::dtypeBytes(acc);
    beginScratchWrite(valueBytes + (argmax ? plan.entries() * 4 : 0));
    auto entry = [&](size_t k, const std::string &w) {
      return fmt::format("{} * {} + {} + {}", kept, plan.warpParts, k * size_t(plan.keptCount * plan.warpParts), w);
    };
    std::vector<Guarded> writes;
    for (size_t k = 0; k < plan.nKept; ++k)
      writes.push_back({writer, [&, k] {
                          line(scratch(accType, entry(k, warp), 0) + " = " + values[k] + ";");
                          if (argmax) line(scratch("int", entry(k, warp), valueBytes) + " = " + indices[k] + ";");
                        }, {}});
    emitGuarded(writes);
    line("__syncthreads();");
    for (size_t k = 0; k < plan.nKept; ++k)
      for (int w = 0; w < plan.warpParts; ++w) {
        std::string at = entry(k, std::to_string(w));
        if (w == 0) {
          line(values[k] + " = " + scratch(accType, at, 0) + ";");
          if (argmax) line(indices[k] + " = " + scratch("int", at, valueBytes) + ";");
          continue;
        }
        std::string xi = argmax ? scratch("int", at, valueBytes) : "";
        line(combine(op.rop, acc, values[k], indices[k], scratch(accType, at, 0), xi));
      }
    scratch_.markInUse();
  }

  ir::DType type = f_.type(op.results[0]).dtype;
  Names out;
  for (size_t k = 0; k < plan.nKept; ++k) out.push_back(argmax ? indices[k] : isFloat ? narrow(dtype, values[k]) : values[k]);
  return declare(registerType(type), name, out);
}

// A rank-1 value from one orientation to the other: the first replica of each element writes
// it to the scratch buffer, then every thread reads the elements of its new slots.
Names Emitter::convert(ir::ValueId id, const Layout &from, const Layout &to, const std::string &name) {
  if (from.rank() != 1 || to.rank() != 1 || from.extent != to.extent)
    throw Error(fmt::format("internal: cannot convert %{} from {} to {}", id, layoutString(from), layoutString(to)));
  ir::DType dtype = f_.type(id).dtype;
  const char *mem = memoryType(dtype);
  const Names &xs = get(id, from);
  const AxisView &src = axis(from.dist[0], from.extent[0]);
  const AxisView &dst = axis(to.dist[0], to.extent[0]);
  beginScratchWrite(from.extent[0] * ir::dtypeBytes(dtype));
  std::string writer = firstReplica(from);
  std::vector<Guarded> writes;
  for (size_t s = 0; s < src.slots.size(); ++s)
    writes.push_back({all({writer, src.valid[s]}),
                      [&, s] { line(scratch(mem, src.index[s], 0) + " = " + toMemory(dtype, xs[s]) + ";"); }, {}});
  emitGuarded(writes);
  line("__syncthreads();");
  Names exprs;
  for (size_t s = 0; s < dst.slots.size(); ++s) {
    // Padding slots read element 0 instead of past the end.
    std::string at = dst.valid[s].empty() ? dst.index[s] : fmt::format("({} ? {} : 0)", dst.valid[s], dst.index[s]);
    exprs.push_back(fromMemory(dtype, scratch(mem, at, 0)));
  }
  scratch_.markInUse();
  return declare(registerType(dtype), name, exprs);
}

std::string Emitter::scratch(const char *type, const std::string &index, int64_t baseBytes) const {
  return fmt::format("reinterpret_cast<{} *>(tg_scratch{})[{}]", type, baseBytes ? fmt::format(" + {}", baseBytes) : "",
                     index);
}

void Emitter::beginScratchWrite(int64_t bytes) {
  if (scratch_.beginWrite(bytes)) line("__syncthreads();");
}

}  // namespace tigon::codegen::cuda
