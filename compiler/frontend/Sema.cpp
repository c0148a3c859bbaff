// Semantic analysis: names, dims, the attention structure (which inputs are q, k, v and which
// dim plays which role), and the types of the score, mask and output expressions.
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Parser.h"
#include "dialect/RecurrenceForm.h"

#include <cmath>

#include <algorithm>
#include <map>
#include <optional>

namespace attnc {
namespace {

bool isNumeric(ValueType t) { return t == ValueType::Int || t == ValueType::Float; }

/// Result type of mixing two numbers: int only if both are.
ValueType join(ValueType a, ValueType b) {
  return a == ValueType::Int && b == ValueType::Int ? ValueType::Int : ValueType::Float;
}

bool isIterationRole(DimRole r) {
  return r == DimRole::Batch || r == DimRole::QHead || r == DimRole::KVHead ||
         r == DimRole::QKHead || r == DimRole::QSeq ||
         r == DimRole::KVSeq;
}

bool isLiteralZero(const Expr &e) {
  return (e.kind == Expr::Kind::IntLit && e.intValue == 0) ||
         (e.kind == Expr::Kind::FloatLit && e.floatValue == 0);
}

/// "1 dim", "2 dims", "1 index", "3 indices".
std::string count(size_t n, const std::string &noun) {
  std::string plural = noun == "index" ? "indices" : noun + "s";
  return std::to_string(n) + " " + (n == 1 ? noun : plural);
}

struct BuiltinInfo {
  const char *name;
  Builtin id;
  size_t arity;
};

const BuiltinInfo kBuiltins[] = {
    {"exp", Builtin::Exp, 1},         {"log", Builtin::Log, 1},       {"tanh", Builtin::Tanh, 1},
    {"sigmoid", Builtin::Sigmoid, 1}, {"sqrt", Builtin::Sqrt, 1},     {"rsqrt", Builtin::Rsqrt, 1},
    {"relu", Builtin::Relu, 1},       {"abs", Builtin::Abs, 1},       {"min", Builtin::Min, 2},
    {"max", Builtin::Max, 2},         {"select", Builtin::Select, 3}, {"size", Builtin::Size, 1},
    {"dot", Builtin::Dot, 2},         {"attend", Builtin::Attend, 2}, {"floor", Builtin::Floor, 1},
};

const BuiltinInfo *findBuiltin(const std::string &name) {
  for (const BuiltinInfo &b : kBuiltins)
    if (name == b.name)
      return &b;
  return nullptr;
}

struct Symbol {
  enum class Kind { Dim, Extent, Input, Param, Score, Output, State, Let } kind;
  int index;  // into dims (Dim, Extent), inputs, params, scores or lets
  SourceLoc loc;
};

const char *kindName(Symbol::Kind k) {
  switch (k) {
  case Symbol::Kind::Dim:
    return "a dim";
  case Symbol::Kind::Extent:
    return "an extent name";
  case Symbol::Kind::Input:
    return "an input";
  case Symbol::Kind::Param:
    return "a param";
  case Symbol::Kind::Score:
    return "the score";
  case Symbol::Kind::State:
    return "the state";
  case Symbol::Kind::Output:
    return "the output";
  case Symbol::Kind::Let:
    return "a let";
  }
  return "a name";
}

std::string at(SourceLoc loc) {
  return "line " + std::to_string(loc.line) + ", column " + std::to_string(loc.col);
}

/// Where an expression is: rules differ (dot only in the score, the score's name not in the mask).
enum class Context { Score, Mask, Feature, Decay, Gate, Bonus, Skip, Output };

/// A deep copy of a checked expression, annotations included.
ExprPtr cloneExpr(const Expr &e) {
  auto out = std::make_unique<Expr>();
  out->kind = e.kind;
  out->loc = e.loc;
  out->length = e.length;
  out->name = e.name;
  out->op = e.op;
  out->intValue = e.intValue;
  out->floatValue = e.floatValue;
  for (const ExprPtr &a : e.args)
    out->args.push_back(cloneExpr(*a));
  out->type = e.type;
  out->res = e.res;
  out->dimIndex = e.dimIndex;
  out->paramIndex = e.paramIndex;
  out->builtin = e.builtin;
  out->clamp = e.clamp;
  out->attendScore = e.attendScore;
  out->rowNorm = e.rowNorm;
  return out;
}

void collectCalls(Expr &e, const char *name, std::vector<Expr *> &found) {
  if (e.kind == Expr::Kind::Call && e.name == name)
    found.push_back(&e);
  for (ExprPtr &a : e.args)
    collectCalls(*a, name, found);
}

class VariantChecker {
public:
  VariantChecker(Variant &v, const SpecFile &file, Diagnostic &diag)
      : v_(v), file_(file), diag_(diag) {}

  bool run() {
    reset();
    return checkSupported() && declareNames() && substituteLets() && checkDims() &&
           checkTensors() && findAttention() && inferRoles() && checkDTypes() &&
           checkScoreInputs() && checkPaged() &&
           checkScore() && checkMask() && checkFeatures() && checkRowNorms() &&
           checkOutputExpr() &&
           checkRecurrence() && checkDecay() && checkGate() && checkBonus() && checkState() &&
           checkOutputForm() && checkSkip() && checkQKGroups() && checkNormalisers();
  }

private:
  Variant &v_;
  const SpecFile &file_;
  Diagnostic &diag_;
  std::map<std::string, Symbol> symbols_;
  std::vector<std::optional<int64_t>> staticExtent_;  // per dim, when known at compile time
  bool channelIndex_ = false;  // checking the gate: params may be indexed by the head dim
  bool skipContext_ = false;   // checking a skip term: params by the value dim, v at i
  bool outputContext_ = false; // checking an output map: params by the value dim

  bool fail(SourceLoc loc, size_t length, std::string message, std::string hint = "") {
    diag_.file = file_.path;
    diag_.loc = loc;
    diag_.length = uint32_t(std::max<size_t>(1, length));
    diag_.message = std::move(message);
    diag_.hint = std::move(hint);
    return false;
  }
  bool fail(const Expr &e, std::string message, std::string hint = "") {
    return fail(e.loc, e.length, std::move(message), std::move(hint));
  }
  bool failAtName(const TensorDecl &t, std::string message, std::string hint = "") {
    return fail(t.loc, t.name.size(), std::move(message), std::move(hint));
  }
  std::string text(const Expr &e) const { return sourceSnippet(file_.text, e.loc, e.length); }

  const TensorDecl &qT() const { return v_.inputs[v_.q]; }
  const TensorDecl &kT() const { return v_.inputs[v_.k]; }
  const TensorDecl &vT() const { return v_.inputs[v_.v]; }

  /// Makes checking idempotent: a second checkSpec starts from the parser's state.
  void reset() {
    v_.q = v_.k = v_.v = -1;
    v_.batchDim = v_.qHeadDim = v_.kvHeadDim = v_.qSeqDim = v_.kvSeqDim = -1;
    v_.headDim = v_.valueDim = -1;
    v_.group = 1;
    v_.qkGroupDim = -1;
    v_.qkGroup = 1;
    v_.featureDim = v_.projParam = -1;
    v_.recurrence = false;
    v_.outputMap = false;
    v_.mix = nullptr;
    v_.scoreQ.clear();
    v_.scoreK.clear();
    v_.rowNormQ = v_.rowNormK = false;
    for (DimDecl &d : v_.dims) {
      d.role = DimRole::None;
      d.sourceIndex = -1;
    }
  }

  // ---- structure ----------------------------------------------------------------------------

  bool checkSupported() {
    if (v_.scores.empty())
      return fail(v_.loc, v_.name.size(), "variant '" + v_.name + "' has no score",
                  "add one, e.g. 'score s = dot(q, k) * rsqrt(d)'");
    if (!v_.hasOutput)
      return fail(v_.loc, v_.name.size(), "variant '" + v_.name + "' has no output",
                  "add one, e.g. 'output o[b, h, i, dv] = attend(s, v)'");
    return true;
  }

  /// All declared names share one namespace. Duplicates are found in source order, so the
  /// hint can say where the name was declared first.
  bool declareNames() {
    struct Entry {
      std::string name;
      Symbol sym;
    };
    std::vector<Entry> entries;
    for (size_t i = 0; i < v_.dims.size(); ++i) {
      const DimDecl &d = v_.dims[i];
      entries.push_back({d.name, {Symbol::Kind::Dim, int(i), d.loc}});
      if (!d.extentName.empty())
        entries.push_back({d.extentName, {Symbol::Kind::Extent, int(i), d.loc}});
    }
    for (size_t i = 0; i < v_.inputs.size(); ++i)
      entries.push_back({v_.inputs[i].name, {Symbol::Kind::Input, int(i), v_.inputs[i].loc}});
    for (size_t i = 0; i < v_.params.size(); ++i)
      entries.push_back({v_.params[i].name, {Symbol::Kind::Param, int(i), v_.params[i].loc}});
    for (size_t n = 0; n < v_.scores.size(); ++n)
      entries.push_back({v_.scores[n].name, {Symbol::Kind::Score, int(n), v_.scores[n].loc}});
    entries.push_back({v_.output.name, {Symbol::Kind::Output, 0, v_.output.loc}});
    if (v_.state)
      entries.push_back({v_.state->name, {Symbol::Kind::State, 0, v_.state->loc}});
    for (size_t i = 0; i < v_.lets.size(); ++i)
      entries.push_back({v_.lets[i].name, {Symbol::Kind::Let, int(i), v_.lets[i].loc}});
    std::stable_sort(entries.begin(), entries.end(), [](const Entry &a, const Entry &b) {
      return a.sym.loc.line != b.sym.loc.line ? a.sym.loc.line < b.sym.loc.line
                                              : a.sym.loc.col < b.sym.loc.col;
    });
    symbols_.clear();
    for (const Entry &e : entries) {
      auto inserted = symbols_.insert({e.name, e.sym});
      if (!inserted.second) {
        const Symbol &first = inserted.first->second;
        return fail(e.sym.loc, e.name.size(), "duplicate name '" + e.name + "'",
                    "'" + e.name + "' is already declared as " + kindName(first.kind) + " at " +
                        at(first.loc));
      }
    }
    return true;
  }

  // ---- let bindings -------------------------------------------------------------------------

  /// Replaces every use of a let by a copy of its expression (whose own lets are replaced
  /// first), in every expression of the variant; the later checks see no let. A let may use
  /// lets declared after it, not itself; every let must be used; the substituted expressions
  /// obey the parser's nesting limit and a size limit, so lets cannot blow an expression up.
  bool substituteLets() {
    letState_.assign(v_.lets.size(), LetState::Pending);
    substitutedNodes_ = 0;
    for (size_t n = 0; n < v_.lets.size(); ++n)
      if (!expandLet(n))
        return false;
    std::vector<ExprPtr *> roots;
    for (ScoreDecl &s : v_.scores)
      roots.push_back(&s.expr);
    for (ExprPtr *e : {&v_.mask, &v_.outputExpr, &v_.decay, &v_.gate, &v_.bonus})
      roots.push_back(e);
    for (FeatureDecl &f : v_.features)
      roots.push_back(&f.expr);
    for (ExprPtr *root : roots)
      if (*root && !substituteRoot(*root))
        return false;
    for (size_t n = 0; n < v_.lets.size(); ++n)
      if (!v_.lets[n].used)
        return fail(v_.lets[n].loc, v_.lets[n].name.size(),
                    "let '" + v_.lets[n].name + "' is never used",
                    "use it in the score, mask, output, a feature map, decay, gate or bonus, or "
                    "remove it");
    return true;
  }

  enum class LetState { Pending, Expanding, Done };

  bool expandLet(size_t n) {
    LetDecl &let = v_.lets[n];
    if (letState_[n] == LetState::Done)
      return true;
    if (letState_[n] == LetState::Expanding)
      return fail(let.loc, let.name.size(), "let '" + let.name + "' refers to itself",
                  "a let may use other lets, but not in a cycle");
    letState_[n] = LetState::Expanding;
    if (!substituteRoot(let.expr))
      return false;
    letState_[n] = LetState::Done;
    return true;
  }

  bool substitute(ExprPtr &e) {
    if (e->kind == Expr::Kind::Ident || e->kind == Expr::Kind::Index ||
        e->kind == Expr::Kind::Call) {
      const Symbol *sym = lookup(e->name);
      if (sym && sym->kind == Symbol::Kind::Let) {
        if (e->kind != Expr::Kind::Ident)
          return fail(e->loc, e->name.size(),
                      "let '" + e->name + "' is a value; it cannot be " +
                          (e->kind == Expr::Kind::Index ? "indexed" : "called"),
                      "write '" + e->name + "' alone");
        size_t n = size_t(sym->index);
        v_.lets[n].used = true;
        if (!expandLet(n))
          return false;
        const Expr &body = *v_.lets[n].expr;
        substitutedNodes_ += nodeCount(body);
        if (substitutedNodes_ > kMaxSubstitutedNodes)
          return fail(*e, "the lets substituted into this variant make its expressions too "
                          "large (more than " + std::to_string(kMaxSubstitutedNodes) + " nodes)",
                      "lets are copied where they are used; use them fewer times");
        e = cloneExpr(body);
        return true;
      }
    }
    for (ExprPtr &a : e->args)
      if (!substitute(a))
        return false;
    return true;
  }

