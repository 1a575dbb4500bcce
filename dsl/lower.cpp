#include "dsl/lower.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>
#include <set>

namespace tigon {

namespace {

using namespace ast;
using ir::DType;
using ir::OpKind;
using ir::ValueId;

// A dimension: a known size, or (when checking without values) a symbolic expression of the
// kernel's const and tune parameters. Two symbolic dimensions are equal when written alike.
struct Dim {
  bool known = true;
  int64_t value = 0;
  std::string sym;

  static Dim of(int64_t v) { return Dim{true, v, {}}; }
  static Dim symbol(std::string s) { return Dim{false, 0, std::move(s)}; }
  std::string str() const { return known ? std::to_string(value) : sym; }
  bool same(const Dim &o) const { return known && o.known ? value == o.value : str() == o.str(); }
  bool isOne() const { return known && value == 1; }
};
using Shape = std::vector<Dim>;

std::string shapeStr(const Shape &s) {
  std::vector<std::string> parts;
  for (const Dim &d : s) parts.push_back(d.str());
  return fmt::format("[{}]", fmt::join(parts, ", "));
}

// The value of an expression while checking/lowering.
struct TVal {
  enum class Kind { Invalid, Tile, Tensor, DType } kind = Kind::Invalid;
  DType dtype = DType::F32;
  Shape shape;
  // A literal or compile-time constant: it takes the dtype of what it meets ("weak").
  bool weak = false;
  std::optional<Dim> intConst;     // weak ints: the value (symbolic when checking)
  std::optional<double> fltConst;  // weak floats: the value (absent when not foldable)
  ValueId id = -1;                 // emitted value (lowering only; -1 for weak constants)
  int param = -1;                  // Tensor: the parameter index

  bool ok() const { return kind != Kind::Invalid; }
  bool isScalar() const { return kind == Kind::Tile && shape.empty(); }
  std::string typeStr() const {
    std::string base = weak ? (ir::isFloat(dtype) ? "float literal" : "integer constant") : ir::dtypeName(dtype);
    return shape.empty() ? base : base + shapeStr(shape);
  }
};

TVal invalid() { return TVal{}; }

TVal weakInt(Dim d) {
  TVal v;
  v.kind = TVal::Kind::Tile;
  v.dtype = DType::I32;
  v.weak = true;
  v.intConst = d;
  return v;
}

TVal weakFloat(std::optional<double> f) {
  TVal v;
  v.kind = TVal::Kind::Tile;
  v.dtype = DType::F32;
  v.weak = true;
  v.fltConst = f;
  return v;
}

struct Symbol {
  enum class Kind { Let, Var, LoopVar, Param, Generic } kind = Kind::Let;
  TVal val;
  SourceLoc loc;
};

class Lowerer {
 public:
  // `checkDtypes`: when only checking, the dtypes to assume for dtype parameters.
  Lowerer(const Module &m, const Kernel &k, const Bindings *bindings, Diagnostics &diags, Bindings checkDtypes = {})
      : m_(m), k_(k), bindings_(bindings), diags_(diags), checkDtypes_(std::move(checkDtypes)) {}

  std::optional<ir::Function> run();

 private:
  const Module &m_;
  const Kernel &k_;
  const Bindings *bindings_;  // null: check only
  Diagnostics &diags_;
  Bindings checkDtypes_;
  ir::Function f_;
  std::vector<ir::Block *> blocks_;  // where ops go; blocks_[0] is the region's root block
  std::vector<std::map<std::string, Symbol>> scopes_;
  std::map<std::string, ValueId> hoisted_;  // scalar args and dims already emitted in this region
  std::vector<std::string> fnStack_;
  std::map<std::string, std::pair<int, int>> runtimeDims_;  // name -> (param, axis)
  bool inGrid_ = false;

  bool lowering() const { return bindings_ != nullptr; }

  void error(SourceLoc loc, const std::string &msg) { diags_.error(loc, msg); }

  // ---- emission ----------------------------------------------------------------------------

  ValueId emit(ir::Op op, const ir::Type &resultType) {
    if (!lowering()) return -1;
    ValueId r = f_.newValue(resultType);
    op.results.push_back(r);
    blocks_.back()->ops.push_back(std::move(op));
    return r;
  }

  static ir::Op makeOp(OpKind kind, std::vector<ValueId> operands, SourceLoc loc) {
    ir::Op op;
    op.kind = kind;
    op.operands = std::move(operands);
    op.loc = loc;
    return op;
  }

  ir::Type irType(DType dt, const Shape &s) const {
    ir::Type t;
    t.dtype = dt;
    for (const Dim &d : s) t.shape.push_back(d.known ? d.value : 1);
    return t;
  }

  TVal tile(DType dt, Shape s, ValueId id) {
    TVal v;
    v.kind = TVal::Kind::Tile;
    v.dtype = dt;
    v.shape = std::move(s);
    v.id = id;
    return v;
  }

  // A weak constant given a dtype: emits the constant.
  TVal materialize(const TVal &v, DType dt, SourceLoc loc) {
    if (!v.weak) return v;
    TVal r = tile(dt, v.shape, -1);
    if (v.intConst && v.intConst->known && dt == DType::I32 && (v.intConst->value < INT32_MIN || v.intConst->value > INT32_MAX))
      error(loc, fmt::format("the integer {} does not fit in i32; make it i64, e.g. i64({})", v.intConst->value, v.intConst->value));
    if (!lowering()) return r;
    ir::Op op = makeOp(OpKind::Const, {}, loc);
    if (v.intConst) {
      op.ival = v.intConst->value;
      op.fval = double(v.intConst->value);
    } else {
      op.fval = v.fltConst.value_or(0.0);
      op.ival = 0;
    }
    if (dt == DType::Bool) op.ival = v.intConst ? op.ival != 0 : op.fval != 0;
    r.id = emit(std::move(op), irType(dt, {}));
    return r;
  }

  TVal materializeDefault(const TVal &v, SourceLoc loc) {
    return materialize(v, v.intConst ? DType::I32 : DType::F32, loc);
  }

  TVal broadcastTo(const TVal &v, const Shape &s, SourceLoc loc) {
    if (v.shape.size() == s.size()) {
      bool same = true;
      for (size_t i = 0; i < s.size(); ++i) same = same && v.shape[i].same(s[i]);
      if (same) return v;
    }
    TVal r = tile(v.dtype, s, -1);
    r.id = emit(makeOp(OpKind::Broadcast, {v.id}, loc), irType(v.dtype, s));
    return r;
  }

  // numpy broadcasting of two shapes; nullopt when they do not broadcast.
  static std::optional<Shape> broadcastShapes(const Shape &a, const Shape &b) {
    Shape out(std::max(a.size(), b.size()));
    for (size_t i = 0; i < out.size(); ++i) {
      const Dim *da = i < a.size() ? &a[a.size() - 1 - i] : nullptr;
      const Dim *db = i < b.size() ? &b[b.size() - 1 - i] : nullptr;
      Dim &o = out[out.size() - 1 - i];
      if (!da) o = *db;
      else if (!db) o = *da;
      else if (da->same(*db)) o = *da;
      else if (da->isOne()) o = *db;
      else if (db->isOne()) o = *da;
      else return std::nullopt;
    }
    return out;
  }

  // ---- names -------------------------------------------------------------------------------

  const Symbol *lookup(const std::string &name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto s = it->find(name);
      if (s != it->end()) return &s->second;
    }
    return nullptr;
  }

  Symbol *lookupMutable(const std::string &name) {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto s = it->find(name);
      if (s != it->end()) return &s->second;
    }
    return nullptr;
  }

