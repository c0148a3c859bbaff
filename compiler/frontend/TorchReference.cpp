// `attnc --emit=torch`: the float64 reference of a checked variant as a Python module that
// needs only torch and math. It computes what Reference.cpp's interpreter computes, vectorised
// over [batch, q_head, q_seq, kv_seq] instead of looping, so that GPU tests can check a compiled
// kernel of any spec at sizes the interpreter is too slow for. The module is meant to be read:
// one statement per line, the score and the mask as straight-line code that follows the AST.
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Parser.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

namespace attnc {
namespace {

// ---- text helpers ---------------------------------------------------------------------------

/// A Python string literal for any bytes (a spec path may hold quotes, backslashes, newlines).
std::string pyString(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += char(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "\"";
}

/// Text safe inside a '#' comment: one line, printable ASCII.
std::string commentSafe(const std::string &s) {
  std::string out;
  for (unsigned char c : s)
    out += c >= 0x20 && c < 0x7f ? char(c) : '?';
  return out;
}

/// Text safe inside a """docstring""": commentSafe, with backslashes and quotes escaped.
std::string docstringSafe(const std::string &s) {
  std::string out;
  for (char c : commentSafe(s)) {
    if (c == '\\' || c == '"')
      out += '\\';
    out += c;
  }
  return out;
}

/// The shortest decimal that reads back as x, always with a '.' or an exponent (a Python float
/// literal): 50.0, 0.001, 1e-10. Spec literals are finite (the lexer rejects overflow).
std::string pyFloat(double x) {
  double magnitude = std::fabs(x);
  bool fixed = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16);
  char buf[64];
  for (int precision = 0; precision <= 24; ++precision) {
    std::snprintf(buf, sizeof buf, fixed ? "%.*f" : "%.*g", precision, x);
    if (std::strtod(buf, nullptr) == x)
      break;
  }
  std::string s = buf;
  if (s.find_first_of(".e") == std::string::npos)
    s += ".0";
  return s;
}

/// `text` cut at spaces into lines of at most `width` characters (a longer word stays whole);
/// continuation lines are indented by 4.
std::vector<std::string> wrap(const std::string &text, size_t width) {
  std::vector<std::string> lines;
  std::string line, word;
  auto flushWord = [&]() {
    if (word.empty())
      return;
    bool fresh = line.empty() || line == "    ";
    if (!fresh && line.size() + 1 + word.size() > width) {
      lines.push_back(line);
      line = "    ";
      fresh = true;
    }
    line += (fresh ? "" : " ") + word;
    word.clear();
  };
  for (char c : text) {
    if (c == ' ')
      flushWord();
    else
      word += c;
  }
  flushWord();
  if (!line.empty() || lines.empty())
    lines.push_back(line);
  return lines;
}

std::string pyList(const std::vector<std::string> &names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? ", " : "") + pyString(names[i]);
  return out + "]";
}

std::string intList(const std::vector<int> &xs) {
  std::string out;
  for (size_t i = 0; i < xs.size(); ++i)
    out += (i ? ", " : "") + std::to_string(xs[i]);
  return out;
}

// ---- the spec text of an expression, for comments -------------------------------------------

/// Binding strength of an expression as the grammar parses it (higher binds tighter).
int precedence(const Expr &e) {
  if (e.kind == Expr::Kind::Unary)
    return 6;
  if (e.kind != Expr::Kind::Binary)
    return 7;
  const std::string &op = e.op;
  if (op == "||")
    return 1;
  if (op == "&&")
    return 2;
  if (op == "+" || op == "-")
    return 4;
  if (op == "*" || op == "/" || op == "%")
    return 5;
  return 3;  // comparisons
}

/// Spec syntax with only the parentheses the grammar needs.
std::string specText(const Expr &e) {
  switch (e.kind) {
  case Expr::Kind::IntLit:
    return std::to_string(e.intValue);
  case Expr::Kind::FloatLit:
    return pyFloat(e.floatValue);
  case Expr::Kind::BoolLit:
    return e.intValue ? "true" : "false";
  case Expr::Kind::Ident:
    return e.name;
  case Expr::Kind::Index:
  case Expr::Kind::Call: {
    if (e.kind == Expr::Kind::Index && e.args.empty())
      return e.name;  // a rank-0 param
    std::string out = e.name + (e.kind == Expr::Kind::Index ? "[" : "(");
    for (size_t i = 0; i < e.args.size(); ++i)
      out += (i ? ", " : "") + specText(*e.args[i]);
    return out + (e.kind == Expr::Kind::Index ? "]" : ")");
  }
  case Expr::Kind::Unary: {
    std::string x = specText(*e.args[0]);
    return e.op + (precedence(*e.args[0]) < 6 ? "(" + x + ")" : x);
  }
  case Expr::Kind::Binary: {
    int p = precedence(e);
    const Expr &l = *e.args[0], &r = *e.args[1];
    // Left-associative; comparisons do not chain, so a comparison operand needs parentheses.
    bool parenL = precedence(l) < p || (p == 3 && precedence(l) == 3);
    bool parenR = precedence(r) <= p;
    std::string ls = specText(l), rs = specText(r);
    return (parenL ? "(" + ls + ")" : ls) + " " + e.op + " " + (parenR ? "(" + rs + ")" : rs);
  }
  }
  return "?";
}

// ---- expressions as straight-line torch code ------------------------------------------------

/// Emits one statement per operator of a checked expression. Values are torch tensors that
/// broadcast to [B, H, I, J]: int64 for Int, float64 for Float, bool for Bool. The generated
/// function sees `ix` (dim name -> int64 index grid), `n` (dim name -> 0-dim int64 extent),
/// `p` (param name -> tensor in float64 or int64), `dev` and, in the score, `dot`.
///
/// A temporary that depends on both the q seq and the kv seq (or on dot) is a full
/// [B?, H?, rows, J] block; each is deleted after its last use, so that a long score keeps only
/// a few blocks alive at once.
class ExprEmitter {
public:
  explicit ExprEmitter(const Variant &v) : v_(v) {}

  /// A value: its Python text, the temporary it reads (if any) and what it depends on.
  struct Val {
    std::string text;
    std::vector<std::string> temps;  // temporaries the text reads
    unsigned deps = 0;               // kQSeq | kKVSeq
  };
  static constexpr unsigned kQSeq = 1, kKVSeq = 2;

  /// The statements computing `e` (as float64 when `toFloat`), then `return ...`.
  std::vector<std::string> function(const Expr &e, bool toFloat) {
    Val result = toFloat ? asFloat(e) : value(e);
    std::vector<std::string> out;
    for (size_t k = 0; k < stmts_.size(); ++k) {
      out.push_back(stmts_[k].line);
      std::vector<std::string> dead;
      for (const std::string &t : stmts_[k].uses)
        if (bigTemps_.count(t) && lastUse_[t] == k && !contains(result.temps, t) &&
            !contains(dead, t))
          dead.push_back(t);
      if (!dead.empty())
        out.push_back("del " + join(dead));
    }
    out.push_back("return " + result.text);
    return out;
  }

private:
  struct Stmt {
    std::string line;
    std::vector<std::string> uses;
  };
  const Variant &v_;
  std::vector<Stmt> stmts_;
  std::map<std::string, size_t> lastUse_;
  std::set<std::string> bigTemps_;

