// Logging to stderr, controlled by TIGON_LOG: "warn" (default), "info" (what was compiled,
// loaded from cache or tuned, and how long it took), "debug", or "off".
#pragma once
#include <fmt/format.h>

#include <string>

namespace tigon::log {

enum class Level { Off = 0, Warn = 1, Info = 2, Debug = 3 };

Level level();
void write(Level l, const std::string &message);

template <typename... Args>
void info(fmt::format_string<Args...> f, Args &&...args) {
  if (level() >= Level::Info) write(Level::Info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args &&...args) {
  if (level() >= Level::Warn) write(Level::Warn, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace tigon::log
