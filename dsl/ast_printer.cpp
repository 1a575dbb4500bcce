// `--emit ast`: the tree as indented S-expressions, with source positions.
#include <fmt/format.h>

#include "dsl/parser.h"

namespace tigon {

namespace {

using namespace ast;

struct AstPrinter {
  std::string out;

  static std::string at(SourceLoc l) { return fmt::format("@{}:{}", l.line, l.col); }

  std::string expr(const Expr &e) {
    switch (e.kind) {
      case Expr::Kind::Int: return std::to_string(e.ival);
      case Expr::Kind::Float: {
        std::string text = fmt::format("{}", e.fval);
        bool looksInt = text.find_first_of(".eEn") == std::string::npos;  // keep 0.0 a float
        return looksInt ? text + ".0" : text;
      }
      case Expr::Kind::Name: return e.name;
      case Expr::Kind::Unary: return fmt::format("({} {})", e.name, expr(*e.operands[0]));
      case Expr::Kind::Binary:
        return fmt::format("({} {} {})", e.name, expr(*e.operands[0]), expr(*e.operands[1]));
      case Expr::Kind::Call: {
        std::string s = "(call " + e.name;
        for (const Arg &a : e.args) s += " " + (a.name.empty() ? "" : a.name + "=") + expr(*a.value);
        return s + ")";
      }
      case Expr::Kind::Index: {
        std::string s = "(index " + expr(*e.operands[0]);
        for (const IndexItem &i : e.items)
          s += " " + (i.kind == IndexItem::Kind::All ? std::string(":")
                      : i.kind == IndexItem::Kind::NewAxis ? std::string("None")
                                                           : expr(*i.value));
        if (e.fallback) s += " else " + expr(*e.fallback);
        return s + ")";
      }
      case Expr::Kind::List: {
        std::string s = "(list";
        for (const ExprPtr &x : e.operands) s += " " + expr(*x);
        return s + ")";
      }
    }
    return "?";
  }

  void line(int indent, const std::string &text) { out += std::string(size_t(indent) * 2, ' ') + text + "\n"; }

  void block(const Block &b, int indent) {
    for (const Stmt &s : b) {
      switch (s.kind) {
        case Stmt::Kind::Let: line(indent, fmt::format("let {} = {} {}", s.name, expr(*s.value), at(s.loc))); break;
        case Stmt::Kind::Var: line(indent, fmt::format("var {} = {} {}", s.name, expr(*s.value), at(s.loc))); break;
        case Stmt::Kind::Assign: line(indent, fmt::format("{} {} {} {}", s.name, s.op, expr(*s.value), at(s.loc))); break;
        case Stmt::Kind::Store: line(indent, fmt::format("store {} = {} {}", expr(*s.target), expr(*s.value), at(s.loc))); break;
        case Stmt::Kind::Expr: line(indent, fmt::format("{} {}", expr(*s.value), at(s.loc))); break;
        case Stmt::Kind::For: {
          std::string range;
          for (const ExprPtr &r : s.range) range += (range.empty() ? "" : ", ") + expr(*r);
          line(indent, fmt::format("for {} in range({}) {}", s.name, range, at(s.loc)));
          block(s.body, indent + 1);
          break;
        }
      }
    }
  }

  std::string run(const Module &m) {
    for (const FnDef &f : m.fns)
      line(0, fmt::format("fn {}({}) = {} {}", f.name, fmt::join(f.params, ", "), expr(*f.body), at(f.loc)));
    for (const Kernel &k : m.kernels) {
      line(0, fmt::format("kernel {} {}", k.name, at(k.loc)));
      for (const GenericParam &g : k.generics) {
        std::string kind = g.kind == GenericParam::Kind::DType ? g.constraint
                           : g.kind == GenericParam::Kind::Const ? "const"
                                                                 : fmt::format("tune[{}]", fmt::join(g.choices, ", "));
        line(1, fmt::format("generic {}: {}", g.name, kind));
      }
      for (const ast::Param &p : k.params) {
        std::string dims;
        for (const DimRef &d : p.dims) dims += (dims.empty() ? "" : ", ") + (d.name.empty() ? std::to_string(d.size) : d.name);
        const char *access = p.access == ir::Access::Out ? "out " : p.access == ir::Access::InOut ? "inout " : "";
        line(1, fmt::format("param {}: {}{}{}", p.name, access, p.typeName, p.isTensor ? "[" + dims + "]" : ""));
      }
      std::string grid;
      for (const ExprPtr &g : k.grid) grid += (grid.empty() ? "" : ", ") + expr(*g);
      line(1, "grid " + grid);
      line(1, "body");
      block(k.body, 2);
    }
    return out;
  }
};

}  // namespace

std::string printAst(const ast::Module &m) { return AstPrinter{}.run(m); }

}  // namespace tigon
