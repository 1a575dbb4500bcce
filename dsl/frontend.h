// The front end as one call: source text -> checked AST -> tile IR for one specialization.
// Failures throw tigon::Error carrying every diagnostic, formatted.
#pragma once
#include <string>

#include "dsl/ast.h"
#include "dsl/lower.h"

namespace tigon {

// A parsed and checked .tile file.
struct TileModule {
  std::string path;
  std::string source;
  std::string sourceHash;  // hex FNV-1a of the source: part of every cache key
  ast::Module ast;
};

// Parses and checks; throws tigon::Error with all diagnostics if there are any.
TileModule loadTileSource(std::string path, std::string source);
TileModule loadTileFile(const std::string &path);

// Specializes and lowers one kernel of the module; throws tigon::Error on failure (an
// unknown kernel name lists the kernels that exist).
ir::Function specialize(const TileModule &m, const std::string &kernel, const Bindings &bindings);

std::string readTextFile(const std::string &path);

}  // namespace tigon
