// Shared by the libFuzzer targets (scripts/fuzz.sh builds them with clang and
// -fsanitize=fuzzer,address,undefined): input bytes as a .tile source -> parse and check ->
// every kernel specialized with small values. Every failure must be a tigon::Error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dsl/error.h"
#include "dsl/frontend.h"

namespace tigon::fuzz {

// The module's kernels, each specialized with every const bound to 8, every dtype parameter
// to f32 and every tune parameter left at its default. Kernels that fail to specialize (a
// tigon::Error) are left out; nullopt-free: a source that fails to parse gives an empty list.
inline std::vector<ir::Function> specializeAll(const uint8_t *data, size_t size) {
  std::vector<ir::Function> out;
  TileModule m;
  try {
    m = loadTileSource("fuzz.tile", std::string(reinterpret_cast<const char *>(data), size));
  } catch (const Error &) {
    return out;
  }
  for (const ast::Kernel &k : m.ast.kernels) {
    Bindings b;
    for (const ast::GenericParam &g : k.generics) {
      if (g.kind == ast::GenericParam::Kind::Const) b[g.name] = "8";
      else if (g.kind == ast::GenericParam::Kind::DType) b[g.name] = "f32";
    }
    try {
      out.push_back(specialize(m, k.name, b));
    } catch (const Error &) {
    }
  }
  return out;
}

}  // namespace tigon::fuzz