  static bool contains(const std::vector<std::string> &xs, const std::string &x) {
    return std::find(xs.begin(), xs.end(), x) != xs.end();
  }
  static std::string join(const std::vector<std::string> &xs) {
    std::string out;
    for (size_t i = 0; i < xs.size(); ++i)
      out += (i ? ", " : "") + xs[i];
    return out;
  }

  static Val leaf(std::string text, unsigned deps = 0) { return {std::move(text), {}, deps}; }

  /// `name = rhs` where rhs reads `args`; returns the temporary.
  Val temp(const std::string &rhs, std::initializer_list<const Val *> args) {
    Val out;
    out.text = "t" + std::to_string(stmts_.size());
    out.temps = {out.text};
    Stmt stmt{out.text + " = " + rhs, {}};
    for (const Val *a : args) {
      out.deps |= a->deps;
      for (const std::string &t : a->temps) {
        stmt.uses.push_back(t);
        lastUse_[t] = stmts_.size();
      }
    }
    if (out.deps == (kQSeq | kKVSeq))
      bigTemps_.insert(out.text);
    stmts_.push_back(std::move(stmt));
    return out;
  }

  /// The value of `e`, as a temporary or an inline leaf; its type is e.type.
  Val value(const Expr &e) {
    switch (e.kind) {
    case Expr::Kind::IntLit:
      return leaf("_i64(" + std::to_string(e.intValue) + ", dev)");
    case Expr::Kind::FloatLit:
      return leaf("_f64(" + pyFloat(e.floatValue) + ", dev)");
    case Expr::Kind::BoolLit:
      return leaf(std::string("_bool(") + (e.intValue ? "True" : "False") + ", dev)");
    case Expr::Kind::Unary: {
      Val x = value(*e.args[0]);
      return temp((e.op == "!" ? "~" : "-") + x.text, {&x});
    }
    case Expr::Kind::Binary:
      return binary(e);
    default:
      return resolved(e);
    }
  }

  /// The value of `e` as float64 (the implicit int -> float conversion of the language).
  Val asFloat(const Expr &e) {
    if (e.type != ValueType::Int)
      return value(e);
    if (e.kind == Expr::Kind::IntLit)
      return leaf("_f64(" + pyFloat(double(e.intValue)) + ", dev)");
    Val x = value(e);
    x.text = "_float(" + x.text + ")";
    return x;
  }

  unsigned dimDeps(int dim) const {  // a gate's head channel, a skip's value channel: last axis
    return dim == v_.qSeqDim                                                   ? kQSeq
           : dim == v_.kvSeqDim || dim == v_.headDim || dim == v_.valueDim ? kKVSeq
                                                                             : 0;
  }

  std::string dimKey(int dim) const { return pyString(v_.dims[dim].name); }

  Val resolved(const Expr &e) {
    switch (e.res) {
    case Expr::Res::IterIndex: {
      std::string index = "ix[" + dimKey(e.dimIndex) + "]";
      if (v_.positionOffsets >= 0 && (e.dimIndex == v_.qSeqDim || e.dimIndex == v_.kvSeqDim)) {
        // a ring block: positions are global where they are values
        int offset = v_.positionOffsets + (e.dimIndex == v_.kvSeqDim);
        index = "(" + index + " + p[" + pyString(v_.params[size_t(offset)].name) + "])";
      }
      return leaf(index, dimDeps(e.dimIndex));
    }
    case Expr::Res::DimSize:
      return leaf("n[" + dimKey(e.dimIndex) + "]");
    case Expr::Res::ParamLoad: {
      std::string p = "p[" + pyString(v_.params[e.paramIndex].name) + "]";
      if (e.args.empty())
        return leaf(p);  // rank 0: the 0-dim tensor itself
      Val idx;
      for (size_t a = 0; a < e.args.size(); ++a) {
        const Expr &arg = *e.args[a];
        idx.text += a ? ", " : "";
        if (!arg.clamp) {
          idx.text += "ix[" + dimKey(arg.dimIndex) + "]";
          idx.deps |= dimDeps(arg.dimIndex);
          continue;
        }
        // a computed index, clamped into the axis (as the kernels read it), a temporary of
        // its own so that lines stay short
        Val at = value(arg);
        Val clamped = temp("_clamp_index(" + at.text + ", " + p + ".shape[" +
                               std::to_string(a) + "])",
                           {&at});
        idx.text += clamped.text;
        idx.deps |= clamped.deps;
        idx.temps.insert(idx.temps.end(), clamped.temps.begin(), clamped.temps.end());
      }
      return temp(p + "[" + idx.text + "]", {&idx});
    }
    case Expr::Res::Builtin:
      return builtin(e);
    case Expr::Res::FeatureArg:
      return leaf("x");
    case Expr::Res::FeatureProj:  // a projected feature map: x . w[m], [..., m]
      return leaf("xp");
    case Expr::Res::FeatureSq:  // and x . x, [..., 1]
      return leaf("sq");
    case Expr::Res::ValueAt:  // a skip term's v at the query position, [B, H, I, DV]
      return leaf("x", kQSeq | kKVSeq);
    case Expr::Res::None:
      break;
    }
    return leaf("None  # unresolved expression");  // unreachable for a checked AST
  }

  Val call(const std::string &fn, const Val &x) { return temp(fn + "(" + x.text + ")", {&x}); }

  Val builtin(const Expr &e) {
    switch (e.builtin) {
    case Builtin::Dot:  // dot(q, k), or a row norm: qq [B, H, rows, 1], kk [B, H, 1, J]
      return e.rowNorm == 1   ? leaf("qq", kQSeq)
             : e.rowNorm == 2 ? leaf("kk", kKVSeq)
                              : leaf("dot", kQSeq | kKVSeq);
    case Builtin::Attend:  // an output map's attend result (a mix's: score n's), [B, H, I, DV]
      return leaf(e.attendScore >= 0 ? "y" + std::to_string(e.attendScore) : "y",
                  kQSeq | kKVSeq);
    case Builtin::Exp:
      return call("torch.exp", asFloat(*e.args[0]));
    case Builtin::Log:
      return call("torch.log", asFloat(*e.args[0]));
    case Builtin::Tanh:
      return call("torch.tanh", asFloat(*e.args[0]));
    case Builtin::Sigmoid:
      return call("_sigmoid", asFloat(*e.args[0]));
    case Builtin::Sqrt:
      return call("torch.sqrt", asFloat(*e.args[0]));
    case Builtin::Rsqrt:
      return call("_rsqrt", asFloat(*e.args[0]));
    case Builtin::Relu:
      return call("_relu", asFloat(*e.args[0]));
    case Builtin::Floor:
      if (e.args[0]->type == ValueType::Int)
        return value(*e.args[0]);
      return call("_floor", value(*e.args[0]));
    case Builtin::Abs:
      return call("torch.abs", value(*e.args[0]));
    case Builtin::Min:
    case Builtin::Max: {
      bool f = e.type == ValueType::Float;
      Val a = f ? asFloat(*e.args[0]) : value(*e.args[0]);
      Val b = f ? asFloat(*e.args[1]) : value(*e.args[1]);
      return temp(std::string(e.builtin == Builtin::Min ? "_min(" : "_max(") + a.text + ", " +
                      b.text + ")",
                  {&a, &b});
    }
    case Builtin::Select: {
      bool f = e.type == ValueType::Float;
      Val c = value(*e.args[0]);
      Val a = f ? asFloat(*e.args[1]) : value(*e.args[1]);
      Val b = f ? asFloat(*e.args[2]) : value(*e.args[2]);
      return temp("torch.where(" + c.text + ", " + a.text + ", " + b.text + ")", {&c, &a, &b});
    }
    case Builtin::Size:  // Sema resolves size(x) to a DimSize
      return leaf("n[" + dimKey(e.dimIndex) + "]");
    default:
      break;
    }
    return leaf("None  # attend is not an expression value");
  }

