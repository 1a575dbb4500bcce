#include "codegen/ir_query.h"

#include <fmt/format.h>

namespace tigon::codegen {

void forEachOp(const ir::Block &b, const std::function<void(const ir::Op &)> &fn) {
  for (const ir::Op &op : b.ops) {
    fn(op);
    for (const ir::Block &region : op.regions) forEachOp(region, fn);
  }
}

std::vector<ValueDef> collectDefs(const ir::Function &f) {
  std::vector<ValueDef> defs(f.values.size());
  auto record = [&](const ir::Op &op) {
    for (ir::ValueId r : op.results) defs.at(size_t(r)).op = &op;
    if (op.kind == ir::OpKind::For)
      for (size_t i = 0; i < op.regions[0].args.size(); ++i)
        defs.at(size_t(op.regions[0].args[i])) = ValueDef{nullptr, &op, int(i)};
  };
  forEachOp(f.grid, record);
  forEachOp(f.body, record);
  return defs;
}

std::string describeKernel(const ir::Function &f) {
  std::string config;
  for (auto &[k, v] : f.bindings) config += fmt::format("{}={}, ", k, v);
  return fmt::format("{} [{}warps={}]", f.name, config, f.warps);
}

}  // namespace tigon::codegen