  void define(const std::string &name, Symbol sym, SourceLoc loc) {
    DType dt;
    if (name == "inf" || name == "nan" || name == "true" || name == "false" || ir::parseDType(name, &dt)) {
      error(loc, fmt::format("'{}' is a predeclared name and cannot be redefined", name));
      return;
    }
    if (runtimeDims_.count(name) && fnStack_.empty()) {
      error(loc, fmt::format("'{}' is already a dimension of kernel '{}'", name, k_.name));
      return;
    }
    if (const Symbol *prev = lookup(name)) {
      if (prev->kind == Symbol::Kind::Param || prev->kind == Symbol::Kind::Generic)
        error(loc, fmt::format("'{}' is already a parameter of kernel '{}'", name, k_.name));
      else
        error(loc, fmt::format("'{}' is already defined at {}:{}", name, prev->loc.line, prev->loc.col));
      return;
    }
    scopes_.back()[name] = std::move(sym);
  }

  // Scalar arguments and tensor sizes are emitted once per region, at its top.
  ValueId hoist(const std::string &key, ir::Op op, const ir::Type &t) {
    if (!lowering()) return -1;
    auto it = hoisted_.find(key);
    if (it != hoisted_.end()) return it->second;
    ValueId r = f_.newValue(t);
    op.results.push_back(r);
    blocks_.front()->ops.push_back(std::move(op));
    hoisted_[key] = r;
    return r;
  }

  TVal scalarParam(int index, SourceLoc loc) {
    const ir::Param &p = f_.params[size_t(index)];
    ir::Op op = makeOp(OpKind::ScalarArg, {}, loc);
    op.param = index;
    return tile(p.dtype, {}, hoist("arg:" + p.name, std::move(op), irType(p.dtype, {})));
  }

  TVal runtimeDim(const std::string &name, SourceLoc loc) {
    auto [param, axis] = runtimeDims_.at(name);
    ir::Op op = makeOp(OpKind::TensorDim, {}, loc);
    op.param = param;
    op.axis = axis;
    return tile(DType::I32, {}, hoist("dim:" + name, std::move(op), irType(DType::I32, {})));
  }

  TVal name(const Expr &e) {
    if (const Symbol *s = lookup(e.name)) {
      if (s->val.kind == TVal::Kind::Tensor)
        error(e.loc, fmt::format("'{}' is a tensor; index it to read elements, e.g. {}[i]", e.name, e.name));
      else if (s->val.kind == TVal::Kind::DType)
        error(e.loc, fmt::format("'{}' is a dtype; use it as a cast, e.g. {}(x)", e.name, e.name));
      else if (s->kind == Symbol::Kind::Param && s->val.param >= 0)
        return scalarParam(s->val.param, e.loc);
      else
        return s->val;
      return invalid();
    }
    if (runtimeDims_.count(e.name) && fnStack_.empty()) return runtimeDim(e.name, e.loc);
    if (e.name == "inf") return weakFloat(std::numeric_limits<double>::infinity());
    if (e.name == "nan") return weakFloat(std::numeric_limits<double>::quiet_NaN());
    if (e.name == "true" || e.name == "false") {
      TVal b = tile(DType::Bool, {}, -1);
      if (lowering()) {
        ir::Op op = makeOp(OpKind::Const, {}, e.loc);
        op.ival = e.name == "true";
        b.id = emit(std::move(op), irType(DType::Bool, {}));
      }
      return b;
    }
    DType dt;
    if (ir::parseDType(e.name, &dt)) {
      error(e.loc, fmt::format("'{}' is a dtype; use it as a cast, e.g. {}(x)", e.name, e.name));
      return invalid();
    }
    error(e.loc, fmt::format("unknown name '{}'", e.name));
    return invalid();
  }

  // ---- constant folding of weak values -----------------------------------------------------

  std::optional<TVal> foldWeak(const std::string &op, const TVal &a, const TVal &b, SourceLoc loc) {
    if (!a.weak || !b.weak) return std::nullopt;
    if (a.intConst && b.intConst) {
      const Dim &x = *a.intConst, &y = *b.intConst;
      if (x.known && y.known) {
        int64_t r = 0;
        bool overflow = false;
        if (op == "+") overflow = __builtin_add_overflow(x.value, y.value, &r);
        else if (op == "-") overflow = __builtin_sub_overflow(x.value, y.value, &r);
        else if (op == "*") overflow = __builtin_mul_overflow(x.value, y.value, &r);
        else if (op == "/" || op == "%") {
          if (y.value == 0) {
            error(loc, "division by zero in a constant expression");
            return invalid();
          }
          if (x.value == std::numeric_limits<int64_t>::min() && y.value == -1) overflow = true;
          else r = op == "/" ? x.value / y.value : x.value % y.value;
        } else return std::nullopt;
        if (overflow) {
          error(loc, fmt::format("the constant {} {} {} overflows 64 bits", x.value, op, y.value));
          return invalid();
        }
        return weakInt(Dim::of(r));
      }
      if (op == "+" || op == "-" || op == "*" || op == "/" || op == "%")
        return weakInt(Dim::symbol(fmt::format("{} {} {}", x.str(), op, y.str())));
      return std::nullopt;
    }
    auto num = [](const TVal &v) -> std::optional<double> {
      if (v.intConst) return v.intConst->known ? std::optional<double>(double(v.intConst->value)) : std::nullopt;
      return v.fltConst;
    };
    std::optional<double> x = num(a), y = num(b), r;
    if (x && y) {
      if (op == "+") r = *x + *y;
      else if (op == "-") r = *x - *y;
      else if (op == "*") r = *x * *y;
      else if (op == "/") r = *x / *y;
      else return std::nullopt;
    } else if (op != "+" && op != "-" && op != "*" && op != "/") {
      return std::nullopt;
    }
    return weakFloat(r);
  }

  // ---- expressions -------------------------------------------------------------------------

  TVal expr(const Expr &e) {
    switch (e.kind) {
      case Expr::Kind::Int: return weakInt(Dim::of(e.ival));
      case Expr::Kind::Float: return weakFloat(e.fval);
      case Expr::Kind::Name: return name(e);
      case Expr::Kind::Unary: return unary(e);
      case Expr::Kind::Binary: return binary(e.name, expr(*e.operands[0]), expr(*e.operands[1]), e.loc);
      case Expr::Kind::Call: return call(e);
      case Expr::Kind::Index: return index(e);
      case Expr::Kind::List:
        error(e.loc, "a list '[...]' is only allowed as the shape argument of zeros or full");
        return invalid();
    }
    return invalid();
  }

  TVal unary(const Expr &e) {
    TVal x = expr(*e.operands[0]);
    if (!x.ok()) return x;
    if (e.name == "-") {
      if (x.weak && x.intConst) {
        if (x.intConst->known) return weakInt(Dim::of(-x.intConst->value));
        return weakInt(Dim::symbol("-" + x.intConst->str()));
      }
      if (x.weak) return weakFloat(x.fltConst ? std::optional<double>(-*x.fltConst) : std::nullopt);
      if (x.dtype == DType::Bool) {
        error(e.loc, "cannot negate a bool; use '!'");
        return invalid();
      }
      return unaryOp(ir::UnaryOp::Neg, x, e.loc);
    }
    if (x.dtype != DType::Bool || x.weak) {
      error(e.loc, fmt::format("'!' needs a bool operand, got {}", x.typeStr()));
      return invalid();
    }
    return unaryOp(ir::UnaryOp::Not, x, e.loc);
  }

  TVal unaryOp(ir::UnaryOp uop, const TVal &x, SourceLoc loc) {
    TVal r = tile(x.dtype, x.shape, -1);
    ir::Op op = makeOp(OpKind::Unary, {x.id}, loc);
    op.uop = uop;
    r.id = emit(std::move(op), irType(x.dtype, x.shape));
    return r;
  }

