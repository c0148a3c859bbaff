#include "compiler/frontend/Parser.h"

#include <algorithm>

namespace attnc {
namespace {

const std::vector<std::string> kStatementNames = {"dims", "input", "param",  "score",
                                                  "mask", "norm",  "output", "paged",
                                                  "feature", "decay", "state", "gate", "bonus",
                                                  "let"};
const std::vector<std::string> kNormNames = {"softmax", "none", "sigmoid", "relu2", "sum"};
const std::vector<std::string> kDTypeNames = {"f32", "f16", "bf16", "i32", "i8", "f8e4m3", "i4"};

bool isComparison(const Token &t) {
  static const char *const ops[] = {"<", "<=", ">", ">=", "==", "!="};
  for (const char *op : ops)
    if (t.isPunct(op))
      return true;
  return false;
}

ExprPtr makeExpr(Expr::Kind kind, const Token &at) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->loc = at.loc;
  e->length = at.length;
  return e;
}

}  // namespace

Parser::Parser(const std::string &path, const std::string &text, Diagnostic &diag)
    : path_(path), text_(text), diag_(diag), tokens_(tokenize(text)) {
  lineStarts_.push_back(0);
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n')
      lineStarts_.push_back(i + 1);
}

// ---- token helpers --------------------------------------------------------------------------

Token Parser::take() {
  Token t = cur();
  // Eof and Error end the list; staying on them lets every caller see them again.
  if (t.kind != Token::Kind::Eof && t.kind != Token::Kind::Error) {
    ++pos_;
    prevEnd_ = t.offset + t.length;
  }
  return t;
}

bool Parser::accept(const char *punct) {
  if (!cur().isPunct(punct))
    return false;
  take();
  return true;
}

/// Reports an error. Every parse error is found while looking at the current token, so when
/// that token is a lexical error, the lexical error is the cause and is reported instead.
bool Parser::fail(SourceLoc loc, uint32_t length, std::string message, std::string hint) {
  const Token &t = cur();
  if (t.kind == Token::Kind::Error) {
    loc = t.loc;
    length = t.length;
    message = t.text;
    hint = t.hint;
  }
  diag_.file = path_;
  diag_.loc = loc;
  diag_.length = length;
  diag_.message = std::move(message);
  diag_.hint = std::move(hint);
  return false;
}

bool Parser::fail(const Token &t, std::string message, std::string hint) {
  return fail(t.loc, t.length, std::move(message), std::move(hint));
}

bool Parser::expectPunct(const char *punct, const std::string &context) {
  if (accept(punct))
    return true;
  return fail(cur(),
              std::string("expected '") + punct + "' " + context + ", got " + describeToken(cur()));
}

bool Parser::expectName(std::string &name, SourceLoc &loc, const char *what) {
  const Token &t = cur();
  if (t.kind == Token::Kind::Ident) {
    name = t.text;
    loc = t.loc;
    take();
    return true;
  }
  std::string hint;
  if (t.kind == Token::Kind::Keyword)
    hint = "'" + t.text + "' is a reserved keyword";
  return fail(t, std::string("expected ") + what + ", got " + describeToken(t), hint);
}

// ---- file and statements --------------------------------------------------------------------

bool Parser::parseFile(SpecFile &out) {
  out.path = path_;
  out.text = text_;
  out.variants.clear();
  while (cur().kind != Token::Kind::Eof) {
    if (!cur().isKeyword("variant"))
      return fail(cur(), "expected 'variant', got " + describeToken(cur()),
                  "a spec file holds 'variant NAME { ... }' blocks");
    Variant v;
    if (!parseVariant(v))
      return false;
    out.variants.push_back(std::move(v));
  }
  if (out.variants.empty())
    return fail(cur(), "no variant in file", "a spec file holds 'variant NAME { ... }' blocks");
  return true;
}

