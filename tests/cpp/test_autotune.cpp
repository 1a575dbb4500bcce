// The autotuner's choice logic, with a fake timer; configs over the GPU's limits rejected
// through the real code generator.
#include <doctest/doctest.h>

#include <algorithm>

#include "dsl/error.h"
#include "dsl/frontend.h"
#include "runtime/autotune.h"
#include "runtime/backend.h"

using namespace tigon;

namespace {
const char *kSrc = "kernel k<N: const, ROWS: tune[4, 1, 2], WARPS: tune[8, 4]>(x: f32[M, N]) grid M { }";
}

TEST_CASE("autotune: the space is every combination, the default first") {
  TileModule m = loadTileSource("k.tile", kSrc);
  auto space = tuneSpace(m.ast.kernels[0], {{"N", "128"}});
  REQUIRE(space.size() == 6);
  CHECK(space[0] == Bindings{{"N", "128"}, {"ROWS", "4"}, {"WARPS", "8"}});
  CHECK(defaultConfig(m.ast.kernels[0], {{"N", "128"}}) == space[0]);
  // a fixed tune value is not varied
  CHECK(tuneSpace(m.ast.kernels[0], {{"N", "128"}, {"WARPS", "4"}}).size() == 3);
}

TEST_CASE("autotune: picks the fastest, skips configs that cannot run") {
  TileModule m = loadTileSource("k.tile", kSrc);
  auto space = tuneSpace(m.ast.kernels[0], {{"N", "128"}});
  auto timer = [](const Bindings &b) -> std::optional<double> {
    int rows = std::stoi(b.at("ROWS")), warps = std::stoi(b.at("WARPS"));
    if (rows == 2 && warps == 8) return std::nullopt;  // "too many registers"
    if (rows == 1 && warps == 8) throw Error("launch failed");
    return 10.0 / rows + warps;  // fastest: ROWS=4, WARPS=4
  };
  TuneResult r = pickFastest("k", space, timer);
  CHECK(r.best.at("ROWS") == "4");
  CHECK(r.best.at("WARPS") == "4");
  CHECK(r.bestMs == doctest::Approx(6.5));
  CHECK(r.timed == 4);
  CHECK(r.rejected == 2);
  CHECK(r.rejections[0].find("launch failed") != std::string::npos);
}

TEST_CASE("autotune: ties keep the earlier (default) config; nothing runnable is an error") {
  std::vector<Bindings> c = {{{"A", "1"}}, {{"A", "2"}}};
  CHECK(pickFastest("k", c, [](const Bindings &) { return std::optional<double>(1.0); }).best.at("A") == "1");
  CHECK_THROWS_WITH_AS(pickFastest("k", c, [](const Bindings &) { return std::optional<double>(); }),
                       doctest::Contains("no config that runs"), Error);
}

TEST_CASE("autotune: one slow measurement does not lose the fastest config") {
  std::vector<Bindings> c = {{{"A", "1"}}, {{"A", "2"}}, {{"A", "3"}}};
  std::vector<std::string> calls;
  auto timer = [&](const Bindings &b) -> std::optional<double> {
    calls.push_back(b.at("A"));
    bool firstTimeOfA2 = b.at("A") == "2" && std::count(calls.begin(), calls.end(), "2") == 1;
    return b.at("A") == "2" ? (firstTimeOfA2 ? 9.0 : 1.0) : 2.0;  // A=2 is fastest, measured slow once
  };
  TuneResult r = pickFastest("k", c, timer);
  CHECK(r.best.at("A") == "2");
  CHECK(r.bestMs == doctest::Approx(1.0));
  CHECK(r.timed == 3);
  CHECK(calls == std::vector<std::string>{"1", "2", "3", "3", "2", "1"});  // the second pass is reversed
  // without timing, only the first config that runs is tried, once
  calls.clear();
  CHECK(pickFirstThatRuns("k", c, timer).best.at("A") == "1");
  CHECK(calls == std::vector<std::string>{"1"});
}

