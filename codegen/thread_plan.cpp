#include "codegen/thread_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "dsl/error.h"

namespace tigon::codegen {

// Numpy broadcasting: operand axis i is result axis i + (result rank - operand rank); an
// operand axis of extent 1 has one slot, the others the same slots as the result's axis.
std::vector<size_t> broadcastSources(const Geometry &geo, const Layout &in, const Layout &out) {
  std::vector<size_t> counts = slotCounts(geo, out), inCounts = slotCounts(geo, in);
  size_t shift = size_t(out.rank() - in.rank()), total = 1;
  for (size_t c : counts) total *= c;
  std::vector<size_t> sources;
  for (size_t flat = 0; flat < total; ++flat) {
    std::vector<size_t> slot(counts.size());
    for (size_t a = counts.size(), rest = flat; a-- > 0; rest /= counts[a]) slot[a] = rest % counts[a];
    size_t src = 0;
    for (size_t a = 0; a < inCounts.size(); ++a) src = src * inCounts[a] + (inCounts[a] == 1 ? 0 : slot[a + shift]);
    sources.push_back(src);
  }
  return sources;
}

ReplicaGuard firstReplica(const Geometry &geo, const Layout &l) {
  return {!l.has(Dist::G0) && geo.tr > 1, !l.has(Dist::G1) && geo.tc > 1};
}

AccessPlan planAccess(const ir::Function &f, const IndexFacts &facts, const Geometry &geo, const ir::Op &op,
                      const Layout &layout) {
  const ir::Param &p = f.params.at(size_t(op.param));
  int rank = p.rank(), k = layout.rank();
  AccessPlan a;
  std::vector<Contiguity> contiguity;
  for (int d = 0; d < rank; ++d) {
    ir::ValueId id = op.operands[size_t(d)];
    if (f.type(id).rank() == 0) {
      a.scalarDims.push_back(d);
    } else {
      a.axes.push_back({d, false});
      contiguity.push_back(facts.contiguity(id));
    }
  }
  if (int(a.axes.size()) != k) throw Error("internal: index count does not match the tile's rank");
  for (size_t ax = 0; ax < a.axes.size(); ++ax)
    a.axes[ax].boundsImplied =
        contiguity[ax].zeroOffset && p.staticDims[size_t(a.axes[ax].dim)] >= layout.extent[ax];

  std::vector<Slot> inner = k >= 1 ? axisSlots(geo, layout.dist[size_t(k - 1)], layout.extent[size_t(k - 1)])
                                   : std::vector<Slot>{Slot{}};
  a.outerCount = k == 2 ? axisSlots(geo, layout.dist[0], layout.extent[0]).size() : 1;
  a.innerCount = inner.size();

  // Chunk j starts at column lc*v + j*tc*v + s: with s a multiple of v, the chunk's bytes are
  // 16-byte aligned given the aligned16 promise (aligned base and row strides).
  size_t v = size_t(geo.v), last = size_t(k - 1);
  int log2v = 0;
  while ((1 << log2v) < geo.v) ++log2v;
  a.vectorized = k >= 1 && op.kind != ir::OpKind::AtomicAdd && p.aligned16 && a.axes[last].dim == rank - 1 &&
                 layout.dist[last] == Dist::G1 && contiguity[last].contiguous && contiguity[last].alignLog2 >= log2v;
  if (a.vectorized) {
    a.vectorsPerChunk = geo.v * ir::dtypeBytes(p.dtype) / 16;
    a.chunks = inner.size() / v;
    int64_t size = p.staticDims[size_t(rank - 1)];
    // A chunk is wholly in or wholly out of bounds when its start and the size are multiples of v.
    a.partial = !(a.axes[last].boundsImplied || (size >= 0 && size % geo.v == 0));
    // Padding covers whole chunks when the extent is a multiple of v.
    for (size_t j = 0; j < a.chunks; ++j)
      if (!inner[j * v + v - 1].alwaysValid && layout.extent[last] % geo.v != 0) a.partial = true;
  }
  for (size_t o = 0; o < a.outerCount; ++o)
    for (size_t i = 0; i < a.innerCount;) {
      bool chunk = a.vectorized && i / v < a.chunks;  // i is a multiple of v here
      a.steps.push_back({o, i, chunk});
      i += chunk ? v : 1;
    }
  return a;
}

ReducePlan planReduce(const ir::Function &f, const Geometry &geo, const ir::Op &op, const Layout &in,
                      const Layout &result) {
  ir::DType dtype = f.type(op.operands[0]).dtype;
  if (!ir::isFloat(dtype) && !ir::isInt(dtype)) throw Error(fmt::format("cannot reduce {}", ir::dtypeName(dtype)));
  int axis = op.axis;
  if (axis < 0 || axis >= in.rank()) throw Error("bad axis");
  Layout kept = in;
  kept.dist.erase(kept.dist.begin() + axis);
  kept.extent.erase(kept.extent.begin() + axis);
  if (kept != result) throw Error("internal: the result layout is not the kept axis's");
  ReducePlan r;
  r.rank = in.rank();
  r.axis = axis;
  r.reduced = in.dist[size_t(axis)];
  std::vector<size_t> counts = slotCounts(geo, in);
  r.nRed = counts[size_t(axis)];
  r.nKept = in.rank() == 2 ? counts[size_t(1 - axis)] : 1;
  // The reduced axis's thread bits are the bits of lc (G1) or of g (G0): those inside a warp
  // go by shuffles, those above through shared memory.
  int tc = geo.tc;
  if (r.reduced == Dist::G1) {
    for (int m = 1; m < std::min(tc, 32); m *= 2) r.laneMasks.push_back(m);
    r.warpParts = std::max(1, tc / 32);
    r.partIsLane = true;
    r.partDivisor = 32;
    r.keptCount = geo.tr;
  } else if (r.reduced == Dist::G0) {
    for (int m = tc; m < 32; m *= 2) r.laneMasks.push_back(m);
    int rowsPerWarp = std::max(1, 32 / tc);
    r.warpParts = geo.tr / rowsPerWarp;
    r.partIsLane = false;
    r.partDivisor = rowsPerWarp;
    r.keptCount = tc;
  }
  return r;
}

bool Scratch::beginWrite(int64_t bytes) {
  bytes_ = std::max(bytes_, bytes);
  return inUse_;
}

void Scratch::checkLimit(const ir::Function &f) const {
  if (bytes_ > kMaxBytes)
    throw Error(fmt::format(
        "kernel {}: needs {} bytes of shared memory for its reductions and layout conversions (at most {}); "
        "use a smaller tile or fewer rows per program",
        describeKernel(f), bytes_, kMaxBytes));
}

}  // namespace tigon::codegen