  // Gives two operands one dtype (weak ones adopt the other's); reports a mismatch.
  bool unify(TVal &a, TVal &b, const std::string &what, SourceLoc loc) {
    if (a.weak && b.weak) {
      DType common = a.intConst && b.intConst ? DType::I32 : DType::F32;
      a = materialize(a, common, loc);
      b = materialize(b, common, loc);
    }
    auto adopt = [&](TVal &w, const TVal &strong) {
      if (strong.dtype == DType::Bool) {
        error(loc, fmt::format("a number cannot meet {} in {}; use true or false", strong.typeStr(), what));
        return false;
      }
      if (!w.intConst) {
        if (!ir::isFloat(strong.dtype)) {
          error(loc, fmt::format("a float literal cannot meet {} in {}; cast explicitly", strong.typeStr(), what));
          return false;
        }
      }
      w = materialize(w, strong.dtype, loc);
      return true;
    };
    if (a.weak && !adopt(a, b)) return false;
    if (b.weak && !adopt(b, a)) return false;
    if (a.dtype != b.dtype) {
      error(loc, fmt::format("mismatched dtypes {} and {} in {}; cast one operand, e.g. {}(x)",
                             ir::dtypeName(a.dtype), ir::dtypeName(b.dtype), what, ir::dtypeName(a.dtype)));
      return false;
    }
    return true;
  }

  // Broadcasts operands to a common shape; reports a mismatch.
  std::optional<Shape> commonShape(std::vector<TVal *> vals, const std::string &what, SourceLoc loc) {
    Shape s;
    for (size_t i = 0; i < vals.size(); ++i) {
      auto b = broadcastShapes(s, vals[i]->shape);
      if (!b) {
        std::vector<std::string> shapes;
        for (TVal *v : vals) shapes.push_back(shapeStr(v->shape));
        error(loc, fmt::format("shape mismatch in {}: {}", what, fmt::join(shapes, " and ")));
        return std::nullopt;
      }
      s = *b;
    }
    for (TVal *v : vals) *v = broadcastTo(*v, s, loc);
    return s;
  }

  TVal binary(const std::string &opName, TVal a, TVal b, SourceLoc loc) {
    if (!a.ok() || !b.ok()) return invalid();
    if (a.kind != TVal::Kind::Tile || b.kind != TVal::Kind::Tile) return invalid();
    if (auto folded = foldWeak(opName, a, b, loc)) return *folded;
    static const std::map<std::string, ir::BinaryOp> ops = {
        {"+", ir::BinaryOp::Add}, {"-", ir::BinaryOp::Sub}, {"*", ir::BinaryOp::Mul},
        {"/", ir::BinaryOp::Div}, {"%", ir::BinaryOp::Rem}, {"<", ir::BinaryOp::Lt},
        {"<=", ir::BinaryOp::Le}, {">", ir::BinaryOp::Gt},  {">=", ir::BinaryOp::Ge},
        {"==", ir::BinaryOp::Eq}, {"!=", ir::BinaryOp::Ne}, {"&&", ir::BinaryOp::And},
        {"||", ir::BinaryOp::Or}, {"min", ir::BinaryOp::Min}, {"max", ir::BinaryOp::Max}};
    ir::BinaryOp bop = ops.at(opName);
    std::string what = opName == "min" || opName == "max" ? opName : "'" + opName + "'";
    if (!unify(a, b, what, loc)) return invalid();
    if (bop == ir::BinaryOp::And || bop == ir::BinaryOp::Or) {
      if (a.dtype != DType::Bool) {
        error(loc, fmt::format("{} needs bool operands, got {}", what, a.typeStr()));
        return invalid();
      }
    } else if (a.dtype == DType::Bool && bop != ir::BinaryOp::Eq && bop != ir::BinaryOp::Ne) {
      error(loc, fmt::format("{} is not defined on bool; use && or ||", what));
      return invalid();
    }
    if (bop == ir::BinaryOp::Rem && ir::isFloat(a.dtype)) {
      error(loc, "'%' needs integer operands");
      return invalid();
    }
    auto shape = commonShape({&a, &b}, what, loc);
    if (!shape) return invalid();
    DType rt = ir::isComparison(bop) ? DType::Bool : a.dtype;
    ir::Op op = makeOp(OpKind::Binary, {a.id, b.id}, loc);
    op.bop = bop;
    return tile(rt, *shape, emit(std::move(op), irType(rt, *shape)));
  }

  // ---- calls -------------------------------------------------------------------------------

  // Positional and named arguments of a call, checked against what the callee takes.
  struct CallArgs {
    std::vector<const Expr *> positional;
    std::map<std::string, const Expr *> named;
  };

  std::optional<CallArgs> callArgs(const Expr &e, size_t minPos, size_t maxPos, std::set<std::string> allowedNames) {
    CallArgs ca;
    for (const Arg &a : e.args) {
      if (a.name.empty()) {
        if (!ca.named.empty()) {
          error(a.value->loc, "positional argument after a named one");
          return std::nullopt;
        }
        ca.positional.push_back(a.value.get());
      } else if (!allowedNames.count(a.name)) {
        std::string allowed = allowedNames.empty() ? "none" : fmt::format("{}", fmt::join(allowedNames, ", "));
        error(a.value->loc, fmt::format("unknown argument '{}' for {} (it takes: {})", a.name, e.name, allowed));
        return std::nullopt;
      } else {
        ca.named[a.name] = a.value.get();
      }
    }
    if (ca.positional.size() < minPos || ca.positional.size() > maxPos) {
      std::string count = minPos == maxPos ? std::to_string(minPos) : fmt::format("{} to {}", minPos, maxPos);
      error(e.loc, fmt::format("{} takes {} argument{}, got {}", e.name, count, maxPos == 1 ? "" : "s", ca.positional.size()));
      return std::nullopt;
    }
    return ca;
  }

  // An integer known at compile time (a literal, or built from const and tune parameters).
  std::optional<Dim> constInt(const Expr &e, const char *what) {
    TVal v = expr(e);
    if (!v.ok()) return std::nullopt;
    if (!v.weak || !v.intConst) {
      error(e.loc, fmt::format("{} must be a compile-time integer (a literal or const/tune parameter), got {}", what, v.typeStr()));
      return std::nullopt;
    }
    return v.intConst;
  }

  std::optional<int> axisArg(const CallArgs &ca, size_t pos, int rank, const std::string &fn, SourceLoc loc, bool *given) {
    const Expr *ax = pos < ca.positional.size() ? ca.positional[pos] : nullptr;
    if (auto it = ca.named.find("axis"); it != ca.named.end()) ax = it->second;
    *given = ax != nullptr;
    if (!ax) return 0;
    auto d = constInt(*ax, "the axis");
    if (!d) return std::nullopt;
    if (!d->known) {
      error(ax->loc, "the axis must be an integer literal");
      return std::nullopt;
    }
    int64_t a = d->value < 0 ? d->value + rank : d->value;
    if (a < 0 || a >= rank) {
      error(ax->loc, fmt::format("{} over axis {}, but the tile has rank {}", fn, d->value, rank));
      return std::nullopt;
    }
    return int(a);
  }

  TVal requireTile(const Expr &e, const std::string &fn) {
    TVal v = expr(e);
    if (v.ok() && v.kind != TVal::Kind::Tile) return invalid();
    return v;
  }

