#include "codegen/layout.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <numeric>

#include "dsl/error.h"

namespace tigon::codegen {

using ir::OpKind;
using ir::ValueId;

Geometry computeGeometry(const ir::Function &f) {
  if (f.warps < 1 || f.warps > 32 || (f.warps & (f.warps - 1)) != 0)
    throw Error(fmt::format("kernel {}: warps = {}; the thread layout needs a power of two from 1 to 32",
                            describeKernel(f), f.warps));
  Geometry geo;
  geo.threads = 32 * f.warps;
  int minBytes = 0;
  forEachOp(f.body, [&](const ir::Op &op) {
    if (op.kind == OpKind::Load || op.kind == OpKind::Store || op.kind == OpKind::AtomicAdd) {
      int bytes = ir::dtypeBytes(f.params.at(size_t(op.param)).dtype);
      minBytes = minBytes ? std::min(minBytes, bytes) : bytes;
    }
  });
  geo.v = minBytes ? 16 / minBytes : 4;
  // C: the widest last axis among rank-2 tiles, else among rank-1 tiles.
  int64_t c2 = 0, c1 = 0;
  for (const ir::Type &t : f.values) {
    if (t.rank() == 2) c2 = std::max(c2, t.shape[1]);
    if (t.rank() == 1) c1 = std::max(c1, t.shape[0]);
  }
  int64_t c = c2 ? c2 : std::max<int64_t>(c1, 1);
  int64_t chunks = (c + geo.v - 1) / geo.v;
  geo.tc = 1;
  while (geo.tc < chunks && geo.tc < geo.threads) geo.tc *= 2;
  geo.tr = geo.threads / geo.tc;
  return geo;
}

bool Layout::has(Dist d) const { return std::find(dist.begin(), dist.end(), d) != dist.end(); }

Layout layoutOf(const ir::Type &t, Dist orientation) {
  if (t.rank() > 2) throw Error("tiles have rank 0, 1 or 2; got " + ir::typeString(t));
  Layout l;
  l.extent = t.shape;
  for (int a = 0; a < t.rank(); ++a) {
    Dist d = t.rank() == 2 ? (a == 0 ? Dist::G0 : Dist::G1) : orientation;
    l.dist.push_back(t.shape[size_t(a)] == 1 ? Dist::Rep : d);
  }
  return l;
}

std::string layoutString(const Layout &l) {
  static const char *names[] = {"Rep", "G0", "G1"};
  std::string s;
  for (int a = 0; a < l.rank(); ++a)
    s += fmt::format("{}{} {}", a ? ", " : "", names[int(l.dist[size_t(a)])], l.extent[size_t(a)]);
  return "[" + s + "]";
}

std::vector<Slot> axisSlots(const Geometry &geo, Dist d, int64_t extent) {
  std::vector<Slot> slots;
  switch (d) {
    case Dist::Rep: slots.push_back({0, true}); break;
    case Dist::G0:
      for (int64_t off = 0; off < extent; off += geo.tr) slots.push_back({off, off + geo.tr <= extent});
      break;
    case Dist::G1: {
      int64_t stride = int64_t(geo.tc) * geo.v;  // columns between a thread's chunks
      for (int64_t base = 0; base < extent; base += stride)
        for (int64_t e = 0; e < geo.v && base + e < extent; ++e)
          slots.push_back({base + e, stride - geo.v + base + e < extent});
      break;
    }
  }
  return slots;
}

std::vector<size_t> slotCounts(const Geometry &geo, const Layout &l) {
  std::vector<size_t> counts;
  for (int a = 0; a < l.rank(); ++a) counts.push_back(axisSlots(geo, l.dist[size_t(a)], l.extent[size_t(a)]).size());
  return counts;
}

int64_t elementsPerThread(const Geometry &geo, const Layout &l) {
  int64_t n = 1;
  for (size_t c : slotCounts(geo, l)) n *= int64_t(c);
  return n;
}

// ---- the plan --------------------------------------------------------------------------------

LayoutPlan::LayoutPlan(const ir::Function &f) : f_(f), geo_(computeGeometry(f)), defs_(collectDefs(f)) {
  size_t n = f.values.size();
  demanded_.resize(n);
  layouts_.resize(n);
  forEachOp(f.body, [&](const ir::Op &op) {
    if (op.kind == OpKind::For) yieldLoop_[&op.regions[0].ops.back()] = &op;
  });
  findCheap();
  chooseHomes();
  // Non-recomputed values are computed in their home; recomputed ones get their layouts
  // from their uses, during the backward walk.
  forEachOp(f.body, [&](const ir::Op &op) {
    std::vector<ValueId> defined = op.results;
    for (const ir::Block &region : op.regions) defined.insert(defined.end(), region.args.begin(), region.args.end());
    for (ValueId id : defined)
      if (!cheap_[size_t(id)]) layouts_[size_t(id)] = {layoutOf(f.type(id), orientation_[size_t(id)])};
  });
  demand(f.body);
  for (size_t id = 0; id < n; ++id)
    for (const Layout &l : layouts_[id]) {
      int64_t count = elementsPerThread(geo_, l);
      if (count > kMaxElementsPerThread)
        throw Error(fmt::format(
            "kernel {}: value %{} ({}) needs {} elements per thread (at most {}) with {} threads; "
            "use a smaller tile or more warps",
            describeKernel(f), id, ir::typeString(f.type(ValueId(id))), count, kMaxElementsPerThread,
            geo_.threads));
    }
}

Layout LayoutPlan::preferred(ValueId id) const {
  return cheap_[size_t(id)] ? layoutOf(f_.type(id)) : home(id);
}

bool LayoutPlan::flexible(ValueId id) const {
  const ir::Type &t = f_.type(id);
  return t.rank() == 1 && t.shape[0] > 1;
}

void LayoutPlan::findCheap() {
  cheap_.assign(f_.values.size(), 0);
  forEachOp(f_.body, [&](const ir::Op &op) {
    if (op.results.size() != 1 || !flexible(op.results[0])) return;
    bool cheap = false;
    switch (op.kind) {
      case OpKind::Iota: cheap = true; break;
      case OpKind::Broadcast: cheap = !flexible(op.operands[0]) || cheap_[size_t(op.operands[0])]; break;
      case OpKind::Unary: case OpKind::Binary: case OpKind::Select: case OpKind::Fma: case OpKind::Cast:
        cheap = std::all_of(op.operands.begin(), op.operands.end(), [&](ValueId x) { return cheap_[size_t(x)] != 0; });
        break;
      default: break;
    }
    cheap_[size_t(op.results[0])] = cheap;
  });
}

// Values that must share an orientation (elementwise ops, rank-1 accesses, loop-carried
// values) form classes; each class takes the orientation most of its members' defs and uses
// ask for. Recomputed values take no part: they are made in whatever layout a use wants.
void LayoutPlan::chooseHomes() {
  size_t n = f_.values.size();
  std::vector<size_t> parent(n);
  std::iota(parent.begin(), parent.end(), size_t(0));
  auto find = [&](size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  auto converted = [&](ValueId id) { return flexible(id) && !cheap_[size_t(id)]; };
  auto unite = [&](ValueId a, ValueId b) {
    if (converted(a) && converted(b)) parent[find(size_t(a))] = find(size_t(b));
  };
  std::vector<std::pair<ValueId, Dist>> votes;
  auto vote = [&](ValueId id, Dist d) {
    if (converted(id)) votes.push_back({id, d});
  };
  // The k-th 1-D index of a rank-2 access walks axis k of the tile.
  auto voteIndices = [&](const ir::Op &op, size_t nIndices, ValueId tile) {
    bool rank2 = f_.type(tile).rank() == 2;
    int k = 0;
    for (size_t i = 0; i < nIndices; ++i) {
      ValueId idx = op.operands[i];
      if (f_.type(idx).rank() != 1) continue;
      if (rank2) vote(idx, k == 0 ? Dist::G0 : Dist::G1);
      else unite(idx, tile);
      ++k;
    }
  };
  forEachOp(f_.body, [&](const ir::Op &op) {
    switch (op.kind) {
      case OpKind::Unary: case OpKind::Binary: case OpKind::Select: case OpKind::Fma: case OpKind::Cast:
        for (ValueId x : op.operands) unite(op.results[0], x);
        break;
      case OpKind::Broadcast:
        if (f_.type(op.results[0]).rank() == 2) vote(op.operands[0], Dist::G1);
        else unite(op.results[0], op.operands[0]);
        break;
      case OpKind::ExpandDims: vote(op.operands[0], op.axis == 1 ? Dist::G0 : Dist::G1); break;
      case OpKind::Reduce: vote(op.results[0], op.axis == 1 ? Dist::G0 : Dist::G1); break;
      case OpKind::Load: voteIndices(op, op.operands.size() - 1, op.results[0]); break;
      case OpKind::Store: case OpKind::AtomicAdd: voteIndices(op, op.operands.size() - 1, op.operands.back()); break;
      case OpKind::For: {
        const ir::Block &body = op.regions[0];
        for (size_t i = 0; i < op.results.size(); ++i) {
          ValueId arg = body.args[i + 1];
          unite(arg, op.operands[3 + i]);
          unite(arg, op.results[i]);
          unite(arg, body.ops.back().operands[i]);
        }
        break;
      }
      default: break;
    }
  });
  std::vector<std::array<int, 2>> tally(n, {0, 0});
  std::vector<int> first(n, -1);
  for (auto &[id, d] : votes) {
    size_t root = find(size_t(id));
    tally[root][d == Dist::G0 ? 0 : 1]++;
    if (first[root] < 0) first[root] = int(d);
  }
  orientation_.assign(n, Dist::G1);
  for (size_t id = 0; id < n; ++id) {
    size_t root = find(id);
    auto [g0, g1] = tally[root];
    if (g0 > g1 || (g0 == g1 && g0 > 0 && first[root] == int(Dist::G0))) orientation_[id] = Dist::G0;
  }
}

void LayoutPlan::demand(const ir::Block &b) {
  for (auto it = b.ops.rbegin(); it != b.ops.rend(); ++it) {
    const ir::Op &op = *it;
    for (ValueId r : op.results) finishLayouts(r);
    std::vector<std::vector<Layout>> needs;
    if (op.kind == OpKind::For) {
      demand(op.regions[0]);
      for (ValueId a : op.regions[0].args) finishLayouts(a);
    }
    if (op.results.size() == 1 && op.kind != OpKind::For) {
      // A converted value is computed in its home only; a recomputed one in each layout.
      ValueId r = op.results[0];
      const auto &layouts = layouts_[size_t(r)];
      for (size_t i = 0; i < (cheap_[size_t(r)] ? layouts.size() : 1); ++i) needs.push_back(operandLayouts(op, layouts[i]));
    } else {
      needs.push_back(operandLayouts(op));
    }
    for (const auto &layouts : needs)
      for (size_t i = 0; i < layouts.size(); ++i) {
        auto &d = demanded_[size_t(op.operands[i])];
        if (std::find(d.begin(), d.end(), layouts[i]) == d.end()) d.push_back(layouts[i]);
      }
  }
}

void LayoutPlan::finishLayouts(ValueId id) {
  auto &mine = layouts_[size_t(id)];
  auto demanded = demanded_[size_t(id)];
  if (cheap_[size_t(id)]) {
    // G1 first: the default orientation is the home when both are wanted.
    std::sort(demanded.begin(), demanded.end(), [](const Layout &a, const Layout &b) { return b < a; });
    mine = demanded.empty() ? std::vector<Layout>{layoutOf(f_.type(id))} : demanded;
    return;
  }
  for (const Layout &l : demanded)
    if (std::find(mine.begin(), mine.end(), l) == mine.end()) mine.push_back(l);
}

std::vector<Layout> LayoutPlan::indexLayouts(const ir::Op &op, size_t nIndices, const Layout &value) const {
  std::vector<Layout> out;
  size_t k = 0;
  for (size_t i = 0; i < nIndices; ++i) {
    if (f_.type(op.operands[i]).rank() == 0) {
      out.push_back(Layout{});
    } else {
      out.push_back(Layout{{value.dist.at(k)}, {value.extent.at(k)}});
      ++k;
    }
  }
  return out;
}

std::vector<Layout> LayoutPlan::operandLayouts(const ir::Op &op, const Layout &result) const {
  switch (op.kind) {
    case OpKind::Unary: case OpKind::Binary: case OpKind::Select: case OpKind::Fma: case OpKind::Cast:
      return std::vector<Layout>(op.operands.size(), result);  // operands have the result's shape
    case OpKind::Broadcast: {
      const ir::Type &x = f_.type(op.operands[0]);
      Layout l;
      l.extent = x.shape;
      for (int a = 0; a < x.rank(); ++a)
        l.dist.push_back(x.shape[size_t(a)] == 1 ? Dist::Rep : result.dist[size_t(a + result.rank() - x.rank())]);
      return {l};
    }
    case OpKind::ExpandDims: {
      Layout l = result;
      l.dist.erase(l.dist.begin() + op.axis);
      l.extent.erase(l.extent.begin() + op.axis);
      return {l};
    }
    case OpKind::Reduce: return {preferred(op.operands[0])};
    case OpKind::Load: {
      auto out = indexLayouts(op, op.operands.size() - 1, result);
      out.push_back(Layout{});
      return out;
    }
    default: return operandLayouts(op);
  }
}

std::vector<Layout> LayoutPlan::operandLayouts(const ir::Op &op) const {
  std::vector<Layout> out;
  switch (op.kind) {
    case OpKind::Store: case OpKind::AtomicAdd: {
      Layout value = preferred(op.operands.back());
      out = indexLayouts(op, op.operands.size() - 1, value);
      out.push_back(value);
      return out;
    }
    case OpKind::For: {
      out.assign(3, Layout{});
      const ir::Block &body = op.regions[0];
      for (size_t i = 1; i < body.args.size(); ++i) out.push_back(home(body.args[i]));
      return out;
    }
    case OpKind::Yield: {
      auto loop = yieldLoop_.find(&op);
      if (loop == yieldLoop_.end()) break;
      const ir::Block &body = loop->second->regions[0];
      for (size_t i = 1; i < body.args.size(); ++i) out.push_back(home(body.args[i]));
      return out;
    }
    default: break;
  }
  for (ValueId x : op.operands) out.push_back(preferred(x));
  return out;
}

}  // namespace tigon::codegen
