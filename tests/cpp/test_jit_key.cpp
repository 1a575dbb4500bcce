// The JIT's cache key: every part of a specialization changes it, nothing else does.
#include <doctest/doctest.h>

#include <set>

#include "dsl/frontend.h"
#include "runtime/jit.h"

using namespace tigon;

TEST_CASE("jit: the cache key is stable and changes with every part") {
  const char *src = "kernel k<T: float, N: const, R: tune[1, 2]>(x: T[M, N], y: out T[M, N]) grid M { }";
  TileModule m = loadTileSource("k.tile", src), same = loadTileSource("k.tile", src);
  TileModule edited = loadTileSource("k.tile", std::string(src) + "\n// edited");
  Bindings b = {{"T", "bf16"}, {"N", "4096"}, {"R", "1"}};
  std::vector<bool> aligned = {true, true};
  std::string key = kernelKey(m, "k", b, "sm_90", "llvm", aligned);
  // the same specialization, parsed again (a new process): the same key
  CHECK(kernelKey(same, "k", b, "sm_90", "llvm", aligned) == key);
  CHECK(key.find(TIGON_VERSION) != std::string::npos);
  std::set<std::string> keys = {key};
  auto with = [&](const char *name, const char *value) {
    Bindings c = b;
    c[name] = value;
    return kernelKey(m, "k", c, "sm_90", "llvm", aligned);
  };
  for (const std::string &k : {kernelKey(edited, "k", b, "sm_90", "llvm", aligned), with("T", "f16"), with("N", "4095"),
                               with("R", "2"), kernelKey(m, "k", b, "sm_80", "llvm", aligned),
                               kernelKey(m, "k", b, "sm_90", "nvrtc", aligned),
                               kernelKey(m, "k", b, "sm_90", "llvm", {true, false})})
    CHECK(keys.insert(k).second);  // each differs from the key and from the others
}
