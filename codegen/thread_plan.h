// How the ops that span threads are carried out over the layout (codegen/layout.h), decided
// here once for every backend, so that the LLVM and the CUDA C++ backends hold each element in
// the same thread, access memory with the same vectors and reduce in the same order:
// broadcasts, which replica of a tile acts, global accesses (vector chunks, bounds checks),
// reductions (fold order, shuffles, the shared-memory round) and the shared scratch buffer.
#pragma once
#include <fmt/format.h>

#include <cstddef>
#include <map>
#include <utility>
#include <vector>

#include "codegen/index_facts.h"
#include "codegen/layout.h"
#include "dsl/error.h"

namespace tigon::codegen {

// What an emitter has made of each value: per layout, the thread's elements in layout order
// (LLVM values, C++ names).
template <class Element>
class ValueTable {
 public:
  explicit ValueTable(const Geometry &geo) : geo_(geo) {}

  const std::vector<Element> &get(ir::ValueId id, const Layout &layout) const {
    auto it = values_.find(id);
    if (it != values_.end())
      for (const auto &[l, elems] : it->second)
        if (l == layout) return elems;
    throw Error(fmt::format("internal: %{} is not available in layout {}", id, layoutString(layout)));
  }
  void define(ir::ValueId id, const Layout &layout, std::vector<Element> elems) {
    if (int64_t(elems.size()) != elementsPerThread(geo_, layout))
      throw Error(fmt::format("internal: %{} has {} elements for layout {}", id, elems.size(), layoutString(layout)));
    values_[id].emplace_back(layout, std::move(elems));
  }

 private:
  const Geometry &geo_;
  std::map<ir::ValueId, std::vector<std::pair<Layout, std::vector<Element>>>> values_;
};

// For each element a thread holds of a broadcast's result (layout `out`, layout order), the
// operand's element (layout `in`) it copies.
std::vector<size_t> broadcastSources(const Geometry &geo, const Layout &in, const Layout &out);

// Only the first replica of a tile held by several threads acts (stores, atomics, writes to
// the scratch buffer): the threads with g == 0 where the tile has no G0 axis (rowZero) and
// lc == 0 where it has no G1 axis (laneZero); each flag only when that coordinate varies.
struct ReplicaGuard {
  bool rowZero = false, laneZero = false;
};
ReplicaGuard firstReplica(const Geometry &geo, const Layout &l);

// A global load, store or atomic add of a tile in `layout`. Its address is base +
// sum(i64(index_d) * stride_d) with the last stride 1. Element (o, i) of the tile (o: slot of
// axis 0 of a rank-2 tile, else 0; i: slot of the last axis, else 0) is accessed where it is
// no padding and every index is in [0, size_d).
struct AccessPlan {
  struct Axis {
    int dim = 0;                 // the tensor dimension its 1-D index walks
    bool boundsImplied = false;  // the index is exactly iota on a static size >= the extent:
                                 // in bounds wherever it is no padding
  };
  std::vector<int> scalarDims;  // the dimensions indexed by a 0-D index
  std::vector<Axis> axes;       // per tile axis
  size_t outerCount = 1, innerCount = 1;
  // Vectorized: inner slots j*v .. j*v+v-1 (chunk j < chunks) are one access of
  // vectorsPerChunk 16-byte vectors, made where the chunk's last slot is no padding and, unless
  // the last axis's bounds are implied, its first index f has 0 <= f and f + v <= size.
  // `partial`: a chunk may be partly valid, and then goes element by element instead.
  bool vectorized = false, partial = false;
  size_t chunks = 0;
  int vectorsPerChunk = 0;
  // The accesses in layout order: a whole chunk (inner .. inner+v-1) or one element.
  struct Step {
    size_t outer, inner;
    bool chunk;
  };
  std::vector<Step> steps;
};
AccessPlan planAccess(const ir::Function &f, const IndexFacts &facts, const Geometry &geo, const ir::Op &op,
                      const Layout &layout);

// A Reduce op over its operand's layout `in`, giving `result`. Each thread first folds its valid
// elements in slot order (from the identity), then combines across threads with butterfly
// shuffles over `laneMasks` (in order), then, when warpParts > 1, through the scratch buffer.
// The reduced axis's threads are numbered by the part coordinate (lc for a G1 axis, g for
// G0): part p is in warp part p / partDivisor and writes where p % partDivisor == 0. The
// kept coordinate (the other one) takes keptCount values. Scratch entry
// (k * keptCount + keptCoord) * warpParts + w holds the partial of warp part w for kept
// position k; values first, then (argmax) the i32 indices.
struct ReducePlan {
  Dist reduced = Dist::Rep;
  size_t nRed = 1, nKept = 1;  // slots of the reduced axis; kept positions per thread
  std::vector<int> laneMasks;
  int warpParts = 1;
  bool partIsLane = true;  // part coordinate lc (G1), else g (G0)
  int partDivisor = 1, keptCount = 1;
  int rank = 1, axis = 0;
  // The operand's element for kept position k, reduced slot r (layout order).
  size_t element(size_t k, size_t r) const { return rank == 1 ? r : axis == 1 ? k * nRed + r : r * nKept + k; }
  int64_t entries() const { return int64_t(nKept) * keptCount * warpParts; }
};
// Throws tigon::Error for an operand that is not a number or a bad axis.
ReducePlan planReduce(const ir::Function &f, const Geometry &geo, const ir::Op &op, const Layout &in,
                      const Layout &result);

// The scratch buffer in shared memory that reductions and layout conversions share: sized
// to the largest use; a barrier precedes a write that may overwrite data still being read.
class Scratch {
 public:
  static constexpr int64_t kMaxBytes = 48 * 1024;  // static shared memory per block

  // Before writing `bytes` bytes: whether a barrier must come first.
  bool beginWrite(int64_t bytes);
  // Some thread may still read the buffer (after a read, at the start of a loop body).
  void markInUse() { inUse_ = true; }
  int64_t bytes() const { return bytes_; }
  // Throws tigon::Error naming the kernel when the buffer exceeds kMaxBytes.
  void checkLimit(const ir::Function &f) const;

 private:
  int64_t bytes_ = 0;
  bool inUse_ = false;
};

}  // namespace tigon::codegen
