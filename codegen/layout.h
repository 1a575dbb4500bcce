// The layout of tiles over the threads of a program (docs/ARCHITECTURE.md, "The layout of
// tiles over threads"): the kernel-wide geometry (v, tc, tr), which element positions a
// thread holds for a tile of a given layout, and the plan saying in which layouts each value
// of a kernel is materialized.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "codegen/ir_query.h"
#include "dsl/ir.h"

namespace tigon::codegen {

struct Geometry {
  int threads = 128;  // T = 32 * warps
  int v = 4;          // elements per chunk along G1: 16 bytes of the narrowest accessed dtype
  int tc = 1;         // threads along G1: column lane lc = t % tc
  int tr = 1;         // thread rows along G0: row group g = t / tc
};

// Throws tigon::Error for a warp count that is not a power of two in [1, 32].
Geometry computeGeometry(const ir::Function &f);

// How one tile axis is spread over the threads: held whole by every thread (extent 1),
// over the row groups, or in chunks of v over the column lanes.
enum class Dist : uint8_t { Rep, G0, G1 };

struct Layout {
  std::vector<Dist> dist;  // one per tile axis; rank-0 tiles have none
  std::vector<int64_t> extent;
  int rank() const { return int(dist.size()); }
  bool has(Dist d) const;
  bool operator==(const Layout &o) const { return dist == o.dist && extent == o.extent; }
  bool operator!=(const Layout &o) const { return !(*this == o); }
  bool operator<(const Layout &o) const {
    return dist != o.dist ? dist < o.dist : extent < o.extent;
  }
};

// The layout of a tile of type t. `orientation` (G0 or G1) places rank-1 tiles; axes of
// extent 1 are always Rep, the axes of a rank-2 tile G0 and G1.
Layout layoutOf(const ir::Type &t, Dist orientation = Dist::G1);
std::string layoutString(const Layout &l);  // "[G0 4, G1 128]"

// One element position a thread holds along an axis. Its index along the axis is
// offset + g (G0), offset + lc * v (G1) or offset (Rep).
struct Slot {
  int64_t offset = 0;
  bool alwaysValid = true;  // in range for every thread; else valid where the index < extent
};

// A thread's positions along an axis, in order. Along G1 slot k is element k % v of the
// thread's chunk k / v; positions out of range for every thread are left out (a suffix).
std::vector<Slot> axisSlots(const Geometry &geo, Dist d, int64_t extent);
// Slots per axis of a tile in layout l: a thread holds their row-major product, in that order.
std::vector<size_t> slotCounts(const Geometry &geo, const Layout &l);
int64_t elementsPerThread(const Geometry &geo, const Layout &l);

// Chooses the layouts every value of the body is materialized in. Rank-2 and rank-0 values
// have one layout. A rank-1 value has a home orientation (G0 for a row reduction's result,
// G1 by default, by majority of what its uses want); a use wanting the other orientation
// gets it either recomputed (index math: iota, scalars, elementwise ops on them) or, for
// any other value, converted through shared memory by the emitter.
class LayoutPlan {
 public:
  // Throws tigon::Error when a value needs more than kMaxElementsPerThread per thread.
  explicit LayoutPlan(const ir::Function &f);
  static constexpr int64_t kMaxElementsPerThread = 256;

  const Geometry &geometry() const { return geo_; }
  const std::vector<ValueDef> &defs() const { return defs_; }
  // Every layout value `id` is needed in; the first is the one it is computed in.
  const std::vector<Layout> &layouts(ir::ValueId id) const { return layouts_.at(size_t(id)); }
  const Layout &home(ir::ValueId id) const { return layouts(id).front(); }
  // Whether each of the value's layouts is computed from operands in that layout (rather
  // than converted from its home).
  bool recomputed(ir::ValueId id) const { return cheap_.at(size_t(id)); }

  // The layouts op needs its operands in: for an op with one result, when that result has
  // layout `result`; for Store, AtomicAdd, For and Yield (no `result`), fixed by the homes of
  // the stored value or of the loop's carried values.
  std::vector<Layout> operandLayouts(const ir::Op &op, const Layout &result) const;
  std::vector<Layout> operandLayouts(const ir::Op &op) const;

 private:
  bool flexible(ir::ValueId id) const;  // rank 1, extent > 1: has two possible layouts
  // The layout an op that takes any layout (Reduce, Store) consumes id in: its home, or G1
  // for a recomputed value (whose layouts are known only once all its uses are seen).
  Layout preferred(ir::ValueId id) const;
  std::vector<Layout> indexLayouts(const ir::Op &op, size_t nIndices, const Layout &value) const;
  void findCheap();
  void chooseHomes();
  void demand(const ir::Block &b);
  void finishLayouts(ir::ValueId id);

  const ir::Function &f_;
  Geometry geo_;
  std::vector<ValueDef> defs_;
  std::vector<char> cheap_;
  std::vector<Dist> orientation_;                // home orientation of non-cheap flexible values
  std::vector<std::vector<Layout>> demanded_;    // layouts the uses ask for
  std::vector<std::vector<Layout>> layouts_;
  std::map<const ir::Op *, const ir::Op *> yieldLoop_;  // loop body's Yield -> its For
};

}  // namespace tigon::codegen