  TVal call(const Expr &e) {
    const std::string &fn = e.name;
    // casts: f32(x), bf16(x), T(x)
    DType castTo;
    const Symbol *sym = lookup(fn);
    bool isCast = ir::parseDType(fn, &castTo);
    if (!isCast && sym && sym->val.kind == TVal::Kind::DType) {
      isCast = true;
      castTo = sym->val.dtype;
    }
    if (isCast) {
      auto ca = callArgs(e, 1, 1, {});
      if (!ca) return invalid();
      TVal x = requireTile(*ca->positional[0], fn);
      if (!x.ok()) return x;
      if (x.weak) {
        if (x.fltConst && ir::isInt(castTo)) x = weakInt(Dim::of(int64_t(*x.fltConst)));
        return materialize(x, castTo, e.loc);
      }
      if (x.dtype == castTo) return x;
      ir::Op op = makeOp(OpKind::Cast, {x.id}, e.loc);
      return tile(castTo, x.shape, emit(std::move(op), irType(castTo, x.shape)));
    }
    if (sym) {
      error(e.loc, fmt::format("'{}' is not a function", fn));
      return invalid();
    }
    static const std::map<std::string, ir::UnaryOp> math = {
        {"exp", ir::UnaryOp::Exp},   {"exp2", ir::UnaryOp::Exp2},   {"log", ir::UnaryOp::Log},
        {"log2", ir::UnaryOp::Log2}, {"sqrt", ir::UnaryOp::Sqrt},   {"rsqrt", ir::UnaryOp::Rsqrt},
        {"tanh", ir::UnaryOp::Tanh}, {"sigmoid", ir::UnaryOp::Sigmoid}, {"abs", ir::UnaryOp::Abs}};
    if (auto it = math.find(fn); it != math.end()) {
      auto ca = callArgs(e, 1, 1, {});
      if (!ca) return invalid();
      TVal x = requireTile(*ca->positional[0], fn);
      if (!x.ok()) return x;
      if (x.weak) x = materialize(x, x.intConst && it->second == ir::UnaryOp::Abs ? DType::I32 : DType::F32, e.loc);
      bool intOk = it->second == ir::UnaryOp::Abs && ir::isInt(x.dtype);
      if (!ir::isFloat(x.dtype) && !intOk) {
        error(e.loc, fmt::format("{} expects a float tile, got {}", fn, x.typeStr()));
        return invalid();
      }
      return unaryOp(it->second, x, e.loc);
    }
    // min/max with one tile (and perhaps axis=) reduce; with two they are elementwise
    if (fn == "sum" || fn == "argmax" ||
        ((fn == "min" || fn == "max") && (e.args.size() == 1 || (e.args.size() == 2 && !e.args[1].name.empty())))) {
      return reduce(e);
    }
    if (fn == "min" || fn == "max") {
      auto ca = callArgs(e, 2, 2, {});
      if (!ca) return invalid();
      return binary(fn, expr(*ca->positional[0]), expr(*ca->positional[1]), e.loc);
    }
    if (fn == "where") return where(e);
    if (fn == "fma") return fma(e);
    if (fn == "iota") return iota(e);
    if (fn == "zeros" || fn == "full") return fill(e);
    if (fn == "program_id" || fn == "num_programs") return programInfo(e);
    if (fn == "cdiv") {
      auto ca = callArgs(e, 2, 2, {});
      if (!ca) return invalid();
      TVal a = expr(*ca->positional[0]), b = expr(*ca->positional[1]);
      TVal one = weakInt(Dim::of(1));
      if (a.ok() && b.ok() && a.weak && b.weak && a.intConst && b.intConst && !(a.intConst->known && b.intConst->known))
        return weakInt(Dim::symbol(fmt::format("cdiv({}, {})", a.intConst->str(), b.intConst->str())));
      if ((a.ok() && !a.weak && !ir::isInt(a.dtype)) || (b.ok() && !b.weak && !ir::isInt(b.dtype))) {
        error(e.loc, "cdiv needs integer operands");
        return invalid();
      }
      return binary("/", binary("-", binary("+", a, b, e.loc), one, e.loc), b, e.loc);
    }
    if (fn == "atomic_add") {
      error(e.loc, "atomic_add is a statement and has no value");
      return invalid();
    }
    for (const FnDef &d : m_.fns)
      if (d.name == fn) return inlineFn(d, e);
    error(e.loc, fmt::format("unknown function '{}'", fn));
    return invalid();
  }

  TVal reduce(const Expr &e) {
    if (e.args.size() > 1 && e.args[1].name.empty()) {
      error(e.args[1].value->loc, fmt::format("pass the axis of {} by name: {}(x, axis=...)", e.name, e.name));
      return invalid();
    }
    auto ca = callArgs(e, 1, 1, {"axis"});
    if (!ca) return invalid();
    TVal x = requireTile(*ca->positional[0], e.name);
    if (!x.ok()) return x;
    x = materializeDefault(x, e.loc);
    if (x.shape.empty()) {
      error(e.loc, fmt::format("{} needs a tile, got the scalar {}", e.name, x.typeStr()));
      return invalid();
    }
    if (x.dtype == DType::Bool) {
      error(e.loc, fmt::format("{} is not defined on bool tiles; cast to i32 first", e.name));
      return invalid();
    }
    bool given = false;
    auto axis = axisArg(*ca, 1, int(x.shape.size()), e.name, e.loc, &given);
    if (!axis) return invalid();
    static const std::map<std::string, ir::ReduceOp> kinds = {
        {"sum", ir::ReduceOp::Sum}, {"max", ir::ReduceOp::Max}, {"min", ir::ReduceOp::Min}, {"argmax", ir::ReduceOp::Argmax}};
    ir::ReduceOp rop = kinds.at(e.name);
    if (!given && x.shape.size() > 1 && rop == ir::ReduceOp::Argmax) {
      error(e.loc, "argmax of a 2-D tile needs an axis");
      return invalid();
    }
    // without an axis: reduce every axis, last first
    std::vector<int> axes;
    if (given) axes.push_back(*axis);
    else for (int a = int(x.shape.size()) - 1; a >= 0; --a) axes.push_back(a);
    for (int a : axes) {
      Shape s = x.shape;
      s.erase(s.begin() + a);
      DType rt = rop == ir::ReduceOp::Argmax ? DType::I32 : x.dtype;
      ir::Op op = makeOp(OpKind::Reduce, {x.id}, e.loc);
      op.rop = rop;
      op.axis = a;
      x = tile(rt, s, emit(std::move(op), irType(rt, s)));
    }
    return x;
  }

  TVal where(const Expr &e) {
    auto ca = callArgs(e, 3, 3, {});
    if (!ca) return invalid();
    TVal c = expr(*ca->positional[0]), a = expr(*ca->positional[1]), b = expr(*ca->positional[2]);
    if (!c.ok() || !a.ok() || !b.ok()) return invalid();
    if (c.dtype != DType::Bool || c.weak) {
      error(ca->positional[0]->loc, fmt::format("the condition of where must be bool, got {}", c.typeStr()));
      return invalid();
    }
    if (!unify(a, b, "where", e.loc)) return invalid();
    auto shape = commonShape({&c, &a, &b}, "where", e.loc);
    if (!shape) return invalid();
    return tile(a.dtype, *shape, emit(makeOp(OpKind::Select, {c.id, a.id, b.id}, e.loc), irType(a.dtype, *shape)));
  }

  TVal fma(const Expr &e) {
    auto ca = callArgs(e, 3, 3, {});
    if (!ca) return invalid();
    TVal a = expr(*ca->positional[0]), b = expr(*ca->positional[1]), c = expr(*ca->positional[2]);
    if (!a.ok() || !b.ok() || !c.ok()) return invalid();
    if (a.weak && b.weak && c.weak) a = materialize(a, DType::F32, e.loc);
    TVal &strong = !a.weak ? a : !b.weak ? b : c;
    for (TVal *v : {&a, &b, &c})
      if (v != &strong && !unify(strong, *v, "fma", e.loc)) return invalid();
    if (!ir::isFloat(strong.dtype)) {
      error(e.loc, fmt::format("fma needs float operands, got {}", strong.typeStr()));
      return invalid();
    }
    auto shape = commonShape({&a, &b, &c}, "fma", e.loc);
    if (!shape) return invalid();
    return tile(a.dtype, *shape, emit(makeOp(OpKind::Fma, {a.id, b.id, c.id}, e.loc), irType(a.dtype, *shape)));
  }

  bool checkExtent(const Dim &d, SourceLoc loc, const char *what) {
    if (d.known && (d.value < 1 || d.value > (int64_t(1) << 20))) {
      error(loc, fmt::format("{} must be between 1 and 2^20, got {}", what, d.value));
      return false;
    }
    return true;
  }

  TVal iota(const Expr &e) {
    auto ca = callArgs(e, 1, 1, {});
    if (!ca) return invalid();
    auto n = constInt(*ca->positional[0], "the length of iota");
    if (!n || !checkExtent(*n, e.loc, "the length of iota")) return invalid();
    return tile(DType::I32, {*n}, emit(makeOp(OpKind::Iota, {}, e.loc), irType(DType::I32, {*n})));
  }

