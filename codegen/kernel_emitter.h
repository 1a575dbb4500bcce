// Builds one kernel's LLVM function from its tile IR (internal to codegen). Each IR value is,
// per thread, the list of its elements this thread holds in a layout (codegen/layout.h), in
// layout order (row-major over the axes' slots), fully unrolled.
//   kernel_emitter.cpp: the function, its ABI, thread coordinates, op dispatch, elementwise
//                       ops, loops
//   emit_memory.cpp:    global loads, stores and atomic adds (bounds, vector accesses)
//   emit_reduce.cpp:    reductions (shuffles, shared memory), layout conversions
#pragma once
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <map>
#include <vector>

#include "codegen/index_facts.h"
#include "codegen/layout.h"
#include "codegen/thread_plan.h"

namespace tigon::codegen {

using Elements = std::vector<llvm::Value *>;

class KernelEmitter {
 public:
  // Throws tigon::Error (naming the kernel) when the kernel cannot be lowered.
  KernelEmitter(const ir::Function &f, llvm::Module &m);
  void emit();

 private:
  // A thread's view of one tile axis: per slot the element's index along the axis (i32) and
  // whether it is in range (null: always). Computed once, in the entry block.
  struct AxisView {
    std::vector<Slot> slots;
    std::vector<llvm::Value *> index;
    std::vector<llvm::Value *> valid;
  };
  struct TensorArgs {
    llvm::Value *base = nullptr;
    std::vector<llvm::Value *> sizes;    // i64; constants for static dims
    std::vector<llvm::Value *> strides;  // i64; the last is the constant 1
  };
  // A piece of code run only where `cond` holds (null: always); `otherwise` gives the
  // values of the skipped case (as many as `then` gives; none for stores).
  struct Guarded {
    llvm::Value *cond;
    std::function<Elements()> then;
    std::function<Elements()> otherwise;
  };

  // kernel_emitter.cpp
  void createFunction();
  void emitThreadCoordinates();
  void emitBlock(const ir::Block &block);
  void emitOp(const ir::Op &op);
  void emitFor(const ir::Op &op);
  Elements compute(const ir::Op &op, const Layout &layout);
  Elements broadcast(const ir::Op &op, const Layout &layout);
  const Elements &get(ir::ValueId id, const Layout &layout) const { return values_.get(id, layout); }
  void define(ir::ValueId id, const Layout &layout, Elements elems) { values_.define(id, layout, std::move(elems)); }
  void defineOtherLayouts(ir::ValueId id);  // converts from the home layout
  const AxisView &axis(Dist d, int64_t extent);
  llvm::Value *all(std::initializer_list<llvm::Value *> conds);  // and; null where all are null
  // The condition of codegen::firstReplica (null: every thread).
  llvm::Value *firstReplica(const Layout &l);
  Elements emitGuarded(const std::vector<Guarded> &items);
  [[noreturn]] void fail(const ir::Op &op, const std::string &msg) const;

  // emit_memory.cpp
  // Per element (o, i) of the accessed tile (AccessPlan), its offset in elements is
  // outerOffset[o] + innerOffset[i] and it is accessed where outerCond[o] and innerCond[i]
  // hold; a vectorized chunk j is one whole access where outerCond[o] and chunkCond[j] hold.
  struct Access {
    AccessPlan plan;
    ir::DType dtype = ir::DType::F32;
    llvm::Value *base = nullptr;
    std::vector<llvm::Value *> outerOffset, outerCond, innerOffset, innerCond, chunkCond;
  };
  Access prepareAccess(const ir::Op &op, const Layout &layout, const std::vector<Layout> &indexLayouts,
                       bool store);
  Elements emitLoad(const ir::Op &op, const Layout &layout);
  void emitStore(const ir::Op &op);
  llvm::Value *elementAddress(const Access &a, llvm::Value *offset);
  Elements packChunk(ir::DType dtype, const Elements &elems);      // -> <4 x i32> vectors
  Elements unpackChunk(ir::DType dtype, const Elements &vectors);  // and back

  // emit_reduce.cpp
  Elements emitReduce(const ir::Op &op, const Layout &result);
  Elements convert(ir::ValueId id, const Layout &from, const Layout &to);
  llvm::Value *shuffleXor(llvm::Value *x, int laneMask);
  llvm::Value *scratchAddress(llvm::Value *index, llvm::Type *elem, int64_t baseBytes);
  void beginScratchWrite(int64_t bytes);  // barrier if earlier contents may still be read
  void barrier();
  void finishScratch();

  const ir::Function &f_;
  llvm::Module &m_;
  llvm::LLVMContext &ctx_;
  LayoutPlan plan_;
  const Geometry &geo_;
  IndexFacts facts_;
  llvm::IRBuilder<> b_;         // the current insertion point
  llvm::IRBuilder<> prologue_;  // end of the entry block: values every block may use
  llvm::Function *fn_ = nullptr;
  std::vector<TensorArgs> tensors_;        // per param (empty for scalars)
  std::vector<llvm::Value *> scalarArgs_;  // per param (null for tensors)
  llvm::Value *lc_ = nullptr, *g_ = nullptr, *lcTimesV_ = nullptr;  // thread coordinates (i32)
  std::map<std::pair<Dist, int64_t>, AxisView> axes_;
  ValueTable<llvm::Value *> values_;
  llvm::GlobalVariable *scratch_ = nullptr;  // placeholder until the size is known
  Scratch scratchUse_;
};

}  // namespace tigon::codegen
