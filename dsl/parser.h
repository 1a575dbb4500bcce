// The parser: tokens -> AST. Syntax errors are reported into `diags` and parsing resumes at
// the next statement or declaration, so one run reports every error it can.
#pragma once
#include <string>

#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace tigon {

ast::Module parse(const std::string &source, Diagnostics &diags);

// The AST as indented text (`tigon compile --emit ast`).
std::string printAst(const ast::Module &m);

}  // namespace tigon
