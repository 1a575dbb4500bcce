// The autotuner's choice logic, with a fake timer.
#include <doctest/doctest.h>

#include "dsl/error.h"
#include "dsl/frontend.h"
#include "runtime/autotune.h"

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
  TuneResult r = pickFastest(space, timer);
  CHECK(r.best.at("ROWS") == "4");
  CHECK(r.best.at("WARPS") == "4");
  CHECK(r.bestMs == doctest::Approx(6.5));
  CHECK(r.timed == 4);
  CHECK(r.rejected == 2);
  CHECK(r.rejections[0].find("launch failed") != std::string::npos);
}

TEST_CASE("autotune: ties keep the earlier (default) config; nothing runnable is an error") {
  std::vector<Bindings> c = {{{"A", "1"}}, {{"A", "2"}}};
  CHECK(pickFastest(c, [](const Bindings &) { return std::optional<double>(1.0); }).best.at("A") == "1");
  CHECK_THROWS_WITH_AS(pickFastest(c, [](const Bindings &) { return std::optional<double>(); }),
                       doctest::Contains("no config that runs"), Error);
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
