// Unit tests of the front end: lexer, parser, Sema, diagnostics, dim sizes, the 16-bit float
// conversions and the float64 reference interpreter (against hand-written formulas).
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Half.h"
#include "compiler/frontend/Lexer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

using namespace attnc;

namespace {

const char *const kAlibi = R"(variant alibi_causal {
  dims    b, h, hk = h / 4, i : q_len, j : kv_len, d = 128, dv = d
  input   q[b, h, i, d] : bf16, k[b, hk, j, d] : bf16, v[b, hk, j, dv] : bf16
  param   slope[h] : f32
  score   s = dot(q, k) * rsqrt(d) + slope[h] * (j - i)
  mask    j <= i
  norm    softmax
  output  o[b, h, i, dv] = attend(s, v)
}
)";

/// A variant around a score/mask/norm, for tests that only care about expressions.
std::string mhaSpec(const std::string &score, const std::string &mask = "",
                    const std::string &params = "", const std::string &norm = "softmax") {
  std::string s = "variant t {\n"
                  "  dims b, h, i : q_len, j : kv_len, d, dv = d\n"
                  "  input q[b, h, i, d], k[b, h, j, d], v[b, h, j, dv]\n";
  if (!params.empty())
    s += "  param " + params + "\n";
  s += "  score s = " + score + "\n";
  if (!mask.empty())
    s += "  mask " + mask + "\n";
  return s + "  norm " + norm + "\n  output o[b, h, i, dv] = attend(s, v)\n}\n";
}

/// Loads a spec that must be valid; on failure the diagnostic is the test message.
::testing::AssertionResult load(const std::string &text, SpecFile &file) {
  Diagnostic diag;
  if (loadSpec("t.attn", text, file, diag))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << diag.render(text);
}

/// Loads a spec that must be invalid and returns its diagnostic.
Diagnostic loadError(const std::string &text) {
  SpecFile file;
  Diagnostic diag;
  EXPECT_FALSE(loadSpec("t.attn", text, file, diag)) << "spec unexpectedly valid:\n" << text;
  return diag;
}

int dimIndex(const Variant &v, const std::string &name) {
  for (size_t i = 0; i < v.dims.size(); ++i)
    if (v.dims[i].name == name)
      return int(i);
  return -1;
}

}  // namespace

// ---- lexer ----------------------------------------------------------------------------------

TEST(Lexer, TokensCarryLocationAndLength) {
  std::vector<Token> t = tokenize("variant x {\n  score s = a <= 12 # comment $ \xff\n}");
  ASSERT_EQ(t.size(), 11u);
  EXPECT_TRUE(t[0].isKeyword("variant"));
  EXPECT_EQ(t[1].kind, Token::Kind::Ident);
  EXPECT_EQ(t[1].text, "x");
  EXPECT_TRUE(t[2].isPunct("{"));
  EXPECT_TRUE(t[3].isKeyword("score"));
  EXPECT_EQ(t[3].loc.line, 2u);
  EXPECT_EQ(t[3].loc.col, 3u);
  EXPECT_EQ(t[3].length, 5u);
  EXPECT_EQ(t[6].offset, 24u);
  EXPECT_TRUE(t[7].isPunct("<="));
  EXPECT_EQ(t[7].length, 2u);
  EXPECT_EQ(t[8].kind, Token::Kind::Int);
  EXPECT_EQ(t[8].intValue, 12);
  EXPECT_TRUE(t[9].isPunct("}"));  // the comment, with its odd bytes, is skipped
  EXPECT_EQ(t[9].loc.line, 3u);
  EXPECT_EQ(t[9].loc.col, 1u);
  EXPECT_EQ(t[10].kind, Token::Kind::Eof);
}

TEST(Lexer, Numbers) {
  std::vector<Token> t = tokenize("42 1.5 2. .5 1e-3 3E+2");
  ASSERT_EQ(t.size(), 7u);
  EXPECT_EQ(t[0].kind, Token::Kind::Int);
  EXPECT_EQ(t[0].intValue, 42);
  const double expected[] = {1.5, 2.0, 0.5, 1e-3, 300.0};
  for (int n = 0; n < 5; ++n) {
    EXPECT_EQ(t[n + 1].kind, Token::Kind::Float) << n;
    EXPECT_EQ(t[n + 1].floatValue, expected[n]) << n;
  }
}

TEST(Lexer, KeywordsAreReservedButOtherWordsAreNot) {
  std::vector<Token> t = tokenize("mask masks true softmax f32");
  EXPECT_TRUE(t[0].isKeyword("mask"));
  EXPECT_EQ(t[1].kind, Token::Kind::Ident);
  EXPECT_TRUE(t[2].isKeyword("true"));
  EXPECT_EQ(t[3].kind, Token::Kind::Ident);
  EXPECT_EQ(t[4].kind, Token::Kind::Ident);
}

TEST(Lexer, ErrorsEndTheTokenList) {
  struct Case {
    const char *text, *message;
  } cases[] = {
      {"a $ b", "unexpected character '$'"},
      {"a \x01", "unexpected character '\\x01'"},
      {"\xc3\xa9", "unexpected character '\\xc3'"},
      {"x = 1e", "malformed number '1e'"},
      {"1e+", "malformed number '1e+'"},
      {"12ab", "malformed number '12ab'"},
      {"1.2.3", "malformed number '1.2.3'"},
      {"99999999999999999999", "integer literal '99999999999999999999' is too large"},
      {"1e999", "floating-point literal '1e999' is out of range"},
      {"a & b", "unexpected character '&'"},
  };
  for (const Case &c : cases) {
    std::vector<Token> t = tokenize(c.text);
    EXPECT_EQ(t.back().kind, Token::Kind::Error) << c.text;
    EXPECT_EQ(t.back().text, c.message) << c.text;
  }
  EXPECT_EQ(tokenize("a & b").back().hint, "did you mean '&&'?");
  EXPECT_EQ(tokenize("9223372036854775807").front().intValue, INT64_MAX);
}

// ---- parser ---------------------------------------------------------------------------------

TEST(Parser, ParsesTheReferenceExample) {
  SpecFile f;
  Diagnostic diag;
  ASSERT_TRUE(parseSpec("t.attn", kAlibi, f, diag)) << diag.render(kAlibi);
  ASSERT_EQ(f.variants.size(), 1u);
  const Variant &v = f.variants[0];
  EXPECT_EQ(v.name, "alibi_causal");
  ASSERT_EQ(v.dims.size(), 7u);
  EXPECT_EQ(v.dims[2].kind, DimDecl::Kind::Derived);
  EXPECT_EQ(v.dims[2].source, "h");
  EXPECT_EQ(v.dims[2].divisor, 4);
  EXPECT_EQ(v.dims[3].extentName, "q_len");
  EXPECT_EQ(v.dims[5].kind, DimDecl::Kind::Static);
  EXPECT_EQ(v.dims[5].staticSize, 128);
  EXPECT_EQ(v.dims[6].kind, DimDecl::Kind::Alias);
  ASSERT_EQ(v.inputs.size(), 3u);
  EXPECT_EQ(v.inputs[1].dimNames, (std::vector<std::string>{"b", "hk", "j", "d"}));
  EXPECT_EQ(v.inputs[1].dimLocs[1].col, 38u);
  EXPECT_EQ(v.inputs[1].dtype, DType::BF16);
  ASSERT_EQ(v.params.size(), 1u);
  EXPECT_EQ(v.params[0].dtype, DType::F32);
  ASSERT_EQ(v.scores.size(), 1u);
  const Expr &score = *v.scores[0].expr;
  EXPECT_EQ(score.kind, Expr::Kind::Binary);
  EXPECT_EQ(score.op, "+");
  EXPECT_EQ(score.loc.col, 15u);
  EXPECT_EQ(score.length, 41u);  // the whole "dot(q, k) * ... (j - i)"
  EXPECT_EQ(v.mask->op, "<=");
  EXPECT_EQ(v.norm, Norm::Softmax);
  EXPECT_TRUE(v.hasOutput);
  EXPECT_EQ(v.output.name, "o");
  EXPECT_FALSE(v.output.dtype.has_value());
  EXPECT_EQ(v.outputExpr->name, "attend");
}

TEST(Parser, Precedence) {
  SpecFile f;
  Diagnostic diag;
  std::string text = "variant t { mask a || b && c < d + e * -f }";
  ASSERT_TRUE(parseSpec("t.attn", text, f, diag)) << diag.render(text);
  const Expr &m = *f.variants[0].mask;  // a || (b && (c < (d + (e * (-f)))))
  ASSERT_EQ(m.op, "||");
  const Expr &conj = *m.args[1];
  ASSERT_EQ(conj.op, "&&");
  const Expr &cmp = *conj.args[1];
  ASSERT_EQ(cmp.op, "<");
  const Expr &sum = *cmp.args[1];
  ASSERT_EQ(sum.op, "+");
  const Expr &product = *sum.args[1];
  ASSERT_EQ(product.op, "*");
  EXPECT_EQ(product.args[1]->kind, Expr::Kind::Unary);
  EXPECT_EQ(product.args[1]->op, "-");
}

