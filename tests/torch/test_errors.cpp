// How tigon's errors reach Python: guarded() (ops/torch_bridge.h) turns a tigon::Error into a
// c10::Error (RuntimeError) and a tigon::OutOfMemory into a c10::OutOfMemoryError
// (torch.OutOfMemoryError), which callers catch to free memory and retry.
#include "tests/torch/torch_reference.h"
// after LibTorch and doctest, in that order (torch_reference.h)
#include "ops/torch_bridge.h"

using tigon::ops::guarded;

TEST_CASE("errors: running out of memory reaches torch as OutOfMemoryError, other errors as c10::Error") {
  auto outOfMemory = [] {
    guarded([]() -> int { throw tigon::OutOfMemory("allocating autotuning scratch memory: out of memory (CUDA error 2)"); });
  };
  CHECK_THROWS_AS(outOfMemory(), c10::OutOfMemoryError);
  CHECK_THROWS_WITH(outOfMemory(), doctest::Contains("allocating autotuning scratch memory: out of memory"));

  auto other = [] { guarded([]() -> int { throw tigon::Error("kernel k: found no config that runs"); }); };
  bool plain = false;
  try {
    other();
  } catch (const c10::OutOfMemoryError &) {
  } catch (const c10::Error &e) {
    plain = std::string(e.what()).find("found no config that runs") != std::string::npos;
  }
  CHECK(plain);
  CHECK(guarded([] { return 7; }) == 7);
}
