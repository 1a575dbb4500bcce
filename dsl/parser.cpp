#include "dsl/parser.h"

#include <fmt/format.h>

#include "dsl/lexer.h"

namespace tigon {

namespace {

using namespace ast;

// Nesting deeper than this is reported, not recursed into: a hostile file must not overflow
// the stack.
constexpr int kMaxDepth = 200;

struct Parser {
  std::vector<Token> toks;
  Diagnostics &diags;
  size_t pos = 0;
  int depth = 0;

  const Token &cur() const { return toks[pos]; }
  const Token &ahead(size_t k) const { return toks[std::min(pos + k, toks.size() - 1)]; }
  bool at(Tok k) const { return cur().kind == k; }
  Token take() {
    Token t = toks[pos];
    if (pos + 1 < toks.size()) ++pos;
    return t;
  }
  bool accept(Tok k) {
    if (!at(k)) return false;
    take();
    return true;
  }

  struct SyntaxError {};

  [[noreturn]] void fail(const Token &t, const std::string &msg) {
    // running into the end of a file that already has errors (an unterminated comment) says
    // nothing new
    if (t.kind != Tok::End || !diags.hasErrors()) diags.error(t.loc, msg);
    throw SyntaxError{};
  }

  std::string describe(const Token &t) const {
    if (t.kind == Tok::Ident) return fmt::format("'{}'", t.text.substr(0, 40));
    if (t.kind == Tok::Int || t.kind == Tok::Float) return fmt::format("'{}'", t.text.substr(0, 40));
    return tokName(t.kind);
  }

  Token expect(Tok k, const char *context) {
    if (!at(k)) fail(cur(), fmt::format("expected {} {}, found {}", tokName(k), context, describe(cur())));
    return take();
  }

  std::string ident(const char *context) { return expect(Tok::Ident, context).text; }

  struct DepthGuard {
    Parser &p;
    explicit DepthGuard(Parser &parser) : p(parser) {
      if (++p.depth > kMaxDepth) {
        --p.depth;
        p.fail(p.cur(), fmt::format("nesting is too deep (more than {} levels)", kMaxDepth));
      }
    }
    ~DepthGuard() { --p.depth; }
  };
  // A left-deep chain built in a loop (a + b + c ..., x[i][j] ...) nests the tree one level
  // per link without recursing here, but everything after the parser recurses over it: each
  // link counts as one level of nesting until the chain is done.
  struct ChainGuard {
    Parser &p;
    int links = 0;
    explicit ChainGuard(Parser &parser) : p(parser) {}
    void link() {
      if (p.depth + 1 > kMaxDepth)
        p.fail(p.cur(), fmt::format("nesting is too deep (more than {} levels)", kMaxDepth));
      ++p.depth;
      ++links;
    }
    ~ChainGuard() { p.depth -= links; }
  };

  // ---- expressions -------------------------------------------------------------------------

  ExprPtr binary(ExprPtr lhs, const Token &op, ExprPtr rhs) {
    auto e = std::make_unique<Expr>();
    e->kind = Expr::Kind::Binary;
    e->loc = op.loc;
    e->name = op.kind == Tok::AndAnd ? "&&" : op.kind == Tok::OrOr ? "||" : std::string(tokName(op.kind)).substr(1, std::string(tokName(op.kind)).size() - 2);
    e->operands.push_back(std::move(lhs));
    e->operands.push_back(std::move(rhs));
    return e;
  }

  static int precedence(Tok k) {
    switch (k) {
      case Tok::OrOr: return 1;
      case Tok::AndAnd: return 2;
      case Tok::EqEq: case Tok::Ne: return 3;
      case Tok::Lt: case Tok::Le: case Tok::Gt: case Tok::Ge: return 4;
      case Tok::Plus: case Tok::Minus: return 5;
      case Tok::Star: case Tok::Slash: case Tok::Percent: return 6;
      default: return 0;
    }
  }