TEST(Parser, RecurrenceStatements) {
  SpecFile f;
  Diagnostic diag;
  std::string text = "variant t {\n  state S[b, h, d, dv]\n  gate exp(g[b, i, h, d])\n  mask true\n}";
  ASSERT_TRUE(parseSpec("t.attn", text, f, diag)) << diag.render(text);
  ASSERT_TRUE(f.variants[0].state.has_value());
  EXPECT_EQ(f.variants[0].state->dimNames.size(), 4u);
  ASSERT_TRUE(f.variants[0].gate != nullptr);
  EXPECT_EQ(f.variants[0].gateLoc.line, 3u);
  EXPECT_TRUE(f.variants[0].mask != nullptr);
  text = "variant t {\n  gate 0.5\n  gate 0.9\n}";
  EXPECT_FALSE(parseSpec("t.attn", text, f, diag));
  EXPECT_EQ(diag.message, "duplicate 'gate' statement");
}

TEST(Parser, Errors) {
  struct Case {
    const char *text, *message;
    uint32_t line, col;
  } cases[] = {
      {"", "no variant in file", 1, 1},
      {"# nothing\n", "no variant in file", 2, 1},
      {"variant t {\n  mask j <= i\n", "missing '}' to close variant 't'", 1, 11},
      {"variant t { mask 0 < j <= i }", "chained comparison: '<=' after '0 < j'", 1, 24},
      {"variant t { scor s = 1 }", "expected a statement, got 'scor'", 1, 13},
      {"variant t { dims b, mask }", "expected a dim name, got 'mask'", 1, 21},
      {"variant t { input q }", "expected '[' after input 'q', got '}'", 1, 21},
      {"variant t { norm softmx }", "unknown norm 'softmx'", 1, 18},
      {"variant t { mask (a }", "expected ')' to close the '(' at line 1, column 18, got '}'", 1,
       21},
      {"variant t { mask a mask b }", "duplicate 'mask' statement", 1, 20},
      {"foo", "expected 'variant', got 'foo'", 1, 1},
  };
  for (const Case &c : cases) {
    SpecFile f;
    Diagnostic diag;
    EXPECT_FALSE(parseSpec("t.attn", c.text, f, diag)) << c.text;
    EXPECT_EQ(diag.message, c.message) << c.text;
    EXPECT_EQ(diag.loc.line, c.line) << c.text;
    EXPECT_EQ(diag.loc.col, c.col) << c.text;
  }
}

TEST(Parser, NestingIsBounded) {
  for (std::string open : {"(", "-", "exp(", "p["}) {
    std::string deep;
    for (int n = 0; n < 100000; ++n)
      deep += open;
    Diagnostic diag = loadError(mhaSpec(deep + "1"));
    EXPECT_EQ(diag.message, "expression is nested too deeply (more than 256 levels)") << open;
  }
  std::string chain = "dot(q, k)";
  for (int n = 0; n < 100000; ++n)
    chain += " + 1";
  EXPECT_EQ(loadError(mhaSpec(chain)).message,
            "expression is nested too deeply (more than 256 levels)");
  std::string fine = "dot(q, k)";
  for (int n = 0; n < 200; ++n)
    fine = "(" + fine + " + 1)";
  SpecFile f;
  EXPECT_TRUE(load(mhaSpec(fine), f));
}

/// Mutated specs must give a diagnostic or a checked AST, never a crash or a hang.
TEST(Parser, SurvivesMutatedInput) {
  std::mt19937 rng(7);
  const std::string seed = std::string(kAlibi) + mhaSpec("50 * tanh(dot(q, k) / 50)",
                                                         "p[b] == 0 && !(j > i)", "p[b] : i32");
  for (int it = 0; it < 3000; ++it) {
    std::string text = seed;
    for (int m = 0; m < 3; ++m) {
      size_t pos = rng() % text.size();
      if (rng() % 2)
        text.erase(pos, 1 + rng() % 6);
      else
        text.insert(pos, 1, char(rng()));
    }
    SpecFile f;
    Diagnostic diag;
    if (loadSpec("t.attn", text, f, diag)) {
      EXPECT_FALSE(dumpAST(f).empty());
    } else {
      EXPECT_FALSE(diag.message.empty());
      EXPECT_GT(diag.loc.line, 0u);
      EXPECT_FALSE(diag.render(text).empty());
    }
  }
}

// ---- diagnostics ----------------------------------------------------------------------------

TEST(Diagnostics, RenderFormat) {
  std::string text = mhaSpec("dot(q, k) * slop[h]", "", "slope[h]");
  Diagnostic diag = loadError(text);
  EXPECT_EQ(diag.render(text), "t.attn:5:25: error: unknown name 'slop'\n"
                               "    score s = dot(q, k) * slop[h]\n"
                               "                          ^~~~\n"
                               "  hint: did you mean 'slope'?\n");
  Diagnostic noHint{"f.attn", {1, 3}, 10, "bad", ""};
  EXPECT_EQ(noHint.render("ab"), "f.attn:1:3: error: bad\n  ab\n    ^\n");  // '~' clipped
  Diagnostic tabs{"f.attn", {1, 3}, 2, "bad", ""};
  EXPECT_EQ(tabs.render("\t\tab\r\n"), "f.attn:1:3: error: bad\n  \t\tab\n  \t\t^~\n");
}

TEST(Diagnostics, DTypes) {
  EXPECT_STREQ(dtypeName(DType::BF16), "bf16");
  EXPECT_STREQ(dtypeName(DType::I32), "i32");
  EXPECT_TRUE(isFloat(DType::F16));
  EXPECT_FALSE(isFloat(DType::I32));
}

// ---- Sema -----------------------------------------------------------------------------------

TEST(Sema, RolesOfTheReferenceExample) {
  SpecFile f;
  ASSERT_TRUE(load(kAlibi, f));
  const Variant &v = f.variants[0];
  EXPECT_EQ(v.q, 0);
  EXPECT_EQ(v.k, 1);
  EXPECT_EQ(v.v, 2);
  EXPECT_EQ(v.batchDim, dimIndex(v, "b"));
  EXPECT_EQ(v.qHeadDim, dimIndex(v, "h"));
  EXPECT_EQ(v.kvHeadDim, dimIndex(v, "hk"));
  EXPECT_EQ(v.qSeqDim, dimIndex(v, "i"));
  EXPECT_EQ(v.kvSeqDim, dimIndex(v, "j"));
  EXPECT_EQ(v.headDim, dimIndex(v, "d"));
  EXPECT_EQ(v.valueDim, dimIndex(v, "dv"));
  EXPECT_EQ(v.group, 4);
  EXPECT_EQ(v.dims[dimIndex(v, "hk")].role, DimRole::KVHead);
  EXPECT_EQ(v.dims[dimIndex(v, "hk")].sourceIndex, dimIndex(v, "h"));
  EXPECT_EQ(v.output.resolvedDType, DType::BF16);  // defaults to q's dtype
  EXPECT_EQ(v.inputs[2].dims, (std::vector<int>{0, 2, 4, 6}));
  EXPECT_EQ(v.canonicalPerm(v.inputs[0]), (std::vector<int>{0, 1, 2, 3}));
}

TEST(Sema, StorageOrderAndStaticGroup) {
  SpecFile f;
  ASSERT_TRUE(load("variant t {\n"
                   "  dims b, s, t, h = 32, g = 8, d = 64, e = d\n"
                   "  input q[b, s, h, d], k[d, t, g, b], v[e, b, g, t]\n"
                   "  score x = dot(q, k)\n"
                   "  output o[s, b, e, h] = attend(x, v)\n}\n",
                   f));
  const Variant &v = f.variants[0];
  EXPECT_EQ(v.group, 4);
  EXPECT_EQ(v.qHeadDim, dimIndex(v, "h"));
  EXPECT_EQ(v.kvHeadDim, dimIndex(v, "g"));
  EXPECT_EQ(v.qSeqDim, dimIndex(v, "s"));
  EXPECT_EQ(v.kvSeqDim, dimIndex(v, "t"));
  // perm[c] = storage position of canonical axis c ([b, h, s, d] or [b, hk, t, d|dv]).
  EXPECT_EQ(v.canonicalPerm(v.inputs[0]), (std::vector<int>{0, 2, 1, 3}));
  EXPECT_EQ(v.canonicalPerm(v.inputs[1]), (std::vector<int>{3, 2, 1, 0}));
  EXPECT_EQ(v.canonicalPerm(v.inputs[2]), (std::vector<int>{1, 2, 3, 0}));
  EXPECT_EQ(v.canonicalPerm(v.output), (std::vector<int>{1, 3, 0, 2}));
  EXPECT_EQ(v.inputs[0].resolvedDType, DType::F32);
}

TEST(Sema, MHABatchIsTheFirstDeclaredSharedDim) {
  SpecFile f;
  ASSERT_TRUE(load("variant t {\n  dims n, g, i, j, d, e = d\n"
                   "  input q[g, n, i, d], k[g, n, j, d], v[g, n, j, e]\n"
                   "  score s = dot(q, k)\n  output o[g, n, i, e] = attend(s, v)\n}\n",
                   f));
  const Variant &v = f.variants[0];
  EXPECT_EQ(v.batchDim, dimIndex(v, "n"));
  EXPECT_EQ(v.qHeadDim, dimIndex(v, "g"));
  EXPECT_EQ(v.kvHeadDim, v.qHeadDim);
  EXPECT_EQ(v.group, 1);
  EXPECT_EQ(v.canonicalPerm(v.inputs[0]), (std::vector<int>{1, 0, 2, 3}));
}

