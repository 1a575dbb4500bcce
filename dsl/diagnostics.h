// Diagnostics: errors as `file:line:col: error: message`, then the source line and a caret.
// Every stage of the front end reports into one Diagnostics; several errors in a file are all
// reported.
#pragma once
#include <string>
#include <vector>

#include "dsl/ir.h"

namespace tigon {

struct Diagnostic {
  ir::SourceLoc loc;
  std::string message;
};

class Diagnostics {
 public:
  Diagnostics(std::string file, std::string source) : file_(std::move(file)), source_(std::move(source)) {}

  void error(ir::SourceLoc loc, std::string message);
  bool hasErrors() const { return !errors_.empty(); }
  const std::vector<Diagnostic> &errors() const { return errors_; }
  // Stop collecting past this many: a garbage file must not print megabytes.
  bool full() const { return errors_.size() >= kMaxErrors; }
  const std::string &file() const { return file_; }
  const std::string &source() const { return source_; }

  // All errors, each as three lines: location and message, source line, caret.
  std::string format() const;

  static constexpr size_t kMaxErrors = 50;

 private:
  std::string file_, source_;
  std::vector<Diagnostic> errors_;
};

}  // namespace tigon
