#include "dsl/ir.h"

#include <fmt/format.h>

#include <set>

namespace tigon::ir {

const char *dtypeName(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::Bool: return "bool";
  }
  return "?";
}

int dtypeBytes(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::I64: return 8;
    case DType::Bool: return 1;
  }
  return 0;
}

bool isFloat(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
bool isInt(DType t) { return t == DType::I32 || t == DType::I64; }

bool parseDType(const std::string &name, DType *out) {
  static const std::pair<const char *, DType> names[] = {
      {"f32", DType::F32}, {"f16", DType::F16},  {"bf16", DType::BF16},
      {"i32", DType::I32}, {"i64", DType::I64},  {"bool", DType::Bool}};
  for (auto &[n, t] : names)
    if (name == n) {
      *out = t;
      return true;
    }
  return false;
}

int64_t Type::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string typeString(const Type &t) {
  if (t.shape.empty()) return dtypeName(t.dtype);
  return fmt::format("{}[{}]", dtypeName(t.dtype), fmt::join(t.shape, ", "));
}

const char *opKindName(OpKind k) {
  switch (k) {
    case OpKind::Const: return "const";
    case OpKind::ScalarArg: return "scalar_arg";
    case OpKind::TensorDim: return "tensor_dim";
    case OpKind::ProgramId: return "program_id";
    case OpKind::NumPrograms: return "num_programs";
    case OpKind::Iota: return "iota";
    case OpKind::Broadcast: return "broadcast";
    case OpKind::ExpandDims: return "expand_dims";
    case OpKind::Unary: return "unary";
    case OpKind::Binary: return "binary";
    case OpKind::Select: return "select";
    case OpKind::Fma: return "fma";
    case OpKind::Cast: return "cast";
    case OpKind::Reduce: return "reduce";
    case OpKind::Load: return "load";
    case OpKind::Store: return "store";
    case OpKind::AtomicAdd: return "atomic_add";
    case OpKind::For: return "for";
    case OpKind::Yield: return "yield";
  }
  return "?";
}

const char *unaryOpName(UnaryOp op) {
  static const char *names[] = {"neg",  "not",  "abs",   "exp",  "exp2",   "log",
                                "log2", "sqrt", "rsqrt", "tanh", "sigmoid"};
  return names[int(op)];
}

const char *binaryOpName(BinaryOp op) {
  static const char *names[] = {"add", "sub", "mul", "div", "rem", "min", "max", "lt",
                                "le",  "gt",  "ge",  "eq",  "ne",  "and", "or"};
  return names[int(op)];
}

const char *reduceOpName(ReduceOp op) {
  static const char *names[] = {"sum", "max", "min", "argmax"};
  return names[int(op)];
}

bool isComparison(BinaryOp op) { return op >= BinaryOp::Lt && op <= BinaryOp::Ne; }

bool isApproximate(UnaryOp op) {
  switch (op) {
    case UnaryOp::Exp: case UnaryOp::Exp2: case UnaryOp::Log: case UnaryOp::Log2:
    case UnaryOp::Rsqrt: case UnaryOp::Tanh: case UnaryOp::Sigmoid: return true;
    default: return false;
  }
}

// ---- printer -------------------------------------------------------------------------------

namespace {

struct Printer {
  const Function &f;
  std::string out;

  std::string v(ValueId id) const { return fmt::format("%{}", id); }

  std::string values(const std::vector<ValueId> &ids) const {
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + v(ids[i]);
    return s;
  }

  std::string attrs(const Op &op) const {
    switch (op.kind) {
      case OpKind::Const:
        return isFloat(f.type(op.results[0]).dtype) ? fmt::format(" {}", op.fval)
                                                    : fmt::format(" {}", op.ival);
      case OpKind::ScalarArg: return " " + f.params[op.param].name;
      case OpKind::TensorDim: return fmt::format(" {}.size({})", f.params[op.param].name, op.axis);
      case OpKind::ProgramId: case OpKind::NumPrograms: case OpKind::ExpandDims:
        return fmt::format(" axis={}", op.axis);
      case OpKind::Unary: return std::string(" ") + unaryOpName(op.uop);
      case OpKind::Binary: return std::string(" ") + binaryOpName(op.bop);
      case OpKind::Reduce: return fmt::format(" {} axis={}", reduceOpName(op.rop), op.axis);
      case OpKind::Load: case OpKind::Store: case OpKind::AtomicAdd:
        return " " + f.params[op.param].name;
      default: return "";
    }
  }

  void block(const Block &b, int indent) {
    for (const Op &op : b.ops) {
      std::string pad(size_t(indent) * 2, ' ');
      std::string lhs;
      if (!op.results.empty()) lhs = values(op.results) + " = ";
      std::string ops = op.operands.empty() ? "" : " " + values(op.operands);
      std::string types;
      for (ValueId r : op.results) types += (types.empty() ? " : " : ", ") + typeString(f.type(r));
      out += fmt::format("{}{}{}{}{}{}", pad, lhs, opKindName(op.kind), attrs(op), ops, types);
      if (op.kind == OpKind::For) {
        const Block &body = op.regions[0];
        out += fmt::format(" ({}) {{\n", values(body.args));
        block(body, indent + 1);
        out += pad + "}";
      }
      out += "\n";
    }
  }

  std::string run() {
    out += fmt::format("kernel {}(", f.name);
    for (size_t i = 0; i < f.params.size(); ++i) {
      const Param &p = f.params[i];
      out += i ? ", " : "";
      if (p.kind == Param::Kind::Scalar) {
        out += fmt::format("{}: {}", p.name, dtypeName(p.dtype));
        continue;
      }
      std::vector<std::string> dims;
      for (int d = 0; d < p.rank(); ++d)
        dims.push_back(p.staticDims[d] >= 0 ? std::to_string(p.staticDims[d]) : p.dimNames[d]);
      const char *access = p.access == Access::Out ? "out " : p.access == Access::InOut ? "inout " : "";
      out += fmt::format("{}: {}{}[{}]", p.name, access, dtypeName(p.dtype), fmt::join(dims, ", "));
    }
    out += fmt::format(") warps={}\n", f.warps);
    if (!f.bindings.empty()) {
      out += "  // specialized:";
      for (auto &[k, val] : f.bindings) out += fmt::format(" {}={}", k, val);
      out += "\n";
    }
    out += "grid {\n";
    block(f.grid, 1);
    out += "}\nbody {\n";
    block(f.body, 1);
    out += "}\n";
    return out;
  }
};

// ---- verifier ------------------------------------------------------------------------------

struct Verifier {
  const Function &f;
  std::vector<std::string> problems;
  std::set<ValueId> defined;

  void fail(const Op &op, const std::string &msg) {
    problems.push_back(fmt::format("{}:{}: {}: {}", op.loc.line, op.loc.col, opKindName(op.kind), msg));
  }

  bool valid(ValueId id) const { return id >= 0 && size_t(id) < f.values.size(); }

  const Type &t(ValueId id) const { return f.type(id); }

  void checkIndices(const Op &op, size_t nIndices, std::vector<int64_t> *shape) {
    if (op.param < 0 || size_t(op.param) >= f.params.size()) return fail(op, "bad parameter index");
    const Param &p = f.params[size_t(op.param)];
    if (nIndices != size_t(p.rank())) {
      fail(op, fmt::format("{} indices for tensor '{}' of rank {}", nIndices, p.name, p.rank()));
      return;
    }
    for (size_t i = 0; i < nIndices; ++i) {
      const Type &it = t(op.operands[i]);
      if (!isInt(it.dtype) || it.rank() > 1) fail(op, "index must be a 0-D or 1-D integer tile");
      if (it.rank() == 1) shape->push_back(it.shape[0]);
    }
  }

  void checkOp(const Op &op, bool inLoop) {
    for (ValueId id : op.operands)
      if (!valid(id) || !defined.count(id)) return fail(op, fmt::format("operand %{} is not defined before use", id));
    auto nres = [&](size_t n) {
      if (op.results.size() != n) fail(op, fmt::format("expected {} results", n));
      return op.results.size() == n;
    };
    auto nops = [&](size_t n) {
      if (op.operands.size() != n) fail(op, fmt::format("expected {} operands", n));
      return op.operands.size() == n;
    };
    switch (op.kind) {
      case OpKind::Const: case OpKind::ProgramId: case OpKind::NumPrograms:
        if (nres(1) && nops(0) && t(op.results[0]).rank() != 0) fail(op, "result must be 0-D");
        break;
      case OpKind::ScalarArg: case OpKind::TensorDim:
        if (op.param < 0 || size_t(op.param) >= f.params.size()) fail(op, "bad parameter index");
        nres(1);
        break;
      case OpKind::Iota:
        if (nres(1) && (t(op.results[0]).rank() != 1 || t(op.results[0]).dtype != DType::I32))
          fail(op, "result must be i32[n]");
        break;
      case OpKind::Broadcast: {
        if (!nres(1) || !nops(1)) break;
        const Type &x = t(op.operands[0]), &r = t(op.results[0]);
        if (x.dtype != r.dtype || x.rank() > r.rank()) { fail(op, "bad broadcast"); break; }
        for (int i = 0; i < x.rank(); ++i) {
          int64_t xd = x.shape[size_t(x.rank() - 1 - i)], rd = r.shape[size_t(r.rank() - 1 - i)];
          if (xd != 1 && xd != rd) fail(op, fmt::format("cannot broadcast {} to {}", typeString(x), typeString(r)));
        }
        break;
      }
      case OpKind::Unary: case OpKind::Cast: case OpKind::ExpandDims: case OpKind::Reduce:
        if (nres(1) && nops(1) && op.kind != OpKind::Cast && op.kind != OpKind::Reduce &&
            op.kind != OpKind::ExpandDims && t(op.operands[0]) != t(op.results[0]))
          fail(op, "operand and result types differ");
        break;
      case OpKind::Binary:
        if (nres(1) && nops(2) && t(op.operands[0]) != t(op.operands[1]))
          fail(op, fmt::format("operand types differ: {} and {}", typeString(t(op.operands[0])),
                               typeString(t(op.operands[1]))));
        break;
      case OpKind::Select:
        if (nres(1) && nops(3) && t(op.operands[0]).dtype != DType::Bool) fail(op, "condition must be bool");
        break;
      case OpKind::Fma:
        if (nres(1) && nops(3) && (t(op.operands[0]) != t(op.operands[1]) || t(op.operands[0]) != t(op.operands[2])))
          fail(op, "operand types differ");
        break;
      case OpKind::Load: {
        if (!nres(1) || op.operands.empty()) break;
        std::vector<int64_t> shape;
        checkIndices(op, op.operands.size() - 1, &shape);
        if (shape != t(op.results[0]).shape) fail(op, "result shape does not match the indices");
        break;
      }
      case OpKind::Store: case OpKind::AtomicAdd: {
        if (!nres(0) || op.operands.empty()) break;
        std::vector<int64_t> shape;
        checkIndices(op, op.operands.size() - 1, &shape);
        if (shape != t(op.operands.back()).shape) fail(op, "value shape does not match the indices");
        break;
      }
      case OpKind::For: {
        if (op.operands.size() < 3 || op.regions.size() != 1) { fail(op, "malformed loop"); break; }
        const Block &body = op.regions[0];
        size_t carried = op.operands.size() - 3;
        if (body.args.size() != carried + 1 || op.results.size() != carried) { fail(op, "loop arity mismatch"); break; }
        for (ValueId a : body.args) defined.insert(a);
        checkBlock(body, true);
        if (body.ops.empty() || body.ops.back().kind != OpKind::Yield ||
            body.ops.back().operands.size() != carried)
          fail(op, "loop body must end with a yield of the carried values");
        break;
      }
      case OpKind::Yield:
        if (!inLoop && &op != &f.grid.ops.back()) fail(op, "yield outside a loop body");
        break;
    }
    for (ValueId r : op.results) {
      if (!valid(r)) return fail(op, "result id out of range");
      if (!defined.insert(r).second) fail(op, fmt::format("%{} is defined twice", r));
    }
  }

  void checkBlock(const Block &b, bool inLoop) {
    for (const Op &op : b.ops) checkOp(op, inLoop);
  }
};

}  // namespace

std::string print(const Function &f) { return Printer{f, {}}.run(); }

std::vector<std::string> verify(const Function &f) {
  Verifier v{f, {}, {}};
  v.checkBlock(f.grid, false);
  if (f.grid.ops.empty() || f.grid.ops.back().kind != OpKind::Yield) v.problems.push_back("grid block must end with a yield");
  v.checkBlock(f.body, false);
  return v.problems;
}

}  // namespace tigon::ir