TEST_CASE("autotune: running out of memory is no reason to reject a config") {
  std::vector<Bindings> c = {{{"A", "1"}}, {{"A", "2"}}};
  auto timer = [](const Bindings &b) -> std::optional<double> {
    if (b.at("A") == "1") throw OutOfMemory("allocating autotuning scratch memory: out of memory (CUDA error 2)");
    return 1.0;
  };
  // a rejected A=1 would make A=2 the (persisted) choice
  CHECK_THROWS_AS(pickFastest("k", c, timer), OutOfMemory);
  CHECK_THROWS_AS(pickFirstThatRuns("k", c, timer), OutOfMemory);
}

TEST_CASE("autotune: configs over the GPU's limits are rejected with the reason, a fitting one chosen") {
  TileModule m = loadTileFile(std::string(TIGON_TESTS_DIR) + "/tiles/over_limits.tile");
  const Bindings shape = {{"R", "64"}, {"N", "256"}};
  // the candidate's real PTX (as the JIT compiles it before timing), and a fake time that
  // favours more warps, so the configs that do not fit would win if they ran
  std::vector<std::string> compiled;
  auto compileAndTime = [&](const Bindings &b) -> std::optional<double> {
    compilePtx(specialize(m, "col_argmax", b), "sm_90", "llvm");
    compiled.push_back(b.at("WARPS"));
    return 1.0 / std::stod(b.at("WARPS"));
  };
  auto space = tuneSpace(m.ast.kernels[0], shape);
  REQUIRE(space.front().at("WARPS") == "32");  // the default

  TuneResult r = pickFastest("col_argmax", space, compileAndTime);
  CHECK(r.best.at("WARPS") == "8");
  CHECK(r.timed == 2);
  REQUIRE(r.rejected == 2);
  CHECK(r.rejections[0].find("WARPS=32: kernel col_argmax") != std::string::npos);
  CHECK(r.rejections[0].find("needs 65536 bytes of shared memory") != std::string::npos);
  CHECK(r.rejections[1].find("WARPS=1: kernel col_argmax") != std::string::npos);
  CHECK(r.rejections[1].find("needs 512 elements per thread") != std::string::npos);

  // without timing (TIGON_AUTOTUNE=0): the default does not fit, the next that fits is taken
  // and nothing after it is compiled
  compiled.clear();
  TuneResult first = pickFirstThatRuns("col_argmax", space, compileAndTime);
  CHECK(first.best.at("WARPS") == "8");
  CHECK(first.rejected == 2);
  CHECK(compiled == std::vector<std::string>{"8"});

  // when nothing fits: one error naming the kernel and every config with its reason
  Bindings tooMany = shape;
  tooMany["WARPS"] = "32";
  std::vector<Bindings> none = {tooMany, {{"R", "128"}, {"N", "256"}, {"WARPS", "1"}}};
  for (bool timed : {true, false}) {
    try {
      timed ? pickFastest("col_argmax (N=256 R=64)", none, compileAndTime)
            : pickFirstThatRuns("col_argmax (N=256 R=64)", none, compileAndTime);
      FAIL("expected an error");
    } catch (const Error &e) {
      std::string why = e.what();
      CHECK(why.find("kernel col_argmax (N=256 R=64): found no config that runs") != std::string::npos);
      CHECK(why.find("\n  N=256 R=64 WARPS=32: kernel col_argmax") != std::string::npos);
      CHECK(why.find("shared memory") != std::string::npos);
      CHECK(why.find("\n  N=256 R=128 WARPS=1: kernel col_argmax") != std::string::npos);
      CHECK(why.find("1024 elements per thread") != std::string::npos);
    }
  }
}

TEST_CASE("autotune: row buckets are powers of two") {
  CHECK(rowBucket(0) == 1);
  CHECK(rowBucket(1) == 1);
  CHECK(rowBucket(3) == 4);
  CHECK(rowBucket(4096) == 4096);
  CHECK(rowBucket(4097) == 8192);
}

TEST_CASE("autotune: configs print and parse back") {
  Bindings b = {{"ROWS", "4"}, {"WARPS", "8"}};
  CHECK(configString(b) == "ROWS=4 WARPS=8");
  CHECK(parseConfig(configString(b)) == b);
  CHECK_THROWS_AS(parseConfig("ROWS4"), Error);
}