  Val binary(const Expr &e) {
    const std::string &op = e.op;
    const Expr &l = *e.args[0], &r = *e.args[1];
    if (op == "&&" || op == "||") {
      Val a = value(l), b = value(r);
      return temp(a.text + (op == "&&" ? " & " : " | ") + b.text, {&a, &b});
    }
    bool ints = l.type == ValueType::Int && r.type == ValueType::Int;
    Val a = ints ? value(l) : asFloat(l);
    Val b = ints ? value(r) : asFloat(r);
    if (e.type == ValueType::Bool)  // a comparison: in int64 if both sides are ints
      return temp(a.text + " " + op + " " + b.text, {&a, &b});
    if (ints && op == "/")
      return temp("_idiv(" + a.text + ", " + b.text + ")", {&a, &b});
    if (op == "%")
      return temp(std::string(ints ? "_imod(" : "torch.fmod(") + a.text + ", " + b.text + ")",
                  {&a, &b});
    return temp(a.text + " " + op + " " + b.text, {&a, &b});
  }
};

// ---- the module -----------------------------------------------------------------------------

const char *kPrelude = R"PY(import math

import torch

)PY";

const char *kHelpers = R"PY(

# ---- helpers: the language's scalar semantics on tensors ------------------------------------


def _i64(x, dev):
    return torch.tensor(x, dtype=torch.int64, device=dev)


def _f64(x, dev):
    return torch.tensor(x, dtype=torch.float64, device=dev)


def _bool(x, dev):
    return torch.tensor(x, dtype=torch.bool, device=dev)


def _float(x):
    """The implicit int -> float conversion."""
    return x.to(torch.float64)


def _idiv(a, b):
    """int64 a / b like C: truncates toward zero; x / 0 == 0; INT64_MIN / -1 wraps."""
    zero = b == 0
    minus_one = b == -1
    safe = torch.where(zero | minus_one, 1, b)
    quotient = torch.div(a, safe, rounding_mode="trunc")
    quotient = torch.where(minus_one, -a, quotient)
    return torch.where(zero, 0, quotient)


def _imod(a, b):
    """int64 a % b like C: the sign of the dividend; x % 0 == 0."""
    zero_or_minus_one = (b == 0) | (b == -1)
    safe = torch.where(zero_or_minus_one, 1, b)
    return torch.where(zero_or_minus_one, 0, torch.fmod(a, safe))


def _min(a, b):
    """C++ (a < b) ? a : b, NaN included."""
    return torch.where(a < b, a, b)


def _max(a, b):
    """C++ (a > b) ? a : b, NaN included."""
    return torch.where(a > b, a, b)


def _pv(w, v, p_dtype):
    """w @ v, with w rounded to p_dtype first when given (a 16-bit kernel's P)."""
    return (w if p_dtype is None else w.to(p_dtype).to(v.dtype)) @ v