  ExprPtr expr(int minPrec = 1) {
    DepthGuard guard(*this);
    ExprPtr lhs = unary();
    ChainGuard chain(*this);
    for (;;) {
      int prec = precedence(cur().kind);
      if (prec < minPrec || prec == 0) return lhs;
      chain.link();
      Token op = take();
      ExprPtr rhs = expr(prec + 1);
      lhs = binary(std::move(lhs), op, std::move(rhs));
    }
  }

  ExprPtr unary() {
    DepthGuard guard(*this);
    if (at(Tok::Minus) || at(Tok::Not)) {
      Token op = take();
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::Unary;
      e->loc = op.loc;
      e->name = op.kind == Tok::Minus ? "-" : "!";
      e->operands.push_back(unary());
      return e;
    }
    return postfix(primary());
  }

  std::vector<Arg> callArgs() {
    std::vector<Arg> args;
    expect(Tok::LParen, "to start the arguments");
    if (accept(Tok::RParen)) return args;
    do {
      Arg a;
      if (at(Tok::Ident) && ahead(1).kind == Tok::Assign) {
        a.name = take().text;
        take();
      }
      a.value = expr();
      args.push_back(std::move(a));
    } while (accept(Tok::Comma));
    expect(Tok::RParen, "to close the arguments");
    return args;
  }

  ExprPtr postfix(ExprPtr base) {
    ChainGuard chain(*this);
    while (at(Tok::LBracket)) {
      chain.link();
      Token open = take();
      auto e = std::make_unique<Expr>();
      e->kind = Expr::Kind::Index;
      e->loc = open.loc;
      e->operands.push_back(std::move(base));
      if (at(Tok::RBracket)) fail(cur(), "expected an index inside '[ ]'");
      do {
        IndexItem item;
        item.loc = cur().loc;
        if (accept(Tok::Colon)) {
          item.kind = IndexItem::Kind::All;
        } else if (at(Tok::Ident) && cur().text == "None") {
          take();
          item.kind = IndexItem::Kind::NewAxis;
        } else {
          item.value = expr();
        }
        e->items.push_back(std::move(item));
      } while (accept(Tok::Comma));
      expect(Tok::RBracket, "to close the index");
      if (accept(Tok::Else)) e->fallback = unary();
      base = std::move(e);
    }
    return base;
  }

  ExprPtr primary() {
    const Token &t = cur();
    auto e = std::make_unique<Expr>();
    e->loc = t.loc;
    switch (t.kind) {
      case Tok::Int:
        e->kind = Expr::Kind::Int;
        e->ival = take().ival;
        return e;
      case Tok::Float:
        e->kind = Expr::Kind::Float;
        e->fval = take().fval;
        return e;
      case Tok::Ident:
        e->name = take().text;
        if (at(Tok::LParen)) {
          e->kind = Expr::Kind::Call;
          e->args = callArgs();
        } else {
          e->kind = Expr::Kind::Name;
        }
        return e;
      case Tok::LParen: {
        take();
        ExprPtr inner = expr();
        expect(Tok::RParen, "to close the parenthesis");
        return inner;
      }
      case Tok::LBracket: {
        take();
        e->kind = Expr::Kind::List;
        if (!at(Tok::RBracket)) {
          do e->operands.push_back(expr());
          while (accept(Tok::Comma));
        }
        expect(Tok::RBracket, "to close the list");
        return e;
      }
      default:
        fail(t, fmt::format("expected an expression, found {}", describe(t)));
    }
  }

  // ---- statements --------------------------------------------------------------------------

  Block block() {
    DepthGuard guard(*this);
    expect(Tok::LBrace, "to open a block");
    Block stmts;
    while (!at(Tok::RBrace) && !at(Tok::End)) {
      try {
        stmts.push_back(statement());
      } catch (SyntaxError &) {
        if (diags.full()) throw;
        recover();
      }
    }
    expect(Tok::RBrace, "to close the block");
    return stmts;
  }