bool Parser::parseVariant(Variant &v) {
  take();  // 'variant'
  if (!expectName(v.name, v.loc, "a variant name"))
    return false;
  if (!cur().isPunct("{"))
    return fail(cur(), "expected '{' after 'variant " + v.name + "', got " + describeToken(cur()));
  Token open = take();
  while (!cur().isPunct("}")) {
    if (cur().kind == Token::Kind::Eof)
      return fail(open, "missing '}' to close variant '" + v.name + "'",
                  "the file ends before the variant is closed");
    if (cur().isKeyword("variant"))
      return fail(open, "missing '}' to close variant '" + v.name + "'",
                  "a new variant starts at line " + std::to_string(cur().loc.line) +
                      " before this one is closed");
    if (!parseStatement(v))
      return false;
  }
  take();  // '}'
  return true;
}

bool Parser::parseStatement(Variant &v) {
  const Token &t = cur();
  if (t.kind == Token::Kind::Keyword) {
    if (t.text == "dims")
      return parseDims(v);
    if (t.text == "input") {
      take();
      do {
        v.inputs.emplace_back();
        if (!parseTensor(v.inputs.back(), "input", false))
          return false;
      } while (accept(","));
      return true;
    }
    if (t.text == "param") {
      take();
      do {
        v.params.emplace_back();
        if (!parseTensor(v.params.back(), "param", true))
          return false;
      } while (accept(","));
      return true;
    }
    if (t.text == "score")
      return parseScore(v);
    if (t.text == "let")
      return parseLet(v);
    if (t.text == "mask")
      return parseMask(v);
    if (t.text == "norm")
      return parseNorm(v);
    if (t.text == "output")
      return parseOutput(v);
    if (t.text == "paged")
      return parsePaged(v);
    if (t.text == "feature")
      return parseFeature(v);
    if (t.text == "decay" || t.text == "gate" || t.text == "bonus") {
      Token kw = take();
      ExprPtr &target = kw.text == "decay" ? v.decay : kw.text == "gate" ? v.gate : v.bonus;
      if (target)
        return fail(kw, "duplicate '" + kw.text + "' statement",
                    "a variant has one " + kw.text);
      (kw.text == "decay" ? v.decayLoc : kw.text == "gate" ? v.gateLoc : v.bonusLoc) = kw.loc;
      target = parseExpr();
      return target != nullptr;
    }
    if (t.text == "state") {
      Token kw = take();
      if (v.state)
        return fail(kw, "duplicate 'state' statement", "a recurrence has one state");
      v.state.emplace();
      return parseTensor(*v.state, "state", false);
    }
  }
  std::string hint = t.kind == Token::Kind::Ident ? didYouMean(t.text, kStatementNames) : "";
  return fail(t, "expected a statement, got " + describeToken(t),
              orElse(hint, "statements start with dims, input, param, let, score, mask, norm, "
                           "output, paged, feature, decay, state, gate or bonus; each variant "
                           "ends "
                           "with '}'"));
}

/// feature := 'feature' IDENT {',' IDENT} '=' expr     (the element is `x` in expr)
bool Parser::parseFeature(Variant &v) {
  Token kw = take();  // 'feature'
  FeatureDecl f;
  f.loc = kw.loc;
  do {
    f.tensors.emplace_back();
    f.tensorLocs.emplace_back();
    if (!expectName(f.tensors.back(), f.tensorLocs.back(), "a tensor name"))
      return false;
  } while (accept(","));
  if (!accept("="))
    return fail(cur(), "expected '=' after the mapped tensors, got " + describeToken(cur()),
                "e.g. 'feature q, k = select(x > 0, x + 1, exp(x))'");
  f.expr = parseExpr();
  if (!f.expr)
    return false;
  v.features.push_back(std::move(f));
  return true;
}