class _RoundGrad(torch.autograd.Function):
    """The identity, whose gradient is rounded to `dtype`: a 16-bit kernel's dy, the gradient
    of an attend's rows as its tensor cores read it."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = dtype
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.to(ctx.dtype).to(g.dtype), None


def _grad_rounded(x, dtype):
    return x if dtype is None or not x.requires_grad else _RoundGrad.apply(x, dtype)


def _sigmoid(x):
    return 1.0 / (1.0 + torch.exp(-x))


def _rsqrt(x):
    return 1.0 / torch.sqrt(x)


def _relu(x):
    """std::max(x, 0.0): NaN stays NaN."""
    return torch.where(x < 0.0, 0.0, x)


def _clamp_index(x, extent):
    """A computed param index clamped into [0, extent - 1], as a tensor."""
    if not torch.is_tensor(x):
        x = torch.tensor(x, dtype=torch.int64)
    return x.clamp(0, max(int(extent) - 1, 0))


def _floor(x):
    """floor(x) as int64: NaN gives 0, beyond +-2^30 saturates."""
    x = torch.nan_to_num(torch.floor(x), nan=0.0, posinf=2.0**30, neginf=-(2.0**30))
    return x.clamp(-(2.0**30), 2.0**30).to(torch.int64)


def _given_size(sizes, name):
    """A size the caller gave by dim name or extent name, else None."""
    found = None
    for key in [name, EXTENT_NAMES.get(name)]:
        if key is not None and key in sizes:
            size = int(sizes[key])
            if found is not None and found != size:
                raise ValueError(f"conflicting sizes for dim '{name}': {found} and {size}")
            found = size
    return found


def _dynamic_extent(t, sizes, name):
    """The extent of a dynamic dim: given in `sizes`, else from the first tensor that has it."""
    given = _given_size(sizes, name)
    if given is not None:
        return given
    for tensor in INPUTS + PARAMS:
        if tensor in t and name in STORAGE[tensor]:
            return int(t[tensor].shape[STORAGE[tensor].index(name)])
    raise ValueError(f"missing size for dim '{name}', which is in no tensor: "
                     f"pass sizes={{'{name}': N}}")


def _derived_extent(n, name, source, divisor):
    if n[source] % divisor != 0:
        raise ValueError(f"dim '{name} = {source} / {divisor}' does not divide: "
                         f"'{source}' is {n[source]}")
    return n[source] // divisor


def _check_extents(t, sizes, n):
    """Every input and param is present with the shape its declaration and the dims give."""
    known = set(n) | set(EXTENT_NAMES.values())
    for key in sizes:
        if key not in known:
            raise ValueError(f"unknown dim '{key}' in sizes; dims: {', '.join(n)}")
    for name, size in n.items():
        given = _given_size(sizes, name)
        if size < 1:
            raise ValueError(f"size of '{name}' must be at least 1, got {size}")
        if given is not None and given != size:
            raise ValueError(f"dim '{name}' is {size}, but {given} was given")
    for tensor in INPUTS + PARAMS:
        if tensor not in t:
            raise ValueError(f"missing tensor '{tensor}'")
        want = [n[d] for d in STORAGE[tensor]]
        got = list(t[tensor].shape)
        if got != want:
            raise ValueError(f"'{tensor}' has shape {got}, expected {want} "
                             f"for [{', '.join(STORAGE[tensor])}]")
)PY";

void emitHeader(const Variant &v, const std::string &specPath, std::string &out) {
  out += "# Generated by `attnc --emit=torch` from variant " + v.name + " of\n";
  out += "# " + commentSafe(specPath) + ". Do not edit.\n";
  out += "\"\"\"float64 torch reference of the attention variant '" + v.name + "'.\n\n";
  out += "From " + docstringSafe(specPath) + ".\n";
  out += R"PY(
reference(t) computes what attnc's float64 interpreter (compiler/frontend/Reference.cpp)
computes, vectorised over [batch, q_head, q_seq, kv_seq]:

- t maps every input and param name to a torch tensor in its declared storage order (STORAGE),
  of any dtype, on any device; values are converted exactly to float64 (int64 for i32 params).
- returns (o, lse): o float64 in the output's storage order; lse float64 [b, h, i] (batch,
  q head, q seq) for softmax, None for the other norms; with several scores (SCORES > 1)
  [score, b, h, i], each score's own softmax statistics. A row whose keys are all masked gives
  o = 0 and lse = -inf. A recurrence with a state returns (o, None, state): t[STATE] is the
  initial state, and `state` (float64, its storage order) the state after the last query.
- mask first, then score; ints are int64 with C truncation and x / 0 == x % 0 == 0; an int
  meeting a float becomes float; kv head = q head // GROUP.
- the work is chunked over q_seq so that no [B, H, rows, J] tensor exceeds CHUNK_ELEMENTS.
"""
)PY";
  out += kPrelude;

  out += "VARIANT = " + pyString(v.name) + "\n";
  out += "SPEC = " + pyString(specPath) + "\n";
  out += std::string("NORM = \"") + normName(v.norm) + "\"\n";
  out += "GROUP = " + std::to_string(v.group) + "  # query heads per kv head\n";
  out += "SCORES = " + std::to_string(v.scores.size()) +
         "  # scores, each with its own softmax (lse [SCORES, b, h, i] when > 1)\n";
  out += "STATE = " + (v.state ? pyString(v.state->name) : std::string("None")) +
         "  # a recurrence's state (initial in, final out)\n";
  out += "CHUNK_ELEMENTS = 2**27  # largest [B, H, rows, J] block computed at once\n";
  if (v.paged)  // k and v are page pools, gathered through the block table
    out += "PAGED = {\"block_table\": " + pyString(v.params[v.paged->tableParam].name) +
           ", \"page_size\": " + std::to_string(v.paged->pageSize) + "}\n";
  else
    out += "PAGED = None\n";

  out += "# dim name -> its role in the attention\n";
  out += "DIMS = {\n";
  for (const DimDecl &d : v.dims)
    out += "    " + pyString(d.name) + ": \"" + roleName(d.role) + "\",\n";
  out += "}\n";
  out += "# dim -> its extent name (`i : q_len`)\n";
  out += "EXTENT_NAMES = {";
  bool first = true;
  for (const DimDecl &d : v.dims)
    if (!d.extentName.empty()) {
      out += std::string(first ? "" : ", ") + pyString(d.name) + ": " + pyString(d.extentName);
      first = false;
    }
  out += "}\n";

  out += "# tensor name -> its dims in storage order (outermost first)\n";
  out += "STORAGE = {\n";
  auto storage = [&](const TensorDecl &t) {
    out += "    " + pyString(t.name) + ": " + pyList(t.dimNames) + ",\n";
  };
  for (const TensorDecl &t : v.inputs)
    storage(t);
  for (const TensorDecl &t : v.params)
    storage(t);
  storage(v.output);
  if (v.state)
    storage(*v.state);
  out += "}\n";
  out += "# tensor name -> declared dtype (the reference accepts any)\n";
  out += "DTYPES = {\n";
  auto dtype = [&](const TensorDecl &t) {
    out += "    " + pyString(t.name) + ": \"" + dtypeName(t.resolvedDType) + "\",\n";
  };
  for (const TensorDecl &t : v.inputs)
    dtype(t);
  for (const TensorDecl &t : v.params)
    dtype(t);
  dtype(v.output);
  out += "}\n";
  std::vector<std::string> inputs, params;
  for (const TensorDecl &t : v.inputs)
    inputs.push_back(t.name);
  for (const TensorDecl &t : v.params)
    params.push_back(t.name);
  out += "INPUTS = " + pyList(inputs) + "\n";
  out += "PARAMS = " + pyList(params) + "\n";
  out += "OUTPUT = " + pyString(v.output.name) + "\n";
  out += "Q, K, V = " + pyString(v.inputs[v.q].name) + ", " + pyString(v.inputs[v.k].name) +
         ", " + pyString(v.inputs[v.v].name) + "\n";
}

void emitExtents(const Variant &v, std::string &out) {
  out += "\n\ndef _extents(t, sizes):\n";
  out += "    \"\"\"The extent of every dim, as resolveDimSizes gives it.\"\"\"\n";
  out += "    n = {}\n";
  for (const DimDecl &d : v.dims) {
    std::string key = "n[" + pyString(d.name) + "]";
    switch (d.kind) {
    case DimDecl::Kind::Dynamic:
      out += "    " + key + " = _dynamic_extent(t, sizes, " + pyString(d.name) + ")\n";
      break;
    case DimDecl::Kind::Static:
      out += "    " + key + " = " + std::to_string(d.staticSize) + "\n";
      break;
    case DimDecl::Kind::Alias:
      out += "    " + key + " = n[" + pyString(d.source) + "]\n";
      break;
    case DimDecl::Kind::Derived:
      out += "    " + key + " = _derived_extent(n, " + pyString(d.name) + ", " +
             pyString(d.source) + ", " + std::to_string(d.divisor) + ")\n";
      break;
    }
  }
  out += "    _check_extents(t, sizes, n)\n";
  out += "    return n\n";
}

/// `def NAME(ARGS):` computing `e` (converted to float when `toFloat`), with a comment that
/// names the spec line.
void emitExprFunction(const Variant &v, const std::string &name, const std::string &args,
                      const std::string &comment, const Expr *e, bool toFloat,
                      std::string &out) {
  out += "\n\ndef " + name + "(" + args + "):\n";
  for (const std::string &line : wrap(commentSafe(comment), 92))
    out += "    # " + line + "\n";
  if (!e) {
    out += "    return _bool(True, dev)  # no mask: every key is visible\n";
    return;
  }
  std::vector<std::string> lines = ExprEmitter(v).function(*e, toFloat);
  for (const std::string &line : lines)
    if (line.compare(0, 4, "del ") == 0) {
      out += "    # `del` frees each full-size [B, H, rows, J] temporary after its last use\n";
      break;
    }
  for (const std::string &line : lines)
    out += "    " + line + "\n";
}

void emitFinish(const Variant &v, const std::string &I, const std::string &DV, std::string &out);

/// The loop over chunks of query rows [i0, i1) and each chunk's mask `allowed`.
void emitQueryChunks(const std::string &I, std::string &out) {
  out += "    for i0 in range(0, I, rows):\n";
  out += "        i1 = min(I, i0 + rows)\n";
  out += "        shape = (B, H, i1 - i0, J)\n";
  out += "        ix[" + I + "] = torch.arange(i0, i1, device=dev).view(1, 1, i1 - i0, 1)\n";
  out += "        allowed = torch.broadcast_to(_mask(ix, extents, p, dev), shape)\n";
}