  // After an error: skip to the end of the statement, or to a brace that ends it.
  void recover() {
    int braces = 0;
    while (!at(Tok::End)) {
      if (at(Tok::LBrace)) ++braces;
      if (at(Tok::RBrace)) {
        if (braces == 0) return;
        --braces;
        take();
        if (braces == 0) return;
        continue;
      }
      if (at(Tok::Semi) && braces == 0) {
        take();
        return;
      }
      take();
    }
  }

  Stmt statement() {
    Stmt s;
    s.loc = cur().loc;
    if (at(Tok::Let) || at(Tok::Var)) {
      s.kind = take().kind == Tok::Let ? Stmt::Kind::Let : Stmt::Kind::Var;
      s.name = ident("after 'let'/'var'");
      expect(Tok::Assign, fmt::format("after '{}'", s.name).c_str());
      s.value = expr();
      expect(Tok::Semi, "after the statement");
      return s;
    }
    if (accept(Tok::For)) {
      s.kind = Stmt::Kind::For;
      s.name = ident("after 'for'");
      expect(Tok::In, "after the loop variable");
      Token r = expect(Tok::Ident, "('range') after 'in'");
      if (r.text != "range") fail(r, fmt::format("expected 'range' after 'in', found '{}'", r.text));
      std::vector<Arg> args = callArgs();
      if (args.empty() || args.size() > 3) fail(r, fmt::format("range takes 1 to 3 arguments, got {}", args.size()));
      for (Arg &a : args) {
        if (!a.name.empty()) fail(r, "range takes no named arguments");
        s.range.push_back(std::move(a.value));
      }
      s.body = block();
      return s;
    }
    if (at(Tok::Ident)) {
      Tok next = ahead(1).kind;
      if (next == Tok::Assign || next == Tok::PlusAssign || next == Tok::MinusAssign ||
          next == Tok::StarAssign || next == Tok::SlashAssign) {
        s.kind = Stmt::Kind::Assign;
        s.name = take().text;
        std::string op = tokName(take().kind);
        s.op = op.substr(1, op.size() - 2);
        s.value = expr();
        expect(Tok::Semi, "after the assignment");
        return s;
      }
    }
    ExprPtr e = expr();
    if (accept(Tok::Assign)) {
      if (e->kind != Expr::Kind::Index) fail(toks[pos - 1], "only a variable or a tensor element can be assigned to");
      s.kind = Stmt::Kind::Store;
      s.target = std::move(e);
      s.value = expr();
      expect(Tok::Semi, "after the store");
      return s;
    }
    s.kind = Stmt::Kind::Expr;
    s.value = std::move(e);
    expect(Tok::Semi, "after the expression");
    return s;
  }

  // ---- declarations ------------------------------------------------------------------------

  GenericParam generic() {
    GenericParam g;
    g.loc = cur().loc;
    g.name = ident("for a generic parameter");
    expect(Tok::Colon, fmt::format("after '{}'", g.name).c_str());
    Token kind = expect(Tok::Ident, "(float, const or tune)");
    if (kind.text == "float" || kind.text == "any") {
      g.kind = GenericParam::Kind::DType;
      g.constraint = kind.text;
    } else if (kind.text == "const") {
      g.kind = GenericParam::Kind::Const;
    } else if (kind.text == "tune") {
      g.kind = GenericParam::Kind::Tune;
      expect(Tok::LBracket, "after 'tune'");
      do {
        Token v = expect(Tok::Int, "in the tune list");
        g.choices.push_back(v.ival);
      } while (accept(Tok::Comma));
      expect(Tok::RBracket, "to close the tune list");
    } else {
      fail(kind, fmt::format("unknown kind of generic parameter '{}': expected float, any, const or tune", kind.text));
    }
    return g;
  }