TEST(Sema, ResolvesExpressions) {
  SpecFile f;
  ASSERT_TRUE(load(mhaSpec("dot(q, k) * t + size(kv_len) + slope[h] * (j - d)",
                           "j <= i || j < prefix[b]", "t, slope[h] : bf16, prefix[b] : i32"),
                   f));
  const Variant &v = f.variants[0];
  const Expr &score = *v.scores[0].expr;  // ((dot * t) + size) + (slope[h] * (j - d))
  EXPECT_EQ(score.type, ValueType::Float);
  const Expr &dot = *score.args[0]->args[0]->args[0];
  EXPECT_EQ(dot.res, Expr::Res::Builtin);
  EXPECT_EQ(dot.builtin, Builtin::Dot);
  const Expr &t = *score.args[0]->args[0]->args[1];  // a rank-0 param becomes an Index
  EXPECT_EQ(t.kind, Expr::Kind::Index);
  EXPECT_EQ(t.res, Expr::Res::ParamLoad);
  EXPECT_EQ(t.paramIndex, 0);
  EXPECT_TRUE(t.args.empty());
  const Expr &size = *score.args[0]->args[1];
  EXPECT_EQ(size.res, Expr::Res::DimSize);
  EXPECT_EQ(size.dimIndex, dimIndex(v, "j"));
  EXPECT_EQ(size.type, ValueType::Int);
  const Expr &slope = *score.args[1]->args[0];
  EXPECT_EQ(slope.res, Expr::Res::ParamLoad);
  EXPECT_EQ(slope.paramIndex, 1);
  EXPECT_EQ(slope.type, ValueType::Float);
  EXPECT_EQ(slope.args[0]->res, Expr::Res::IterIndex);
  EXPECT_EQ(slope.args[0]->dimIndex, dimIndex(v, "h"));
  const Expr &diff = *score.args[1]->args[1];
  EXPECT_EQ(diff.type, ValueType::Int);
  EXPECT_EQ(diff.args[0]->res, Expr::Res::IterIndex);  // j: an iteration dim
  EXPECT_EQ(diff.args[1]->res, Expr::Res::DimSize);    // d: the head dim's extent
  const Expr &prefix = *v.mask->args[1]->args[1];
  EXPECT_EQ(prefix.type, ValueType::Int);
  EXPECT_EQ(v.mask->type, ValueType::Bool);
}

TEST(Sema, IsIdempotent) {
  SpecFile f;
  ASSERT_TRUE(load(mhaSpec("dot(q, k) * t", "", "t"), f));
  std::string first = dumpAST(f);
  Diagnostic diag;
  ASSERT_TRUE(checkSpec(f, diag)) << diag.message;
  EXPECT_EQ(dumpAST(f), first);
}

TEST(Sema, LetsAreSubstitutedAndComputedIndicesClamped) {
  // A let used twice (and through another let), a dot read three times, a param read at an
  // expression of dims and int params: the checked AST has copies, one per use, with the
  // computed index marked for clamping; a second check changes nothing.
  std::string text = mhaSpec("1 + t + u", "j <= i && ids[b, i] == ids[b, j]",
                             "bias[h, n] : f32, ids[b, i] : i32, lag[h] : i32");
  text.replace(text.find("d, dv = d"), 9, "d, dv = d, n = 8");
  text.replace(text.find("  score"), 0,
               "  let t = dot(q, k) * rsqrt(d)\n  let u = t * t / 2 + bias[h, i - j + lag[h]]\n");
  SpecFile f;
  ASSERT_TRUE(load(text, f));
  const Variant &v = f.variants[0];
  std::vector<const Expr *> dots, loads;
  std::function<void(const Expr &)> walk = [&](const Expr &e) {
    if (e.res == Expr::Res::Builtin && e.builtin == Builtin::Dot)
      dots.push_back(&e);
    if (e.res == Expr::Res::ParamLoad)
      loads.push_back(&e);
    for (const ExprPtr &a : e.args)
      walk(*a);
  };
  walk(*v.scores[0].expr);
  EXPECT_EQ(dots.size(), 3u);
  ASSERT_EQ(loads.size(), 2u);  // bias[...] and lag[h] inside its index
  const Expr &bias = *loads[0];
  EXPECT_EQ(v.params[size_t(bias.paramIndex)].name, "bias");
  EXPECT_FALSE(bias.args[0]->clamp);  // h: the declared dim
  EXPECT_TRUE(bias.args[1]->clamp);
  EXPECT_EQ(bias.args[1]->type, ValueType::Int);
  EXPECT_FALSE(loads[1]->args[0]->clamp);
  std::string first = dumpAST(f);
  EXPECT_EQ(first.find("let"), std::string::npos) << first;
  Diagnostic diag;
  ASSERT_TRUE(checkSpec(f, diag)) << diag.message;
  EXPECT_EQ(dumpAST(f), first);
}

/// A linear recurrence with `extra` statements, for the state rules.
std::string recurrenceSpec(const std::string &extra, const std::string &score = "dot(q, k) * 0.5",
                           const std::string &rest = "mask j <= i\n  norm none") {
  return "variant r {\n  dims b, i : q_len, j : kv_len, h, d = 64, dv = 32\n"
         "  input q[b, i, h, d], k[b, j, h, d], v[b, j, h, dv]\n  param g[b, i, h]\n"
         "  score s = " + score + "\n  " + rest + "\n  " + extra +
         "\n  output o[b, i, h, dv] = attend(s, v)\n}\n";
}

/// A recurrence with output expression `out` whose key dim is (`alias`) its query dim.
std::string skipSpec(const std::string &out, const std::string &rest = "mask j <= i\n  norm none",
                     bool alias = true) {
  std::string text = recurrenceSpec("", "dot(q, k)", rest);
  if (alias)
    text.replace(text.find("j : kv_len"), 10, "j : kv_len = i");
  text.replace(text.find("attend(s, v)"), 12, out);
  return text;
}

/// A causal linear attention over features of dim `m` (static unless it is `mn`) projected by
/// param w[m, d] (u[m, dv], w2[m, d] and a dynamic mn too), with feature statements `features`.
std::string projectionSpec(const std::string &features, const std::string &norm = "norm sum",
                           const std::string &m = "m") {
  return "variant p {\n  dims b, i : q_len, j : kv_len, h, d = 32, m = 64, mn, dv = 16\n"
         "  input q[b, i, h, d], k[b, j, h, d], v[b, j, h, dv]\n"
         "  param w[" + m + ", d] : f32, u[m, dv] : f32, w2[m, d] : f32\n  " + features +
         "\n  score s = dot(q, k)\n  mask j <= i\n  " + norm +
         "\n  output o[b, i, h, dv] = attend(s, v)\n}\n";
}

/// Mamba-2's B/C groups: q and k over g = h / G, v and o over h.
std::string groupSpec(const std::string &dims,
                      const std::string &rest = "mask j <= i\n  norm none") {
  return "variant r {\n  dims b, i : q_len, j : kv_len, " + dims + ", n = 32, p = 16\n"
         "  input c[b, g, i, n], bm[b, j, g, n], x[b, j, h, p]\n"
         "  score s = dot(c, bm)\n  " + rest + "\n  output y[b, i, h, p] = attend(s, x)\n}\n";
}

TEST(Sema, Normalisers) {
  SpecFile f;
  Diagnostic diag;
  std::string text = skipSpec("rmsnorm(attend(s, v), 0.001) + v[b, i, h, dv]",
                              "mask j <= i\n  norm sum");
  ASSERT_TRUE(loadSpec("n.attn", text, f, diag)) << diag.render(text);
  const Variant &v = f.variants[0];
  EXPECT_EQ(v.norm, Norm::Sum);
  EXPECT_TRUE(v.recurrence);
  ASSERT_TRUE(v.rmsEps.has_value());
  EXPECT_DOUBLE_EQ(*v.rmsEps, 0.001);
  ASSERT_NE(v.skip, nullptr);
  text = skipSpec("attend(s, v)", "mask j <= i\n  norm sum");
  ASSERT_TRUE(loadSpec("n.attn", text, f, diag)) << diag.render(text);
  EXPECT_FALSE(f.variants[0].rmsEps.has_value());
}

/// A causal softmax variant with GQA (hk = h / 2), params `params` and output `out`.
std::string outputSpec(const std::string &out, const std::string &params = "",
                       const std::string &norm = "softmax", const std::string &mask = "j <= i") {
  return "variant g {\n  dims b, i : q_len, j : kv_len, h, hk = h / 2, d = 32, dv = 16\n"
         "  input q[b, i, h, d], k[b, j, hk, d], v[b, j, hk, dv]\n" +
         (params.empty() ? "" : "  param " + params + "\n") +
         "  score s = dot(q, k)\n  mask " + mask + "\n  norm " + norm +
         "\n  output o[b, i, h, dv] = " + out + "\n}\n";
}