/// A chunk's softmax of the scores `s` (rows with no allowed key: 0 and -inf; any_key already
/// computed), its rows into `o` and its lse into `lse`, at `indent`.
void emitSoftmaxRows(const std::string &indent, const std::string &o, const std::string &lse,
                     std::string &out) {
  out += indent + "m = torch.where(allowed, s, -math.inf).amax(dim=-1)\n";
  out += indent + "m = torch.where(any_key, m, 0.0)  # rows with no key: no -inf - -inf\n";
  out += indent + "w = torch.where(allowed, torch.exp(s - m.unsqueeze(-1)), 0.0)\n";
  out += indent + "l = w.sum(dim=-1)\n";
  out += indent + o + " = _pv(w, v, p_dtype) / torch.where(any_key, l, 1.0).unsqueeze(-1)\n";
  out += indent + lse + " = torch.where(any_key, m + torch.log(l), -math.inf)\n";
}

/// Several scores (Variant::mix): each score's softmax rows y_n over the same mask and values,
/// its lse in lse[n], then o = mix(y_0, ..., y_n) and the rest as with one score.
void emitMixedScores(const Variant &v, const std::string &I, const std::string &DV,
                     std::string &out) {
  out += "    per_score = [  # the q, k^T and score function of each score\n";
  for (size_t n = 0; n < v.scores.size(); ++n) {
    std::string suffix = n ? std::to_string(n) : "";
    out += "        (q" + suffix + ", kt" + suffix + ", _score" + suffix + "),\n";
  }
  out += "    ]\n";
  out += "    ys = [torch.zeros((B, H, I, DV), dtype=torch.float64, device=dev) "
         "for _ in range(SCORES)]\n";
  out += "    lse = torch.empty((SCORES, B, H, I), dtype=torch.float64, device=dev)\n";
  out += "    rows = max(1, CHUNK_ELEMENTS // (B * H * J))\n";
  emitQueryChunks(I, out);
  out += "        any_key = allowed.any(dim=-1)\n";
  out += "        # one softmax per score, each with its own statistics\n";
  out += "        for n, (qn, ktn, score) in enumerate(per_score):\n";
  out += "            s = torch.broadcast_to(score(qn[:, :, i0:i1] @ ktn, ix, extents, p, dev), "
         "shape)\n";
  emitSoftmaxRows("            ", "ys[n][:, :, i0:i1]", "lse[n, :, :, i0:i1]", out);
  out += "            del s, w\n";
  out += "        del allowed\n";
  out += "    # the mix of the scores' rows, element by element\n";
  out += "    ixm = dict(ix)\n";
  out += "    ixm[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
  out += "    ixm[" + DV + "] = torch.arange(DV, device=dev).view(1, 1, 1, DV)\n";
  out += "    ys = [_grad_rounded(y, p_dtype) for y in ys]  # a 16-bit kernel's dy_n\n";
  out += "    o = torch.broadcast_to(_mix(*ys, ixm, extents, p, dev), ys[0].shape)\n";
  emitFinish(v, I, DV, out);
}