  std::optional<DType> dtypeArg(const Expr &e) {
    DType dt;
    if (e.kind == Expr::Kind::Name) {
      if (ir::parseDType(e.name, &dt)) return dt;
      if (const Symbol *s = lookup(e.name); s && s->val.kind == TVal::Kind::DType) return s->val.dtype;
    }
    error(e.loc, "expected a dtype (f32, f16, bf16, i32, i64, bool or a dtype parameter)");
    return std::nullopt;
  }

  // zeros(shape[, dtype]) and full(shape, value[, dtype=]): shape is [d0, d1] or one dim.
  TVal fill(const Expr &e) {
    bool isFull = e.name == "full";
    auto ca = callArgs(e, isFull ? 2 : 1, 2, {"dtype"});
    if (!ca) return invalid();
    Shape shape;
    const Expr &se = *ca->positional[0];
    std::vector<const Expr *> dims;
    if (se.kind == Expr::Kind::List) for (const ExprPtr &d : se.operands) dims.push_back(d.get());
    else dims.push_back(&se);
    if (dims.size() > 2) {
      error(se.loc, fmt::format("tiles have rank 0 to 2, got a shape of rank {}", dims.size()));
      return invalid();
    }
    for (const Expr *d : dims) {
      auto v = constInt(*d, "a tile dimension");
      if (!v || !checkExtent(*v, d->loc, "a tile dimension")) return invalid();
      shape.push_back(*v);
    }
    std::optional<DType> dt;
    const Expr *dtExpr = isFull ? nullptr : (ca->positional.size() > 1 ? ca->positional[1] : nullptr);
    if (auto it = ca->named.find("dtype"); it != ca->named.end()) dtExpr = it->second;
    if (dtExpr && !(dt = dtypeArg(*dtExpr))) return invalid();
    TVal value = weakInt(Dim::of(0));
    if (isFull) {
      value = expr(*ca->positional[1]);
      if (!value.ok()) return invalid();
      if (!value.isScalar()) {
        error(ca->positional[1]->loc, fmt::format("the value of full must be a scalar, got {}", value.typeStr()));
        return invalid();
      }
    }
    // zeros is f32 unless told; full takes its value's dtype (a literal: i32 or f32)
    DType target = dt ? *dt : !isFull ? DType::F32 : !value.weak ? value.dtype : value.intConst ? DType::I32 : DType::F32;
    if (value.weak && !value.intConst && !ir::isFloat(target)) {
      error(ca->positional[1]->loc, fmt::format("full: a float value cannot fill a tile of {}", ir::dtypeName(target)));
      return invalid();
    }
    if (value.weak) value = materialize(value, target, e.loc);
    else if (value.dtype != target) {
      error(e.loc, fmt::format("full: the value is {} but dtype is {}", value.typeStr(), ir::dtypeName(target)));
      return invalid();
    }
    return broadcastTo(value, shape, e.loc);
  }

  TVal programInfo(const Expr &e) {
    auto ca = callArgs(e, 0, 1, {"axis"});
    if (!ca) return invalid();
    if (inGrid_) {
      error(e.loc, fmt::format("{} cannot be used in the grid expression", e.name));
      return invalid();
    }
    const Expr *ax = !ca->positional.empty() ? ca->positional[0] : nullptr;
    if (auto it = ca->named.find("axis"); it != ca->named.end()) ax = it->second;
    int axis = 0;
    if (ax) {
      auto d = constInt(*ax, "the axis");
      if (!d) return invalid();
      if (!d->known || d->value < 0 || d->value >= int64_t(k_.grid.size())) {
        error(ax->loc, fmt::format("{}: axis {} is not an axis of the {}-D grid", e.name, d->str(), k_.grid.size()));
        return invalid();
      }
      axis = int(d->value);
    }
    ir::Op op = makeOp(e.name == "program_id" ? OpKind::ProgramId : OpKind::NumPrograms, {}, e.loc);
    op.axis = axis;
    return tile(DType::I32, {}, emit(std::move(op), irType(DType::I32, {})));
  }

  TVal inlineFn(const FnDef &d, const Expr &e) {
    auto ca = callArgs(e, d.params.size(), d.params.size(), {});
    if (!ca) return invalid();
    if (std::find(fnStack_.begin(), fnStack_.end(), d.name) != fnStack_.end() || fnStack_.size() > 32) {
      error(e.loc, fmt::format("recursive call to '{}' (helper functions are inlined; recursion is not allowed)", d.name));
      return invalid();
    }
    std::map<std::string, Symbol> params;
    for (size_t i = 0; i < d.params.size(); ++i) {
      TVal v = expr(*ca->positional[i]);
      if (!v.ok()) return invalid();
      if (v.kind != TVal::Kind::Tile) {
        error(ca->positional[i]->loc, "helper functions take tiles, not tensors or dtypes");
        return invalid();
      }
      params[d.params[i]] = Symbol{Symbol::Kind::Let, v, d.paramLocs[i]};
    }
    // the helper sees its parameters only, not the caller's names
    auto savedScopes = std::move(scopes_);
    scopes_.clear();
    scopes_.push_back(std::move(params));
    fnStack_.push_back(d.name);
    size_t errorsBefore = diags_.errors().size();
    TVal r = expr(*d.body);
    fnStack_.pop_back();
    scopes_ = std::move(savedScopes);
    if (diags_.errors().size() > errorsBefore)
      error(e.loc, fmt::format("in the call to '{}' here", d.name));
    return r;
  }

  // ---- tensor access -----------------------------------------------------------------------

  // Returns the tensor parameter an index expression reads or writes, or -1.
  int tensorOf(const Expr &base) {
    if (base.kind != Expr::Kind::Name) return -1;
    const Symbol *s = lookup(base.name);
    return s && s->val.kind == TVal::Kind::Tensor ? s->val.param : -1;
  }

  // Indices of a tensor access; fills the access shape.
  std::optional<std::vector<ValueId>> indices(const Expr &e, int param, Shape *shape) {
    const ir::Param &p = f_.params[size_t(param)];
    if (e.items.size() != size_t(p.rank())) {
      error(e.loc, fmt::format("tensor '{}' has rank {} but {} ind{} given", p.name, p.rank(), e.items.size(),
                               e.items.size() == 1 ? "ex is" : "ices are"));
      return std::nullopt;
    }
    std::vector<ValueId> ids;
    bool ok = true;
    for (const IndexItem &item : e.items) {
      if (item.kind != IndexItem::Kind::Expr) {
        error(item.loc, fmt::format("':' and None apply to tiles; index tensor '{}' with integer tiles", p.name));
        return std::nullopt;
      }
      TVal i = expr(*item.value);
      if (!i.ok() || i.kind != TVal::Kind::Tile) {
        ok = false;
        continue;
      }
      if (i.weak && i.intConst) i = materialize(i, DType::I32, item.loc);
      if (!ir::isInt(i.dtype) || i.weak || i.shape.size() > 1) {
        error(item.loc, fmt::format("an index into '{}' must be an integer scalar or 1-D tile, got {}", p.name, i.typeStr()));
        ok = false;
        continue;
      }
      if (!i.shape.empty()) shape->push_back(i.shape[0]);
      ids.push_back(i.id);
    }
    if (!ok) return std::nullopt;
    if (shape->size() > 2) {
      error(e.loc, fmt::format("this access of '{}' gives a tile of rank {}; tiles have rank 0 to 2", p.name, shape->size()));
      return std::nullopt;
    }
    return ids;
  }