TEST(Sema, OutputMaps) {
  SpecFile f;
  Diagnostic diag;
  // an output gate, a scale, a bias (the skip form outside a recurrence), a nonlinear map
  for (const char *out :
       {"attend(s, v) * sigmoid(g[b, i, h, dv])", "attend(s, v) / 2", "2 * attend(s, v)",
        "attend(s, v) + bias[hk, dv]", "tanh(attend(s, v)) * (i + 1)",
        "attend(s, v) * g[b, min(i, 3), h, dv]", "attend(s, v) * sigmoid(attend(s, v))",
        "attend( s,v ) - attend(s, v) / 2", "rmsnorm(attend(s, v), 1e-5) * g[b, i, h, dv]",
        "rmsnorm(attend(s, v), 1e-5) + bias[hk, dv]"}) {
    std::string text = outputSpec(out, "g[b, i, h, dv], bias[hk, dv]");
    ASSERT_TRUE(loadSpec("g.attn", text, f, diag)) << diag.render(text);
    const Variant &v = f.variants[0];
    EXPECT_TRUE(v.outputMap) << out;
    EXPECT_EQ(v.skip, nullptr) << out;
    EXPECT_FALSE(v.recurrence) << out;
    EXPECT_EQ(v.rmsEps.has_value(), std::string(out).find("rmsnorm") == 0) << out;
  }
  // a per-head RMSNorm of a softmax attention's rows: rmsnorm as the whole output
  ASSERT_TRUE(loadSpec("g.attn", outputSpec("rmsnorm(attend(s, v), 1e-6)"), f, diag));
  EXPECT_FALSE(f.variants[0].outputMap);
  ASSERT_TRUE(f.variants[0].rmsEps.has_value());
  EXPECT_DOUBLE_EQ(*f.variants[0].rmsEps, 1e-6);
  // plain attend is no map; norm none without a causal mask is no recurrence, so it maps
  ASSERT_TRUE(loadSpec("g.attn", outputSpec("attend(s, v)"), f, diag));
  EXPECT_FALSE(f.variants[0].outputMap);
  ASSERT_TRUE(loadSpec("g.attn", outputSpec("attend(s, v) * 0.5", "", "none", "j < i + 4"), f,
                       diag));
  EXPECT_TRUE(f.variants[0].outputMap);

  struct Case {
    std::string text, message;
  } cases[] = {
      {outputSpec("2.5"), "the output must read attend(s, v), got '2.5'"},
      {outputSpec("attend(s, v) - 0.5 * attend(s, q)"),
       "every attend of the output must be 'attend(s, v)', got 'attend(s, q)'"},
      {outputSpec("attend(s, v) * b2[h, j]", "b2[h, j]"),
       "the output is per query position: it may not use 'j'"},
      {outputSpec("attend(s, v) * s"), "the output cannot read the score 's' outside attend"},
      {outputSpec("attend(s, v) * dot(q, k)"), "dot(...) is only allowed in the score"},
      {outputSpec("attend(s, v) * v[b, i, hk, dv]"), "input 'v' cannot be indexed"},
      {outputSpec("attend(s, v) > 0"), "the output must be a number, got bool"},
      {outputSpec("rmsnorm(attend(s, v), 1e-6) * 2 + attend(s, v)"),
       "not supported yet: attend(s, v) both inside and outside rmsnorm in 'rmsnorm(attend(s, v), "
       "1e-6) * 2 + attend(s, v)'"},
      {outputSpec("rmsnorm(2 * attend(s, v), 1e-6) * 2"),
       "rmsnorm normalises attend(s, v), got 'rmsnorm(2 * attend(s, v), 1e-6)'"},
      {outputSpec("rmsnorm(attend(s, v), 1e-6) * rmsnorm(attend(s, v), 1e-5)"),
       "every rmsnorm of the output must be 'rmsnorm(attend(s, v), 1e-6)', got "
       "'rmsnorm(attend(s, v), 1e-5)'"},
      {outputSpec("rmsnorm(attend(s, v), 0) * 2"), "rmsnorm's epsilon must be positive, got '0'"},
      {outputSpec("attend(s, v) * w[d]", "w[d]"),
       "param index 'd' must be one of b, i, j, h, hk"},
      {outputSpec("attend(s, v) * 2", "", "none"),
       "not supported yet: an output expression on a linear recurrence ('attend(s, v) * 2')"},
  };
  for (const Case &c : cases) {
    EXPECT_FALSE(loadSpec("g.attn", c.text, f, diag)) << c.text;
    EXPECT_EQ(diag.message, c.message) << c.text;
  }
}

TEST(Sema, ProjectedFeatureMaps) {
  SpecFile f;
  Diagnostic diag;
  std::string text = projectionSpec(
      "feature q = exp(dot(x, w[m]) - dot(x, x) / 2)\n  feature k = exp(dot(x, w[m]))");
  ASSERT_TRUE(loadSpec("p.attn", text, f, diag)) << diag.render(text);
  const Variant &v = f.variants[0];
  EXPECT_EQ(v.dims[size_t(v.featureDim)].name, "m");
  EXPECT_EQ(v.params[size_t(v.projParam)].name, "w");
  EXPECT_EQ(v.dotDim(), v.featureDim);
  EXPECT_TRUE(v.recurrence);
  text = projectionSpec("feature q, k = relu(x)");
  ASSERT_TRUE(loadSpec("p.attn", text, f, diag)) << diag.render(text);
  EXPECT_EQ(f.variants[0].featureDim, -1);
  EXPECT_EQ(f.variants[0].dotDim(), f.variants[0].headDim);
}

TEST(Sema, QKHeadGroups) {
  SpecFile f;
  Diagnostic diag;
  for (const char *dims : {"h, g = h / 4", "h = 16, g = h / 4"}) {
    std::string text = groupSpec(dims);
    ASSERT_TRUE(loadSpec("g.attn", text, f, diag)) << diag.render(text);
    const Variant &v = f.variants[0];
    EXPECT_EQ(v.qkGroup, 4) << dims;
    ASSERT_GE(v.qkGroupDim, 0);
    EXPECT_EQ(v.dims[v.qkGroupDim].name, "g");
    EXPECT_EQ(v.dims[v.qkGroupDim].role, DimRole::QKHead);
    EXPECT_EQ(v.dims[v.qHeadDim].name, "h");
    EXPECT_EQ(v.dims[v.kvHeadDim].name, "h");
    EXPECT_EQ(v.dims[v.headDim].name, "n");
    EXPECT_EQ(v.dims[v.valueDim].name, "p");
    EXPECT_EQ(v.group, 1);
    EXPECT_EQ(v.canonicalPerm(v.inputs[v.q]), (std::vector<int>{0, 1, 2, 3}));  // [b, g, i, n]
    EXPECT_EQ(v.canonicalPerm(v.inputs[v.k]), (std::vector<int>{0, 2, 1, 3}));  // [b, j, g, n]
  }
  // Unrelated extents, or static ones that divide both ways (g into h and into p): ambiguous.
  for (const char *dims : {"h, g", "h = 16, g = 4"}) {
    std::string text = groupSpec(dims);
    EXPECT_FALSE(loadSpec("g.attn", text, f, diag)) << dims;
    EXPECT_EQ(diag.message, "cannot tell the head-group dim of 'c' and 'bm' from their head dim");
  }
  std::string text;
  text = groupSpec("h, g = h / 4", "mask j <= i");
  EXPECT_FALSE(loadSpec("g.attn", text, f, diag));
  EXPECT_EQ(diag.message, "sharing q and k across a group of heads needs norm none");
}