void emitReference(const Variant &v, std::string &out) {
  const TensorDecl &q = v.inputs[v.q], &k = v.inputs[v.k], &val = v.inputs[v.v];
  const std::string B = pyString(v.dims[v.batchDim].name), H = pyString(v.dims[v.qHeadDim].name),
                    I = pyString(v.dims[v.qSeqDim].name), J = pyString(v.dims[v.kvSeqDim].name),
                    DV = pyString(v.dims[v.valueDim].name),
                    HK = pyString(v.dims[v.kvHeadDim].name);
  bool gqa = v.kvHeadDim != v.qHeadDim;

  out += "\n\ndef reference(t: dict, sizes: dict = None, p_dtype=None) -> tuple:\n";
  out += "    \"\"\"(o, lse) of variant " + v.name +
         " for the tensors `t` (see the module docstring).\n\n";
  out += "    `sizes` (dim or extent name -> int) is needed only for a dynamic dim that is in no\n";
  out += "    tensor; any size given must agree with the tensors. `p_dtype` (e.g.\n";
  out += "    torch.bfloat16): the weights are rounded to it before they meet v, as a 16-bit\n";
  out += "    kernel rounds P for its P V product (softmax: exp(s - m), before the division by l):\n";
  out += "    With several scores, the gradient of each score's rows (dy_n) is rounded to it too,\n";
  out += "    as the kernel's backward rounds them: a reference of the kernel's own precision, for\n";
  out += "    judging its errors.\n";
  out += "    \"\"\"\n";
  out += "    sizes = sizes or {}\n";
  bool quantised = v.inputs[v.k].scaleParam >= 0 || v.inputs[v.v].scaleParam >= 0;
  if (v.paged || quantised)
    out += "    t = dict(t)  # k and v are replaced below; the caller's dict stays as it was\n";
  if (v.paged) {
    // Gather each sequence's pages back into contiguous tensors in the declared order.
    const std::string table = pyString(v.params[v.paged->tableParam].name);
    out += "    # paged K/V: pool[table[b, j // P], ..., j % P, ...] gathered into contiguous\n";
    out += "    # tensors in their declared order (page ids clamped to the pool, like the kernel)\n";
    for (int index : {v.k, v.v}) {
      const TensorDecl &tensor = v.inputs[index];
      std::vector<int> rest = v.pagedStorage(tensor);
      rest.erase(rest.begin());
      // pool[table] has axes [b, n, rest...]; move the slot next to n, merge them into j.
      std::vector<int> perm1 = {0, 1}, merged = {v.batchDim, v.kvSeqDim};
      for (size_t r = 0; r < rest.size(); ++r)
        if (rest[r] == Variant::kSlotAxis)
          perm1.push_back(int(2 + r));
      for (size_t r = 0; r < rest.size(); ++r)
        if (rest[r] != Variant::kSlotAxis) {
          perm1.push_back(int(2 + r));
          merged.push_back(rest[r]);
        }
      std::vector<int> perm2;
      for (int d : tensor.dims)
        perm2.push_back(int(std::find(merged.begin(), merged.end(), d) - merged.begin()));
      const std::string name = pyString(tensor.name);
      out += "    pool = t[" + name + "]\n";
      out += "    g = pool[t[" + table + "].long().clamp(0, pool.shape[0] - 1)].permute(" +
             intList(perm1) + ")\n";
      out += "    t[" + name + "] = g.reshape(g.shape[0], g.shape[1] * g.shape[2], *g.shape[3:])" +
             ".permute(" + intList(perm2) + ")\n";
    }
  }
  // Quantised k / v: stored value x scale, the scale broadcast to the tensor's storage order.
  for (int index : {v.k, v.v}) {
    const TensorDecl &tensor = v.inputs[index];
    if (tensor.scaleParam < 0)
      continue;
    const TensorDecl &scale = v.params[size_t(tensor.scaleParam)];
    std::vector<int> order(scale.dims.size());
    for (size_t a = 0; a < order.size(); ++a)
      order[a] = int(a);
    std::sort(order.begin(), order.end(),
              [&](int x, int y) { return tensor.scaleAxes[x] < tensor.scaleAxes[y]; });
    std::string shape;
    for (size_t pos = 0; pos < tensor.dims.size(); ++pos) {
      std::string extent = "1";
      for (size_t a = 0; a < scale.dims.size(); ++a)
        if (tensor.scaleAxes[a] == int(pos))
          extent = "sc.shape[" + std::to_string(a) + "]";
      shape += (pos ? ", " : "") + extent;
    }
    const std::string name = pyString(tensor.name);
    out += "    # " + commentSafe(tensor.name) + " is stored " + dtypeName(tensor.resolvedDType) +
           ": dequantised as stored value x " + commentSafe(scale.name) + "\n";
    out += "    sc = t[" + pyString(scale.name) + "].to(device=t[" + name +
           "].device, dtype=torch.float64)\n";
    out += "    sc = sc.permute(" + intList(order) + ").reshape(" + shape + ")\n";
    if (tensor.scaleGroup > 1)
      out += "    sc = sc.repeat_interleave(" + std::to_string(tensor.scaleGroup) + ", dim=" +
             std::to_string(tensor.dims.size() - 1) + ")\n";
    if (tensor.resolvedDType == DType::I4) {
      out += "    # i4: two signed values per byte along the last axis, low nibble first\n";
      out += "    x = t[" + name + "].view(torch.uint8).to(torch.int16)\n";
      out += "    x = torch.stack(((x & 15) ^ 8, (x >> 4) ^ 8), dim=-1).flatten(-2) - 8\n";
      out += "    t[" + name + "] = x.to(torch.float64) * sc\n";
    } else {
      out += "    t[" + name + "] = t[" + name + "].to(torch.float64) * sc\n";
    }
  }
  out += "    n = _extents(t, sizes)\n";
  out += "    dev = t[Q].device\n";
  out += "    B, H, I, J, DV = n[" + B + "], n[" + H + "], n[" + I + "], n[" + J + "], n[" + DV +
         "]\n";
  out += "    # q, k and v in float64, permuted to the canonical order q [b, h, i, d],\n";
  out += "    # k [b, hk, j, d], v [b, hk, j, dv]\n";
  auto load = [&](const char *var, const TensorDecl &t) {
    out += std::string("    ") + var + " = t[" + pyString(t.name) +
           "].to(device=dev, dtype=torch.float64).permute(" + intList(v.canonicalPerm(t)) +
           ")\n";
  };
  load("q", q);
  load("k", k);
  load("v", val);
  const size_t scores = v.scores.size();
  for (size_t n = 1; n < scores; ++n) {  // several scores: each one's q and k
    load(("q" + std::to_string(n)).c_str(), v.inputs[size_t(v.scoreQ[n])]);
    load(("k" + std::to_string(n)).c_str(), v.inputs[size_t(v.scoreK[n])]);
  }
  if (v.featureDim >= 0) {  // Performer's random features: rows projected onto w [m, d]
    out += "    w = t[" + pyString(v.params[size_t(v.projParam)].name) +
           "].to(device=dev, dtype=torch.float64)  # the projection [m, d]\n";
    for (const char *var : {"q", "k"}) {
      std::string x = var;
      out += "    sq = (" + x + " * " + x + ").sum(-1, keepdim=True)  # the rows' sums of " +
             "squares\n";
      out += "    " + x + " = torch.broadcast_to(_feature_" + x + "(" + x + " @ w.T, sq, dev), " +
             x + ".shape[:-1] + w.shape[:1])  # [.., m]\n";
    }
  } else {
    for (auto [var, map] : {std::pair{"q", v.featureQ}, std::pair{"k", v.featureK}})
      if (map)
        out += std::string("    ") + var + " = torch.broadcast_to(_feature_" + var + "(" + var +
               ", dev), " + var + ".shape)  # the feature map, elementwise\n";
  }
  if (gqa) {
    out += "    kv_head = torch.arange(H, device=dev) // GROUP  # the kv head of each query head\n";
    out += "    k = k[:, kv_head]  # [b, h, j, d]\n";
    out += "    v = v[:, kv_head]  # [b, h, j, dv]\n";
    for (size_t n = 1; n < scores; ++n)
      out += "    k" + std::to_string(n) + " = k" + std::to_string(n) + "[:, kv_head]\n";
  }
  if (v.qkGroupDim >= 0) {
    out += "    qk_head = torch.arange(H, device=dev) // " + std::to_string(v.qkGroup) +
           "  # q and k are shared by groups of heads\n";
    out += "    q = q[:, qk_head]  # [b, h, i, d]\n";
    out += "    k = k[:, qk_head]  # [b, h, j, d]\n";
  }
  out += "    kt = k.transpose(-1, -2)  # [b, h, d, j]\n";
  for (size_t n = 1; n < scores; ++n)
    out += "    kt" + std::to_string(n) + " = k" + std::to_string(n) + ".transpose(-1, -2)\n";
  out += "    # params in float64 (int64 for i32 ones), in their storage order\n";
  out += "    p = {}\n";
  for (const TensorDecl &t : v.params)
    out += "    p[" + pyString(t.name) + "] = t[" + pyString(t.name) + "].to(device=dev, dtype=" +
           (isFloat(t.resolvedDType) ? "torch.float64" : "torch.int64") + ")\n";
  out += "    extents = {name: _i64(size, dev) for name, size in n.items()}\n";
  out += "    # index grids that broadcast to [B, H, rows, J]; q seq is set per chunk\n";
  out += "    ix = {}\n";
  out += "    ix[" + B + "] = torch.arange(B, device=dev).view(B, 1, 1, 1)\n";
  if (gqa)
    out += "    ix[" + HK + "] = kv_head.view(1, H, 1, 1)\n";
  out += "    ix[" + H + "] = torch.arange(H, device=dev).view(1, H, 1, 1)\n";
  if (v.qkGroupDim >= 0)
    out += "    ix[" + pyString(v.dims[v.qkGroupDim].name) + "] = qk_head.view(1, H, 1, 1)\n";
  out += "    ix[" + J + "] = torch.arange(J, device=dev).view(1, 1, 1, J)\n";
  if (v.mix) {  // several scores: one softmax per score over the same keys, then the mix
    emitMixedScores(v, I, DV, out);
    return;
  }
  out += "    o = torch.zeros((B, H, I, DV), dtype=torch.float64, device=dev)\n";
  bool softmax = v.norm == Norm::Softmax;
  if (softmax)
    out += "    lse = torch.empty((B, H, I), dtype=torch.float64, device=dev)\n";
  if (v.decay) {
    out += std::string("    # the ") + (softmax ? "forget gate" : "recurrence's decay") +
           ": key j's weight for query i is gamma(j + 1) ... gamma(i) =\n";
    out += "    # exp(cum[i] - cum[j]) with cum[t] = log gamma(0) + ... + log gamma(t)\n";
    out += "    ixd = dict(ix)\n";
    out += "    ixd[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
    out += "    gamma = torch.broadcast_to(_decay(ixd, extents, p, dev), (B, H, I, 1))[..., 0]\n";
    out += "    cum = torch.cumsum(torch.log(gamma), dim=-1)\n";
    out += "    cum_k = cum[:, :, torch.arange(J, device=dev).clamp(max=I - 1)]  # keys past I are "
           "masked\n";
    if (v.strict)
      out += "    cum_q = cum - torch.log(gamma)  # strictly causal: query i reads the state "
             "before step i\n";
    else
      out += "    cum_q = cum\n";
  }
  if (v.gate) {
    const std::string D = pyString(v.dims[v.headDim].name);
    out += "    # the gate: channel c of key j reaches query i decayed by gate(j + 1, c) ...\n";
    out += "    # gate(i, c) = exp(cg[i, c] - cg[j, c]), cg[t, c] = log gate(0, c) + ... + log gate(t, c)\n";
    out += "    ixg = dict(ix)\n";
    out += "    ixg[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
    out += "    ixg[" + D + "] = torch.arange(n[" + D + "], device=dev).view(1, 1, 1, n[" + D + "])\n";
    out += "    gate = torch.broadcast_to(_gate(ixg, extents, p, dev), (B, H, I, n[" + D + "]))\n";
    out += "    cg = torch.cumsum(torch.log(gate), dim=2)\n";
    out += "    cg_k = cg[:, :, torch.arange(J, device=dev).clamp(max=I - 1)]  # keys past I are "
           "masked\n";
    if (v.strict)
      out += "    cg_q = cg - torch.log(gate)  # strictly causal: query i reads the state "
             "before step i\n";
    else
      out += "    cg_q = cg\n";
    out += "    rows = max(1, CHUNK_ELEMENTS // (B * H * J * n[" + D + "]))\n";
  } else {
    out += "    rows = max(1, CHUNK_ELEMENTS // (B * H * J))\n";
  }
  if (v.rowNormQ || v.rowNormK) {
    out += "    # the row norms of the score: dot(q, q) of each query, dot(k, k) of each key\n";
    out += "    qq = (q * q).sum(dim=-1, keepdim=True)  # [b, h, i, 1]\n";
    out += "    kk = (k * k).sum(dim=-1)[:, :, None, :]  # [b, h, 1, j]\n";
  }
  emitQueryChunks(I, out);
  if (v.gate)  // masked keys (j > i) may overflow here: `allowed` drops them
  {
    out += "        e = torch.exp(cg_q[:, :, i0:i1, None, :] - cg_k[:, :, None, :, :])\n";
    out += "        dot = (q[:, :, i0:i1, None, :] * k[:, :, None, :, :] * e).sum(-1)\n";
    out += "        del e\n";
  }
  else
    out += "        dot = q[:, :, i0:i1] @ kt\n";
  if (v.rowNormQ || v.rowNormK)
    out += "        s = torch.broadcast_to(_score(dot, ix, extents, p, dev, qq[:, :, i0:i1], kk), "
           "shape)\n";
  else
    out += "        s = torch.broadcast_to(_score(dot, ix, extents, p, dev), shape)\n";
  out += "        del dot\n";
  switch (v.norm) {
  case Norm::Softmax:
    out += "        any_key = allowed.any(dim=-1)\n";
    if (v.decay)  // exp(s) decays: s gains the log decays (0 past the query: masked there)
      out += "        s = s + torch.where(ix[" + J + "] <= ix[" + I +
             "], cum[:, :, i0:i1, None] - cum_k[:, :, None, :], 0.0)\n";
    emitSoftmaxRows("        ", "o[:, :, i0:i1]", "lse[:, :, i0:i1]", out);
    break;
  case Norm::None:
  case Norm::Sum:
    if (v.decay)
      out += "        s = s * torch.exp(cum_q[:, :, i0:i1, None] - cum_k[:, :, None, :])\n";
    out += "        w = torch.where(allowed, s, 0.0)\n";
    if (v.norm == Norm::Sum) {  // divided by the weights' sum; a sum of 0 leaves the row 0
      out += "        den = w.sum(dim=-1, keepdim=True)\n";
      out += "        pv = _pv(w, v, p_dtype)\n";
      out += "        o[:, :, i0:i1] = torch.where(den == 0, 0.0, pv / "
             "torch.where(den == 0, 1.0, den))\n";
    } else {
      out += "        o[:, :, i0:i1] = _pv(w, v, p_dtype)\n";
    }
    break;
  case Norm::Sigmoid:
    out += "        w = torch.where(allowed, _sigmoid(s), 0.0)\n";
    out += "        o[:, :, i0:i1] = _pv(w, v, p_dtype)\n";
    break;
  case Norm::Relu2:
    out += "        r = _relu(s)\n";
    out += "        w = torch.where(allowed, r * r, 0.0)\n";
    out += "        o[:, :, i0:i1] = _pv(w, v, p_dtype)\n";
    break;
  }
  out += std::string("        del allowed, s, w") + (v.norm == Norm::Relu2 ? ", r" : "") +
         "  # free this chunk's blocks before the next one\n";
  if (v.bonus) {
    const std::string D = pyString(v.dims[v.headDim].name);
    out += "    # the bonus: the current token's term, score(i, i) of the dot\n";
    out += "    # sum_d q_i k_i bonus(i, d), times v_i\n";
    out += "    ixb = dict(ix)\n";
    out += "    ixb[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
    out += "    ixb[" + J + "] = ixb[" + I + "]\n";
    out += "    ixu = dict(ixb)\n";
    out += "    ixu[" + D + "] = torch.arange(n[" + D + "], device=dev).view(1, 1, 1, n[" + D +
           "])\n";
    out += "    u = torch.broadcast_to(_bonus(ixu, extents, p, dev), (B, H, I, n[" + D + "]))\n";
    out += "    bdot = (q * k[:, :, :I] * u).sum(dim=-1, keepdim=True)\n";
    out += "    o = o + torch.broadcast_to(_score(bdot, ixb, extents, p, dev), (B, H, I, 1)) * "
           "v[:, :, :I]\n";
  }
  if (v.state) {
    // The initial state's term c_i exp(cum[i]) fq(q_i) S0, and the final state
    // exp(cum[T-1]) S0 + sum_{j < min(I, J)} exp(cum[T-1] - cum[j]) fk(k_j) v_j^T.
    std::vector<int> sp = v.statePerm(), back(4, 0);
    for (int c = 0; c < 4; ++c)
      back[sp[c]] = c;
    out += "    # the state [b, h, d, dv]: its share of every row, then the state after row I - 1\n";
    out += "    s0 = t[STATE].to(device=dev, dtype=torch.float64).permute(" + intList(sp) + ")\n";
    out += "    ixc = dict(ix)\n";
    out += "    ixc[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
    out += "    c = torch.broadcast_to(_query_scale(ixc, extents, p, dev), (B, H, I, 1))\n";
    if (v.decay)
      out += "    c = c * torch.exp(cum_q)[..., None]\n";
    out += std::string("    o = o + c * (") + (v.gate ? "(q * torch.exp(cg_q))" : "q") + " @ s0)\n";
    if (v.decay) {
      out += "    last = cum[:, :, I - 1]\n";
      out += "    w = torch.exp(last[..., None] - cum_k)  # [b, h, j]\n";
    } else {
      out += "    last = torch.zeros((B, H), dtype=torch.float64, device=dev)\n";
      out += "    w = torch.ones((B, H, J), dtype=torch.float64, device=dev)\n";
    }
    if (v.keyScale) {
      out += "    kscale = _key_scale(ix, extents, p, dev)  # reads neither i nor dot\n";
      out += "    w = w * torch.broadcast_to(kscale, (B, H, 1, J))[:, :, 0]\n";
    }
    out += "    w = torch.where(torch.arange(J, device=dev) < min(I, J), w, 0.0)[..., None]\n";
    if (v.gate) {  // per channel: exp(cg[T-1, c] - cg[j, c]), and S0's rows by exp(cg[T-1, c])
      out += "    w = w * torch.exp(cg[:, :, I - 1, None, :] - cg_k)\n";
      out += "    s0 = s0 * torch.exp(cg[:, :, I - 1])[..., None]\n";
    }
    out += "    s1 = torch.exp(last)[..., None, None] * s0 + (k * w).transpose(-1, -2) @ v\n";
    out += "    s1 = s1.permute(" + intList(back) + ").contiguous()  # to " +
           commentSafe(v.state->name) + "'s storage order\n";
  }
  emitFinish(v, I, DV, out);
}

