// libFuzzer target over the LLVM backend: every kernel that parses, specializes and verifies
// (tests/fuzz/fuzz_common.h) is compiled to PTX for sm_90. Any failure must be a
// tigon::Error, never a crash, an LLVM assertion/abort, a sanitizer report or a hang.
#include "codegen/llvm_backend.h"
#include "tests/fuzz/fuzz_common.h"

using namespace tigon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (const ir::Function &f : fuzz::specializeAll(data, size)) {
    if (!ir::verify(f).empty()) continue;
    // huge tiles make LLVM's work (unrolled per-thread loops) slow: not what this looks for
    bool big = false;
    for (const ir::Type &t : f.values) {
      int64_t n = 1;
      for (int64_t d : t.shape) {
        if (d <= 0 || d > (1 << 16) || (n *= d) > (1 << 16)) { big = true; break; }
      }
      if (big) break;
    }
    if (big) continue;
    try {
      codegen::compileToPtx(f, "sm_90");
    } catch (const Error &) {
    }
  }
  return 0;
}