TEST(Sema, RecurrenceAndState) {
  SpecFile f;
  Diagnostic diag;
  std::string text = recurrenceSpec("state st[h, dv, b, d]", "-dot(q, k) * g[b, i, h] / 2");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  const Variant &v = f.variants[0];
  EXPECT_TRUE(v.recurrence);
  ASSERT_TRUE(v.state.has_value());
  EXPECT_EQ(v.statePerm(), (std::vector<int>{2, 0, 3, 1}));  // [b, h, d, dv] in storage
  EXPECT_EQ(v.state->resolvedDType, DType::F32);
  // A gate may index params by the head channel; a bare `d` is still the extent.
  text = recurrenceSpec("gate exp(gc[b, i, h, d]) / d", "dot(q, k)",
                        "mask j <= i\n  norm none\n  param gc[b, i, h, d]");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  ASSERT_TRUE(f.variants[0].gate != nullptr);
  const Expr &load = *f.variants[0].gate->args[0]->args[0];
  EXPECT_EQ(load.res, Expr::Res::ParamLoad);
  EXPECT_EQ(load.args[3]->res, Expr::Res::IterIndex);
  EXPECT_EQ(f.variants[0].gate->args[1]->res, Expr::Res::DimSize);
  // A skip term: v at the query position times a param per value channel, subtracted.
  text = skipSpec("attend(s, v) - dd[h, dv] * v[b, i, h, dv]");
  text.replace(text.find("param g[b, i, h]"), 16, "param g[b, i, h], dd[h, dv]");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  ASSERT_TRUE(f.variants[0].skip != nullptr);
  EXPECT_TRUE(f.variants[0].skipNegate);
  EXPECT_EQ(f.variants[0].skip->args[1]->res, Expr::Res::ValueAt);
  // Factors that read j (and not i) are the key side of the recurrence: Mamba's dt_j.
  text = recurrenceSpec("", "-(dot(q, k) * ((g[b, i, h] + 0.5) * j)) / (2 + j) * i");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  {
    const Variant &r = f.variants[0];
    EXPECT_TRUE(r.recurrence);
    ASSERT_TRUE(r.queryScale && r.keyScale);
    // -1 * (g + 0.5) * i and 1 * j / (2 + j)
    EXPECT_EQ(r.queryScale->op, "*");
    EXPECT_EQ(r.queryScale->args[0]->args[0]->floatValue, -1.0);
    EXPECT_EQ(r.keyScale->op, "/");
    EXPECT_EQ(r.keyScale->args[0]->args[1]->res, Expr::Res::IterIndex);
  }
  text = recurrenceSpec("", "dot(q, k) * g[b, i, h]");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  EXPECT_TRUE(f.variants[0].queryScale && !f.variants[0].keyScale);
  text = recurrenceSpec("", "dot(q, k) / (i * (j + 1.0))");  // a float product splits
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  EXPECT_TRUE(f.variants[0].recurrence && f.variants[0].keyScale);
  // Strict-causal recurrences: mask j < i with norm none, a bonus weighing the head channels.
  text = skipSpec("attend(s, v)", "mask j < i\n  norm none\n  param u[h, d]\n  bonus u[h, d]");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  EXPECT_TRUE(f.variants[0].recurrence && f.variants[0].strict && f.variants[0].bonus);
  text = recurrenceSpec("", "dot(q, k)", "mask j < i\n  norm none");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  EXPECT_TRUE(f.variants[0].recurrence && f.variants[0].strict && !f.variants[0].bonus);
  text = recurrenceSpec("", "dot(q, k)", "mask j <= i\n  norm none");
  ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
  EXPECT_TRUE(f.variants[0].recurrence && !f.variants[0].strict);
  // Not recurrences: a factor that reads i and j, a softmax, a window.
  for (auto [score, rest] : {std::pair{"dot(q, k) * (i - j)", "mask j <= i\n  norm none"},
                             std::pair{"dot(q, k) * (i * j)", "mask j <= i\n  norm none"},
                             std::pair{"dot(q, k)", "mask j <= i"},
                             std::pair{"dot(q, k)", "mask j <= i && i - j < 8\n  norm none"}}) {
    text = recurrenceSpec("", score, rest);
    ASSERT_TRUE(loadSpec("r.attn", text, f, diag)) << diag.render(text);
    EXPECT_FALSE(f.variants[0].recurrence) << score << " " << rest;
  }
  struct Case {
    std::string text, message;
  } cases[] = {
      {recurrenceSpec("state st[b, h, d]"),
       "the state holds one [head dim, value dim] matrix per batch entry and query head"},
      {recurrenceSpec("state st[b, i, d, dv]"),
       "the state holds one [head dim, value dim] matrix per batch entry and query head"},
      {recurrenceSpec("state st[b, h, d, dv] : bf16"), "the state is f32, got bf16"},
      {recurrenceSpec("state st[b, h, d, dv]", "dot(q, k)", "mask j <= i"),
       "a state needs norm none"},
      {recurrenceSpec("state st[b, h, d, dv]", "dot(q, k)", "mask j < i + 1\n  norm none"),
       "a state needs the causal mask exactly: 'mask j <= i' (or 'j < i')"},
      // bonus: the current token's term of a strict-causal recurrence (RWKV's u)
      {skipSpec("attend(s, v)", "mask j < i\n  norm none\n  bonus g[b, j, h]"),
       "the bonus weighs the current token: it may not use 'j'"},
      {skipSpec("attend(s, v)", "mask j < i\n  norm none\n  bonus i > 0"),
       "the bonus must be a number, got bool"},
      {skipSpec("attend(s, v)", "mask j < i\n  norm none\n  bonus s"),
       "the bonus cannot depend on the score 's'"},
      {skipSpec("attend(s, v)", "mask j <= i\n  norm none\n  bonus 0.5"),
       "a bonus needs a strict-causal linear recurrence: 'norm none', 'mask j < i' and a score "
       "linear in dot(q, k)"},
      {skipSpec("attend(s, v)", "mask j < i\n  bonus 0.5"),
       "a bonus needs a strict-causal linear recurrence: 'norm none', 'mask j < i' and a score "
       "linear in dot(q, k)"},
      {skipSpec("attend(s, v)", "mask j < i\n  norm none\n  bonus 0.5\n  bonus 0.5"),
       "duplicate 'bonus' statement"},
      {recurrenceSpec("bonus 0.5", "dot(q, k)", "mask j < i\n  norm none"),
       "a bonus needs the key length to be the query length"},
      {recurrenceSpec("state st[b, h, d, dv]", "exp(dot(q, k))"),
       "a state needs a score linear in dot(q, k): dot times factors free of 'i' or of 'j'"},
      {recurrenceSpec("state st[b, h, d, dv]\n  state t2[b, h, d, dv]"),
       "duplicate 'state' statement"},
      {recurrenceSpec("state g[b, h, d, dv]"), "duplicate name 'g'"},
      {recurrenceSpec("state st[b, h, d, dv]", "dot(q, k) * st"),
       "tensor 'st' cannot be used as a value"},
      // skip terms: v at the query position, added to attend(...) of a linear recurrence
      {skipSpec("attend(s, v) + v[b, i, h, dv]", "mask j <= i\n  norm none", false),
       "a skip term needs the key length to be the query length"},
      {skipSpec("attend(s, v) + v[b, j, h, dv]"),
       "index 2 of 'v' in the skip term must be 'i', got 'j'"},
      {skipSpec("attend(s, v) + j"), "the skip term is per query position: it may not use 'j'"},
      {skipSpec("attend(s, v) + v[b, i, h, d]"),
       "index 4 of 'v' in the skip term must be 'dv', got 'd'"},
      {skipSpec("attend(s, v) + s"), "the skip term cannot depend on the score 's'"},
      {skipSpec("attend(s, v) + q[b, i, h, d]"), "input 'q' cannot be indexed"},
      {skipSpec("attend(s, v) + (i > 0)"), "the skip term must be a number, got bool"},
      {skipSpec("attend(s, v) * 2"),
       "not supported yet: an output expression on a linear recurrence ('attend(s, v) * 2')"},
      {skipSpec("2 - attend(s, v)"),
       "not supported yet: an output expression on a linear recurrence ('2 - attend(s, v)')"},
      {skipSpec("attend(s, v) + v[b, i, h, dv]", "mask j <= i"), "a skip term needs norm none"},
      // gates: per step and channel, inside the dot of a linear recurrence
      {recurrenceSpec("gate exp(gc[b, j, h, d])", "dot(q, k)",
                      "mask j <= i\n  norm none\n  param gc[b, j, h, d]"),
       "the gate is per step of the query position: it may not use 'j'"},
      {recurrenceSpec("gate exp(gc[b, i, h, d])", "dot(q, k) + 1",
                      "mask j <= i\n  norm none\n  param gc[b, i, h, d]"),
       "a gate needs a score linear in dot(q, k): dot times factors free of 'i' or of 'j'"},
      {recurrenceSpec("gate 0.9", "dot(q, k)", "mask j <= i"), "a gate needs norm none"},
      {recurrenceSpec("gate s > 0"), "the gate cannot depend on the score 's'"},
      {recurrenceSpec("gate i > 0"), "the gate must be a number, got bool"},
      {recurrenceSpec("", "dot(q, k) * exp(gc[b, i, h, d])",
                      "mask j <= i\n  norm none\n  param gc[b, i, h, d]"),
       "param index 'd' must be one of b, i, j, h"},
      // norm sum and an output rmsnorm: the chunked form of a linear recurrence
      {recurrenceSpec("", "dot(q, k)", "mask j < i\n  norm sum"),
       "norm sum needs the causal mask exactly: 'mask j <= i'"},
      {recurrenceSpec("", "exp(dot(q, k))", "mask j <= i\n  norm sum"),
       "norm sum needs a score linear in dot(q, k): dot times factors free of 'i' or of 'j'"},
      {recurrenceSpec("state st[b, h, d, dv]", "dot(q, k)", "mask j <= i\n  norm sum"),
       "not supported yet: a state with norm sum"},
      {skipSpec("rmsnorm(attend(s, v))"), "'rmsnorm' takes 2 arguments, got 1"},
      {skipSpec("rmsnorm(attend(s, v), i)"), "rmsnorm's epsilon must be a number, got 'i'"},
      {skipSpec("rmsnorm(attend(s, v), 0)"), "rmsnorm's epsilon must be positive, got '0'"},
      // projected feature maps (Performer): q and k onto one param row, in the chunked form
      {projectionSpec("feature q, k = exp(dot(x, w[m]) - x)"),
       "a projected feature map reads x only through dot(x, w[...]) and dot(x, x)"},
      {projectionSpec("feature q = exp(dot(x, w[m]))"),
       "'k' needs a projected feature map too: the dot runs over the feature dim 'm'"},
      {projectionSpec("feature q, k = dot(x, w)"),
       "the projection must be a row of a param: dot(x, w[m]), got 'w'"},
      {projectionSpec("feature q, k = dot(x, u[m])"),
       "the projection param must be declared [m, d] (feature dim, head dim), got 'u' with 2 "
       "dims"},
      {projectionSpec("feature q, k = dot(x, w[b])"),
       "the projection param must be declared [b, d] (feature dim, head dim), got 'w' with 2 "
       "dims"},
      {projectionSpec("feature q, k = dot(q, w[m])"),
       "in a feature map, dot takes x and a param row: dot(x, w[m]) or dot(x, x)"},
      {projectionSpec("feature q = exp(dot(x, w[m]))\n  feature k = exp(dot(x, w2[m]))"),
       "every projected feature map must project with the same param row 'w[m]'"},
      {projectionSpec("feature q, k = exp(dot(x, w[m]))", "norm softmax"),
       "a projected feature map needs norm none"},
      {projectionSpec("feature q, k = exp(dot(x, w[m]))\n  state st[b, h, m, dv]", "norm none"),
       "not supported yet: a state with a projected feature map"},
      {projectionSpec("feature q, k = exp(dot(x, w[mn]))", "norm sum", "mn"),
       "the feature dim 'mn' must be static"},
      {skipSpec("rmsnorm(attend(s, v) + 1, 1e-6)"),
       "rmsnorm normalises attend(s, v), got 'rmsnorm(attend(s, v) + 1, 1e-6)'"},
  };
  for (const Case &c : cases) {
    bool ok = loadSpec("r.attn", c.text, f, diag);
    EXPECT_FALSE(ok) << c.text;
    EXPECT_EQ(diag.message, c.message) << c.text;
  }
}

