#include "runtime/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tigon::log {

Level level() {
  static const Level l = [] {
    const char *v = std::getenv("TIGON_LOG");
    if (!v) return Level::Warn;
    if (!std::strcmp(v, "off") || !std::strcmp(v, "0")) return Level::Off;
    if (!std::strcmp(v, "info") || !std::strcmp(v, "1")) return Level::Info;
    if (!std::strcmp(v, "debug")) return Level::Debug;
    return Level::Warn;
  }();
  return l;
}

void write(Level l, const std::string &message) {
  static std::mutex m;
  std::lock_guard<std::mutex> lock(m);
  std::fprintf(stderr, "[tigon%s] %s\n", l == Level::Warn ? " warning" : "", message.c_str());
}

}  // namespace tigon::log