  /// Substitutes the lets of a whole expression, which must then still obey the nesting limit
  /// (the parser's recursion bound holds for everything after it).
  bool substituteRoot(ExprPtr &e) {
    if (!substitute(e))
      return false;
    if (height(*e) > kMaxExprDepth)
      return fail(*e, "with its lets substituted this expression nests deeper than " +
                          std::to_string(kMaxExprDepth) + " levels",
                  "simplify the lets");
    return true;
  }

  static size_t nodeCount(const Expr &e) {
    size_t n = 1;
    for (const ExprPtr &a : e.args)
      n += nodeCount(*a);
    return n;
  }
  static int height(const Expr &e) {
    int h = 0;
    for (const ExprPtr &a : e.args)
      h = std::max(h, height(*a));
    return h + 1;
  }

  static constexpr size_t kMaxSubstitutedNodes = 1 << 16;
  std::vector<LetState> letState_;
  size_t substitutedNodes_ = 0;

  const Symbol *lookup(const std::string &name) const {
    auto it = symbols_.find(name);
    return it == symbols_.end() ? nullptr : &it->second;
  }

  std::vector<std::string> dimNames(size_t count) const {
    std::vector<std::string> names;
    for (size_t i = 0; i < count && i < v_.dims.size(); ++i)
      names.push_back(v_.dims[i].name);
    return names;
  }

  bool checkDims() {
    staticExtent_.assign(v_.dims.size(), std::nullopt);
    for (size_t i = 0; i < v_.dims.size(); ++i)
      if (!checkDim(i))
        return false;
    return true;
  }

  bool checkDim(size_t i) {
    DimDecl &d = v_.dims[i];
    if (d.kind == DimDecl::Kind::Dynamic)
      return true;
    if (d.kind == DimDecl::Kind::Static) {
      if (d.staticSize < 1)
        return fail(d.loc, d.name.size(),
                    "dim '" + d.name + "' must have a positive size, got " +
                        std::to_string(d.staticSize));
      if (d.staticSize > kMaxExtent)
        return fail(d.loc, d.name.size(),
                    "dim '" + d.name + "' is too large: " + std::to_string(d.staticSize) +
                        ", over " + std::to_string(kMaxExtent),
                    "a static size is a head dim or a fixed length, e.g. 'd = 128'");
      staticExtent_[i] = d.staticSize;
      return true;
    }
    std::string decl = d.name + " = " + d.source +
                       (d.kind == DimDecl::Kind::Derived ? " / " + std::to_string(d.divisor) : "");
    const Symbol *src = lookup(d.source);
    if (!src || src->kind != Symbol::Kind::Dim)
      return fail(d.loc, d.name.size(),
                  "'" + d.source + "' in '" + decl + "' is not a declared dim",
                  orElse(didYouMean(d.source, dimNames(i)),
                         "declare '" + d.source + "' in 'dims' before '" + d.name + "'"));
    if (size_t(src->index) >= i)
      return fail(d.loc, d.name.size(),
                  "dim '" + d.name + "' uses '" + d.source + "' before it is declared",
                  "declare '" + d.source + "' earlier in 'dims'");
    d.sourceIndex = src->index;
    std::optional<int64_t> sourceExtent = staticExtent_[src->index];
    if (d.kind == DimDecl::Kind::Alias) {
      staticExtent_[i] = sourceExtent;
      return true;
    }
    if (d.divisor < 1)
      return fail(d.loc, d.name.size(), "division by zero in dim '" + decl + "'",
                  "the group size must be at least 1");
    if (sourceExtent && *sourceExtent % d.divisor != 0)
      return fail(d.loc, d.name.size(),
                  "dim '" + decl + "' does not divide: '" + d.source + "' is " +
                      std::to_string(*sourceExtent) + ", not a multiple of " +
                      std::to_string(d.divisor),
                  "the number of query heads must be a multiple of the group size");
    if (sourceExtent)
      staticExtent_[i] = *sourceExtent / d.divisor;
    return true;
  }

  bool checkTensors() {
    for (TensorDecl &t : v_.inputs)
      if (!resolveTensorDims(t, "input"))
        return false;
    for (TensorDecl &t : v_.params)
      if (!resolveTensorDims(t, "param"))
        return false;
    if (v_.state && !resolveTensorDims(*v_.state, "state"))
      return false;
    return resolveTensorDims(v_.output, "output");
  }

  bool resolveTensorDims(TensorDecl &t, const char *what) {
    t.dims.clear();
    t.resolvedDType = t.dtype.value_or(DType::F32);  // the output's default is set later
    for (size_t p = 0; p < t.dimNames.size(); ++p) {
      const std::string &name = t.dimNames[p];
      const Symbol *sym = lookup(name);
      if (!sym)
        return fail(t.dimLocs[p], name.size(),
                    "unknown dim '" + name + "' in " + what + " '" + t.name + "'",
                    orElse(didYouMean(name, dimNames(v_.dims.size())), "declare it in 'dims'"));
      if (sym->kind != Symbol::Kind::Dim)
        return fail(t.dimLocs[p], name.size(),
                    "'" + name + "' in " + what + " '" + t.name + "' is " + kindName(sym->kind) +
                        ", not a dim",
                    sym->kind == Symbol::Kind::Extent
                        ? "use the dim it names: '" + v_.dims[sym->index].name + "'"
                        : "");
      if (std::find(t.dims.begin(), t.dims.end(), sym->index) != t.dims.end())
        return fail(t.dimLocs[p], name.size(),
                    "dim '" + name + "' appears twice in " + what + " '" + t.name + "'");
      t.dims.push_back(sym->index);
    }
    return true;
  }

  /// Finds q and k from each score's dot(q, k) (score 0's are Variant::q and k) and v from the
  /// output's attend(s, v).
  bool findAttention() {
    for (ScoreDecl &score : v_.scores)
      if (!findDot(score))
        return false;
    v_.q = v_.scoreQ[0], v_.k = v_.scoreK[0];
    return findValues() && checkNoExtraInputs();
  }

  bool findDot(ScoreDecl &score) {
    int sq = -1, sk = -1;
    auto name = [&](int t) { return v_.inputs[size_t(t)].name; };
    std::vector<Expr *> dots;
    collectCalls(*score.expr, "dot", dots);
    if (dots.empty())
      return fail(*score.expr, "score '" + score.name + "' does not contain dot(q, k)",
                  "e.g. 'score " + score.name + " = dot(q, k) * rsqrt(d)'");
    // Every dot of two inputs is the same dot(q, k) (one product, computed once); a dot of an
    // input with itself is a row norm of that q or k (computed once per row).
    std::vector<std::pair<Expr *, int>> norms;
    for (Expr *dot : dots) {
      if (dot->args.size() != 2)
        return fail(*dot, "'dot' takes 2 arguments, got " + std::to_string(dot->args.size()));
      int q = -1, k = -1;
      if (!inputArg(*dot->args[0], "dot", q) || !inputArg(*dot->args[1], "dot", k))
        return false;
      if (q == k) {
        norms.push_back({dot, q});
        continue;
      }
      if (sq < 0) {
        sq = q, sk = k;
      } else if (q != sq || k != sk) {
        return fail(*dot, "score '" + score.name + "' reads dot(" + name(sq) + ", " + name(sk) +
                              ") and dot(" + name(q) + ", " + name(k) + ")",
                    "not supported yet: a score reads one product of two inputs, dot(" +
                        name(sq) + ", " + name(sk) + "), as often as it likes; another "
                        "product belongs in another score");
      }
    }
    if (sq < 0)
      return fail(*dots.front(), "score '" + score.name + "' reads no product of two inputs",
                  "a score reads dot(q, k); dot(" + name(norms.front().second) + ", " +
                      name(norms.front().second) + ") is the norm of a row of q or k");
    for (auto [dot, x] : norms) {
      if (x != sq && x != sk)
        return fail(*dot, "dot(" + name(x) + ", " + name(x) + ") is not a row norm of the score's "
                          "inputs: it reads dot(" + name(sq) + ", " + name(sk) + ")",
                    "write dot(" + name(sq) + ", " + name(sq) + ") or dot(" + name(sk) + ", " +
                        name(sk) + ")");
      if (v_.scores.size() > 1)
        return fail(*dot, "not supported yet: row norms with several scores",
                    "one score may read dot(q, q) and dot(k, k)");
      dot->rowNorm = x == sq ? 1 : 2;
      (x == sq ? v_.rowNormQ : v_.rowNormK) = true;
    }
    v_.scoreQ.push_back(sq);
    v_.scoreK.push_back(sk);
    return true;
  }

  /// An argument of dot/attend that must name an input; sets `index` to it.
  bool inputArg(const Expr &arg, const char *fn, int &index) {
    std::vector<std::string> inputNames;
    for (const TensorDecl &t : v_.inputs)
      inputNames.push_back(t.name);
    if (arg.kind != Expr::Kind::Ident)
      return fail(arg, std::string("the arguments of ") + fn + " must be input names, got '" +
                           text(arg) + "'");
    const Symbol *sym = lookup(arg.name);
    if (!sym)
      return fail(arg, "unknown name '" + arg.name + "'", didYouMean(arg.name, inputNames));
    if (sym->kind != Symbol::Kind::Input)
      return fail(arg, "'" + arg.name + "' is " + kindName(sym->kind) + ", not an input",
                  std::string(fn) + " reads input tensors: " + joinNames(inputNames));
    index = sym->index;
    return true;
  }

  /// The output's attend(s, v) call: the whole expression, or one side of `attend(s, v) + E`,
  /// `E + attend(s, v)` or `attend(s, v) - E` (E a skip term); null if none.
  /// Either may be wrapped in `rmsnorm(..., eps)` (rmsNode_).
  const Expr *findAttend() {
    Expr &out = *v_.outputExpr;
    auto isCall = [](const Expr &e, const char *name) {
      return e.kind == Expr::Kind::Call && e.name == name;
    };
    // attend(s, v) or rmsnorm(attend(s, v), ...): the attend call, or null
    auto attendIn = [&](Expr &e) -> Expr * {
      if (isCall(e, "attend"))
        return &e;
      if (isCall(e, "rmsnorm") && !e.args.empty() && isCall(*e.args[0], "attend")) {
        rmsNode_ = &e;
        return e.args[0].get();
      }
      return nullptr;
    };
    v_.skip = nullptr;
    v_.skipNegate = false;
    rmsNode_ = nullptr;
    if (Expr *attend = attendIn(out))
      return attend;
    if (out.kind != Expr::Kind::Binary || (out.op != "+" && out.op != "-"))
      return nullptr;
    if (Expr *attend = attendIn(*out.args[0])) {
      v_.skip = out.args[1].get();
      v_.skipNegate = out.op == "-";
      return attend;
    }
    if (Expr *attend = out.op == "+" ? attendIn(*out.args[1]) : nullptr) {
      v_.skip = out.args[0].get();
      return attend;
    }
    return nullptr;
  }
  Expr *rmsNode_ = nullptr;  // the output's rmsnorm(attend(s, v), eps) call, if any

  /// Any other output reading attend(s, v) (as often as it likes, e.g. through a let: it is one
  /// value): an elementwise map of its result (Variant::outputMap: gates, scales, biases); the
  /// first attend call, or null after an error.
  Expr *findOutputMap() {
    const std::string &s = v_.scores[0].name;
    std::vector<Expr *> attends, norms;
    collectCalls(*v_.outputExpr, "attend", attends);
    collectCalls(*v_.outputExpr, "rmsnorm", norms);
    if (attends.empty()) {
      fail(*v_.outputExpr,
           "the output must read attend(" + s + ", v), got '" + text(*v_.outputExpr) + "'",
           "the output is attend(score, values), or an expression of it: rmsnorm(attend(" + s +
               ", v), eps), attend(" + s + ", v) * sigmoid(g[b, h, i, dv]), a skip term of v at "
               "the query position (D x)");
      return nullptr;
    }
    // rmsnorm(attend(s, v), eps) inside the map: its value is what the map reads, so every
    // attend is inside one, and all of them are the same call.
    size_t normalised = 0;
    for (Expr *norm : norms) {
      if (norm->args.empty() || norm->args[0]->kind != Expr::Kind::Call ||
          norm->args[0]->name != "attend") {
        fail(*norm, "rmsnorm normalises attend(" + s + ", v), got '" + text(*norm) + "'",
             "write rmsnorm(attend(" + s + ", v), 1e-6): the row over the value dim, then the "
             "epsilon");
        return nullptr;
      }
      if (text(*norm) != text(*norms[0])) {
        fail(*norm, "every rmsnorm of the output must be '" + text(*norms[0]) + "', got '" +
                        text(*norm) + "'");
        return nullptr;
      }
      ++normalised;
    }
    if (normalised && normalised != attends.size()) {
      fail(*v_.outputExpr,
           "not supported yet: attend(" + s + ", v) both inside and outside rmsnorm in '" +
               text(*v_.outputExpr) + "'",
           "the output reads either the normalised rows or the plain ones");
      return nullptr;
    }
    rmsNode_ = norms.empty() ? nullptr : norms[0];
    v_.outputMap = true;
    return attends[0];
  }

