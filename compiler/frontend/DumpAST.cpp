// `attnc --emit=ast`: one item per line, binaries fully parenthesised, implicit int -> float
// promotions shown as float(...), dims shown with their roles. Lit tests depend on this text.
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Parser.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace attnc {
namespace {

/// The shortest printf rendering of x in `format` ("%.*g" or "%.*f") that reads back exactly.
std::string shortest(const char *format, double x) {
  // 24 digits: "%.*f" of a value >= 1e-4 then shows at least 17 significant digits, which
  // always round-trips; values below 1e16 keep the fixed rendering under 64 characters.
  char buf[64];
  for (int precision = 0; precision <= 24; ++precision) {
    std::snprintf(buf, sizeof buf, format, precision, x);
    if (std::strtod(buf, nullptr) == x)
      break;
  }
  return buf;
}

/// Shortest decimal that reads back as the same double, in fixed notation unless the
/// magnitude calls for an exponent, and always with a '.' or an exponent: 50.0, 0.001, 1e-10.
std::string formatFloat(double x) {
  double magnitude = std::fabs(x);
  bool fixed = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16);
  std::string s = shortest(fixed ? "%.*f" : "%.*g", x);
  if (s.find_first_of(".en") == std::string::npos)  // 'n': inf and nan
    s += ".0";
  return s;
}

class ExprPrinter {
public:
  explicit ExprPrinter(const Variant &v) : v_(v) {}

  std::string print(const Expr &e) const {
    switch (e.kind) {
    case Expr::Kind::IntLit:
      return std::to_string(e.intValue);
    case Expr::Kind::FloatLit:
      return formatFloat(e.floatValue);
    case Expr::Kind::BoolLit:
      return e.intValue ? "true" : "false";
    case Expr::Kind::Ident:
      return name(e);
    case Expr::Kind::Index:
      return e.args.empty() ? e.name : e.name + "[" + list(e, false) + "]";
    case Expr::Kind::Call:
      return call(e);
    case Expr::Kind::Unary:
      return "(" + e.op + print(*e.args[0]) + ")";
    case Expr::Kind::Binary:
      return binary(e);
    }
    return "?";
  }

  /// `e` used where a float is needed: an int gets an explicit float(...).
  std::string asFloat(const Expr &e) const {
    if (e.type != ValueType::Int)
      return print(e);
    std::string inner = print(e);
    if (e.kind == Expr::Kind::Binary || e.kind == Expr::Kind::Unary)  // float(j - i)
      inner = inner.substr(1, inner.size() - 2);
    return "float(" + inner + ")";
  }

private:
  const Variant &v_;

  std::string name(const Expr &e) const {
    if (e.res == Expr::Res::DimSize)
      return "size(" + v_.dims[e.dimIndex].name + ")";
    return e.name;
  }

  std::string list(const Expr &e, bool promote) const {
    std::string out;
    for (size_t i = 0; i < e.args.size(); ++i)
      out += (i ? ", " : "") + (promote ? asFloat(*e.args[i]) : print(*e.args[i]));
    return out;
  }

  std::string call(const Expr &e) const {
    if (e.res == Expr::Res::DimSize)
      return "size(" + v_.dims[e.dimIndex].name + ")";
    // min/max/select of mixed numbers compute in float; their int arguments are promoted.
    bool promote =
        e.type == ValueType::Float && (e.builtin == Builtin::Min || e.builtin == Builtin::Max);
    if (e.builtin == Builtin::Select && e.type == ValueType::Float)
      return e.name + "(" + print(*e.args[0]) + ", " + asFloat(*e.args[1]) + ", " +
             asFloat(*e.args[2]) + ")";
    return e.name + "(" + list(e, promote) + ")";
  }

  std::string binary(const Expr &e) const {
    const Expr &l = *e.args[0], &r = *e.args[1];
    bool promote = l.type == ValueType::Float || r.type == ValueType::Float;
    std::string ls = promote ? asFloat(l) : print(l);
    std::string rs = promote ? asFloat(r) : print(r);
    return "(" + ls + " " + e.op + " " + rs + ")";
  }
};

std::string dimLine(const DimDecl &d) {
  std::string s = "  dim " + d.name;
  if (!d.extentName.empty())
    s += " (" + d.extentName + ")";
  switch (d.kind) {
  case DimDecl::Kind::Dynamic:
    break;
  case DimDecl::Kind::Static:
    s += " = " + std::to_string(d.staticSize);
    break;
  case DimDecl::Kind::Alias:
    s += " = " + d.source;
    break;
  case DimDecl::Kind::Derived:
    s += " = " + d.source + " / " + std::to_string(d.divisor);
    break;
  }
  if (d.role != DimRole::None)
    s += std::string(" : ") + roleName(d.role);
  return s + "\n";
}

std::string tensorText(const TensorDecl &t) {
  std::string s = t.name;
  if (!t.dimNames.empty())
    s += "[" + joinNames(t.dimNames) + "]";
  return s + " : " + dtypeName(t.resolvedDType);
}

void dumpVariant(const Variant &v, std::string &out) {
  ExprPrinter printer(v);
  out += "variant " + v.name + "\n";
  for (const DimDecl &d : v.dims)
    out += dimLine(d);
  for (size_t i = 0; i < v.inputs.size(); ++i) {
    int n = int(i);
    std::string role = n == v.q ? " (q)" : n == v.k ? " (k)" : n == v.v ? " (v)" : "";
    // several scores: the roles an input plays for the other scores
    for (size_t s = 1; role.empty() && s < v.scores.size(); ++s)
      if (n == v.scoreQ[s] || n == v.scoreK[s])
        role = std::string(" (") + (n == v.scoreQ[s] ? "q" : "k") + " of " + v.scores[s].name + ")";
    out += "  input " + tensorText(v.inputs[i]) + role + "\n";
  }
  for (const TensorDecl &p : v.params)
    out += "  param " + tensorText(p) + "\n";
  for (const ScoreDecl &s : v.scores)  // the score's int value is promoted to float
    out += "  score " + s.name + " : float = " + printer.asFloat(*s.expr) + "\n";
  if (v.mask)
    out += std::string("  mask : ") + valueTypeName(v.mask->type) + " = " + printer.print(*v.mask) +
           "\n";
  for (const FeatureDecl &f : v.features) {
    std::string names;
    for (const std::string &t : f.tensors)
      names += (names.empty() ? "" : ", ") + t;
    out += "  feature " + names + " : float = " + printer.asFloat(*f.expr) + "\n";
  }
  if (v.decay)
    out += "  decay : float = " + printer.asFloat(*v.decay) + "\n";
  if (v.gate)
    out += "  gate : float = " + printer.asFloat(*v.gate) + "\n";
  if (v.bonus)
    out += "  bonus : float = " + printer.asFloat(*v.bonus) + "\n";
  if (v.state)
    out += "  state " + tensorText(*v.state) + "\n";
  out += std::string("  norm ") + normName(v.norm) + "\n";
  if (v.recurrence)
    out += std::string("  recurrence (linear in dot, ") +
           (v.strict ? "strictly causal" : "causal") + ", norm " + normName(v.norm) + ")\n";
  if (v.hasOutput)
    out += "  output " + tensorText(v.output) + " = " + printer.print(*v.outputExpr) + "\n";
  if (v.mix)
    out += "  mix of " + std::to_string(v.scores.size()) + " scores = " + printer.print(*v.mix) +
           (v.rmsEps ? ", then rmsnorm" : "") + (v.outputMap ? ", then the output map" : "") +
           "\n";
  out += "  group " + std::to_string(v.group) + "\n";
  if (v.qkGroupDim >= 0)
    out += "  qk group " + std::to_string(v.qkGroup) + " (q and k heads: " +
           v.dims[v.qkGroupDim].name + ")\n";
  if (v.keyScale)
    out += "  key factor " + printer.print(*v.keyScale) + "\n";
}

}  // namespace

std::string dumpAST(const SpecFile &file) {
  std::string out;
  for (const Variant &v : file.variants)
    dumpVariant(v, out);
  return out;
}

}  // namespace attnc