/// paged := 'paged' IDENT {',' IDENT} 'by' IDENT 'size' INT
bool Parser::parsePaged(Variant &v) {
  Token kw = take();  // 'paged'
  if (v.paged)
    return fail(kw, "duplicate 'paged' statement", "list every paged tensor in one statement");
  PagedDecl p;
  p.loc = kw.loc;
  do {
    p.tensors.emplace_back();
    p.tensorLocs.emplace_back();
    if (!expectName(p.tensors.back(), p.tensorLocs.back(), "a tensor name"))
      return false;
  } while (accept(","));
  if (!(cur().kind == Token::Kind::Ident && cur().text == "by"))
    return fail(cur(), "expected 'by' after the paged tensors, got " + describeToken(cur()),
                "e.g. 'paged k, v by block_table size 16'");
  take();
  if (!expectName(p.table, p.tableLoc, "a block-table param name"))
    return false;
  if (!(cur().kind == Token::Kind::Ident && cur().text == "size"))
    return fail(cur(), "expected 'size' after 'by " + p.table + "', got " + describeToken(cur()),
                "e.g. 'paged k, v by block_table size 16'");
  take();
  p.sizeLoc = cur().loc;
  if (cur().kind != Token::Kind::Int)
    return fail(cur(), "expected a page size after 'size', got " + describeToken(cur()),
                "tokens per page, e.g. 16");
  p.pageSize = take().intValue;
  v.paged = std::move(p);
  return true;
}

bool Parser::parseDims(Variant &v) {
  take();  // 'dims'
  do {
    v.dims.emplace_back();
    if (!parseDimDecl(v.dims.back()))
      return false;
  } while (accept(","));
  return true;
}

/// dimdecl := IDENT [':' IDENT] ['=' (INT | IDENT | IDENT '/' INT)]
bool Parser::parseDimDecl(DimDecl &d) {
  if (!expectName(d.name, d.loc, "a dim name"))
    return false;
  SourceLoc unused;
  if (accept(":") && !expectName(d.extentName, unused, "an extent name"))
    return false;
  if (!accept("="))
    return true;
  if (cur().kind == Token::Kind::Int) {
    d.kind = DimDecl::Kind::Static;
    d.staticSize = take().intValue;
    return true;
  }
  if (cur().kind != Token::Kind::Ident)
    return fail(cur(),
                "expected a size, a dim name or 'dim / N' after '" + d.name + " =', got " +
                    describeToken(cur()),
                "e.g. 'd = 128', 'dv = d' or 'hk = h / 4'");
  d.source = take().text;
  if (!accept("/")) {
    d.kind = DimDecl::Kind::Alias;
    return true;
  }
  if (cur().kind != Token::Kind::Int)
    return fail(cur(),
                "expected an integer after '" + d.name + " = " + d.source + " /', got " +
                    describeToken(cur()),
                "a derived dim divides by a constant, e.g. 'hk = h / 4'");
  d.kind = DimDecl::Kind::Derived;
  d.divisor = take().intValue;
  return true;
}

/// tensor := IDENT '[' idlist ']' [':' dtype]; for params the brackets are optional (rank 0).
bool Parser::parseTensor(TensorDecl &t, const char *what, bool rank0Allowed) {
  std::string article = std::string(what) == "param" ? "a " : "an ";
  if (!expectName(t.name, t.loc, (article + what + " name").c_str()))
    return false;
  if (accept("[")) {
    do {
      t.dimNames.emplace_back();
      t.dimLocs.emplace_back();
      if (!expectName(t.dimNames.back(), t.dimLocs.back(), "a dim name"))
        return false;
    } while (accept(","));
    if (!expectPunct("]", "or ',' in the dims of '" + t.name + "'"))
      return false;
  } else if (!rank0Allowed) {
    return fail(cur(),
                "expected '[' after " + std::string(what) + " '" + t.name + "', got " +
                    describeToken(cur()),
                article + what + " lists its dims, e.g. " + t.name + "[b, h, i, d]");
  }
  if (!accept(":"))
    return true;
  if (!parseDType(t.dtype))
    return false;
  // `k[...] : i8 * k_scale`: quantised storage with a dequantisation scale (inputs only).
  if (std::string(what) == "input" && accept("*"))
    return expectName(t.scale, t.scaleLoc, "a scale param name");
  return true;
}

