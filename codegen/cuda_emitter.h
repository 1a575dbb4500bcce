// Prints one kernel's tile IR as a CUDA C++ kernel (internal to codegen; the entry point is
// codegen/cuda_backend.h). It mirrors the LLVM backend's KernelEmitter on the same layout plan
// and thread plan: each IR value is, per thread, the elements it holds in a layout, in layout
// order, fully unrolled; here each element is a C++ local (or a name it aliases). Names:
//   p_<param>, p_<param>_size<d>, p_<param>_stride<d>   the kernel's parameters
//   lc, g, lcv                                          thread coordinates (lcv = lc * v)
//   r<extent>_<slot>, c<extent>_<slot>[_ok]             G0 and G1 axis indices (and validity)
//   v<id>[l<layout>][_<element>], v<id>n_<element>      values; a loop's next carried values
//   a<n>..., acc<n>[i]_<k>                              an access's offsets and conditions;
//                                                       a reduction's accumulators
//   vec<k>, x, xi                                       temporaries inside { } blocks
//   tg_*                                                the prelude's helpers, tg_scratch
//   cuda_backend.cpp: the kernel's signature, thread coordinates, op dispatch, elementwise
//                     ops, loops, guarded code
//   cuda_memory.cpp:  global loads, stores and atomic adds
//   cuda_reduce.cpp:  reductions and layout conversions
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "codegen/index_facts.h"
#include "codegen/layout.h"
#include "codegen/thread_plan.h"

namespace tigon::codegen::cuda {

using Names = std::vector<std::string>;  // per element: a C++ name or literal

// Conditions joined with &&; "" stands for true.
std::string all(std::initializer_list<std::string> conds);

class Emitter {
 public:
  // Throws tigon::Error (naming the kernel) when the kernel cannot be lowered.
  explicit Emitter(const ir::Function &f);
  std::string emit();

 private:
  // A thread's view of one tile axis: per slot the element's index along the axis (int) and
  // whether it is in range ("": always). Declared once, at the top of the kernel.
  struct AxisView {
    std::vector<Slot> slots;
    Names index, valid;
  };
  // Code run only where `cond` holds ("": always); `otherwise` runs where it does not.
  struct Guarded {
    std::string cond;
    std::function<void()> then, otherwise;
  };

  // cuda_backend.cpp
  std::string signature() const;
  std::string size(const ir::Param &p, int d) const;    // long long: a literal for static dims
  std::string stride(const ir::Param &p, int d) const;  // long long
  void emitBlock(const ir::Block &block);
  void emitOp(const ir::Op &op);
  void emitFor(const ir::Op &op);
  Names compute(const ir::Op &op, const Layout &layout, const std::string &name);
  Names declare(const char *type, const std::string &name, const Names &exprs);
  const Names &get(ir::ValueId id, const Layout &layout) const { return values_.get(id, layout); }
  void define(ir::ValueId id, const Layout &layout, Names elems) { values_.define(id, layout, std::move(elems)); }
  void defineOtherLayouts(ir::ValueId id);  // converts from the home layout
  std::string valueName(ir::ValueId id, size_t layoutIndex) const;
  const AxisView &axis(Dist d, int64_t extent);
  std::string firstReplica(const Layout &l) const;  // "" where every thread acts
  void emitGuarded(const std::vector<Guarded> &items);
  void line(const std::string &code);
  std::string fresh(const char *prefix);  // a new local name
  [[noreturn]] void fail(const ir::Op &op, const std::string &msg) const;

  // cuda_memory.cpp: per element (o, i) (AccessPlan) the offset outerOffset[o] + innerOffset[i],
  // accessed where outerCond[o] and innerCond[i] hold; chunk j where outerCond[o] and chunkCond[j].
  struct Access {
    AccessPlan plan;
    ir::DType dtype = ir::DType::F32;
    std::string base;
    Names outerOffset, outerCond, innerOffset, innerCond, chunkCond;
  };
  Access prepareAccess(const ir::Op &op, const Layout &layout, const std::vector<Layout> &indexLayouts, bool store);
  // The code of an element (its index in layout order) or of a chunk (its first element's),
  // given the offset expression.
  using AccessCode = std::function<void(size_t, const std::string &)>;
  // Emits the access step by step: an element where it is valid (else elementSkipped, if
  // any), a whole chunk where it is valid (else element by element where it may be partly
  // valid, else chunkSkipped, if any).
  void emitAccess(const Access &a, const AccessCode &element, const AccessCode &elementSkipped, const AccessCode &chunk,
                  const AccessCode &chunkSkipped);
  Names emitLoad(const ir::Op &op, const Layout &layout, const std::string &name);
  void emitStore(const ir::Op &op);

  // cuda_reduce.cpp
  Names emitReduce(const ir::Op &op, const Layout &result, const std::string &name);
  Names convert(ir::ValueId id, const Layout &from, const Layout &to, const std::string &name);
  std::string scratch(const char *type, const std::string &index, int64_t baseBytes) const;  // an element
  void beginScratchWrite(int64_t bytes);  // barrier if earlier contents may still be read

  const ir::Function &f_;
  LayoutPlan plan_;
  const Geometry &geo_;
  IndexFacts facts_;
  std::string prologue_, body_;  // the kernel's first lines (thread coordinates, axes), the rest
  int depth_ = 1;                // indentation of body_ lines
  int counter_ = 0;
  std::map<std::pair<Dist, int64_t>, AxisView> axes_;
  ValueTable<std::string> values_;
  Scratch scratch_;
};

}  // namespace tigon::codegen::cuda