/// The rmsnorm, the skip term and the output map of the rows `o`, then o to the output's
/// storage order and the return (o, lse[, s1]).
void emitFinish(const Variant &v, const std::string &I, const std::string &DV, std::string &out) {
  std::vector<int> perm = v.canonicalPerm(v.output), inverse(4, 0);
  for (int c = 0; c < 4; ++c)
    inverse[perm[c]] = c;
  bool softmax = v.norm == Norm::Softmax;
  if (v.rmsEps) {
    char eps[32];
    std::snprintf(eps, sizeof eps, "%.17g", *v.rmsEps);
    out += "    # rmsnorm over the value dim\n";
    out += std::string("    o = o / torch.sqrt((o * o).mean(dim=-1, keepdim=True) + ") + eps +
           ")\n";
  }
  if (v.skip) {
    out += "    # the skip term of v at the query position: o[b, h, i, e] " +
           std::string(v.skipNegate ? "-" : "+") + "= skip(x = v[b, h, i, e])\n";
    out += "    ixs = dict(ix)\n";
    out += "    ixs[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
    out += "    ixs[" + DV + "] = torch.arange(DV, device=dev).view(1, 1, 1, DV)\n";
    out += std::string("    o = o ") + (v.skipNegate ? "-" : "+") +
           " torch.broadcast_to(_skip(v[:, :, :I], ixs, extents, p, dev), o.shape)\n";
  }
  if (v.outputMap) {
    out += "    # the output map of every element: o[b, h, i, e] = output(y = o[b, h, i, e])\n";
    out += "    ixo = dict(ix)\n";
    out += "    ixo[" + I + "] = torch.arange(I, device=dev).view(1, 1, I, 1)\n";
    out += "    ixo[" + DV + "] = torch.arange(DV, device=dev).view(1, 1, 1, DV)\n";
    out += "    o = torch.broadcast_to(_output(o, ixo, extents, p, dev), o.shape)\n";
  }
  out += "    o = o.permute(" + intList(inverse) + ").contiguous()  # to " +
         commentSafe(v.output.name) + "'s storage order\n";
  out += std::string("    return o, ") + (softmax ? "lse" : "None") + (v.state ? ", s1" : "") +
         "\n";
}

}  // namespace