bool Parser::parseDType(std::optional<DType> &dtype) {
  const Token &t = cur();
  if (t.kind != Token::Kind::Ident)
    return fail(t, "expected a dtype after ':', got " + describeToken(t),
                "dtypes are f32, f16, bf16, i32, i8, f8e4m3 and i4");
  if ((dtype = dtypeFromName(t.text))) {
    take();
    return true;
  }
  return fail(t, "unknown dtype '" + t.text + "'",
              orElse(didYouMean(t.text, kDTypeNames), "dtypes are f32, f16, bf16, i32, i8, f8e4m3 and i4"));
}

/// KEYWORD IDENT '=' expr, after the keyword (a score, a let).
bool Parser::parseNamedExpr(const char *keyword, const char *what, std::string &name,
                            SourceLoc &loc, ExprPtr &expr) {
  take();  // the keyword
  if (!expectName(name, loc, what))
    return false;
  if (!expectPunct("=", "after '" + std::string(keyword) + " " + name + "'"))
    return false;
  expr = parseExpr();
  return expr != nullptr;
}

bool Parser::parseScore(Variant &v) {
  ScoreDecl s;
  if (!parseNamedExpr("score", "a score name", s.name, s.loc, s.expr))
    return false;
  v.scores.push_back(std::move(s));
  return true;
}

/// let := 'let' IDENT '=' expr
bool Parser::parseLet(Variant &v) {
  LetDecl l;
  if (!parseNamedExpr("let", "a name after 'let'", l.name, l.loc, l.expr))
    return false;
  v.lets.push_back(std::move(l));
  return true;
}

bool Parser::parseMask(Variant &v) {
  if (v.mask)
    return fail(cur(), "duplicate 'mask' statement", "combine the conditions with && in one mask");
  v.maskLoc = take().loc;
  v.mask = parseExpr();
  return v.mask != nullptr;
}

bool Parser::parseNorm(Variant &v) {
  if (v.normLoc.line != 0)
    return fail(cur(), "duplicate 'norm' statement", "a variant has one norm");
  take();  // 'norm'
  const Token &t = cur();
  if (t.kind != Token::Kind::Ident)
    return fail(t, "expected a norm after 'norm', got " + describeToken(t),
                "norms are softmax, none, sigmoid, relu2 and sum");
  static const Norm norms[] = {Norm::Softmax, Norm::None, Norm::Sigmoid, Norm::Relu2, Norm::Sum};
  for (size_t i = 0; i < kNormNames.size(); ++i) {
    if (t.text == kNormNames[i]) {
      v.norm = norms[i];
      v.normLoc = take().loc;
      return accept("(") ? parseNormOptions(v) : true;
    }
  }
  return fail(t, "unknown norm '" + t.text + "'",
              orElse(didYouMean(t.text, kNormNames),
                     "norms are softmax, none, sigmoid, relu2 and sum"));
}

/// '(' 'max' '=' ['-'] NUMBER ')' after a norm name: softmax with a unified max.
bool Parser::parseNormOptions(Variant &v) {
  const char *example = "e.g. 'norm softmax(max = 20)'";
  if (!(cur().kind == Token::Kind::Ident && cur().text == "max"))
    return fail(cur(), "expected 'max' in the norm's options, got " + describeToken(cur()),
                example);
  v.unifiedMaxLoc = take().loc;
  if (!expectPunct("=", "after 'max'"))
    return false;
  double sign = accept("-") ? -1 : 1;
  const Token &n = cur();
  if (n.kind != Token::Kind::Int && n.kind != Token::Kind::Float)
    return fail(n, "expected a number after 'max =', got " + describeToken(n), example);
  v.unifiedMax = sign * (n.kind == Token::Kind::Int ? double(n.intValue) : n.floatValue);
  take();
  return expectPunct(")", "to close the norm's options");
}