  TVal index(const Expr &e) {
    int param = tensorOf(*e.operands[0]);
    if (param < 0) return subscript(e);
    const ir::Param &p = f_.params[size_t(param)];
    if (p.access == ir::Access::Out) {
      error(e.loc, fmt::format("cannot read '{}': it is declared out (declare it inout to read and write)", p.name));
      return invalid();
    }
    Shape shape;
    auto ids = indices(e, param, &shape);
    if (!ids) return invalid();
    TVal other = weakInt(Dim::of(0));
    if (e.fallback) {
      other = expr(*e.fallback);
      if (!other.ok()) return invalid();
      if (!other.isScalar()) {
        error(e.fallback->loc, fmt::format("the value after else must be a scalar, got {}", other.typeStr()));
        return invalid();
      }
      if (other.weak && other.fltConst.has_value() && !ir::isFloat(p.dtype)) {
        error(e.fallback->loc, fmt::format("a float value cannot stand in for elements of the {} tensor '{}'", ir::dtypeName(p.dtype), p.name));
        return invalid();
      }
      if (!other.weak && other.dtype != p.dtype) {
        error(e.fallback->loc, fmt::format("the value after else is {} but tensor '{}' holds {}", other.typeStr(), p.name, ir::dtypeName(p.dtype)));
        return invalid();
      }
    }
    other = materialize(other, p.dtype, e.loc);
    std::vector<ValueId> operands = *ids;
    operands.push_back(other.id);
    ir::Op op = makeOp(OpKind::Load, operands, e.loc);
    op.param = param;
    return tile(p.dtype, shape, emit(std::move(op), irType(p.dtype, shape)));
  }

  // x[:, None], x[None, :]: new size-1 axes of a tile.
  TVal subscript(const Expr &e) {
    TVal x = expr(*e.operands[0]);
    if (!x.ok()) return x;
    if (e.fallback) {
      error(e.loc, "'else' only applies to tensor reads");
      return invalid();
    }
    size_t kept = 0;
    for (const IndexItem &item : e.items) {
      if (item.kind == IndexItem::Kind::Expr) {
        error(item.loc, "a tile can only be indexed with ':' and None (to add axes); index tensors with integer tiles");
        return invalid();
      }
      kept += item.kind == IndexItem::Kind::All;
    }
    if (kept != x.shape.size()) {
      error(e.loc, fmt::format("{} ':' given for a tile of rank {} ({})", kept, x.shape.size(), x.typeStr()));
      return invalid();
    }
    if (e.items.size() > 2) {
      error(e.loc, fmt::format("tiles have rank 0 to 2; this gives rank {}", e.items.size()));
      return invalid();
    }
    x = materializeDefault(x, e.loc);
    const Shape orig = x.shape;
    Shape s;
    for (size_t i = 0, src = 0; i < e.items.size(); ++i) {
      if (e.items[i].kind == IndexItem::Kind::All) {
        s.push_back(orig[src++]);
        continue;
      }
      s.push_back(Dim::of(1));
      Shape before = s;
      for (size_t j = src; j < orig.size(); ++j) before.push_back(orig[j]);
      ir::Op op = makeOp(OpKind::ExpandDims, {x.id}, e.items[i].loc);
      op.axis = int(i);
      x = tile(x.dtype, before, emit(std::move(op), irType(x.dtype, before)));
    }
    return x;
  }

  // ---- statements --------------------------------------------------------------------------

  void block(const Block &b) {
    for (const Stmt &s : b) {
      if (diags_.full()) return;
      statement(s);
    }
  }

  void statement(const Stmt &s) {
    switch (s.kind) {
      case Stmt::Kind::Let: case Stmt::Kind::Var: {
        TVal v = expr(*s.value);
        if (v.ok() && v.kind != TVal::Kind::Tile) v = invalid();
        if (s.kind == Stmt::Kind::Var && v.weak) v = materializeDefault(v, s.loc);
        define(s.name, Symbol{s.kind == Stmt::Kind::Let ? Symbol::Kind::Let : Symbol::Kind::Var, v, s.loc}, s.loc);
        return;
      }
      case Stmt::Kind::Assign: return assign(s);
      case Stmt::Kind::Store: return store(*s.target, *s.value, s.loc, false);
      case Stmt::Kind::For: return loop(s);
      case Stmt::Kind::Expr: {
        const Expr &e = *s.value;
        if (e.kind == Expr::Kind::Call && e.name == "atomic_add" && !lookup("atomic_add")) {
          auto ca = callArgs(e, 2, 2, {});
          if (!ca) return;
          if (ca->positional[0]->kind != Expr::Kind::Index || tensorOf(*ca->positional[0]->operands[0]) < 0) {
            error(ca->positional[0]->loc, "the first argument of atomic_add must be a tensor element, e.g. t[i]");
            return;
          }
          return store(*ca->positional[0], *ca->positional[1], e.loc, true);
        }
        expr(e);  // still checked, to report errors inside it
        error(e.loc, "this expression has no effect (only atomic_add is a statement)");
        return;
      }
    }
  }

  void assign(const Stmt &s) {
    Symbol *sym = lookupMutable(s.name);
    TVal v = expr(*s.value);
    if (!sym) {
      error(s.loc, fmt::format("unknown name '{}'", s.name));
      return;
    }
    if (sym->kind != Symbol::Kind::Var) {
      error(s.loc, fmt::format("cannot assign to '{}': it is not declared with var", s.name));
      return;
    }
    if (!v.ok() || !sym->val.ok()) return;
    if (s.op != "=") v = binary(s.op.substr(0, 1), sym->val, v, s.loc);
    if (!v.ok()) return;
    TVal cur = sym->val;
    if (!unify(cur, v, "the assignment", s.loc)) return;
    auto shape = broadcastShapes(sym->val.shape, v.shape);
    bool sameShape = shape && shape->size() == sym->val.shape.size();
    for (size_t i = 0; sameShape && i < shape->size(); ++i) sameShape = (*shape)[i].same(sym->val.shape[i]);
    if (!sameShape) {
      error(s.loc, fmt::format("assignment changes the shape of '{}' from {} to {}", s.name, shapeStr(sym->val.shape), shapeStr(v.shape)));
      return;
    }
    v = broadcastTo(v, sym->val.shape, s.loc);
    sym->val.id = v.id;
  }

  void store(const Expr &target, const Expr &valueExpr, SourceLoc loc, bool atomic) {
    int param = tensorOf(*target.operands[0]);
    if (param < 0) {
      const Expr &base = *target.operands[0];
      error(base.loc, base.kind == Expr::Kind::Name ? fmt::format("'{}' is not a tensor parameter; only tensors can be stored to", base.name)
                                                    : "only tensor parameters can be stored to");
      return;
    }
    const ir::Param &p = f_.params[size_t(param)];
    if (p.access == ir::Access::In) {
      error(target.loc, fmt::format("cannot write to '{}': it is not declared out or inout", p.name));
      return;
    }
    if (target.fallback) {
      error(target.loc, "'else' only applies to tensor reads");
      return;
    }
    Shape shape;
    auto ids = indices(target, param, &shape);
    TVal v = expr(valueExpr);
    if (!ids || !v.ok()) return;
    if (v.kind != TVal::Kind::Tile) return;
    if (v.weak) {
      if (v.fltConst.has_value() && !ir::isFloat(p.dtype)) {
        error(valueExpr.loc, fmt::format("cannot store a float literal to the {} tensor '{}'", ir::dtypeName(p.dtype), p.name));
        return;
      }
      v = materialize(v, p.dtype, loc);
    }
    if (v.dtype != p.dtype) {
      error(valueExpr.loc, fmt::format("storing {} to the {} tensor '{}'; cast with {}(...)", v.typeStr(), ir::dtypeName(p.dtype),
                                       p.name, ir::dtypeName(p.dtype)));
      return;
    }
    if (atomic && p.dtype != DType::F32 && p.dtype != DType::I32) {
      error(loc, fmt::format("atomic_add needs an f32 or i32 tensor; '{}' holds {}", p.name, ir::dtypeName(p.dtype)));
      return;
    }
    auto b = broadcastShapes(v.shape, shape);
    bool fits = b && b->size() == shape.size();
    for (size_t i = 0; fits && i < shape.size(); ++i) fits = (*b)[i].same(shape[i]);
    if (!fits) {
      error(valueExpr.loc, fmt::format("shape mismatch in the store to '{}': the value is {} but the indices select {}", p.name,
                                       shapeStr(v.shape), shapeStr(shape)));
      return;
    }
    v = broadcastTo(v, shape, loc);
    std::vector<ValueId> operands = *ids;
    operands.push_back(v.id);
    ir::Op op = makeOp(atomic ? OpKind::AtomicAdd : OpKind::Store, operands, loc);
    op.param = param;
    if (lowering()) blocks_.back()->ops.push_back(std::move(op));
  }