  bool findValues() {
    if (v_.scores.size() > 1)
      return findMix();
    std::vector<Expr *> attends;
    collectCalls(*v_.outputExpr, "attend", attends);
    // attend read more than once is an output map (y * sigmoid(y) through a let)
    const Expr *attend = attends.size() > 1 ? nullptr : findAttend();
    if (!attend && !(attend = findOutputMap()))
      return false;
    const std::string &s = v_.scores[0].name;
    const Expr &out = *attend;
    if (out.args.size() != 2)
      return fail(out, "'attend' takes 2 arguments, got " + std::to_string(out.args.size()));
    const Expr &scoreArg = *out.args[0];
    if (scoreArg.kind != Expr::Kind::Ident || scoreArg.name != s)
      return fail(scoreArg, "the first argument of attend must be the score '" + s + "', got '" +
                                text(scoreArg) + "'");
    if (!inputArg(*out.args[1], "attend", v_.v))
      return false;
    if (v_.v == v_.q || v_.v == v_.k)
      return fail(*out.args[1],
                  "attend's values '" + vT().name + "' are already used in dot(" + qT().name +
                      ", " + kT().name + ")",
                  "values come from a third input, e.g. attend(" + s + ", v)");
    return true;
  }

  /// Several scores: the output is M, rmsnorm(M, eps) or F(rmsnorm(M, eps)) (Variant::mix), M
  /// reading attend(s_n, v) for every score s_n, all over one values input.
  bool findMix() {
    Expr &out = *v_.outputExpr;
    std::vector<Expr *> attends, norms;
    collectCalls(out, "attend", attends);
    collectCalls(out, "rmsnorm", norms);
    std::vector<bool> attended(v_.scores.size(), false);
    for (Expr *attend : attends) {
      if (attend->args.size() != 2)
        return fail(*attend,
                    "'attend' takes 2 arguments, got " + std::to_string(attend->args.size()));
      const Expr &scoreArg = *attend->args[0];
      const Symbol *sym =
          scoreArg.kind == Expr::Kind::Ident ? lookup(scoreArg.name) : nullptr;
      if (!sym || sym->kind != Symbol::Kind::Score)
        return fail(scoreArg, "the first argument of attend must be a score, got '" +
                                  text(scoreArg) + "'",
                    "the scores are " + joinNames(scoreNames()));
      int values = -1;
      if (!inputArg(*attend->args[1], "attend", values))
        return false;
      if (v_.v < 0)
        v_.v = values;
      else if (values != v_.v)
        return fail(*attend->args[1],
                    "every attend reads the same values: '" + vT().name + "', got '" +
                        v_.inputs[size_t(values)].name + "'",
                    "not supported yet: scores over different values inputs");
      attend->attendScore = sym->index;
      attended[size_t(sym->index)] = true;
    }
    for (size_t n = 0; n < v_.scores.size(); ++n)
      if (!attended[n])
        return fail(v_.scores[n].loc, v_.scores[n].name.size(),
                    "score '" + v_.scores[n].name + "' is never attended",
                    "the output reads every score through attend(" + v_.scores[n].name +
                        ", v), e.g. attend(s1, v) - lambda[h] * attend(s2, v)");
    for (size_t n = 0; n < v_.scoreQ.size(); ++n)
      if (v_.scoreQ[n] == v_.v || v_.scoreK[n] == v_.v)
        return fail(*attends.front()->args[1],
                    "attend's values '" + vT().name + "' are already used in a dot",
                    "values come from their own input");
    rmsNode_ = nullptr;
    v_.mix = &out;
    if (norms.size() > 1)
      return fail(*norms[1], "a variant with several scores has one rmsnorm, got a second '" +
                                 text(*norms[1]) + "'");
    if (!norms.empty()) {
      Expr &norm = *norms.front();
      std::vector<Expr *> inside;
      if (!norm.args.empty())
        collectCalls(*norm.args[0], "attend", inside);
      if (inside.size() != attends.size())
        return fail(norm,
                    "not supported yet: attend(...) both inside and outside rmsnorm in '" +
                        text(out) + "'",
                    "mix the scores' rows inside the rmsnorm, e.g. rmsnorm(attend(s1, v) - "
                    "lambda[h] * attend(s2, v), 1e-5) * gain[dv]");
      rmsNode_ = &norm;
      v_.mix = norm.args[0].get();
      v_.outputMap = &norm != &out;
    }
    return true;
  }

  std::vector<std::string> scoreNames() const {
    std::vector<std::string> names;
    for (const ScoreDecl &s : v_.scores)
      names.push_back(s.name);
    return names;
  }

  /// After inferRoles: every score's q has q's dims and dtype, every k k's; no tensor plays
  /// both. The constructs the quadratic form does not combine with several scores yet fail
  /// here with the construct named.
  bool checkScoreInputs() {
    if (v_.scores.size() < 2)
      return true;
    auto sameAs = [&](int t, int as, const char *role) -> bool {
      const TensorDecl &x = v_.inputs[size_t(t)], &ref = v_.inputs[size_t(as)];
      if (x.dims != ref.dims)
        return failAtName(x, std::string("'") + x.name + "' is a " + role + " of a score, so it has '" +
                                 ref.name + "'s dims in the same order",
                          "declare it as " + x.name + "[" + joinNames(ref.dimNames) + "]");
      if (x.resolvedDType != ref.resolvedDType)
        return failAtName(x, std::string("q, k, v must share one floating dtype: '") + ref.name +
                                 "' is " + dtypeName(ref.resolvedDType) + " but '" + x.name +
                                 "' is " + dtypeName(x.resolvedDType));
      if (!x.scale.empty())
        return fail(x.scaleLoc, x.scale.size(),
                    "not supported yet: quantised keys with several scores");
      return true;
    };
    for (size_t n = 0; n < v_.scores.size(); ++n) {
      if (!sameAs(v_.scoreQ[n], v_.q, "query") || !sameAs(v_.scoreK[n], v_.k, "key"))
        return false;
      for (int q : v_.scoreQ)
        if (q == v_.scoreK[n])
          return failAtName(v_.inputs[size_t(q)],
                            "'" + v_.inputs[size_t(q)].name +
                                "' is the query of one score and the key of another",
                            "each score reads dot(query, key) with the queries first");
    }
    const char *other = v_.paged           ? "paged keys and values"
                        : !v_.features.empty() ? "a feature map"
                        : v_.decay             ? "a decay"
                        : v_.gate              ? "a gate"
                        : v_.bonus             ? "a bonus"
                        : v_.state             ? "a state"
                        : v_.norm != Norm::Softmax ? "a norm other than softmax"
                        : v_.unifiedMax            ? "softmax(max = ...)"
                        : isQuantized(kT().resolvedDType) || isQuantized(vT().resolvedDType)
                            ? "quantised keys or values"
                            : nullptr;
    if (other)
      return fail(v_.scores[1].loc, v_.scores[1].name.size(),
                  std::string("not supported yet: several scores with ") + other,
                  "several scores (differential attention) take norm softmax over plain "
                  "q, k, v tensors");
    return true;
  }

  bool checkNoExtraInputs() {
    auto in = [](const std::vector<int> &list, int i) {
      return std::find(list.begin(), list.end(), i) != list.end();
    };
    for (size_t i = 0; i < v_.inputs.size(); ++i) {
      if (int(i) == v_.v || in(v_.scoreQ, int(i)) || in(v_.scoreK, int(i)))
        continue;
      const TensorDecl &t = v_.inputs[i];
      return failAtName(t, "input '" + t.name + "' is not used by dot or attend",
                        "the inputs are exactly q, k and v; make it a param: 'param " + t.name +
                            "[...]'");
    }
    return true;
  }

  // ---- roles --------------------------------------------------------------------------------

  std::string expectedShapes() const {
    return "expected " + qT().name + "[b, h, i, d], " + kT().name + "[b, hk, j, d], " + vT().name +
           "[b, hk, j, dv], " + v_.output.name +
           "[b, h, i, dv] in any order (hk = h for plain multi-head attention)";
  }

  static bool has(const TensorDecl &t, int dim) {
    return std::find(t.dims.begin(), t.dims.end(), dim) != t.dims.end();
  }

  /// Dims of `from` (in its order) that are in every tensor of `in` and in none of `notIn`.
  static std::vector<int> dimsWhere(const TensorDecl &from,
                                    std::initializer_list<const TensorDecl *> in,
                                    std::initializer_list<const TensorDecl *> notIn) {
    std::vector<int> out;
    for (int d : from.dims) {
      bool keep = true;
      for (const TensorDecl *t : in)
        keep = keep && has(*t, d);
      for (const TensorDecl *t : notIn)
        keep = keep && !has(*t, d);
      if (keep)
        out.push_back(d);
    }
    return out;
  }

  /// Roles follow from which tensors share a dim: the head dim is in q and k only, the value
  /// dim in v and o only, the key sequence in k and v only, the query sequence (and, for GQA,
  /// the query head) in q and o only; batch (and, for MHA, the head) are in all four.
  bool inferRoles() {
    const TensorDecl &q = qT(), &k = kT(), &v = vT(), &o = v_.output;
    for (const TensorDecl *t : {&q, &k, &v, &o})
      if (t->dims.size() != 4)
        return failAtName(
            *t, "'" + t->name + "' must have 4 dims, got " + std::to_string(t->dims.size()),
            expectedShapes());
    std::vector<int> all4 = dimsWhere(q, {&k, &v, &o}, {});
    std::vector<int> head = dimsWhere(q, {&k}, {&o});
    std::vector<int> value = dimsWhere(v, {&o}, {&q});
    if (head.empty() && value.empty() && !all4.empty()) {
      const std::string &d = v_.dims[all4.back()].name;
      return failAtName(v,
                        "'" + v.name + "' and '" + o.name + "' use the head dim '" + d +
                            "'; the value dim needs its own name",
                        "declare 'dv = " + d + "' and use dv in " + v.name + " and " + o.name);
    }
    if (head.size() == 2 && value.size() == 2 && all4.size() == 1)
      return setQKGroupRoles(all4[0], head, value);
    if (head.size() != 1)
      return failAtName(k,
                        "cannot find the head dim: '" + q.name + "' and '" + k.name +
                            "' must share exactly one dim that '" + o.name + "' lacks",
                        expectedShapes());
    if (value.size() != 1)
      return failAtName(v,
                        "cannot find the value dim: '" + v.name + "' and '" + o.name +
                            "' must share exactly one dim that '" + q.name + "' lacks",
                        expectedShapes());
    std::vector<int> kvSide = dimsWhere(k, {&v}, {&q, &o});
    std::vector<int> qSide = dimsWhere(q, {&o}, {&k});
    v_.headDim = head[0];
    v_.valueDim = value[0];
    if (all4.size() == 2 && kvSide.size() == 1 && qSide.size() == 1)
      return setMHARoles(all4, kvSide[0], qSide[0]);
    if (all4.size() == 1 && kvSide.size() == 2 && qSide.size() == 2)
      return setGQARoles(all4[0], kvSide, qSide);
    if (kvSide.empty())
      return failAtName(v,
                        "cannot find the key sequence dim: '" + k.name + "' and '" + v.name +
                            "' must share a dim that '" + q.name + "' and '" + o.name + "' lack",
                        expectedShapes());
    if (qSide.empty())
      return failAtName(o,
                        "cannot find the query sequence dim: '" + q.name + "' and '" + o.name +
                            "' must share a dim that '" + k.name + "' lacks",
                        expectedShapes());
    return failAtName(k,
                      "cannot infer the attention roles of the dims of '" + q.name + "', '" +
                          k.name + "', '" + v.name + "' and '" + o.name + "'",
                      expectedShapes());
  }

  /// Of the two dims in all four tensors, the one declared first is the batch.
  bool setMHARoles(const std::vector<int> &all4, int kvSeq, int qSeq) {
    int batch = std::min(all4[0], all4[1]), heads = std::max(all4[0], all4[1]);
    assignRoles(batch, heads, heads, qSeq, kvSeq);
    v_.group = 1;
    return true;
  }

  /// GQA: one k/v-only dim is the kv head. It is derived from a query head (`hk = h / G`, or an
  /// alias `hk = h` for a group of 1), or both extents are static and divide.
  bool setGQARoles(int batch, const std::vector<int> &kvSide, const std::vector<int> &qSide) {
    struct Pair {
      int kvHead, qHead;
      int64_t group;
    };
    std::vector<Pair> derived, statics;
    for (int x : kvSide) {
      for (int y : qSide) {
        const DimDecl &dx = v_.dims[x];
        if (dx.sourceIndex == y)
          derived.push_back({x, y, dx.kind == DimDecl::Kind::Derived ? dx.divisor : 1});
        else if (staticExtent_[x] && staticExtent_[y] && *staticExtent_[y] % *staticExtent_[x] == 0)
          statics.push_back({x, y, *staticExtent_[y] / *staticExtent_[x]});
      }
    }
    // `j : kv_len = i` pairs the sequences too: a group (hk = h / G) wins over an alias.
    if (derived.size() > 1) {
      std::vector<Pair> grouped;
      for (const Pair &p : derived)
        if (v_.dims[p.kvHead].kind == DimDecl::Kind::Derived)
          grouped.push_back(p);
      if (grouped.size() == 1)
        derived = grouped;
    }
    const std::vector<Pair> &found = derived.empty() ? statics : derived;
    if (found.size() != 1) {
      const std::string &a = v_.dims[kvSide[0]].name, &b = v_.dims[kvSide[1]].name;
      const TensorDecl &q = qT();
      return failAtName(kT(),
                        "cannot tell which of '" + a + "' and '" + b + "' is the kv-head dim of '" +
                            kT().name + "' and '" + vT().name + "'",
                        "derive it from the query heads of '" + q.name + "', e.g. 'hk = " +
                            v_.dims[qSide[0]].name + " / 4'; " + expectedShapes());
    }
    const Pair &p = found[0];
    int kvSeq = kvSide[0] == p.kvHead ? kvSide[1] : kvSide[0];
    int qSeq = qSide[0] == p.qHead ? qSide[1] : qSide[0];
    assignRoles(batch, p.qHead, p.kvHead, qSeq, kvSeq);
    v_.group = p.group;
    return true;
  }

