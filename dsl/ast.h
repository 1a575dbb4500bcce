// The abstract syntax tree of a .tile file, as the parser builds it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dsl/ir.h"

namespace tigon::ast {

using ir::SourceLoc;

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// One argument of a call, positional (`name` empty) or named (`axis=1`).
struct Arg {
  std::string name;
  ExprPtr value;
};

// One item inside `x[...]`: an expression, `:` (keep an axis) or `None` (new axis).
struct IndexItem {
  enum class Kind { Expr, All, NewAxis } kind = Kind::Expr;
  ExprPtr value;
  SourceLoc loc;
};

struct Expr {
  enum class Kind {
    Int,       // ival
    Float,     // fval
    Name,      // name
    Unary,     // op ('-' or '!'), operands[0]
    Binary,    // op, operands[0], operands[1]
    Call,      // name(args)
    Index,     // base[items] (a tensor load, or `:`/`None` axes of a tile); `fallback` after else
    List,      // [a, b] (shapes in zeros/full)
  } kind = Kind::Int;
  SourceLoc loc;
  int64_t ival = 0;
  double fval = 0;
  std::string name;  // Name, Call: the identifier; Unary/Binary: the operator spelling
  std::vector<ExprPtr> operands;  // Unary, Binary, List elements; Index: operands[0] is the base
  std::vector<Arg> args;          // Call
  std::vector<IndexItem> items;   // Index
  ExprPtr fallback;               // Index: value for out-of-bounds lanes (`x[i] else -inf`)
};

struct Stmt;
using Block = std::vector<Stmt>;

struct Stmt {
  enum class Kind {
    Let,     // let name = value;
    Var,     // var name = value;
    Assign,  // name op value;  (op is "=", "+=", "-=", "*=", "/=")
    Store,   // target = value;  (target is an Index expression on a tensor)
    For,     // for name in range(args) { body }
    Expr,    // value;  (a call such as atomic_add)
  } kind = Kind::Expr;
  SourceLoc loc;
  std::string name;
  std::string op;
  ExprPtr target;
  ExprPtr value;
  std::vector<ExprPtr> range;  // For: 1 to 3 expressions (hi) | (lo, hi) | (lo, hi, step)
  Block body;
};

struct GenericParam {
  enum class Kind { DType, Const, Tune } kind = Kind::Const;
  std::string name;
  std::string constraint;        // DType: "float" (f32, f16, bf16) or "any"
  std::vector<int64_t> choices;  // Tune: the search space, first is the default
  SourceLoc loc;
};

struct DimRef {
  std::string name;  // empty: a literal size
  int64_t size = 0;
  SourceLoc loc;
};

struct Param {
  std::string name;
  std::string typeName;      // dtype name or a DType generic
  bool isTensor = false;     // written with [dims]
  ir::Access access = ir::Access::In;
  std::vector<DimRef> dims;
  SourceLoc loc, typeLoc;
};

struct Kernel {
  std::string name;
  SourceLoc loc;
  std::vector<GenericParam> generics;
  std::vector<Param> params;
  std::vector<ExprPtr> grid;  // 1 to 3 expressions
  SourceLoc gridLoc;
  Block body;
};

struct FnDef {
  std::string name;
  SourceLoc loc;
  std::vector<std::string> params;
  std::vector<SourceLoc> paramLocs;
  ExprPtr body;
};

struct Module {
  std::vector<Kernel> kernels;
  std::vector<FnDef> fns;
  const Kernel *findKernel(const std::string &name) const {
    for (const Kernel &k : kernels)
      if (k.name == name) return &k;
    return nullptr;
  }
};

}  // namespace tigon::ast