  ast::Param param() {
    ast::Param p;
    p.loc = cur().loc;
    p.name = ident("for a parameter name");
    expect(Tok::Colon, fmt::format("after parameter '{}'", p.name).c_str());
    if (accept(Tok::Out)) p.access = ir::Access::Out;
    else if (accept(Tok::InOut)) p.access = ir::Access::InOut;
    p.typeLoc = cur().loc;
    p.typeName = ident("for the parameter's type");
    if (accept(Tok::LBracket)) {
      p.isTensor = true;
      do {
        DimRef d;
        d.loc = cur().loc;
        if (at(Tok::Int)) d.size = take().ival;
        else d.name = ident("or an integer for a dimension");
        p.dims.push_back(d);
      } while (accept(Tok::Comma));
      expect(Tok::RBracket, "to close the dimensions");
    }
    return p;
  }

  Kernel kernel() {
    Kernel k;
    k.loc = take().loc;
    k.name = ident("after 'kernel'");
    if (accept(Tok::Lt)) {
      do k.generics.push_back(generic());
      while (accept(Tok::Comma));
      expect(Tok::Gt, "to close the generic parameters");
    }
    expect(Tok::LParen, "to start the parameters");
    if (!at(Tok::RParen)) {
      do k.params.push_back(param());
      while (accept(Tok::Comma));
    }
    expect(Tok::RParen, "to close the parameters");
    k.gridLoc = expect(Tok::Grid, "before the kernel body (e.g. 'grid cdiv(M, ROWS)')").loc;
    if (at(Tok::LParen)) {
      // grid (a, b) declares a 2-D or 3-D grid; grid (a) is one expression in parentheses
      take();
      do k.grid.push_back(expr());
      while (accept(Tok::Comma));
      expect(Tok::RParen, "to close the grid");
      if (k.grid.size() == 1) k.grid[0] = postfixBinaryContinue(std::move(k.grid[0]));
    } else {
      k.grid.push_back(expr());
    }
    if (k.grid.size() > 3) diags.error(k.gridLoc, fmt::format("a grid has at most 3 dimensions, got {}", k.grid.size()));
    k.body = block();
    return k;
  }

  // `grid (M + 1) / 2`: after a parenthesized single expression, the rest of the expression.
  ExprPtr postfixBinaryContinue(ExprPtr lhs) {
    for (;;) {
      int prec = precedence(cur().kind);
      if (prec == 0) return lhs;
      Token op = take();
      ExprPtr rhs = expr(prec + 1);
      lhs = binary(std::move(lhs), op, std::move(rhs));
    }
  }

  FnDef fn() {
    FnDef f;
    f.loc = take().loc;
    f.name = ident("after 'fn'");
    expect(Tok::LParen, "to start the parameters");
    if (!at(Tok::RParen)) {
      do {
        f.paramLocs.push_back(cur().loc);
        f.params.push_back(ident("for a parameter name"));
      } while (accept(Tok::Comma));
    }
    expect(Tok::RParen, "to close the parameters");
    expect(Tok::Assign, "before the function's expression (fn name(a) = expr;)");
    f.body = expr();
    expect(Tok::Semi, "after the function's expression");
    return f;
  }

  Module module() {
    Module m;
    while (!at(Tok::End) && !diags.full()) {
      try {
        if (at(Tok::Kernel)) m.kernels.push_back(kernel());
        else if (at(Tok::Fn)) m.fns.push_back(fn());
        else fail(cur(), fmt::format("expected 'kernel' or 'fn' at top level, found {}", describe(cur())));
      } catch (SyntaxError &) {
        // skip to the next top-level declaration
        while (!at(Tok::End) && !at(Tok::Kernel) && !at(Tok::Fn)) take();
      }
    }
    return m;
  }
};

}  // namespace

ast::Module parse(const std::string &source, Diagnostics &diags) {
  Parser p{lex(source, diags), diags};
  return p.module();
}

}  // namespace tigon