  // Names of outer vars that a loop body assigns: they become the loop's carried values.
  void assignedVars(const Block &b, std::vector<std::string> &out, std::set<std::string> &localNames) {
    for (const Stmt &s : b) {
      if ((s.kind == Stmt::Kind::Let || s.kind == Stmt::Kind::Var)) localNames.insert(s.name);
      if (s.kind == Stmt::Kind::Assign && !localNames.count(s.name) &&
          std::find(out.begin(), out.end(), s.name) == out.end()) {
        const Symbol *sym = lookup(s.name);
        if (sym && sym->kind == Symbol::Kind::Var) out.push_back(s.name);
      }
      if (s.kind == Stmt::Kind::For) {
        std::set<std::string> inner = localNames;
        inner.insert(s.name);
        assignedVars(s.body, out, inner);
      }
    }
  }

  void loop(const Stmt &s) {
    std::vector<TVal> bounds;
    for (const ExprPtr &r : s.range) {
      TVal v = expr(*r);
      if (!v.ok()) return;
      if (&r == &s.range.back() && s.range.size() == 3 && v.weak && v.intConst && v.intConst->known &&
          v.intConst->value <= 0) {
        error(r->loc, fmt::format("the step of range must be positive, got {}", v.intConst->value));
        return;
      }
      if (v.weak && v.intConst) v = materialize(v, DType::I32, r->loc);
      if (v.kind != TVal::Kind::Tile || v.dtype != DType::I32 || !v.shape.empty()) {
        error(r->loc, fmt::format("range bounds must be i32 scalars, got {}", v.typeStr()));
        return;
      }
      bounds.push_back(v);
    }
    auto constant = [&](int64_t c) { return materialize(weakInt(Dim::of(c)), DType::I32, s.loc); };
    TVal lo = bounds.size() == 1 ? constant(0) : bounds[0];
    TVal hi = bounds.size() == 1 ? bounds[0] : bounds[1];
    TVal step = bounds.size() == 3 ? bounds[2] : constant(1);
    std::vector<std::string> carried;
    std::set<std::string> locals;
    assignedVars(s.body, carried, locals);

    ir::Op op = makeOp(OpKind::For, {lo.id, hi.id, step.id}, s.loc);
    op.regions.emplace_back();
    ir::Block &body = op.regions[0];
    ValueId iv = lowering() ? f_.newValue(irType(DType::I32, {})) : -1;
    body.args.push_back(iv);
    std::vector<ValueId> before;
    for (const std::string &name : carried) {
      Symbol *sym = lookupMutable(name);
      before.push_back(sym->val.id);
      op.operands.push_back(sym->val.id);
      ValueId arg = lowering() ? f_.newValue(irType(sym->val.dtype, sym->val.shape)) : -1;
      body.args.push_back(arg);
      sym->val.id = arg;
    }
    blocks_.push_back(&body);
    scopes_.emplace_back();
    define(s.name, Symbol{Symbol::Kind::LoopVar, tile(DType::I32, {}, iv), s.loc}, s.loc);
    block(s.body);
    scopes_.pop_back();
    blocks_.pop_back();
    ir::Op yield = makeOp(OpKind::Yield, {}, s.loc);
    for (const std::string &name : carried) {
      Symbol *sym = lookupMutable(name);
      yield.operands.push_back(sym->val.id);
      ValueId result = lowering() ? f_.newValue(irType(sym->val.dtype, sym->val.shape)) : -1;
      op.results.push_back(result);
      sym->val.id = result;
    }
    body.ops.push_back(std::move(yield));
    if (lowering()) blocks_.back()->ops.push_back(std::move(op));
  }

  // ---- the kernel --------------------------------------------------------------------------

  bool bindGenerics();
  void declareParams();
  void lowerGrid();
};

bool Lowerer::bindGenerics() {
  scopes_.emplace_back();
  std::set<std::string> names;
  bool ok = true;
  for (const GenericParam &g : k_.generics) {
    if (!names.insert(g.name).second) {
      error(g.loc, fmt::format("generic parameter '{}' is declared twice", g.name));
      ok = false;
      continue;
    }
    const std::string *bound = nullptr;
    if (bindings_) {
      auto it = bindings_->find(g.name);
      if (it != bindings_->end()) bound = &it->second;
    }
    TVal v;
    if (g.kind == GenericParam::Kind::DType) {
      v.kind = TVal::Kind::DType;
      v.dtype = DType::F32;
      if (!bindings_ && checkDtypes_.count(g.name)) ir::parseDType(checkDtypes_.at(g.name), &v.dtype);
      if (bound && !ir::parseDType(*bound, &v.dtype)) {
        error(g.loc, fmt::format("'{}' is not a dtype (for {}); use {}", *bound, g.name,
                                 g.constraint == "float" ? "f32, f16 or bf16" : "f32, f16, bf16, i32, i64 or bool"));
        ok = false;
      } else if (g.constraint == "float" && !ir::isFloat(v.dtype)) {
        error(g.loc, fmt::format("{} must be a float dtype (f32, f16, bf16), got {}", g.name, *bound));
        ok = false;
      }
      if (bindings_) f_.bindings[g.name] = ir::dtypeName(v.dtype);
    } else {
      if (g.kind == GenericParam::Kind::Tune) {
        bool valid = !g.choices.empty();
        for (int64_t c : g.choices) valid = valid && c >= 1 && (g.name != "WARPS" || (c <= 32 && !(c & (c - 1))));
        if (!valid) {
          error(g.loc, g.name == "WARPS" ? "WARPS values must be powers of two from 1 to 32"
                                         : fmt::format("tune parameter '{}' needs one or more positive values", g.name));
          ok = false;
          continue;
        }
      }
      Dim d = Dim::symbol(g.name);
      if (bindings_) {
        if (!bound && g.kind == GenericParam::Kind::Const) {
          error(g.loc, fmt::format("{0} is a const parameter of '{1}'; give it a value (-D {0}=<integer> on the command line, "
                                   "{0}=<integer> from Python)",
                                   g.name, k_.name));
          ok = false;
          continue;
        }
        int64_t value = bound ? 0 : g.choices[0];
        if (bound) {
          char *end = nullptr;
          errno = 0;
          value = std::strtoll(bound->c_str(), &end, 10);
          if (bound->empty() || *end || errno == ERANGE) {
            error(g.loc, fmt::format("'{}' is not an integer (for {})", *bound, g.name));
            ok = false;
            continue;
          }
        }
        if (g.kind == GenericParam::Kind::Tune && std::find(g.choices.begin(), g.choices.end(), value) == g.choices.end()) {
          error(g.loc, fmt::format("{}={} is not in its tune list [{}]", g.name, value, fmt::join(g.choices, ", ")));
          ok = false;
          continue;
        }
        // a const may be 0: a flag that specializes (loops over where(FLAG == 0, 0, n) vanish)
        if (value < (g.kind == GenericParam::Kind::Const ? 0 : 1)) {
          error(g.loc, fmt::format("{} must be a {} integer, got {}", g.name,
                                   g.kind == GenericParam::Kind::Const ? "non-negative" : "positive", value));
          ok = false;
          continue;
        }
        d = Dim::of(value);
        f_.bindings[g.name] = std::to_string(value);
        if (g.name == "WARPS") {
          if (value < 1 || value > 32 || (value & (value - 1))) {
            error(g.loc, fmt::format("WARPS must be a power of two from 1 to 32, got {}", value));
            ok = false;
          }
          f_.warps = int(value);
        }
      }
      v = weakInt(d);
    }
    scopes_.back()[g.name] = Symbol{Symbol::Kind::Generic, v, g.loc};
  }
  if (bindings_) {
    for (const auto &[name, value] : *bindings_) {
      if (names.count(name)) continue;
      std::vector<std::string> all;
      for (const GenericParam &g : k_.generics) all.push_back(g.name);
      error(k_.loc, fmt::format("kernel '{}' has no generic parameter '{}' (it has: {})", k_.name, name,
                                all.empty() ? "none" : fmt::format("{}", fmt::join(all, ", "))));
      ok = false;
    }
  }
  return ok;
}

