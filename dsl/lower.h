// Checking and lowering. One walk over a kernel's AST does both: with no bindings it checks
// types and symbolic shapes (`[ROWS, N]`) and reports every error; with bindings (dtypes,
// const and tune values) it also specializes and emits tile IR with static shapes.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "dsl/ast.h"
#include "dsl/diagnostics.h"
#include "dsl/ir.h"

namespace tigon {

// name -> value: "T" -> "bf16", "N" -> "4096", "ROWS" -> "4".
using Bindings = std::map<std::string, std::string>;

// Checks every kernel of the module (and the helper functions they call) without values.
void checkModule(const ast::Module &m, Diagnostics &diags);

// Specializes and lowers one kernel. Unbound tune parameters take their first value and
// unbound dtype parameters f32; an unbound const parameter is an error.
std::optional<ir::Function> lowerKernel(const ast::Module &m, const ast::Kernel &k, const Bindings &bindings,
                                        Diagnostics &diags);

}  // namespace tigon