  /// Shared q/k head groups: q and k share a head-group dim g besides the head dim, v and o a
  /// head dim h besides the value dim, with g = h / G (or `g = h`, or static extents that
  /// divide). v and o are multi-head over h.
  bool setQKGroupRoles(int batch, const std::vector<int> &head, const std::vector<int> &value) {
    struct Pair {
      int group, heads;
      int64_t size;
    };
    std::vector<Pair> derived, statics;
    for (int x : head)
      for (int y : value) {
        const DimDecl &dx = v_.dims[x];
        if (dx.sourceIndex == y)
          derived.push_back({x, y, dx.kind == DimDecl::Kind::Derived ? dx.divisor : 1});
        else if (staticExtent_[x] && staticExtent_[y] && *staticExtent_[x] > 0 &&
                 *staticExtent_[y] % *staticExtent_[x] == 0)
          statics.push_back({x, y, *staticExtent_[y] / *staticExtent_[x]});
      }
    const std::vector<Pair> &found = derived.empty() ? statics : derived;
    if (found.size() != 1)
      return failAtName(kT(),
                        "cannot tell the head-group dim of '" + qT().name + "' and '" +
                            kT().name + "' from their head dim",
                        "derive the group from the heads of '" + vT().name + "', e.g. 'g = " +
                            v_.dims[value[0]].name + " / 8' in " + qT().name + "[b, i, g, d], " +
                            kT().name + "[b, j, g, d], " + vT().name + "[b, j, " +
                            v_.dims[value[0]].name + ", dv]");
    const Pair &p = found[0];
    v_.headDim = head[0] == p.group ? head[1] : head[0];
    v_.valueDim = value[0] == p.heads ? value[1] : value[0];
    std::vector<int> kvSide = dimsWhere(kT(), {&vT()}, {&qT(), &v_.output});
    std::vector<int> qSide = dimsWhere(qT(), {&v_.output}, {&kT()});
    if (kvSide.size() != 1 || qSide.size() != 1)
      return failAtName(kT(),
                        "cannot infer the attention roles of the dims of '" + qT().name + "', '" +
                            kT().name + "', '" + vT().name + "' and '" + v_.output.name + "'",
                        expectedShapes());
    assignRoles(batch, p.heads, p.heads, qSide[0], kvSide[0]);
    v_.group = 1;
    v_.qkGroupDim = p.group;
    v_.qkGroup = p.size;
    v_.dims[p.group].role = DimRole::QKHead;
    return true;
  }

  void assignRoles(int batch, int qHead, int kvHead, int qSeq, int kvSeq) {
    v_.batchDim = batch;
    v_.qHeadDim = qHead;
    v_.kvHeadDim = kvHead;
    v_.qSeqDim = qSeq;
    v_.kvSeqDim = kvSeq;
    v_.dims[batch].role = DimRole::Batch;
    v_.dims[kvHead].role = DimRole::KVHead;
    v_.dims[qHead].role = DimRole::QHead;  // after KVHead: for MHA they are the same dim
    v_.dims[qSeq].role = DimRole::QSeq;
    v_.dims[kvSeq].role = DimRole::KVSeq;
    v_.dims[v_.headDim].role = DimRole::HeadDim;
    v_.dims[v_.valueDim].role = DimRole::ValueDim;
  }

  bool checkDTypes() {
    const TensorDecl &q = qT();
    for (TensorDecl *t : {&v_.inputs[v_.q], &v_.inputs[v_.k], &v_.inputs[v_.v]}) {
      bool kv = t != &v_.inputs[v_.q];
      if (kv && isQuantized(t->resolvedDType)) {
        if (!checkScale(*t) || !checkPacked(*t, t == &v_.inputs[v_.k] ? v_.headDim : v_.valueDim))
          return false;
        continue;
      }
      if (!t->scale.empty())
        return fail(t->scaleLoc, t->scale.size(),
                    "'" + t->name + "' is " + dtypeName(t->resolvedDType) +
                        ": a dequantisation scale needs quantised storage",
                    "store it as i8, f8e4m3 or i4, or drop '* " + t->scale + "'");
      if (!isFloat(t->resolvedDType))
        return failAtName(*t,
                          std::string("q, k, v must share one floating dtype: '") + t->name +
                              "' is " + dtypeName(t->resolvedDType),
                          kv ? "use f32, f16 or bf16, or quantised storage with a scale "
                               "(k[...] : i8 * k_scale)"
                             : "use f32, f16 or bf16 for q");
      if (t->resolvedDType != q.resolvedDType)
        return failAtName(*t,
                          std::string("q, k, v must share one floating dtype: '") + q.name +
                              "' is " + dtypeName(q.resolvedDType) + " but '" + t->name + "' is " +
                              dtypeName(t->resolvedDType),
                          "params may have other dtypes");
    }
    for (const TensorDecl &p : v_.params)
      if (p.resolvedDType == DType::I4)
        return failAtName(p, "param '" + p.name + "' is i4, which only stores k and v",
                          "use i8 or i32 for integer params");
    TensorDecl &o = v_.output;
    o.resolvedDType = o.dtype.value_or(q.resolvedDType);
    if (!isFloat(o.resolvedDType))
      return failAtName(o, "output '" + o.name + "' must have a floating dtype, got " +
                               std::string(dtypeName(o.resolvedDType)));
    return true;
  }

  /// i4 k or v packs two values per byte along its last axis, which must be its channel dim
  /// (`channel`: d for k, dv for v) with an even extent.
  bool checkPacked(const TensorDecl &t, int channel) {
    if (t.resolvedDType != DType::I4)
      return true;
    const DimDecl &c = v_.dims[channel];
    if (t.dims.back() != channel) {
      std::string order;
      for (const std::string &name : t.dimNames)
        if (name != c.name)
          order += name + ", ";
      return fail(t.dimLocs.back(), t.dimNames.back().size(),
                  "'" + t.name + "' is i4, packed two per byte along its last axis, which must be "
                  "its channel dim '" + c.name + "', not '" + t.dimNames.back() + "'",
                  "declare '" + c.name + "' last: '" + t.name + "[" + order + c.name +
                      "] : i4 * " + t.scale + "'");
    }
    int64_t extent = staticExtent(v_, channel);
    if (extent > 0 && extent % 2)
      return fail(t.dimLocs.back(), t.dimNames.back().size(),
                  "'" + t.name + "' is i4, packed two per byte along '" + c.name +
                      "', so its extent must be even, got " + std::to_string(extent));
    return true;
  }

  /// A quantised k or v: its scale is a float param over some of the tensor's dims, and at most
  /// one group dim g = x / G of the tensor's last dim x (a scale per G channels).
  bool checkScale(TensorDecl &t) {
    std::string example = t.name + "[...] : " + dtypeName(t.resolvedDType) + " * " + t.name +
                          "_scale";
    if (t.scale.empty())
      return failAtName(t, "'" + t.name + "' is stored as " + dtypeName(t.resolvedDType) +
                               ": give its dequantisation scale",
                        "e.g. '" + example + "' with 'param " + t.name + "_scale[...] : f32'");
    const Symbol *sym = lookup(t.scale);
    if (!sym || sym->kind != Symbol::Kind::Param)
      return fail(t.scaleLoc, t.scale.size(), "scale '" + t.scale + "' is not a declared param",
                  "declare it, e.g. 'param " + t.scale + "[b, hk] : f32'");
    const TensorDecl &s = v_.params[sym->index];
    if (!isFloat(s.resolvedDType))
      return fail(t.scaleLoc, t.scale.size(),
                  "scale '" + t.scale + "' must be a floating param, got " +
                      dtypeName(s.resolvedDType));
    t.scaleParam = sym->index;
    t.scaleAxes.clear();
    t.scaleGroup = 1;
    int last = t.dims.back();
    for (size_t a = 0; a < s.dims.size(); ++a) {
      int d = s.dims[a];
      auto at = std::find(t.dims.begin(), t.dims.end(), d);
      const DimDecl &dim = v_.dims[d];
      if (at != t.dims.end()) {
        t.scaleAxes.push_back(int(at - t.dims.begin()));
      } else if (dim.kind == DimDecl::Kind::Derived && dim.sourceIndex == last &&
                 t.scaleGroup == 1) {
        t.scaleAxes.push_back(int(t.dims.size()) - 1);
        t.scaleGroup = dim.divisor;
      } else {
        return fail(s.dimLocs[a], dim.name.size(),
                    "scale '" + t.scale + "' of '" + t.name + "' is indexed by '" + dim.name +
                        "', which is not a dim of '" + t.name + "'",
                    "a scale uses dims of its tensor, and at most one group dim " +
                        std::string("of its last dim (g = ") + v_.dims[last].name + " / 32)");
      }
    }
    return true;
  }

  // ---- paged KV --------------------------------------------------------------------------------

  bool checkUnifiedMax() {
    if (!v_.unifiedMax)
      return true;
    if (v_.norm != Norm::Softmax)
      return fail(v_.unifiedMaxLoc, 3, "'max' only applies to norm softmax",
                  "the unified max replaces softmax's running max");
    if (!std::isfinite(*v_.unifiedMax) || std::fabs(*v_.unifiedMax) > 1e6)
      return fail(v_.unifiedMaxLoc, 3, "the unified max must be a finite number within 1e6");
    return true;
  }

  bool checkPaged() {
    if (!checkUnifiedMax())
      return false;
    if (!v_.paged)
      return true;
    PagedDecl &p = *v_.paged;
    const char *example = "e.g. 'paged k, v by block_table size 16'";
    for (size_t n = 0; n < p.tensors.size(); ++n) {
      const std::string &name = p.tensors[n];
      if (name != kT().name && name != vT().name)
        return fail(p.tensorLocs[n], name.size(),
                    "'" + name + "' cannot be paged: only the keys '" + kT().name +
                        "' and values '" + vT().name + "' can",
                    example);
      for (size_t m = 0; m < n; ++m)
        if (p.tensors[m] == name)
          return fail(p.tensorLocs[n], name.size(), "'" + name + "' is listed twice");
    }
    if (p.tensors.size() != 2)
      return fail(p.loc, 5, "paged KV needs both the keys '" + kT().name + "' and the values '" +
                                vT().name + "'",
                  "the two caches share one block table: " + std::string(example));
    if (p.pageSize < 1 || p.pageSize > 65536)
      return fail(p.sizeLoc, 1,
                  "page size must be in [1, 65536], got " + std::to_string(p.pageSize),
                  "vLLM and FlashInfer use 16 to 256 tokens per page");
    const Symbol *sym = lookup(p.table);
    if (!sym || sym->kind != Symbol::Kind::Param)
      return fail(p.tableLoc, p.table.size(),
                  "block table '" + p.table + "' is not a declared param",
                  "declare it, e.g. 'param " + p.table + "[b, n] : i32'");
    const TensorDecl &t = v_.params[sym->index];
    if (t.resolvedDType != DType::I32 || t.dims.size() != 2 || t.dims[0] != v_.batchDim ||
        t.dims[1] == v_.batchDim)
      return fail(p.tableLoc, p.table.size(),
                  "block table '" + p.table + "' must be an i32 param [" +
                      v_.dims[v_.batchDim].name + ", n]: batch, then page of the sequence",
                  "declare it, e.g. 'param " + p.table + "[" + v_.dims[v_.batchDim].name +
                      ", n] : i32' with a dim n for the pages per sequence");
    p.tableParam = sym->index;
    for (const char *reserved : {"kv_pages", "page_size"})
      if (const Symbol *clash = lookup(reserved))
        return fail(clash->loc, std::string(reserved).size(),
                    std::string("'") + reserved + "' names an axis of the page pool of a "
                        "paged variant",
                    "rename it");
    return true;
  }

  // ---- expressions --------------------------------------------------------------------------

  bool checkScore() {
    for (ScoreDecl &s : v_.scores) {
      if (!checkExpr(*s.expr, Context::Score))
        return false;
      if (!isNumeric(s.expr->type))
        return fail(*s.expr,
                    "score '" + s.name + "' must be a number, got " + valueTypeName(s.expr->type),
                    "use select(c, x, y) to turn a condition into a number");
    }
    return true;
  }

  bool checkMask() {
    if (!v_.mask)
      return true;
    if (!checkExpr(*v_.mask, Context::Mask))
      return false;
    if (v_.mask->type != ValueType::Bool)
      return fail(*v_.mask,
                  std::string("mask must be a boolean expression, got ") +
                      valueTypeName(v_.mask->type),
                  "compare with <, <=, ==, ... or combine with &&, ||");
    return true;
  }