void Lowerer::declareParams() {
  f_.name = k_.name;
  for (const ast::Param &p : k_.params) {
    ir::Param ip;
    ip.name = p.name;
    ip.access = p.access;
    ip.kind = p.isTensor ? ir::Param::Kind::Tensor : ir::Param::Kind::Scalar;
    int index = int(f_.params.size());
    const Symbol *ts = lookup(p.typeName);
    if (ts && ts->val.kind == TVal::Kind::DType) {
      ip.dtype = ts->val.dtype;
    } else if (!ir::parseDType(p.typeName, &ip.dtype)) {
      error(p.typeLoc, fmt::format("unknown type '{}' for parameter '{}'", p.typeName, p.name));
    }
    if (!p.isTensor) {
      if (p.access != ir::Access::In) error(p.loc, fmt::format("scalar parameter '{}' cannot be out or inout", p.name));
      if (ip.dtype != DType::F32 && ip.dtype != DType::I32 && ip.dtype != DType::I64)
        error(p.typeLoc, fmt::format("scalar parameter '{}' must be f32, i32 or i64, got {}", p.name, p.typeName));
    } else if (p.dims.empty() || p.dims.size() > 4) {
      error(p.loc, fmt::format("tensor '{}' must have 1 to 4 dimensions", p.name));
    }
    for (size_t d = 0; d < p.dims.size(); ++d) {
      const DimRef &dr = p.dims[d];
      ip.dimNames.push_back(dr.name.empty() ? std::to_string(dr.size) : dr.name);
      int64_t fixed = -1;
      if (dr.name.empty()) {
        fixed = dr.size;
        if (fixed < 1) error(dr.loc, "a literal dimension must be positive");
      } else if (const Symbol *g = lookup(dr.name)) {
        if (g->kind != Symbol::Kind::Generic || g->val.kind != TVal::Kind::Tile) {
          error(dr.loc, fmt::format("'{}' cannot name a dimension", dr.name));
        } else if (g->val.intConst->known) {
          fixed = g->val.intConst->value;
        }
      } else if (!runtimeDims_.count(dr.name)) {
        runtimeDims_[dr.name] = {index, int(d)};
      }
      ip.staticDims.push_back(fixed);
    }
    f_.params.push_back(ip);
    if (lookup(p.name) || std::any_of(k_.params.begin(), k_.params.begin() + index,
                                      [&](const ast::Param &q) { return q.name == p.name; })) {
      error(p.loc, fmt::format("parameter '{}' is declared twice", p.name));
      continue;
    }
    TVal v;
    v.kind = p.isTensor ? TVal::Kind::Tensor : TVal::Kind::Tile;
    v.dtype = ip.dtype;
    v.param = index;
    scopes_.back()[p.name] = Symbol{Symbol::Kind::Param, v, p.loc};
  }
  for (const auto &[name, where] : runtimeDims_)
    if (lookup(name)) error(k_.params[size_t(where.first)].dims[size_t(where.second)].loc,
                            fmt::format("'{}' names both a dimension and a parameter", name));
}

void Lowerer::lowerGrid() {
  inGrid_ = true;
  blocks_ = {&f_.grid};
  hoisted_.clear();
  ir::Op yield = makeOp(OpKind::Yield, {}, k_.gridLoc);
  for (const ExprPtr &g : k_.grid) {
    TVal v = expr(*g);
    if (!v.ok()) continue;
    if (v.weak && v.intConst) v = materialize(v, DType::I32, g->loc);
    if (v.kind != TVal::Kind::Tile || v.dtype != DType::I32 || !v.shape.empty()) {
      error(g->loc, fmt::format("a grid size must be an i32 scalar, got {}", v.typeStr()));
      continue;
    }
    yield.operands.push_back(v.id);
  }
  f_.grid.ops.push_back(std::move(yield));
  inGrid_ = false;
}

std::optional<ir::Function> Lowerer::run() {
  size_t errorsBefore = diags_.errors().size();
  if (!bindGenerics()) return std::nullopt;
  declareParams();
  if (diags_.errors().size() > errorsBefore) return std::nullopt;
  lowerGrid();
  blocks_ = {&f_.body};
  hoisted_.clear();
  scopes_.emplace_back();
  block(k_.body);
  if (diags_.errors().size() > errorsBefore || !lowering()) return std::nullopt;
  for (const std::string &problem : ir::verify(f_))
    error(k_.loc, fmt::format("internal error: invalid tile IR for '{}': {}", k_.name, problem));
  if (diags_.errors().size() > errorsBefore) return std::nullopt;
  return std::move(f_);
}

}  // namespace

namespace {

// Each combination of values of a kernel's dtype parameters (f32 first), so that checking
// catches what only breaks for, say, T=bf16.
std::vector<Bindings> dtypeChoices(const ast::Kernel &k) {
  std::vector<Bindings> out = {{}};
  for (const ast::GenericParam &g : k.generics) {
    if (g.kind != ast::GenericParam::Kind::DType) continue;
    std::vector<const char *> dts = {"f32", "f16", "bf16"};
    if (g.constraint == "any") dts.insert(dts.end(), {"i32", "i64"});
    std::vector<Bindings> next;
    for (const Bindings &b : out)
      for (const char *dt : dts) {
        Bindings c = b;
        c[g.name] = dt;
        if (next.size() < 64) next.push_back(std::move(c));
      }
    out = std::move(next);
  }
  return out;
}

const std::set<std::string> kBuiltins = {
    "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "tanh", "sigmoid", "abs", "sum", "max", "min", "argmax",
    "where", "fma", "iota", "zeros", "full", "program_id", "num_programs", "cdiv", "atomic_add", "range",
    "f32", "f16", "bf16", "i32", "i64", "bool"};

}  // namespace

void checkModule(const ast::Module &m, Diagnostics &diags) {
  std::set<std::string> fns;
  for (const ast::FnDef &f : m.fns) {
    if (kBuiltins.count(f.name)) diags.error(f.loc, fmt::format("'{}' is a builtin and cannot be redefined", f.name));
    else if (!fns.insert(f.name).second) diags.error(f.loc, fmt::format("function '{}' is defined twice", f.name));
    std::set<std::string> params;
    for (size_t i = 0; i < f.params.size(); ++i)
      if (!params.insert(f.params[i]).second)
        diags.error(f.paramLocs[i], fmt::format("parameter '{}' of '{}' is declared twice", f.params[i], f.name));
  }
  std::set<std::string> names;
  for (const ast::Kernel &k : m.kernels) {
    if (!names.insert(k.name).second) diags.error(k.loc, fmt::format("kernel '{}' is defined twice", k.name));
    // errors that appear only for other dtypes are reported once, naming the dtypes
    std::set<std::pair<std::pair<int, int>, std::string>> seen;
    std::vector<Bindings> choices = dtypeChoices(k);
    for (size_t c = 0; c < choices.size(); ++c) {
      const Bindings &dts = choices[c];
      Diagnostics local(diags.file(), diags.source());
      Lowerer(m, k, nullptr, local, dts).run();
      bool first = c == 0;
      for (const Diagnostic &d : local.errors()) {
        if (!seen.insert({{d.loc.line, d.loc.col}, d.message}).second) continue;
        std::string when = dts.empty() || first ? "" : fmt::format(" (when {})", [&] {
          std::string s;
          for (const auto &[n, v] : dts) s += (s.empty() ? "" : ", ") + n + "=" + v;
          return s;
        }());
        diags.error(d.loc, d.message + when);
      }
      if (diags.full()) return;
    }
  }
}

std::optional<ir::Function> lowerKernel(const ast::Module &m, const ast::Kernel &k, const Bindings &bindings,
                                        Diagnostics &diags) {
  return Lowerer(m, k, &bindings, diags).run();
}

}  // namespace tigon
