#include "dsl/diagnostics.h"

#include <fmt/format.h>

namespace tigon {

void Diagnostics::error(ir::SourceLoc loc, std::string message) {
  if (full()) return;
  errors_.push_back({loc, std::move(message)});
}

static std::string sourceLine(const std::string &src, int line) {
  size_t pos = 0;
  for (int l = 1; l < line && pos != std::string::npos; ++l) {
    pos = src.find('\n', pos);
    if (pos != std::string::npos) ++pos;
  }
  if (pos == std::string::npos || pos > src.size()) return "";
  size_t end = src.find('\n', pos);
  std::string text = src.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  if (text.size() > 200) text = text.substr(0, 200) + "...";  // 1 MB lines stay readable
  return text;
}

std::string Diagnostics::format() const {
  std::string out;
  for (const Diagnostic &d : errors_) {
    out += fmt::format("{}:{}:{}: error: {}\n", file_, d.loc.line, d.loc.col, d.message);
    std::string text = sourceLine(source_, d.loc.line);
    if (text.empty() && d.loc.line == 0) continue;
    out += text + "\n";
    std::string caret;
    for (int i = 1; i < d.loc.col && size_t(i - 1) < text.size() && i <= 200; ++i)
      caret += text[size_t(i - 1)] == '\t' ? '\t' : ' ';
    out += caret + "^\n";
  }
  if (full()) out += fmt::format("{}: too many errors, stopping\n", file_);
  return out;
}

}  // namespace tigon