bool Parser::parseOutput(Variant &v) {
  if (v.hasOutput)
    return fail(cur(), "duplicate 'output' statement", "a variant has one output");
  take();  // 'output'
  if (!parseTensor(v.output, "output", false))
    return false;
  if (!expectPunct("=", "after the output tensor '" + v.output.name + "'"))
    return false;
  v.outputExpr = parseExpr();
  v.hasOutput = v.outputExpr != nullptr;
  return v.hasOutput;
}

// ---- expressions ----------------------------------------------------------------------------

size_t Parser::offsetOf(SourceLoc loc) const { return lineStarts_[loc.line - 1] + (loc.col - 1); }

/// Makes `e` cover the text from startOffset to the end of the last consumed token.
void Parser::setSpan(Expr &e, size_t startOffset) const {
  e.length = uint32_t(std::max<size_t>(1, prevEnd_ - startOffset));
}

bool Parser::tooDeep() {
  return fail(cur(),
              "expression is nested too deeply (more than " + std::to_string(kMaxExprDepth) +
                  " levels)",
              "split it up or simplify it");
}

bool Parser::checkHeight(int height) { return height <= kMaxExprDepth || tooDeep(); }

ExprPtr Parser::makeBinary(std::string op, ExprPtr lhs, ExprPtr rhs, int &height, int rhsHeight) {
  height = std::max(height, rhsHeight) + 1;
  if (!checkHeight(height))
    return nullptr;
  auto e = std::make_unique<Expr>();
  e->kind = Expr::Kind::Binary;
  e->op = std::move(op);
  e->loc = lhs->loc;
  setSpan(*e, offsetOf(lhs->loc));
  e->args.push_back(std::move(lhs));
  e->args.push_back(std::move(rhs));
  return e;
}

ExprPtr Parser::parseExpr() {
  int height = 0;
  return parseOr(height);
}

ExprPtr Parser::parseOr(int &height) {
  ExprPtr lhs = parseAnd(height);
  while (lhs && cur().isPunct("||")) {
    take();
    int rhsHeight = 0;
    ExprPtr rhs = parseAnd(rhsHeight);
    if (!rhs)
      return nullptr;
    lhs = makeBinary("||", std::move(lhs), std::move(rhs), height, rhsHeight);
  }
  return lhs;
}

ExprPtr Parser::parseAnd(int &height) {
  ExprPtr lhs = parseCmp(height);
  while (lhs && cur().isPunct("&&")) {
    take();
    int rhsHeight = 0;
    ExprPtr rhs = parseCmp(rhsHeight);
    if (!rhs)
      return nullptr;
    lhs = makeBinary("&&", std::move(lhs), std::move(rhs), height, rhsHeight);
  }
  return lhs;
}

/// Comparisons do not associate: `a < b < c` is an error, not ((a < b) < c).
ExprPtr Parser::parseCmp(int &height) {
  ExprPtr lhs = parseAdd(height);
  if (!lhs || !isComparison(cur()))
    return lhs;
  std::string op = take().text;
  int rhsHeight = 0;
  ExprPtr rhs = parseAdd(rhsHeight);
  if (!rhs)
    return nullptr;
  ExprPtr cmp = makeBinary(op, std::move(lhs), std::move(rhs), height, rhsHeight);
  if (cmp && isComparison(cur())) {
    fail(cur(),
         "chained comparison: '" + cur().text + "' after '" +
             sourceSnippet(text_, cmp->loc, cmp->length) + "'",
         "comparisons do not chain; combine them with &&, e.g. 'a < b && b < c'");
    return nullptr;
  }
  return cmp;
}

ExprPtr Parser::parseAdd(int &height) {
  ExprPtr lhs = parseMul(height);
  while (lhs && (cur().isPunct("+") || cur().isPunct("-"))) {
    std::string op = take().text;
    int rhsHeight = 0;
    ExprPtr rhs = parseMul(rhsHeight);
    if (!rhs)
      return nullptr;
    lhs = makeBinary(op, std::move(lhs), std::move(rhs), height, rhsHeight);
  }
  return lhs;
}