  /// `feature q, k = f(x)`: each named tensor is q or k and has one map; f is a float function
  /// of the element x alone (numbers and builtins; no dims, params or tensors).
  /// Row norms (dot(q, q), dot(k, k)) read the stored rows: not through a feature map, nor of
  /// paged or quantised keys (decoding).
  bool checkRowNorms() {
    if (!v_.rowNormQ && !v_.rowNormK)
      return true;
    std::vector<Expr *> dots;
    collectCalls(*v_.scores[0].expr, "dot", dots);
    const Expr *norm = *std::find_if(dots.begin(), dots.end(),
                                     [](const Expr *d) { return d->rowNorm != 0; });
    if (!v_.features.empty())
      return fail(*norm, "not supported yet: row norms with a feature map",
                  "dot(q, q) reads the stored row; a feature map changes what dot(q, k) reads");
    if (v_.rowNormK && (v_.paged || !v_.inputs[size_t(v_.k)].scale.empty()))
      return fail(*norm, "not supported yet: the row norms of paged or quantised keys");
    return true;
  }

  bool checkFeatures() {
    v_.featureQ = v_.featureK = nullptr;
    projectedQ_ = projectedK_ = false;
    for (FeatureDecl &f : v_.features) {
      for (size_t n = 0; n < f.tensors.size(); ++n) {
        const std::string &name = f.tensors[n];
        bool isQ = name == qT().name, isK = name == kT().name;
        if (!isQ && !isK)
          return fail(f.tensorLocs[n], name.size(),
                      "a feature map applies to q or k ('" + qT().name + "', '" + kT().name +
                          "'), not '" + name + "'",
                      "linear attention maps the queries and keys: 'feature " + qT().name + ", " +
                          kT().name + " = ...'");
        const Expr *&slot = isQ ? v_.featureQ : v_.featureK;
        if (slot)
          return fail(f.tensorLocs[n], name.size(), "'" + name + "' has two feature maps",
                      "give each of q and k at most one");
        slot = f.expr.get();
      }
      projected_ = elementwise_ = nullptr;
      if (!checkExpr(*f.expr, Context::Feature))
        return false;
      if (f.expr->type == ValueType::Bool)
        return fail(*f.expr, "a feature map must give a number, got bool",
                    "use select(c, a, b) to turn a condition into a number");
      if (projected_ && elementwise_)
        return fail(*elementwise_,
                    "a projected feature map reads x only through dot(x, " +
                        v_.params[size_t(v_.projParam)].name + "[...]) and dot(x, x)",
                    "the map's value at feature m is a function of the row's projection on "
                    "row m and of its sum of squares");
      for (size_t n = 0; n < f.tensors.size(); ++n)
        (f.tensors[n] == qT().name ? projectedQ_ : projectedK_) = projected_ != nullptr;
    }
    return checkProjection();
  }

  const Expr *projected_ = nullptr, *elementwise_ = nullptr;  // in the map being checked
  bool projectedQ_ = false, projectedK_ = false;

  /// Projected feature maps: q's and k's both project (onto the same feature dim), a linear
  /// recurrence without a gate or a state computes them in the chunked form.
  bool checkProjection() {
    if (v_.featureDim < 0)
      return true;
    if (!projectedQ_ || !projectedK_) {
      const TensorDecl &t = projectedQ_ ? kT() : qT();
      return failAtName(t, "'" + t.name + "' needs a projected feature map too: the dot runs over "
                               "the feature dim '" + v_.dims[size_t(v_.featureDim)].name + "'",
                        "write 'feature " + qT().name + ", " + kT().name + " = ...' with dot(x, " +
                            v_.params[size_t(v_.projParam)].name + "[...])");
    }
    return true;
  }

  /// dot(x, x) and dot(x, w[m]) in a feature map (Performer's random features).
  bool checkFeatureDot(Expr &e) {
    const char *hint = "a feature map may project its row x: dot(x, w[m]) with a param w[m, d], "
                       "and take its sum of squares: dot(x, x)";
    auto isX = [](const Expr &a) { return a.kind == Expr::Kind::Ident && a.name == "x"; };
    if (e.args.size() != 2 || !isX(*e.args[0]))
      return fail(e, "in a feature map, dot takes x and a param row: dot(x, w[m]) or dot(x, x)",
                  hint);
    e.type = ValueType::Float;
    if (isX(*e.args[1])) {
      e.res = Expr::Res::FeatureSq;
      projected_ = &e;
      return true;
    }
    Expr &w = *e.args[1];
    const Symbol *sym = w.kind == Expr::Kind::Index ? lookup(w.name) : nullptr;
    if (!sym || sym->kind != Symbol::Kind::Param || w.args.size() != 1 ||
        w.args[0]->kind != Expr::Kind::Ident)
      return fail(w, "the projection must be a row of a param: dot(x, w[m]), got '" + text(w) +
                         "'", hint);
    const TensorDecl &param = v_.params[size_t(sym->index)];
    const Symbol *m = lookup(w.args[0]->name);
    if (param.dims.size() != 2 || param.dims[1] != v_.headDim || !m ||
        m->kind != Symbol::Kind::Dim || param.dims[0] != m->index)
      return fail(w, "the projection param must be declared [" + w.args[0]->name + ", " +
                         v_.dims[size_t(v_.headDim)].name + "] (feature dim, head dim), got '" +
                         param.name + "' with " + std::to_string(param.dims.size()) + " dims",
                  "e.g. 'param " + param.name + "[" + w.args[0]->name + ", " +
                      v_.dims[size_t(v_.headDim)].name + "] : f32'");
    if (!isFloat(param.resolvedDType))
      return fail(w, "the projection param must be a float, got " +
                         std::string(dtypeName(param.resolvedDType)));
    if (m->index == v_.headDim || m->index == v_.valueDim || m->index == v_.batchDim ||
        m->index == v_.qHeadDim || m->index == v_.kvHeadDim || m->index == v_.qSeqDim ||
        m->index == v_.kvSeqDim)
      return fail(*w.args[0], "the feature dim must be a dim of its own, not '" +
                                  w.args[0]->name + "'",
                  "declare it in dims, e.g. 'm = 256'");
    if (!staticExtent_[size_t(m->index)])
      return fail(*w.args[0], "the feature dim '" + w.args[0]->name + "' must be static",
                  "declare its extent, e.g. '" + w.args[0]->name + " = 256'");
    if (v_.projParam >= 0 && (v_.projParam != sym->index || v_.featureDim != m->index))
      return fail(w, "every projected feature map must project with the same param row '" +
                         v_.params[size_t(v_.projParam)].name + "[" +
                         v_.dims[size_t(v_.featureDim)].name + "]'");
    v_.projParam = sym->index;
    v_.featureDim = m->index;
    e.res = Expr::Res::FeatureProj;
    e.paramIndex = sym->index;
    e.dimIndex = m->index;
    projected_ = &e;
    return true;
  }

  /// `decay EXPR` (a float of the batch, head and query position; multiplies any score: norm
  /// none and the causal mask) and `gate EXPR` (also of the head channel, whose params may be
  /// indexed by the head dim; acts inside the dot: a linear recurrence). Neither may read j.
  bool checkDecay() { return checkStepFactor(v_.decay.get(), v_.decayLoc, false); }
  bool checkGate() { return checkStepFactor(v_.gate.get(), v_.gateLoc, true); }

  /// Whether the key positions are the query positions: one dim an alias of the other, or both
  /// static and equal (a skip term and a bonus read key/value i at query i).
  bool keysAreQueries() const {
    const DimDecl &i = v_.dims[v_.qSeqDim], &j = v_.dims[v_.kvSeqDim];
    return (j.kind == DimDecl::Kind::Alias && j.sourceIndex == v_.qSeqDim) ||
           (i.kind == DimDecl::Kind::Alias && i.sourceIndex == v_.kvSeqDim) ||
           (staticExtent_[v_.qSeqDim] && staticExtent_[v_.kvSeqDim] &&
            *staticExtent_[v_.qSeqDim] == *staticExtent_[v_.kvSeqDim]);
  }

  /// `bonus EXPR` (RWKV's u): the current token's per-channel weight in a strict-causal
  /// recurrence, a float of the batch, head, query position and head channel (params may be
  /// indexed by the head dim, as in a gate); query i also reads key and value i.
  bool checkBonus() {
    Expr *e = v_.bonus.get();
    if (!e)
      return true;
    const std::string i = v_.dims[v_.qSeqDim].name, j = v_.dims[v_.kvSeqDim].name;
    channelIndex_ = true;
    bool ok = checkExpr(*e, Context::Bonus);
    channelIndex_ = false;
    if (!ok)
      return false;
    if (!isNumeric(e->type))
      return fail(*e, std::string("the bonus must be a number, got ") + valueTypeName(e->type));
    if (const Expr *jj = findIndex(*e, v_.kvSeqDim))
      return fail(*jj, "the bonus weighs the current token: it may not use '" + j + "'",
                  "write it with " + i + " (the current token's position) and the head dim");
    if (!v_.recurrence || !v_.strict)
      return fail(v_.bonusLoc, 5,
                  "a bonus needs a strict-causal linear recurrence: 'norm none', 'mask " + j +
                      " < " + i + "' and a score linear in dot(q, k)",
                  v_.recurrence ? "with 'mask " + j + " <= " + i +
                                      "' the current token is already in the state; write 'mask " +
                                      j + " < " + i + "'"
                                : "query " + i + " reads the state of the keys before it, plus " +
                                      "the current token weighed by the bonus");
    if (v_.featureDim >= 0)
      return fail(v_.bonusLoc, 5, "not supported yet: a bonus with a projected feature map",
                  "the bonus weighs the head channels, which the projection mixes");
    const DimDecl &qd = v_.dims[v_.qSeqDim], &kd = v_.dims[v_.kvSeqDim];
    if (!keysAreQueries())
      return fail(v_.bonusLoc, 5, "a bonus needs the key length to be the query length",
                  "query " + i + " reads key " + i + ": declare '" + kd.name +
                      (kd.extentName.empty() ? "" : " : " + kd.extentName) + " = " + qd.name +
                      "'");
    return true;
  }
  bool checkStepFactor(Expr *e, SourceLoc loc, bool gate) {
    if (!e)
      return true;
    const std::string name = gate ? "gate" : "decay";
    channelIndex_ = gate;
    bool ok = checkExpr(*e, gate ? Context::Gate : Context::Decay);
    channelIndex_ = false;
    if (!ok)
      return false;
    if (!isNumeric(e->type))
      return fail(*e, "the " + name + " must be a number, got " + valueTypeName(e->type));
    if (const Expr *j = findIndex(*e, v_.kvSeqDim))
      return fail(*j, "the " + name + " is per step of the query position: it may not use '" +
                          v_.dims[v_.kvSeqDim].name + "'",
                  gate ? "channel c of key j decays by gate(j + 1, c) * ... * gate(i, c), "
                         "written with i"
                       : "the weight of key j is decay(j + 1) * ... * decay(i), written with i");
    return needRecurrence(loc, name, "a " + name, /*linear=*/gate);
  }

  /// Whether the variant is a linear recurrence (Variant::recurrence), and its score split as
  /// dot * queryScale (the factors that do not read j, with the sign) * keyScale (those that do).
  bool checkRecurrence() {
    FormAdapter adapter{*this};
    ScoreForm form(adapter);
    v_.recurrence = ((v_.norm == Norm::None && (causalMask() || strictMask())) ||
                     (v_.norm == Norm::Sum && causalMask())) &&
                    form.run(v_.scores[0].expr.get());
    v_.strict = v_.recurrence && strictMask();
    v_.queryScale.reset();
    v_.keyScale.reset();
    if (v_.recurrence) {
      std::vector<std::pair<const Expr *, bool>> query, key;  // (factor, divides)
      for (const auto &f : form.factors)
        (f.key ? key : query).push_back({f.factor, f.divides});
      v_.queryScale = product(query, form.negate, v_.scores[0].loc);
      if (!key.empty())
        v_.keyScale = product(key, false, v_.scores[0].loc);
    }
    return true;
  }

  /// A decay with norm softmax (a forget-gate softmax, the Forgetting Transformer's): the
  /// score of (i, j) gains log decay(j + 1) + ... + log decay(i), so no key may come after its
  /// query: the mask must be `j <= i` (or `j < i`, `i >= j`, ...), alone or a conjunct.
  bool checkForgetGate(SourceLoc loc) {
    const std::string i = v_.dims[v_.qSeqDim].name, j = v_.dims[v_.kvSeqDim].name;
    if (!keysUpToQuery(v_.mask.get()))
      return fail(loc, 5,
                  "a decay with norm softmax (a forget gate) needs a mask that allows no key "
                  "past its query: 'mask " + j + " <= " + i + "'",
                  "the score of key " + j + " gains log decay(" + j + " + 1) + ... + log decay(" +
                      i + "); add '" + j + " <= " + i + "' to the mask (with && for more terms)");
    if (v_.paged || !v_.inputs[size_t(v_.k)].scale.empty() ||
        !v_.inputs[size_t(v_.v)].scale.empty())
      return fail(loc, 5, "not supported yet: a forget-gate softmax over paged or quantised k "
                          "and v",
                  "a forget gate belongs to prefill and training; decode its cache without one");
    if (v_.unifiedMax)
      return fail(v_.unifiedMaxLoc, 3, "a unified max does not combine with a decay",
                  "the decayed scores have no fixed bound: write 'norm softmax'");
    return true;
  }
  /// Whether the mask allows no key past its query: `j <= i`, `j < i`, `i >= j`, `i > j`, or a
  /// conjunction with one of them.
  bool keysUpToQuery(const Expr *m) const {
    if (!m || m->kind != Expr::Kind::Binary)
      return false;
    if (m->op == "&&")
      return keysUpToQuery(m->args[0].get()) || keysUpToQuery(m->args[1].get());
    auto is = [&](const Expr *e, int dim) {
      return e->res == Expr::Res::IterIndex && e->dimIndex == dim;
    };
    const Expr *a = m->args[0].get(), *b = m->args[1].get();
    if (m->op == "<=" || m->op == "<")
      return is(a, v_.kvSeqDim) && is(b, v_.qSeqDim);
    if (m->op == ">=" || m->op == ">")
      return is(a, v_.qSeqDim) && is(b, v_.kvSeqDim);
    return false;
  }

