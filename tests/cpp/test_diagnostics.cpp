// Golden diagnostics: every tests/golden/diagnostics/NAME.tile must fail with exactly the
// text in NAME.err (messages, positions, source lines and carets). A first line
// `// specialize: KERNEL NAME=VALUE ...` also specializes that kernel with those bindings.
// TIGON_UPDATE_GOLDEN=1 rewrites the .err files (review the diff before committing).
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dsl/error.h"
#include "dsl/frontend.h"

namespace fs = std::filesystem;
using namespace tigon;

namespace {

std::string diagnose(const std::string &name, const std::string &source) {
  try {
    TileModule m = loadTileSource(name, source);
    const std::string prefix = "// specialize: ";
    if (source.rfind(prefix, 0) == 0) {
      std::istringstream words(source.substr(prefix.size(), source.find('\n') - prefix.size()));
      std::string kernel, binding;
      words >> kernel;
      Bindings b;
      while (words >> binding) b[binding.substr(0, binding.find('='))] = binding.substr(binding.find('=') + 1);
      specialize(m, kernel, b);
    }
  } catch (const Error &e) {
    return e.what();
  }
  return "(no error)\n";
}

}  // namespace

TEST_CASE("diagnostics: golden files") {
  fs::path dir = fs::path(TIGON_TESTS_DIR) / "golden" / "diagnostics";
  bool update = std::getenv("TIGON_UPDATE_GOLDEN") != nullptr;
  int cases = 0;
  for (const auto &entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".tile") continue;
    ++cases;
    std::string name = entry.path().filename().string();
    std::string got = diagnose(name, readTextFile(entry.path().string()));
    fs::path expectedPath = entry.path();
    expectedPath.replace_extension(".err");
    if (update) std::ofstream(expectedPath) << got;
    CAPTURE(name);
    REQUIRE(fs::exists(expectedPath));
    CHECK(got == readTextFile(expectedPath.string()));
    CHECK(got != "(no error)\n");
  }
  CHECK(cases >= 25);
}

TEST_CASE("diagnostics: garbage never crashes or hangs") {
  // binary noise, a 1 MB line, deep nesting, unbalanced braces: each gives diagnostics
  std::string noise;
  uint32_t state = 12345;
  for (int i = 0; i < 20000; ++i) {
    state = state * 1664525u + 1013904223u;
    noise += char(state >> 24);
  }
  std::string longLine = "kernel k(x: f32[M]) grid M { let a = " + std::string(1 << 20, '1') + "; }";
  std::string deep = "kernel k(x: f32[M]) grid M { " + std::string(100000, '{') + " }";
  std::string deepExpr = "kernel k(x: f32[M]) grid M { let a = " + std::string(100000, '-') + "1; }";
  for (const std::string &src : {noise, longLine, deep, deepExpr, std::string("kernel"), std::string("}}}}"), std::string("")}) {
    std::string got = diagnose("fuzz.tile", src);
    if (!src.empty()) CHECK(got.find("error:") != std::string::npos);
    CHECK(got.size() < 100000);
  }
}
