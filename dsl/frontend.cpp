#include "dsl/frontend.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "dsl/error.h"
#include "dsl/hash.h"
#include "dsl/parser.h"

namespace tigon {

std::string readTextFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("cannot read '{}'", path));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TileModule loadTileSource(std::string path, std::string source) {
  TileModule m{std::move(path), std::move(source), {}, {}};
  m.sourceHash = hex64(fnv1a64(m.source));
  Diagnostics diags(m.path, m.source);
  m.ast = parse(m.source, diags);
  if (!diags.hasErrors()) checkModule(m.ast, diags);
  if (diags.hasErrors()) throw Error(diags.format());
  return m;
}

TileModule loadTileFile(const std::string &path) { return loadTileSource(path, readTextFile(path)); }

ir::Function specialize(const TileModule &m, const std::string &kernel, const Bindings &bindings) {
  const ast::Kernel *k = m.ast.findKernel(kernel);
  if (!k) {
    std::vector<std::string> names;
    for (const ast::Kernel &x : m.ast.kernels) names.push_back(x.name);
    throw Error(fmt::format("{}: no kernel '{}' (kernels: {})", m.path, kernel,
                            names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", "))));
  }
  Diagnostics diags(m.path, m.source);
  auto f = lowerKernel(m.ast, *k, bindings, diags);
  if (!f) throw Error(diags.format());
  return std::move(*f);
}

}  // namespace tigon