std::string emitTorchReference(const Variant &v, const std::string &specPath) {
  std::string out;
  emitHeader(v, specPath, out);
  out += kHelpers;
  emitExtents(v, out);
  std::string at = specPath + ":";
  const ScoreDecl &score = v.scores[0];
  emitExprFunction(v, "_mask", "ix, n, p, dev",
                   v.mask ? at + std::to_string(v.maskLoc.line) + ": mask " + specText(*v.mask)
                          : "no mask in " + specPath,
                   v.mask.get(), false, out);
  for (size_t n = 0; n < v.scores.size(); ++n)
    emitExprFunction(v, "_score" + (n ? std::to_string(n) : std::string()),
                     v.rowNormQ || v.rowNormK ? "dot, ix, n, p, dev, qq=None, kk=None"
                                              : "dot, ix, n, p, dev",
                     at + std::to_string(v.scores[n].loc.line) + ": score " + v.scores[n].name +
                         " = " + specText(*v.scores[n].expr),
                     v.scores[n].expr.get(), true, out);
  if (v.mix) {
    std::string ys;
    for (size_t n = 0; n < v.scores.size(); ++n)
      ys += "y" + std::to_string(n) + ", ";
    emitExprFunction(v, "_mix", ys + "ix, n, p, dev",
                     at + std::to_string(v.outputExpr->loc.line) + ": the mix " +
                         specText(*v.mix) + " (y<n>: attend of score n)",
                     v.mix, true, out);
  }
  if (v.gate)
    emitExprFunction(v, "_gate", "ix, n, p, dev",
                     at + std::to_string(v.gateLoc.line) + ": gate " + specText(*v.gate),
                     v.gate.get(), true, out);
  if (v.bonus)
    emitExprFunction(v, "_bonus", "ix, n, p, dev",
                     at + std::to_string(v.bonusLoc.line) + ": bonus " + specText(*v.bonus),
                     v.bonus.get(), true, out);
  if (v.state) {  // the state's terms use the score's query and key factors separately
    std::string line = at + std::to_string(score.loc.line) + ": score " + score.name + " = " +
                       specText(*score.expr);
    emitExprFunction(v, "_query_scale", "ix, n, p, dev",
                     line + " (its factors that do not read " + v.dims[v.kvSeqDim].name + ")",
                     v.queryScale.get(), true, out);
    if (v.keyScale)
      emitExprFunction(v, "_key_scale", "ix, n, p, dev",
                       line + " (its factors that read " + v.dims[v.kvSeqDim].name + ")",
                       v.keyScale.get(), true, out);
  }
  if (v.skip)
    emitExprFunction(v, "_skip", "x, ix, n, p, dev",
                     at + std::to_string(v.outputExpr->loc.line) + ": the skip term " +
                         specText(*v.skip) + " (x: the values at the query position)",
                     v.skip, true, out);
  if (v.outputMap)
    emitExprFunction(v, "_output", "y, ix, n, p, dev",
                     at + std::to_string(v.outputExpr->loc.line) + ": output " +
                         commentSafe(v.output.name) + " = " + specText(*v.outputExpr) +
                         " (y: attend's result)",
                     v.outputExpr.get(), true, out);
  if (v.decay)
    emitExprFunction(v, "_decay", "ix, n, p, dev",
                     at + std::to_string(v.decayLoc.line) + ": decay " + specText(*v.decay),
                     v.decay.get(), true, out);
  for (const FeatureDecl &f : v.features) {
    std::string names;
    for (const std::string &t : f.tensors)
      names += (names.empty() ? "" : ", ") + t;
    for (auto [var, map] : {std::pair{"q", v.featureQ}, std::pair{"k", v.featureK}})
      if (map == f.expr.get())
        emitExprFunction(v, std::string("_feature_") + var,
                         v.featureDim >= 0 ? "xp, sq, dev" : "x, dev",
                         at + std::to_string(f.loc.line) + ": feature " + names + " = " +
                             specText(*f.expr),
                         f.expr.get(), true, out);
  }
  emitReference(v, out);
  return out;
}

}  // namespace attnc