TEST(Sema, Errors) {
  struct Case {
    std::string text, message, hint;
  } cases[] = {
      {mhaSpec("dot(q, k) * slop[h]", "", "slope[h]"), "unknown name 'slop'",
       "did you mean 'slope'?"},
      {mhaSpec("dot(q, k) > 0"), "score 's' must be a number, got bool", ""},
      {mhaSpec("dot(q, k)", "j - i"), "mask must be a boolean expression, got int", ""},
      {mhaSpec("dot(q, k)", "s > 0"), "the mask cannot depend on the score 's'", ""},
      {mhaSpec("dot(q, k) + s"), "score 's' cannot refer to itself", ""},
      {mhaSpec("dot(q, k)", "dot(q, k) > 0"), "dot(...) is only allowed in the score", ""},
      {mhaSpec("dot(q, k) + dot(k, q)"), "score 's' reads dot(q, k) and dot(k, q)", ""},
      {mhaSpec("dot(q, k) + p[h, 1.5]", "", "p[h, i]"),
       "index 2 of 'p' must be an integer, got float '1.5'", ""},
      {mhaSpec("dot(q, q)"), "score 's' reads no product of two inputs", ""},
      {mhaSpec("dot(q, k) + dot(v, v)"),
       "dot(v, v) is not a row norm of the score's inputs: it reads dot(q, k)", ""},
      {mhaSpec("dot(q, k) * dot(q, q)", "", "", "none\n  feature q, k = relu(x)"),
       "not supported yet: row norms with a feature map", ""},
      {mhaSpec("exp(i)"), "score 's' does not contain dot(q, k)", ""},
      {mhaSpec("dot(q, k) % 0"), "remainder by zero in 'dot(q, k) % 0'", ""},
      {mhaSpec("dot(q, k) * max(1)"), "'max' takes 2 arguments, got 1", ""},
      {mhaSpec("select(1, dot(q, k), 0)"), "the condition of select must be bool, got int", ""},
      {mhaSpec("select(i < j, dot(q, k), true)"),
       "the branches of select must both be numbers or both be bools, got float and bool", ""},
      {mhaSpec("dot(q, k) + size(q)"), "size() takes a dim name, got 'q'", ""},
      {mhaSpec("dot(q, k)", "!i"), "'!' needs a boolean, got int", ""},
      {mhaSpec("dot(q, k)", "i && j"), "'&&' needs booleans, got int", ""},
      {mhaSpec("dot(q, k)", "(i < j) < true"), "comparison '<' needs numbers, got bool", ""},
      {mhaSpec("dot(q, k) * p", "", "p[h]"), "param 'p' is used without its indices", "write p[h]"},
      {mhaSpec("dot(q, k) + attend(s, v)"), "attend(...) is only allowed in the output expression",
       ""},
      {"variant a {\n  dims b, h, i, j, d, dv = d\n  input q[b, h, i, d], k[b, h, j, d], "
       "v[b, h, j, dv]\n  score s = dot(q, k)\n  output o[b, h, i, dv] = attend(s, q)\n}\n",
       "attend's values 'q' are already used in dot(q, k)", ""},
      {std::string(kAlibi) + kAlibi, "duplicate variant 'alibi_causal'", ""},
      {"variant a {\n  dims b, h, i, j, d, dv = d\n  input q[b, h, i, d] : i32, k[b, h, j, d], "
       "v[b, h, j, dv]\n  score s = dot(q, k)\n  output o[b, h, i, dv] = attend(s, v)\n}\n",
       "q, k, v must share one floating dtype: 'q' is i32", ""},
      {"variant a {\n  dims b, h, i, j, d, dv = d, d2 = d\n  input q[b, h, i, d], k[b, h, j, d], "
       "v[b, h, j, dv]\n  score s = dot(q, k)\n  output o[b, h, i, d2] = attend(s, v)\n}\n",
       "cannot find the value dim: 'v' and 'o' must share exactly one dim that 'q' lacks", ""},
      {"variant a {\n  dims b, h = 8, hk = 3, i, j, d, dv = d\n  input q[b, h, i, d], "
       "k[b, hk, j, d], v[b, hk, j, dv]\n  score s = dot(q, k)\n"
       "  output o[b, h, i, dv] = attend(s, v)\n}\n",
       "cannot tell which of 'hk' and 'j' is the kv-head dim of 'k' and 'v'", ""},
      {"variant a {\n  dims b, hk = h / 2, h, i, j, d, dv = d\n  input q[b, h, i, d], "
       "k[b, hk, j, d], v[b, hk, j, dv]\n  score s = dot(q, k)\n"
       "  output o[b, h, i, dv] = attend(s, v)\n}\n",
       "dim 'hk' uses 'h' before it is declared", "declare 'h' earlier in 'dims'"},
      {"variant a {\n  dims b, h, i, j, d = 0, dv = d\n  input q[b, h, i, d], "
       "k[b, h, j, d], v[b, h, j, dv]\n  score s = dot(q, k)\n"
       "  output o[b, h, i, dv] = attend(s, v)\n}\n",
       "dim 'd' must have a positive size, got 0", ""},
  };
  for (const Case &c : cases) {
    Diagnostic diag = loadError(c.text);
    EXPECT_EQ(diag.message, c.message) << c.text;
    if (!c.hint.empty()) {
      EXPECT_EQ(diag.hint, c.hint) << c.text;
    }
  }
}

// ---- dim sizes ------------------------------------------------------------------------------

TEST(DimSizes, ResolvesEveryKind) {
  SpecFile f;
  ASSERT_TRUE(load(kAlibi, f));
  const Variant &v = f.variants[0];
  DimSizes sizes;
  std::string error;
  ASSERT_TRUE(resolveDimSizes(v, {{"b", 2}, {"h", 8}, {"q_len", 5}, {"j", 7}}, sizes, error))
      << error;
  EXPECT_EQ(sizes, (DimSizes{2, 8, 2, 5, 7, 128, 128}));
  // Giving a computed or static dim is fine when it agrees.
  EXPECT_TRUE(resolveDimSizes(
      v, {{"b", 2}, {"h", 8}, {"hk", 2}, {"i", 5}, {"kv_len", 7}, {"d", 128}}, sizes, error))
      << error;
}

TEST(DimSizes, Errors) {
  SpecFile f;
  ASSERT_TRUE(load(kAlibi, f));
  const Variant &v = f.variants[0];
  struct Case {
    std::vector<std::pair<std::string, int64_t>> given;
    std::string error;
  } cases[] = {
      {{{"b", 2}, {"h", 8}, {"i", 5}}, "missing size for dim 'j' (kv_len)"},
      {{{"b", 2}, {"h", 8}, {"i", 5}, {"j", 5}, {"d", 64}}, "dim 'd' is 128, but 64 was given"},
      {{{"b", 0}, {"h", 8}, {"i", 5}, {"j", 5}}, "size of 'b' must be 1 to 2147483647, got 0"},
      {{{"b", 2}, {"h", 6}, {"i", 5}, {"j", 5}}, "dim 'hk = h / 4' does not divide: 'h' is 6"},
      {{{"b", 2}, {"h", 8}, {"i", 5}, {"j", 5}, {"x", 1}},
       "unknown dim 'x' in variant 'alibi_causal'"},
      {{{"b", 2}, {"h", 8}, {"i", 5}, {"q_len", 6}, {"j", 5}},
       "conflicting sizes for 'i' (q_len): 5 and 6"},
      {{{"b", 2}, {"h", 8}, {"hk", 4}, {"i", 5}, {"j", 5}}, "dim 'hk' is 2, but 4 was given"},
  };
  for (const Case &c : cases) {
    DimSizes sizes;
    std::string error;
    EXPECT_FALSE(resolveDimSizes(v, c.given, sizes, error)) << c.error;
    EXPECT_EQ(error, c.error);
  }
}