  /// The mask is exactly `j <= i`.
  bool causalMask() const { return maskIs("<="); }
  /// The mask is exactly `j < i` (a strict-causal recurrence's, with norm none).
  bool strictMask() const { return maskIs("<"); }
  bool maskIs(const char *op) const {
    const Expr *m = v_.mask.get();
    return m && m->kind == Expr::Kind::Binary && m->op == op &&
           m->args[0]->res == Expr::Res::IterIndex && m->args[0]->dimIndex == v_.kvSeqDim &&
           m->args[1]->res == Expr::Res::IterIndex && m->args[1]->dimIndex == v_.qSeqDim;
  }

  /// The recurrence form (dialect/RecurrenceForm.h) over the checked AST.
  struct FormAdapter {
    const VariantChecker &c;
    FormShape shape(const Expr *e) const {
      if (e->kind == Expr::Kind::Call && e->builtin == Builtin::Dot && !e->rowNorm)
        return FormShape::Dot;
      if (e->kind == Expr::Kind::Unary && e->op == "-")
        return FormShape::Neg;
      if (e->kind == Expr::Kind::Binary && e->op == "*" && e->type == ValueType::Float)
        return FormShape::Mul;
      if (e->kind == Expr::Kind::Binary && e->op == "/")
        return FormShape::Div;
      return FormShape::Other;
    }
    const Expr *lhs(const Expr *e) const { return e->args[0].get(); }
    const Expr *rhs(const Expr *e) const { return e->args[1].get(); }
    bool readsI(const Expr *e) const { return findIndex(*e, c.v_.qSeqDim) != nullptr; }
    bool readsJ(const Expr *e) const { return findIndex(*e, c.v_.kvSeqDim) != nullptr; }
    bool readsDot(const Expr *e) const {
      std::vector<Expr *> dots;
      collectCalls(const_cast<Expr &>(*e), "dot", dots);
      return !dots.empty();
    }
  };
  using ScoreForm = RecurrenceForm<FormAdapter, const Expr *>;
  bool linearInDot(const Expr &e) const {
    FormAdapter adapter{*this};
    return ScoreForm(adapter).run(&e);
  }

  static ExprPtr product(const std::vector<std::pair<const Expr *, bool>> &factors, bool negate,
                         SourceLoc loc) {
    auto node = [&](Expr::Kind kind) {
      auto e = std::make_unique<Expr>();
      e->kind = kind;
      e->loc = loc;
      e->type = ValueType::Float;
      return e;
    };
    ExprPtr acc = node(Expr::Kind::FloatLit);
    acc->floatValue = negate ? -1.0 : 1.0;
    for (auto [f, divides] : factors) {
      ExprPtr op = node(Expr::Kind::Binary);
      op->op = divides ? "/" : "*";
      op->args.push_back(std::move(acc));
      op->args.push_back(cloneExpr(*f));
      acc = std::move(op);
    }
    return acc;
  }

  /// `what` (a decay, a state) needs a linear recurrence; the error says which part is missing.
  /// A decay multiplies any score: it needs no linearity (`linear` false).
  bool needRecurrence(SourceLoc loc, const std::string &keyword, const std::string &what,
                      bool linear) {
    const char *hint = linear ? "a recurrence has 'norm none', 'mask j <= i' (or 'j < i') and a "
                                "score that is dot(q, k) times factors that each read i or j, "
                                "not both"
                              : "a decay turns the variant into a recurrence: write 'norm none' "
                                "and 'mask j <= i' (or 'j < i')";
    if (v_.recurrence)
      return true;
    if (v_.norm == Norm::Softmax && keyword == "decay")
      return checkForgetGate(loc);
    if (v_.norm != Norm::None && v_.norm != Norm::Sum)
      return fail(loc, keyword.size(), what + " needs norm none", hint);
    if (linear && !linearInDot(*v_.scores[0].expr))
      return fail(*v_.scores[0].expr,
                  what + " needs a score linear in dot(q, k): dot times factors free of '" +
                      v_.dims[v_.qSeqDim].name + "' or of '" + v_.dims[v_.kvSeqDim].name + "'",
                  hint);
    if (causalMask() || (strictMask() && v_.norm == Norm::None))
      return true;  // only a non-linear score is missing, which `what` does not need
    return fail(loc, keyword.size(),
                what + " needs the causal mask exactly: 'mask " + v_.dims[v_.kvSeqDim].name +
                    " <= " + v_.dims[v_.qSeqDim].name + "'" +
                    (v_.norm == Norm::None ? " (or '" + v_.dims[v_.kvSeqDim].name + " < " +
                                                 v_.dims[v_.qSeqDim].name + "')"
                                           : std::string()),
                hint);
  }

  /// `state S[b, h, d, dv]`: f32, the batch, query head, head and value dims in any order, in a
  /// recurrence over unpaged, unquantised k and v.
  bool checkState() {
    if (!v_.state)
      return true;
    TensorDecl &st = *v_.state;
    st.resolvedDType = st.dtype.value_or(DType::F32);
    std::string want = "state " + st.name + "[" + v_.dims[v_.batchDim].name + ", " +
                       v_.dims[v_.qHeadDim].name + ", " + v_.dims[v_.dotDim()].name + ", " +
                       v_.dims[v_.valueDim].name + "] (in any order)";
    std::vector<int> expected = {v_.batchDim, v_.qHeadDim, v_.dotDim(), v_.valueDim};
    if (!std::is_permutation(st.dims.begin(), st.dims.end(), expected.begin(), expected.end()))
      return failAtName(st, "the state holds one [head dim, value dim] matrix per batch entry "
                            "and query head",
                        "write " + want);
    if (st.resolvedDType != DType::F32)
      return failAtName(st, std::string("the state is f32, got ") + dtypeName(st.resolvedDType),
                        "drop the dtype or write ': f32'");
    if (!needRecurrence(st.loc, st.name, "a state", /*linear=*/true))
      return false;
    if (v_.paged || isQuantized(kT().resolvedDType) || isQuantized(vT().resolvedDType))
      return failAtName(st, "not supported yet: a state with paged or quantised k and v",
                        "store k and v unpaged in f32, f16 or bf16");
    return true;
  }

  /// The first use of iteration dim `dim` in `e` (as an index or a param index), if any.
  static const Expr *findIndex(const Expr &e, int dim) {
    if (e.res == Expr::Res::IterIndex && e.dimIndex == dim)
      return &e;
    for (const ExprPtr &a : e.args)
      if (const Expr *found = findIndex(*a, dim))
        return found;
    return nullptr;
  }

  bool checkFeatureIdent(Expr &e) {
    if (e.name != "x")
      return fail(e, "a feature map is elementwise: it may use x, numbers and builtins, not '" +
                         e.name + "'",
                  "x is the element of q or k being mapped");
    e.res = Expr::Res::FeatureArg;
    e.type = ValueType::Float;
    elementwise_ = &e;
    return true;
  }

  /// findValues() checked the shape `attend(s, v)`; only the annotations remain.
  bool checkOutputExpr() {
    Expr &out = *v_.outputExpr;
    if (v_.mix)
      return checkMix();
    if (v_.outputMap)
      return checkOutputMap();
    Expr &attendOrNorm = v_.skip ? *out.args[v_.skip == out.args[0].get() ? 1 : 0] : out;
    Expr &attend = rmsNode_ ? *rmsNode_->args[0] : attendOrNorm;
    attend.res = Expr::Res::Builtin;
    attend.builtin = Builtin::Attend;
    attend.type = ValueType::Float;
    if (rmsNode_ && !checkRmsNorm(*rmsNode_))
      return false;
    if (!v_.skip)
      return true;
    Expr &skip = *out.args[v_.skip == out.args[0].get() ? 0 : 1];
    if (!checkNumberIn(skip, Context::Skip, skipContext_, "the skip term"))
      return false;
    out.type = ValueType::Float;
    out.res = Expr::Res::None;
    return true;
  }

  /// Several scores: the mix M (Variant::mix) and the map around rmsnorm(M, eps), if any, are
  /// numbers per output element reading the attends, params by the batch, head, query and
  /// value dims, dims and numbers; never the key position.
  bool checkMix() {
    Expr &out = *v_.outputExpr;
    Expr &mix = const_cast<Expr &>(*v_.mix);
    attendNodes_.clear();
    collectCalls(mix, "attend", attendNodes_);
    for (Expr *attend : attendNodes_) {
      attend->res = Expr::Res::Builtin;
      attend->builtin = Builtin::Attend;
      attend->type = ValueType::Float;
    }
    if (!checkNumberIn(mix, Context::Output, outputContext_, "the mix of the scores' rows") ||
        !checkOutputPosition(mix))
      return false;
    if (!rmsNode_)
      return true;
    if (!checkRmsNorm(*rmsNode_))
      return false;
    rmsNode_->res = Expr::Res::Builtin;
    rmsNode_->builtin = Builtin::Attend;  // the normalised element, for the map around it
    rmsNode_->attendScore = -1;
    if (!v_.outputMap)
      return true;
    attendNodes_.push_back(rmsNode_);
    return checkNumberIn(out, Context::Output, outputContext_, "the output") &&
           checkOutputPosition(out);
  }

  /// An output map (Variant::outputMap): a number per element of the attend result, reading
  /// params by the batch, head, query and value dims, never the key position or the score.
  bool checkOutputMap() {
    Expr &out = *v_.outputExpr;
    attendNodes_.clear();
    collectCalls(out, "attend", attendNodes_);
    const Expr &first = *attendNodes_.front();  // findValues checked its arguments
    for (Expr *attend : attendNodes_) {
      if (attend != &first) {
        bool same = attend->args.size() == 2;
        for (size_t a = 0; same && a < 2; ++a)
          same = attend->args[a]->kind == Expr::Kind::Ident &&
                 attend->args[a]->name == first.args[a]->name;
        if (!same)
          return fail(*attend,
                      "every attend of the output must be '" + text(first) + "', got '" +
                          text(*attend) + "'",
                      "every attend reads the score and the values input; for another "
                      "product of q and k declare another score (differential attention)");
      }
      attend->res = Expr::Res::Builtin;
      attend->builtin = Builtin::Attend;
      attend->type = ValueType::Float;
    }
    // An rmsnorm(attend(s, v), eps) stands for the normalised element the map reads.
    std::vector<Expr *> norms;
    collectCalls(out, "rmsnorm", norms);
    for (Expr *norm : norms) {
      if (!checkRmsNorm(*norm))
        return false;
      norm->res = Expr::Res::Builtin;
      norm->builtin = Builtin::Attend;
      attendNodes_.push_back(norm);
    }
    bool whole = &first == &out || (!norms.empty() && norms.front() == &out);
    if (!whole && !checkNumberIn(out, Context::Output, outputContext_, "the output"))
      return false;
    return checkOutputPosition(out);
  }

  /// Checks `e` in context `ctx`, with `flag` (what the context may read) set meanwhile, and
  /// that it is a number; `what` names it in the error.
  bool checkNumberIn(Expr &e, Context ctx, bool &flag, const std::string &what) {
    flag = true;
    bool ok = checkExpr(e, ctx);
    flag = false;
    if (!ok)
      return false;
    if (!isNumeric(e.type))
      return fail(e, what + " must be a number, got " + valueTypeName(e.type));
    return true;
  }
  std::vector<Expr *> attendNodes_;  // an output map's attend(s, v) calls

  /// An output map is per query position: it may not read the key position.
  bool checkOutputPosition(const Expr &out) {
    if (const Expr *j = findIndex(out, v_.kvSeqDim))
      return fail(*j, "the output is per query position: it may not use '" +
                          v_.dims[v_.kvSeqDim].name + "'",
                  "terms of the key position belong in the score");
    return true;
  }

  /// After checkRecurrence: an output map belongs to the quadratic form (the chunked form of a
  /// linear recurrence applies only rmsnorm and a skip term). `attend(s, v) + E` where E does
  /// not read v is a skip term in a recurrence and an output map otherwise.
  bool checkOutputForm() {
    if (v_.skip && !v_.recurrence && !readsValueAt(*v_.skip)) {
      v_.skip = nullptr;
      v_.skipNegate = false;
      v_.outputMap = true;
      if (rmsNode_) {  // rmsnorm(attend(s, v), eps) + E: the map reads the normalised element
        rmsNode_->res = Expr::Res::Builtin;
        rmsNode_->builtin = Builtin::Attend;
      }
      if (!checkOutputPosition(*v_.outputExpr))
        return false;
    }
    if (v_.outputMap && v_.recurrence)
      return fail(*v_.outputExpr,
                  "not supported yet: an output expression on a linear recurrence ('" +
                      text(*v_.outputExpr) + "')",
                  "the chunked form applies rmsnorm(attend(" + v_.scores[0].name +
                      ", v), eps) and a skip term; apply the gate to the kernel's output");
    return true;
  }

