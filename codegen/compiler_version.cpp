#include <llvm/Config/llvm-config.h>

#include "codegen/llvm_backend.h"

namespace tigon::codegen {
std::string compilerVersion() { return LLVM_VERSION_STRING; }
}  // namespace tigon::codegen
