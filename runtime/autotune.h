// The autotuner's logic, free of the GPU: the search space of a kernel's tune parameters,
// row bucketing, and picking the fastest candidate from timings. The JIT supplies the timer
// (device events on scratch copies of the arguments); tests supply a fake one.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dsl/ast.h"
#include "dsl/lower.h"

namespace tigon {

// Every combination of the kernel's tune values, the kernel's default (the first value of
// each) first. Bindings already fixed in `fixed` are not varied.
std::vector<Bindings> tuneSpace(const ast::Kernel &k, const Bindings &fixed);

// The kernel's default config: each tune parameter at its first value.
Bindings defaultConfig(const ast::Kernel &k, const Bindings &fixed);

// Row counts are tuned by bucket (the next power of two), so a run whose sequence lengths
// vary tunes a handful of times, not every step.
int64_t rowBucket(int64_t rows);

struct TuneResult {
  Bindings best;
  double bestMs = 0;
  int timed = 0, rejected = 0;
  std::vector<std::string> rejections;  // "ROWS=8 WARPS=1: <why>"
};

// Times each candidate, then each that ran once more in reverse order, and keeps the fastest
// (by its faster time); ties go to the earlier candidate. A candidate
// the timer gives nullopt for, or throws for (the config cannot compile, load or launch: more
// shared memory, elements per thread or registers than allowed), is rejected with the reason.
// An OutOfMemory is no fault of the config and is rethrown. When no candidate can run, throws
// tigon::Error naming `kernel` and every reason.
using Timer = std::function<std::optional<double>(const Bindings &)>;
TuneResult pickFastest(const std::string &kernel, const std::vector<Bindings> &candidates, const Timer &time);

// Without timing (TIGON_AUTOTUNE=0): the first candidate that runs, i.e. the default config,
// or the next one when it does not fit. Rejections and errors as pickFastest.
TuneResult pickFirstThatRuns(const std::string &kernel, const std::vector<Bindings> &candidates, const Timer &check);

// "ROWS=4 WARPS=8", in name order.
std::string configString(const Bindings &b);
// Parses configString's output.
Bindings parseConfig(const std::string &text);

// TIGON_AUTOTUNE=0 turns timing off: the default config is used.
bool autotuneEnabled();

}  // namespace tigon