ExprPtr Parser::parseMul(int &height) {
  ExprPtr lhs = parseUnary(height);
  while (lhs && (cur().isPunct("*") || cur().isPunct("/") || cur().isPunct("%"))) {
    std::string op = take().text;
    int rhsHeight = 0;
    ExprPtr rhs = parseUnary(rhsHeight);
    if (!rhs)
      return nullptr;
    lhs = makeBinary(op, std::move(lhs), std::move(rhs), height, rhsHeight);
  }
  return lhs;
}

/// Every nested construct (unary operator, parentheses, call and index arguments) recurses
/// through here, so this depth counter bounds the parser's recursion.
ExprPtr Parser::parseUnary(int &height) {
  if (depth_ >= kMaxExprDepth) {
    tooDeep();
    return nullptr;
  }
  ++depth_;
  ExprPtr result;
  if (cur().isPunct("-") || cur().isPunct("!")) {
    Token op = take();
    ExprPtr operand = parseUnary(height);
    if (operand && checkHeight(++height)) {
      result = makeExpr(Expr::Kind::Unary, op);
      result->op = op.text;
      setSpan(*result, op.offset);
      result->args.push_back(std::move(operand));
    }
  } else {
    result = parsePrimary(height);
  }
  --depth_;
  return result;
}

ExprPtr Parser::parsePrimary(int &height) {
  const Token &t = cur();
  height = 1;
  ExprPtr e;
  switch (t.kind) {
  case Token::Kind::Int:
    e = makeExpr(Expr::Kind::IntLit, t);
    e->intValue = t.intValue;
    take();
    return e;
  case Token::Kind::Float:
    e = makeExpr(Expr::Kind::FloatLit, t);
    e->floatValue = t.floatValue;
    take();
    return e;
  case Token::Kind::Ident:
    return parseNamed(height);
  default:
    break;
  }
  if (t.isKeyword("true") || t.isKeyword("false")) {
    e = makeExpr(Expr::Kind::BoolLit, t);
    e->intValue = t.text == "true";
    take();
    return e;
  }
  if (t.isPunct("(")) {
    Token open = take();
    e = parseOr(height);
    if (e && !expectPunct(")", "to close the '(' at line " + std::to_string(open.loc.line) +
                                   ", column " + std::to_string(open.loc.col)))
      return nullptr;
    return e;
  }
  fail(t, "expected an expression, got " + describeToken(t));
  return nullptr;
}

/// IDENT, IDENT '[' expr (',' expr)* ']' or IDENT '(' [expr (',' expr)*] ')'.
ExprPtr Parser::parseNamed(int &height) {
  Token name = take();
  Expr::Kind kind = cur().isPunct("[")   ? Expr::Kind::Index
                    : cur().isPunct("(") ? Expr::Kind::Call
                                         : Expr::Kind::Ident;
  ExprPtr e = makeExpr(kind, name);
  e->name = name.text;
  if (kind == Expr::Kind::Ident)
    return e;
  const char *close = kind == Expr::Kind::Index ? "]" : ")";
  take();  // '[' or '('
  if (!parseArgs(*e, close, height))
    return nullptr;
  setSpan(*e, name.offset);
  return e;
}

bool Parser::parseArgs(Expr &e, const char *close, int &height) {
  if (e.kind == Expr::Kind::Call && accept(close))
    return true;
  do {
    int argHeight = 0;
    ExprPtr arg = parseOr(argHeight);
    if (!arg)
      return false;
    height = std::max(height, argHeight + 1);
    e.args.push_back(std::move(arg));
  } while (accept(","));
  if (!checkHeight(height))
    return false;
  return expectPunct(close, std::string("or ',' in the arguments of '") + e.name + "'");
}

bool parseSpec(const std::string &path, const std::string &text, SpecFile &out, Diagnostic &diag) {
  return Parser(path, text, diag).parseFile(out);
}

}  // namespace attnc
