#include "runtime/autotune.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "dsl/error.h"

namespace tigon {

std::vector<Bindings> tuneSpace(const ast::Kernel &k, const Bindings &fixed) {
  std::vector<Bindings> out = {fixed};
  for (const ast::GenericParam &g : k.generics) {
    if (g.kind != ast::GenericParam::Kind::Tune || fixed.count(g.name)) continue;
    std::vector<Bindings> next;
    for (const Bindings &b : out)
      for (int64_t v : g.choices) {
        Bindings c = b;
        c[g.name] = std::to_string(v);
        next.push_back(std::move(c));
      }
    out = std::move(next);
  }
  return out;
}

Bindings defaultConfig(const ast::Kernel &k, const Bindings &fixed) { return tuneSpace(k, fixed).front(); }

int64_t rowBucket(int64_t rows) {
  int64_t b = 1;
  while (b < rows && b < (int64_t(1) << 62)) b <<= 1;
  return b;
}

namespace {

TuneResult pick(const std::string &kernel, const std::vector<Bindings> &candidates, const Timer &time,
                bool firstThatRuns) {
  TuneResult r;
  std::vector<std::pair<size_t, double>> timed;  // candidate index, fastest time seen
  for (size_t i = 0; i < candidates.size() && !(firstThatRuns && !timed.empty()); ++i) {
    std::optional<double> ms;
    std::string why = "does not fit the device";
    try {
      ms = time(candidates[i]);
    } catch (const OutOfMemory &) {
      throw;
    } catch (const std::exception &e) {
      why = e.what();
    }
    if (ms) timed.emplace_back(i, *ms);
    else r.rejections.push_back(fmt::format("{}: {}", configString(candidates[i]), why));
  }
  if (timed.empty()) {
    std::string all;
    for (const std::string &s : r.rejections) all += "\n  " + s;
    throw Error(fmt::format("kernel {}: found no config that runs:{}", kernel, all));
  }
  // a second pass, in reverse order, keeps each config's faster time: one slow measurement (a
  // clock still ramping up, another process's kernels) must not lose the best config for good
  if (!firstThatRuns)
    for (auto it = timed.rbegin(); it != timed.rend(); ++it)
      if (std::optional<double> ms = time(candidates[it->first])) it->second = std::min(it->second, *ms);
  auto best = timed.begin();
  for (auto it = timed.begin(); it != timed.end(); ++it)
    if (it->second < best->second) best = it;  // ties keep the earlier candidate
  r.best = candidates[best->first];
  r.bestMs = best->second;
  r.timed = int(timed.size());
  r.rejected = int(r.rejections.size());
  return r;
}

}  // namespace

TuneResult pickFastest(const std::string &kernel, const std::vector<Bindings> &candidates, const Timer &time) {
  return pick(kernel, candidates, time, false);
}

TuneResult pickFirstThatRuns(const std::string &kernel, const std::vector<Bindings> &candidates, const Timer &check) {
  return pick(kernel, candidates, check, true);
}

std::string configString(const Bindings &b) {
  std::string s;
  for (const auto &[k, v] : b) s += (s.empty() ? "" : " ") + k + "=" + v;
  return s;
}

Bindings parseConfig(const std::string &text) {
  Bindings b;
  std::istringstream in(text);
  std::string item;
  while (in >> item) {
    auto eq = item.find('=');
    if (eq == std::string::npos) throw Error(fmt::format("bad tuning config '{}'", text));
    b[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return b;
}

bool autotuneEnabled() {
  const char *v = std::getenv("TIGON_AUTOTUNE");
  return !(v && (!std::strcmp(v, "0") || !std::strcmp(v, "off") || !std::strcmp(v, "false")));
}

}  // namespace tigon