// ---- 16-bit floats --------------------------------------------------------------------------

TEST(Half, KnownValues) {
  EXPECT_EQ(f16FromDouble(1.0), 0x3c00);
  EXPECT_EQ(f16FromDouble(-2.0), 0xc000);
  EXPECT_EQ(f16FromDouble(65504.0), 0x7bff);
  EXPECT_EQ(f16FromDouble(65519.99), 0x7bff);
  EXPECT_EQ(f16FromDouble(65520.0), 0x7c00);  // the tie rounds to even: infinity
  EXPECT_EQ(f16FromDouble(std::ldexp(1.0, -24)), 0x0001);
  EXPECT_EQ(f16FromDouble(std::ldexp(1.0, -25)), 0x0000);  // tie between 0 and 1: even
  EXPECT_EQ(f16FromDouble(std::ldexp(1.5, -25)), 0x0001);
  EXPECT_EQ(f16FromDouble(-0.0), 0x8000);
  EXPECT_EQ(f16FromDouble(INFINITY), 0x7c00);
  EXPECT_EQ(f16FromDouble(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isnan(f16ToDouble(f16FromDouble(NAN))));
  EXPECT_EQ(f16ToDouble(0x3555), 0.25 + 0x155 * std::ldexp(1.0, -12));
  EXPECT_EQ(bf16FromDouble(1.0), 0x3f80);
  EXPECT_EQ(bf16FromFloat(3.0e38f), 0x7f62);
  EXPECT_EQ(bf16FromDouble(3.4e38), 0x7f80);           // above the largest bf16: rounds to infinity
  EXPECT_EQ(bf16FromDouble(1.0 + 1.0 / 256), 0x3f80);  // tie: to even
  EXPECT_EQ(bf16FromDouble(1.0 + 3.0 / 256), 0x3f82);  // tie: to even
  EXPECT_EQ(bf16FromDouble(std::ldexp(1.0, -133)), 0x0001);  // the smallest subnormal
  EXPECT_TRUE(std::isnan(bf16ToDouble(bf16FromDouble(-NAN))));
  EXPECT_EQ(f16ToFloat(f16FromFloat(0.1f)), float(f16ToDouble(0x2e66)));
}

namespace {

/// Every finite value and every midpoint between neighbours, for both formats.
void checkAllValues(uint16_t (*encode)(double), double (*decode)(uint16_t), uint16_t infBits) {
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    uint16_t h = uint16_t(bits);
    double x = decode(h);
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(decode(encode(x))));
      continue;
    }
    ASSERT_EQ(encode(x), h) << std::hex << bits;
    double next = decode(uint16_t(h + 1));            // the next value away from zero
    if ((h & 0x7fff) >= infBits || std::isinf(next))  // rounding to infinity: see KnownValues
      continue;
    double mid = (x + next) / 2;  // exact in double
    uint16_t even = (h & 1) ? uint16_t(h + 1) : h;
    ASSERT_EQ(encode(mid), even) << std::hex << bits;
    ASSERT_EQ(encode(std::nextafter(mid, x)), h) << std::hex << bits;
    ASSERT_EQ(encode(std::nextafter(mid, next)), uint16_t(h + 1)) << std::hex << bits;
  }
}

}  // namespace

TEST(Half, RoundsToNearestEvenExhaustively) {
  checkAllValues(f16FromDouble, f16ToDouble, 0x7c00);
  checkAllValues(bf16FromDouble, bf16ToDouble, 0x7f80);
}

TEST(HostTensor, LoadStoreEveryDType) {
  float f32[6] = {};
  uint16_t f16[6] = {}, bf16[6] = {};
  int32_t i32[6] = {};
  void *data[] = {f32, f16, bf16, i32};
  DType types[] = {DType::F32, DType::F16, DType::BF16, DType::I32};
  for (int n = 0; n < 4; ++n) {
    HostTensor t;
    t.dtype = types[n];
    t.data = data[n];
    t.sizes = {2, 3};
    t.strides = {1, 2};  // column-major storage
    t.store({1, 2}, 2.5);
    t.store({0, 1}, -3.25);
    EXPECT_EQ(t.load({1, 2}), types[n] == DType::I32 ? 2.0 : 2.5);  // ties to even
    EXPECT_EQ(t.load({0, 1}), types[n] == DType::I32 ? -3.0 : -3.25);
    EXPECT_EQ(t.load({0, 0}), 0.0);
  }
  EXPECT_EQ(f32[5], 2.5f);
  EXPECT_EQ(f16[5], f16FromDouble(2.5));
  HostTensor t{DType::BF16, bf16, {1}, {1}};
  t.store({0}, 1.0 + 1.0 / 128 + 1.0 / 1024);  // rounds to bf16
  EXPECT_EQ(t.load({0}), 1.0 + 1.0 / 128);
}

// ---- reference interpreter ------------------------------------------------------------------

namespace {

/// A host tensor that owns its (row-major, storage order) data.
struct OwnedTensor {
  std::vector<unsigned char> bytes;
  HostTensor meta;

  OwnedTensor(DType dtype, std::vector<int64_t> sizes) {
    meta.dtype = dtype;
    meta.sizes = sizes;
    meta.strides.assign(sizes.size(), 1);
    for (int a = int(sizes.size()) - 2; a >= 0; --a)
      meta.strides[a] = meta.strides[a + 1] * sizes[a + 1];
    int64_t count = 1;
    for (int64_t s : sizes)
      count *= s;
    bytes.assign(size_t(count) * (dtype == DType::F16 || dtype == DType::BF16 ? 2 : 4), 0);
  }
  HostTensor view() {
    HostTensor t = meta;
    t.data = bytes.data();
    return t;
  }
  double at(const std::vector<int64_t> &idx) { return view().load(idx); }
  /// Stores fn(idx) at every index.
  void fill(const std::function<double(const std::vector<int64_t> &)> &fn) {
    std::vector<int64_t> idx(meta.sizes.size(), 0);
    for (;;) {
      view().store(idx, fn(idx));
      int a = int(idx.size()) - 1;
      while (a >= 0 && ++idx[a] == meta.sizes[a])
        idx[a--] = 0;
      if (a < 0)
        return;
    }
  }
  void randomize(std::mt19937 &rng) {
    std::uniform_real_distribution<double> u(-1, 1);
    fill([&](const std::vector<int64_t> &) { return u(rng); });
  }
};

const Variant &loadVariant(SpecFile &f, const std::string &text) {
  Diagnostic diag;
  EXPECT_TRUE(loadSpec("t.attn", text, f, diag)) << diag.render(text);
  return f.variants.at(0);
}

DimSizes sizesOf(const Variant &v, const std::vector<std::pair<std::string, int64_t>> &given) {
  DimSizes sizes;
  std::string error;
  EXPECT_TRUE(resolveDimSizes(v, given, sizes, error)) << error;
  return sizes;
}

}  // namespace

/// (a) plain MHA against the textbook formula, computed the other way round (normalised
/// probabilities first).
TEST(Reference, PlainMHA) {
  SpecFile f;
  const Variant &v = loadVariant(f, mhaSpec("dot(q, k) * rsqrt(d)"));
  const int64_t B = 2, H = 3, I = 4, J = 5, D = 8;
  DimSizes sizes = sizesOf(v, {{"b", B}, {"h", H}, {"i", I}, {"j", J}, {"d", D}});
  std::mt19937 rng(1);
  OwnedTensor q(DType::F32, {B, H, I, D}), k(DType::F32, {B, H, J, D}),
      val(DType::F32, {B, H, J, D});
  q.randomize(rng);
  k.randomize(rng);
  val.randomize(rng);
  std::vector<double> out, lse;
  referenceForward(v, sizes, {q.view(), k.view(), val.view()}, {}, out, &lse);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < I; ++i) {
        std::vector<double> s(J);
        double sumExp = 0;
        for (int64_t j = 0; j < J; ++j) {
          for (int64_t d = 0; d < D; ++d)
            s[j] += q.at({b, h, i, d}) * k.at({b, h, j, d});
          s[j] /= std::sqrt(double(D));
          sumExp += std::exp(s[j]);
        }
        EXPECT_NEAR(lse[(b * H + h) * I + i], std::log(sumExp), 1e-12);
        for (int64_t d = 0; d < D; ++d) {
          double expected = 0;
          for (int64_t j = 0; j < J; ++j)
            expected += std::exp(s[j]) / sumExp * val.at({b, h, j, d});
          EXPECT_NEAR(out[((b * H + h) * I + i) * D + d], expected, 1e-12);
        }
      }
}