  static bool readsValueAt(const Expr &e) {
    if (e.res == Expr::Res::ValueAt)
      return true;
    for (const ExprPtr &a : e.args)
      if (readsValueAt(*a))
        return true;
    return false;
  }

  /// `rmsnorm(attend(s, v), eps)`: eps a positive number; the chunked form of a linear
  /// recurrence or the quadratic form's store computes it.
  bool checkRmsNorm(Expr &call) {
    call.res = Expr::Res::None;
    call.type = ValueType::Float;
    if (call.args.size() != 2)
      return fail(call, "'rmsnorm' takes 2 arguments, got " + std::to_string(call.args.size()),
                  "write rmsnorm(attend(" + v_.scores[0].name + ", " + vT().name +
                      "), 1e-6): the row over the value dim, then the epsilon");
    const Expr &eps = *call.args[1];
    if (eps.kind != Expr::Kind::FloatLit && eps.kind != Expr::Kind::IntLit)
      return fail(eps, "rmsnorm's epsilon must be a number, got '" + text(eps) + "'",
                  "e.g. rmsnorm(attend(s, v), 1e-6)");
    double value = eps.kind == Expr::Kind::FloatLit ? eps.floatValue : double(eps.intValue);
    if (!(value > 0))
      return fail(eps, "rmsnorm's epsilon must be positive, got '" + text(eps) + "'",
                  "e.g. rmsnorm(attend(s, v), 1e-6)");
    v_.rmsEps = value;
    return true;
  }

  /// `norm sum` and an output rmsnorm: only the chunked form of a linear recurrence computes
  /// them; the normaliser's running sum is not part of a `state` yet.
  bool checkNormalisers() {
    if (v_.norm == Norm::Sum) {
      if (!needRecurrence(v_.normLoc, "sum", "norm sum", /*linear=*/true))
        return false;
      if (v_.state)
        return failAtName(*v_.state, "not supported yet: a state with norm sum",
                          "the running sum of the keys' weights would need its own state; drop "
                          "the state or use norm none");
    }
    if (v_.featureDim < 0)
      return true;
    const FeatureDecl &map = v_.features.front();
    if (!needRecurrence(map.loc, "feature", "a projected feature map", /*linear=*/true))
      return false;
    if (v_.gate)
      return fail(*v_.gate, "not supported yet: a gate with a projected feature map",
                  "a gate decays the head channels, which the projection mixes");
    if (v_.state)
      return failAtName(*v_.state, "not supported yet: a state with a projected feature map");
    return true;
  }

  /// Shared q/k head groups: only the chunked form of a linear recurrence computes them.
  bool checkQKGroups() {
    if (v_.qkGroupDim < 0)
      return true;
    if (v_.paged || isQuantized(kT().resolvedDType) || isQuantized(vT().resolvedDType))
      return failAtName(kT(), "not supported yet: q/k head groups with paged or quantised k and v",
                        "store k and v unpaged in f32, f16 or bf16");
    return needRecurrence(kT().loc, kT().name, "sharing q and k across a group of heads",
                          /*linear=*/true);
  }

  /// A skip term (after checkRecurrence): it reads v at the query position, so the key
  /// positions are the query positions, and it belongs to a linear recurrence.
  bool checkSkip() {
    if (!v_.skip)
      return true;
    if (const Expr *j = findIndex(*v_.skip, v_.kvSeqDim))
      return fail(*j, "the skip term is per query position: it may not use '" +
                          v_.dims[v_.kvSeqDim].name + "'",
                  "read v at the query position: " + vT().name + "[...] with '" +
                      v_.dims[v_.qSeqDim].name + "'");
    const DimDecl &i = v_.dims[v_.qSeqDim], &j = v_.dims[v_.kvSeqDim];
    if (!keysAreQueries())
      return fail(*v_.skip,
                  "a skip term needs the key length to be the query length",
                  "declare the key dim as an alias of the query dim: '" + j.name +
                      (j.extentName.empty() ? "" : " : " + j.extentName) + " = " + i.name + "'");
    return needRecurrence(v_.skip->loc, text(*v_.skip), "a skip term", /*linear=*/true);
  }

  bool checkExpr(Expr &e, Context ctx) {
    switch (e.kind) {
    case Expr::Kind::IntLit:
      e.type = ValueType::Int;
      return true;
    case Expr::Kind::FloatLit:
      e.type = ValueType::Float;
      return true;
    case Expr::Kind::BoolLit:
      e.type = ValueType::Bool;
      return true;
    case Expr::Kind::Ident:
      return ctx == Context::Feature ? checkFeatureIdent(e) : checkIdent(e, ctx);
    case Expr::Kind::Index:
      if (ctx == Context::Feature)
        return fail(e, "a feature map is elementwise: it may use x, numbers and builtins, not '" +
                           e.name + "'");
      return checkIndex(e, ctx);
    case Expr::Kind::Call:
      return checkCall(e, ctx);
    case Expr::Kind::Unary:
      return checkUnary(e, ctx);
    case Expr::Kind::Binary:
      return checkBinary(e, ctx);
    }
    return fail(e, "unexpected expression");
  }

  std::vector<std::string> valueNames() const {
    std::vector<std::string> names;
    for (const DimDecl &d : v_.dims) {
      names.push_back(d.name);
      if (!d.extentName.empty())
        names.push_back(d.extentName);
    }
    for (const TensorDecl &p : v_.params)
      names.push_back(p.name);
    return names;
  }

  void resolveDim(Expr &e, int dim) {
    e.res = isIterationRole(v_.dims[dim].role) ? Expr::Res::IterIndex : Expr::Res::DimSize;
    e.dimIndex = dim;
    e.type = ValueType::Int;
  }

  void resolveParamLoad(Expr &e, int param) {
    e.res = Expr::Res::ParamLoad;
    e.paramIndex = param;
    e.type = isFloat(v_.params[param].resolvedDType) ? ValueType::Float : ValueType::Int;
  }

  bool checkIdent(Expr &e, Context ctx) {
    const Symbol *sym = lookup(e.name);
    if (!sym)
      return fail(e, "unknown name '" + e.name + "'", didYouMean(e.name, valueNames()));
    switch (sym->kind) {
    case Symbol::Kind::Dim:
      resolveDim(e, sym->index);
      return true;
    case Symbol::Kind::Extent:  // the extent name stands for the size of its dim
      e.res = Expr::Res::DimSize;
      e.dimIndex = sym->index;
      e.type = ValueType::Int;
      return true;
    case Symbol::Kind::Input:
    case Symbol::Kind::Output:
    case Symbol::Kind::State:
      return fail(e, "tensor '" + e.name + "' cannot be used as a value",
                  "tensors are read through dot(" + qT().name + ", " + kT().name +
                      ") in the score and attend(...) in the output");
    case Symbol::Kind::Score:
      if (ctx == Context::Mask)
        return fail(e, "the mask cannot depend on the score '" + e.name + "'",
                    "a mask selects keys by position; put value-dependent terms in the score");
      if (ctx == Context::Skip)
        return fail(e, "the skip term cannot depend on the score '" + e.name + "'",
                    "it is added to attend(...): v at the query position, params and numbers");
      if (ctx == Context::Output)
        return fail(e, "the output cannot read the score '" + e.name + "' outside attend",
                    "the output is an expression of attend(" + e.name + ", " + vT().name +
                        "), params by the query position and numbers");
      if (ctx == Context::Decay || ctx == Context::Gate || ctx == Context::Bonus)
        return fail(e, std::string("the ") +
                           (ctx == Context::Decay ? "decay" : ctx == Context::Gate ? "gate"
                                                                                   : "bonus") +
                           " cannot depend on the score '" + e.name + "'",
                    "a decay or gate is a factor per step: positions and params only");
      return fail(e, "score '" + e.name + "' cannot refer to itself");
    case Symbol::Kind::Let:  // substituteLets replaced every use it could reach
      return fail(e, "let '" + e.name + "' cannot be used here");
    case Symbol::Kind::Param:
      break;
    }
    const TensorDecl &p = v_.params[sym->index];
    if (!p.dimNames.empty())
      return fail(e, "param '" + e.name + "' is used without its indices",
                  "write " + p.name + "[" + joinNames(p.dimNames) + "]");
    // A rank-0 param becomes an Index with no arguments, so every ParamLoad is an Index.
    e.kind = Expr::Kind::Index;
    resolveParamLoad(e, sym->index);
    return true;
  }

  std::vector<std::string> iterationDimNames() const {
    std::vector<std::string> names;
    for (const DimDecl &d : v_.dims)
      if (isIterationRole(d.role))
        names.push_back(d.name);
    return names;
  }

  /// p[a, b]: every index names exactly the declared dim of its position, and that dim is an
  /// iteration dim, so every access is in bounds by construction.
  bool checkIndex(Expr &e, Context ctx) {
    const Symbol *sym = lookup(e.name);
    std::vector<std::string> paramNames;
    for (const TensorDecl &p : v_.params)
      paramNames.push_back(p.name);
    if (!sym)
      return fail(e.loc, e.name.size(), "unknown name '" + e.name + "'",
                  didYouMean(e.name, paramNames));
    if (sym->kind == Symbol::Kind::Input && skipContext_ && sym->index == v_.v)
      return checkValueAt(e);
    if (sym->kind == Symbol::Kind::Input)
      return fail(e, "input '" + e.name + "' cannot be indexed",
                  skipContext_ ? "a skip term reads the values '" + vT().name +
                                     "' at the query position"
                               : "inputs are read only through dot/attend (and the values in "
                                 "a skip term); make it a param to index it");
    if (sym->kind != Symbol::Kind::Param)
      return fail(e, "'" + e.name + "' is " + kindName(sym->kind) +
                         ", not a param; only params can be indexed");
    const TensorDecl &p = v_.params[sym->index];
    std::string usage = p.name + "[" + joinNames(p.dimNames) + "]";
    if (e.args.size() != p.dims.size())
      return fail(e,
                  "param '" + p.name + "' has " + count(p.dims.size(), "dim") + ", got " +
                      count(e.args.size(), "index"),
                  p.dims.empty() ? "write " + p.name : "write " + usage);
    for (size_t i = 0; i < e.args.size(); ++i)
      if (!checkParamIndex(*e.args[i], p, i, ctx))
        return false;
    resolveParamLoad(e, sym->index);
    return true;
  }

  /// Index `pos` of param `p` computed from an integer expression (`table[h, bucket]`,
  /// `anc[b, node[b, i], node[b, j]]`, `rate[h, seg[b, i]]` in a decay): in the score, the
  /// mask, a decay, a gate and a skip term (each with the positions it may read), clamped into
  /// the axis. (Feature maps read no params at all.)
  bool checkComputedIndex(Expr &arg, const TensorDecl &p, size_t pos, Context ctx) {
    if (!checkExpr(arg, ctx))
      return false;
    if (arg.type != ValueType::Int)
      return fail(arg,
                  "index " + std::to_string(pos + 1) + " of '" + p.name + "' must be an "
                  "integer, got " + valueTypeName(arg.type) + " '" + text(arg) + "'",
                  "an index is a dim or an integer expression of dims, sizes, int params and "
                  "numbers");
    arg.clamp = true;
    return true;
  }

  bool checkParamIndex(Expr &arg, const TensorDecl &p, size_t pos, Context ctx) {
    const std::string &want = p.dimNames[pos];
    int dim = p.dims[pos];
    // A dim aliasing the declared one (`j : kv_len = i`: the same extent) indexes it too, as
    // Mamba's dt[b, i, h] does at the key position in the score.
    if (arg.kind == Expr::Kind::Ident && arg.name != want) {
      const Symbol *sym = lookup(arg.name);
      if (sym && sym->kind == Symbol::Kind::Dim) {
        const DimDecl &used = v_.dims[sym->index], &declared = v_.dims[dim];
        bool alias = (used.kind == DimDecl::Kind::Alias && used.sourceIndex == dim) ||
                     (declared.kind == DimDecl::Kind::Alias && declared.sourceIndex == sym->index);
        if (alias && isIterationRole(used.role)) {
          resolveDim(arg, sym->index);
          return true;
        }
      }
    }
    if (arg.kind != Expr::Kind::Ident || arg.name != want)
      return checkComputedIndex(arg, p, pos, ctx);
    if ((channelIndex_ && dim == v_.headDim) ||
        ((skipContext_ || outputContext_) && dim == v_.valueDim)) {
      // a gate reads params per head channel, a skip term and an output map per value channel
      arg.res = Expr::Res::IterIndex;
      arg.dimIndex = dim;
      arg.type = ValueType::Int;
      return true;
    }
    if (!isIterationRole(v_.dims[dim].role))
      return fail(arg,
                  "param index '" + want + "' must be one of " + joinNames(iterationDimNames()),
                  "params are indexed by batch, head and sequence dims, or by an integer "
                  "expression of them (clamped into the axis: " + p.name + "[..., min(i - j, " +
                      want + " - 1)])");
    resolveDim(arg, dim);
    return true;
  }

