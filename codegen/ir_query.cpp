#include "codegen/ir_query.h"

#include <fmt/format.h>

#include "dsl/error.h"

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

void failAt(const ir::Function &f, const ir::Op &op, const std::string &msg) {
  throw Error(fmt::format("kernel {}: {}:{}: {}: {}", describeKernel(f), op.loc.line, op.loc.col,
                          ir::opKindName(op.kind), msg));
}

void rethrowAt(const ir::Function &f, const ir::Op &op, const std::exception &e) {
  if (std::string(e.what()).rfind("kernel ", 0) == 0) throw;
  failAt(f, op, e.what());
}

void checkLowerable(const ir::Function &f) {
  std::vector<std::string> problems = ir::verify(f);
  if (!problems.empty())
    throw Error(fmt::format("kernel {}: invalid tile IR: {}", describeKernel(f), fmt::join(problems, "; ")));
  for (const ir::Param &p : f.params)
    if (p.kind == ir::Param::Kind::Scalar && p.dtype != ir::DType::F32 && p.dtype != ir::DType::I32 &&
        p.dtype != ir::DType::I64)
      throw Error(fmt::format("kernel {}: scalar parameter '{}' is {}; kernel scalars are f32, i32 or i64",
                              describeKernel(f), p.name, ir::dtypeName(p.dtype)));
}

}  // namespace tigon::codegen