/// (b) causal ALiBi with GQA (group 2), bf16 tensors stored [b, s, h, d]: element offsets are
/// computed by hand here, independently of canonicalPerm.
TEST(Reference, CausalAlibiGQAInBSHDLayout) {
  SpecFile f;
  const Variant &v =
      loadVariant(f, "variant t {\n  dims b, s : q_len, t : kv_len, h, hk = h / 2, d = 4, e = d\n"
                     "  input q[b, s, h, d] : bf16, k[b, t, hk, d] : bf16, v[b, t, hk, e] : bf16\n"
                     "  param slope[h] : f32\n"
                     "  score x = dot(q, k) * rsqrt(d) + slope[h] * (t - s)\n  mask t <= s\n"
                     "  output o[b, s, h, e] = attend(x, v)\n}\n");
  const int64_t B = 2, S = 5, T = 6, H = 4, HK = 2, D = 4;
  DimSizes sizes = sizesOf(v, {{"b", B}, {"q_len", S}, {"kv_len", T}, {"h", H}});
  std::mt19937 rng(2);
  OwnedTensor q(DType::BF16, {B, S, H, D}), k(DType::BF16, {B, T, HK, D}),
      val(DType::BF16, {B, T, HK, D}), slope(DType::F32, {H});
  q.randomize(rng);
  k.randomize(rng);
  val.randomize(rng);
  slope.fill([](const std::vector<int64_t> &idx) { return std::ldexp(1.0, -int(idx[0]) - 1); });
  std::vector<double> out, lse;
  referenceForward(v, sizes, {q.view(), k.view(), val.view()}, {slope.view()}, out, &lse);
  auto bf16At = [](OwnedTensor &t, int64_t offset) {
    uint16_t bits;
    std::memcpy(&bits, &t.bytes[size_t(offset) * 2], 2);
    return bf16ToDouble(bits);
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < S; ++i) {
        int64_t hk = h / 2;
        double m = -INFINITY;
        std::vector<double> s(T, -INFINITY);
        for (int64_t j = 0; j <= i && j < T; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += bf16At(q, ((b * S + i) * H + h) * D + d) *
                   bf16At(k, ((b * T + j) * HK + hk) * D + d);
          s[j] = dot / 2 + std::ldexp(1.0, -int(h) - 1) * double(j - i);
          m = std::max(m, s[j]);
        }
        double l = 0;
        for (int64_t j = 0; j <= i && j < T; ++j)
          l += std::exp(s[j] - m);
        EXPECT_NEAR(lse[(b * H + h) * S + i], m + std::log(l), 1e-12);
        for (int64_t d = 0; d < D; ++d) {
          double expected = 0;
          for (int64_t j = 0; j <= i && j < T; ++j)
            expected += std::exp(s[j] - m) * bf16At(val, ((b * T + j) * HK + hk) * D + d);
          EXPECT_NEAR(out[((b * H + h) * S + i) * D + d], expected / l, 1e-12);
        }
      }
}

/// (c) the sigmoid norm: independent weights, no normalisation, lse 0.
TEST(Reference, SigmoidNorm) {
  SpecFile f;
  const Variant &v = loadVariant(f, mhaSpec("dot(q, k) - log(kv_len)", "", "", "sigmoid"));
  const int64_t B = 1, H = 2, I = 3, J = 4, D = 5;
  DimSizes sizes = sizesOf(v, {{"b", B}, {"h", H}, {"i", I}, {"j", J}, {"d", D}});
  std::mt19937 rng(3);
  OwnedTensor q(DType::F32, {B, H, I, D}), k(DType::F32, {B, H, J, D}),
      val(DType::F32, {B, H, J, D});
  q.randomize(rng);
  k.randomize(rng);
  val.randomize(rng);
  std::vector<double> out, lse;
  referenceForward(v, sizes, {q.view(), k.view(), val.view()}, {}, out, &lse);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < I; ++i) {
      EXPECT_EQ(lse[h * I + i], 0.0);
      for (int64_t d = 0; d < D; ++d) {
        double expected = 0;
        for (int64_t j = 0; j < J; ++j) {
          double s = -std::log(double(J));
          for (int64_t c = 0; c < D; ++c)
            s += q.at({0, h, i, c}) * k.at({0, h, j, c});
          expected += val.at({0, h, j, d}) / (1 + std::exp(-s));
        }
        EXPECT_NEAR(out[(h * I + i) * D + d], expected, 1e-12);
      }
    }
}

/// The other norms on a score that does not depend on q and k: with q = 0, s_j = j - 2.
TEST(Reference, NoneAndRelu2Norms) {
  for (std::string norm : {"none", "relu2"}) {
    SpecFile f;
    const Variant &v = loadVariant(f, mhaSpec("dot(q, k) + (j - 2)", "", "", norm));
    DimSizes sizes = sizesOf(v, {{"b", 1}, {"h", 1}, {"i", 1}, {"j", 5}, {"d", 1}});
    OwnedTensor q(DType::F32, {1, 1, 1, 1}), k(DType::F32, {1, 1, 5, 1}),
        val(DType::F32, {1, 1, 5, 1});
    val.fill([](const std::vector<int64_t> &idx) { return double(idx[2] + 1); });
    std::vector<double> out;
    referenceForward(v, sizes, {q.view(), k.view(), val.view()}, {}, out, nullptr);
    // s = -2, -1, 0, 1, 2 and v = 1..5
    double expected = norm == "none" ? -2 * 1 - 1 * 2 + 0 + 1 * 4 + 2 * 5 : 1 * 4 + 4 * 5;
    EXPECT_EQ(out[0], expected) << norm;
  }
}

/// A row whose keys are all masked gives 0 and an lse of -inf; i32 params drive the mask.
TEST(Reference, FullyMaskedRow) {
  SpecFile f;
  const Variant &v =
      loadVariant(f, mhaSpec("dot(q, k)", "j < i && j >= start[b]", "start[b] : i32"));
  const int64_t I = 4, J = 4, D = 2;
  DimSizes sizes = sizesOf(v, {{"b", 2}, {"h", 1}, {"i", I}, {"j", J}, {"d", D}});
  std::mt19937 rng(4);
  OwnedTensor q(DType::F32, {2, 1, I, D}), k(DType::F32, {2, 1, J, D}),
      val(DType::F32, {2, 1, J, D}), start(DType::I32, {2});
  q.randomize(rng);
  k.randomize(rng);
  val.randomize(rng);
  start.fill([](const std::vector<int64_t> &idx) { return idx[0] == 0 ? 0.0 : 2.0; });
  std::vector<double> out, lse;
  referenceForward(v, sizes, {q.view(), k.view(), val.view()}, {start.view()}, out, &lse);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t i = 0; i < I; ++i) {
      int64_t first = b == 0 ? 0 : 2;  // keys first <= j < i are allowed
      const double *row = &out[(b * I + i) * D];
      if (first >= i) {
        EXPECT_EQ(lse[b * I + i], -INFINITY) << b << " " << i;
        for (int64_t d = 0; d < D; ++d) {
          EXPECT_EQ(row[d], 0.0);
        }
        continue;
      }
      EXPECT_TRUE(std::isfinite(lse[b * I + i])) << b << " " << i;
      if (i == first + 1) {  // exactly one key allowed: the output is that key's value
        for (int64_t d = 0; d < D; ++d) {
          EXPECT_DOUBLE_EQ(row[d], val.at({b, 0, first, d}));
        }
      }
    }
}

/// Int arithmetic: C truncation, and a division or remainder by a runtime 0 gives 0.
TEST(Reference, IntArithmetic) {
  SpecFile f;
  const Variant &v = loadVariant(
      f, mhaSpec("dot(q, k) + (i - 3) / 2 + i % (j - j) + -7 % 3 + abs(j - 9) / (i - i)", "", "",
                 "none"));
  DimSizes sizes = sizesOf(v, {{"b", 1}, {"h", 1}, {"i", 4}, {"j", 1}, {"d", 1}});
  OwnedTensor q(DType::F32, {1, 1, 4, 1}), k(DType::F32, {1, 1, 1, 1}),
      val(DType::F32, {1, 1, 1, 1});
  val.fill([](const std::vector<int64_t> &) { return 1.0; });
  std::vector<double> out;
  referenceForward(v, sizes, {q.view(), k.view(), val.view()}, {}, out, nullptr);
  const double expected[4] = {-1 - 1, -1 - 1, 0 - 1, 0 - 1};  // (i - 3) / 2 and -7 % 3 == -1
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(out[i], expected[i]) << i;
}

// ---- the variant library --------------------------------------------------------------------

/// Every spec of specs/ loads. The directory is ATTNC_SOURCE_DIR/specs when the build defines
/// it, else specs/ under the working directory (the repository root).
TEST(Library, EverySpecLoads) {
#ifdef ATTNC_SOURCE_DIR
  std::filesystem::path dir = std::filesystem::path(ATTNC_SOURCE_DIR) / "specs";
#else
  std::filesystem::path dir = "specs";
#endif
  if (!std::filesystem::is_directory(dir))
    GTEST_SKIP() << "no specs directory at " << dir;
  int count = 0;
  for (const auto &entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".attn")
      continue;
    std::ifstream in(entry.path());
    std::stringstream text;
    text << in.rdbuf();
    SpecFile f;
    EXPECT_TRUE(load(text.str(), f)) << entry.path();
    EXPECT_EQ(f.variants.size(), 1u) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 11);
}