  /// v[b, i, h, dv] in a skip term: v's declared dims, the query position for the key's.
  bool checkValueAt(Expr &e) {
    const TensorDecl &t = vT();
    std::string want = t.name + "[";
    for (size_t a = 0; a < t.dims.size(); ++a)
      want += (a ? ", " : "") +
              v_.dims[t.dims[a] == v_.kvSeqDim ? v_.qSeqDim : t.dims[a]].name;
    want += "]";
    if (e.args.size() != t.dims.size())
      return fail(e, "'" + t.name + "' has " + count(t.dims.size(), "dim") + ", got " +
                         count(e.args.size(), "index"),
                  "write " + want);
    for (size_t a = 0; a < e.args.size(); ++a) {
      int dim = t.dims[a] == v_.kvSeqDim ? v_.qSeqDim : t.dims[a];
      const Expr &arg = *e.args[a];
      if (arg.kind != Expr::Kind::Ident || arg.name != v_.dims[dim].name)
        return fail(arg,
                    "index " + std::to_string(a + 1) + " of '" + t.name + "' in the skip term "
                    "must be '" + v_.dims[dim].name + "', got '" + text(arg) + "'",
                    "the skip term reads the values at the query position: " + want);
    }
    e.res = Expr::Res::ValueAt;
    e.type = ValueType::Float;
    return true;
  }

  bool checkCall(Expr &e, Context ctx) {
    if (ctx == Context::Output &&
        std::find(attendNodes_.begin(), attendNodes_.end(), &e) != attendNodes_.end())
      return true;  // checkOutputMap annotated it: attend(s, v) or rmsnorm(attend(s, v), eps)
    const BuiltinInfo *b = findBuiltin(e.name);
    if (!b) {
      std::vector<std::string> names;
      for (const BuiltinInfo &info : kBuiltins)
        names.push_back(info.name);
      return fail(e.loc, e.name.size(), "unknown function '" + e.name + "'",
                  orElse(didYouMean(e.name, names), "builtins are " + joinNames(names)));
    }
    if (b->id == Builtin::Dot && ctx == Context::Feature)
      return checkFeatureDot(e);
    if (b->id == Builtin::Dot) {
      if (ctx != Context::Score)
        return fail(e, "dot(...) is only allowed in the score",
                    "q and k meet in the score; masks depend on positions only");
      e.res = Expr::Res::Builtin;
      e.builtin = Builtin::Dot;
      e.type = ValueType::Float;
      return true;  // findAttention() checked the arguments
    }
    if (b->id == Builtin::Attend)
      return fail(e, "attend(...) is only allowed in the output expression");
    if (e.args.size() != b->arity)
      return fail(e, "'" + e.name + "' takes " + count(b->arity, "argument") + ", got " +
                         std::to_string(e.args.size()));
    if (b->id == Builtin::Size)
      return checkSize(e);
    for (ExprPtr &a : e.args)
      if (!checkExpr(*a, ctx))
        return false;
    e.res = Expr::Res::Builtin;
    e.builtin = b->id;
    return typeBuiltin(e);
  }

  bool checkSize(Expr &e) {
    Expr &arg = *e.args[0];
    const Symbol *sym = arg.kind == Expr::Kind::Ident ? lookup(arg.name) : nullptr;
    if (!sym || (sym->kind != Symbol::Kind::Dim && sym->kind != Symbol::Kind::Extent))
      return fail(arg, "size() takes a dim name, got '" + text(arg) + "'",
                  "declared dims: " + joinNames(dimNames(v_.dims.size())));
    for (Expr *x : {&e, &arg}) {
      x->res = Expr::Res::DimSize;
      x->dimIndex = sym->index;
      x->type = ValueType::Int;
    }
    e.builtin = Builtin::Size;
    return true;
  }

  bool requireNumber(const Expr &arg, const std::string &what) {
    if (isNumeric(arg.type))
      return true;
    return fail(arg, what + " needs a number, got " + valueTypeName(arg.type));
  }

  bool typeBuiltin(Expr &e) {
    const std::string fn = "'" + e.name + "'";
    switch (e.builtin) {
    case Builtin::Floor:  // a float (or int) to the int at or below it
      if (!requireNumber(*e.args[0], fn))
        return false;
      e.type = ValueType::Int;
      return true;
    case Builtin::Abs:
      if (!requireNumber(*e.args[0], fn))
        return false;
      e.type = e.args[0]->type;
      return true;
    case Builtin::Min:
    case Builtin::Max:
      if (!requireNumber(*e.args[0], fn) || !requireNumber(*e.args[1], fn))
        return false;
      e.type = join(e.args[0]->type, e.args[1]->type);
      return true;
    case Builtin::Select:
      return typeSelect(e);
    default:  // exp log tanh sigmoid sqrt rsqrt relu
      if (!requireNumber(*e.args[0], fn))
        return false;
      e.type = ValueType::Float;
      return true;
    }
  }

  bool typeSelect(Expr &e) {
    const Expr &c = *e.args[0], &a = *e.args[1], &b = *e.args[2];
    if (c.type != ValueType::Bool)
      return fail(c, std::string("the condition of select must be bool, got ") +
                         valueTypeName(c.type));
    if (isNumeric(a.type) && isNumeric(b.type)) {
      e.type = join(a.type, b.type);
      return true;
    }
    if (a.type == ValueType::Bool && b.type == ValueType::Bool) {
      e.type = ValueType::Bool;
      return true;
    }
    return fail(e, std::string("the branches of select must both be numbers or both be bools, "
                               "got ") +
                       valueTypeName(a.type) + " and " + valueTypeName(b.type));
  }

  bool checkUnary(Expr &e, Context ctx) {
    Expr &x = *e.args[0];
    if (!checkExpr(x, ctx))
      return false;
    if (e.op == "!") {
      if (x.type != ValueType::Bool)
        return fail(x, std::string("'!' needs a boolean, got ") + valueTypeName(x.type));
      e.type = ValueType::Bool;
      return true;
    }
    if (!requireNumber(x, "'-'"))
      return false;
    e.type = x.type;
    return true;
  }

  bool checkBinary(Expr &e, Context ctx) {
    Expr &l = *e.args[0], &r = *e.args[1];
    if (!checkExpr(l, ctx) || !checkExpr(r, ctx))
      return false;
    const std::string &op = e.op;
    if (op == "&&" || op == "||") {
      for (const Expr *x : {&l, &r})
        if (x->type != ValueType::Bool)
          return fail(*x, "'" + op + "' needs booleans, got " + valueTypeName(x->type),
                      "compare first, e.g. 'x != 0'");
      e.type = ValueType::Bool;
      return true;
    }
    bool comparison =
        op == "<" || op == "<=" || op == ">" || op == ">=" || op == "==" || op == "!=";
    for (const Expr *x : {&l, &r}) {
      if (x->type != ValueType::Bool)
        continue;
      if (comparison)
        return fail(*x, "comparison '" + op + "' needs numbers, got bool",
                    "combine booleans with &&, || and !");
      return fail(*x, "arithmetic on a boolean: '" + op + "' needs numbers",
                  "use select(c, 1.0, 0.0) to turn a condition into a number");
    }
    if ((op == "/" || op == "%") && isLiteralZero(r))
      return fail(e, std::string(op == "/" ? "division" : "remainder") + " by zero in '" + text(e) +
                         "'");
    e.type = comparison ? ValueType::Bool : join(l.type, r.type);
    return true;
  }
};

}  // namespace

std::vector<int> Variant::canonicalPerm(const TensorDecl &t) const {
  bool querySide = std::find(t.dims.begin(), t.dims.end(), qSeqDim) != t.dims.end();
  bool headSide = std::find(t.dims.begin(), t.dims.end(), headDim) != t.dims.end();
  int heads = headSide && qkGroupDim >= 0 ? qkGroupDim : querySide ? qHeadDim : kvHeadDim;
  int canonical[4] = {batchDim, heads, querySide ? qSeqDim : kvSeqDim,
                      headSide ? headDim : valueDim};
  std::vector<int> perm(4, -1);
  for (int c = 0; c < 4; ++c)
    for (size_t p = 0; p < t.dims.size(); ++p)
      if (t.dims[p] == canonical[c])
        perm[c] = int(p);
  return perm;
}

std::vector<int> Variant::statePerm() const {
  int canonical[4] = {batchDim, qHeadDim, dotDim(), valueDim};
  std::vector<int> perm(4, -1);
  for (int c = 0; c < 4; ++c)
    for (size_t p = 0; state && p < state->dims.size(); ++p)
      if (state->dims[p] == canonical[c])
        perm[c] = int(p);
  return perm;
}

std::vector<int> Variant::pagedStorage(const TensorDecl &t) const {
  std::vector<int> out = {kPageAxis};
  for (int d : t.dims)
    if (d == kvSeqDim)
      out.push_back(kSlotAxis);
    else if (d != batchDim)
      out.push_back(d);
  return out;
}

std::vector<int> Variant::pagedCanonicalPerm(const TensorDecl &t) const {
  std::vector<int> storage = pagedStorage(t);
  bool headSide = std::find(t.dims.begin(), t.dims.end(), headDim) != t.dims.end();
  int canonical[4] = {kPageAxis, kvHeadDim, kSlotAxis, headSide ? headDim : valueDim};
  std::vector<int> perm(4, -1);
  for (int c = 0; c < 4; ++c)
    for (size_t p = 0; p < storage.size(); ++p)
      if (storage[p] == canonical[c])
        perm[c] = int(p);
  return perm;
}

bool checkSpec(SpecFile &file, Diagnostic &diag) {
  std::map<std::string, SourceLoc> seen;
  for (Variant &v : file.variants) {
    auto inserted = seen.insert({v.name, v.loc});
    if (!inserted.second) {
      diag.file = file.path;
      diag.loc = v.loc;
      diag.length = uint32_t(v.name.size());
      diag.message = "duplicate variant '" + v.name + "'";
      diag.hint = "'" + v.name + "' is already declared at " + at(inserted.first->second);
      return false;
    }
    if (!VariantChecker(v, file, diag).run())
      return false;
  }
  return true;
}

bool loadSpec(const std::string &path, const std::string &text, SpecFile &out, Diagnostic &diag) {
  return parseSpec(path, text, out, diag) && checkSpec(out, diag);
}

// ---- runtime dim sizes ----------------------------------------------------------------------

namespace {

std::string dimLabel(const DimDecl &d) {
  return "'" + d.name + "'" + (d.extentName.empty() ? "" : " (" + d.extentName + ")");
}

/// Collects the user's sizes per dim; fails on unknown names, sizes < 1 and contradictions.
bool collectGivenSizes(const Variant &v, const std::vector<std::pair<std::string, int64_t>> &given,
                       std::vector<std::optional<int64_t>> &byDim, std::string &error) {
  byDim.assign(v.dims.size(), std::nullopt);
  for (const auto &g : given) {
    auto it = std::find_if(v.dims.begin(), v.dims.end(), [&](const DimDecl &d) {
      return d.name == g.first || (!d.extentName.empty() && d.extentName == g.first);
    });
    if (it == v.dims.end()) {
      error = "unknown dim '" + g.first + "' in variant '" + v.name + "'";
      return false;
    }
    if (g.second < 1 || g.second > kMaxExtent) {
      error = "size of " + dimLabel(*it) + " must be 1 to " + std::to_string(kMaxExtent) +
              ", got " + std::to_string(g.second);
      return false;
    }
    std::optional<int64_t> &slot = byDim[it - v.dims.begin()];
    if (slot && *slot != g.second) {
      error = "conflicting sizes for " + dimLabel(*it) + ": " + std::to_string(*slot) + " and " +
              std::to_string(g.second);
      return false;
    }
    slot = g.second;
  }
  return true;
}

}  // namespace

/// Expects a checked variant: derived dims and aliases have their sourceIndex.
bool resolveDimSizes(const Variant &v, const std::vector<std::pair<std::string, int64_t>> &given,
                     DimSizes &out, std::string &error) {
  std::vector<std::optional<int64_t>> byDim;
  if (!collectGivenSizes(v, given, byDim, error))
    return false;
  out.assign(v.dims.size(), 0);
  for (size_t i = 0; i < v.dims.size(); ++i) {
    const DimDecl &d = v.dims[i];
    bool hasSource = d.sourceIndex >= 0 && size_t(d.sourceIndex) < i;
    switch (d.kind) {
    case DimDecl::Kind::Dynamic:
      if (!byDim[i]) {
        error = "missing size for dim " + dimLabel(d);
        return false;
      }
      out[i] = *byDim[i];
      break;
    case DimDecl::Kind::Static:
      out[i] = d.staticSize;
      break;
    case DimDecl::Kind::Alias:
    case DimDecl::Kind::Derived: {
      if (!hasSource || d.divisor < 1) {
        error = "variant '" + v.name + "' is not checked";
        return false;
      }
      int64_t source = out[d.sourceIndex];
      int64_t divisor = d.kind == DimDecl::Kind::Derived ? d.divisor : 1;
      if (source % divisor != 0) {
        error = "dim '" + d.name + " = " + d.source + " / " + std::to_string(divisor) +
                "' does not divide: '" + d.source + "' is " + std::to_string(source);
        return false;
      }
      out[i] = source / divisor;
      break;
    }
    }
    if (byDim[i] && *byDim[i] != out[i]) {
      error = "dim " + dimLabel(d) + " is " + std::to_string(out[i]) + ", but " +
              std::to_string(*byDim[i]) + " was given";
      return false;
    }
  }
  return true;
}

}  // namespace attnc
