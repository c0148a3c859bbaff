// Recursive-descent parser of the spec language (see docs/spec-language.md for the grammar).
// Stops at the first error. Expressions are limited to kMaxExprDepth levels so that the parser,
// Sema, the AST printer, the interpreter and the AST's destructor never recurse unboundedly.
#pragma once

#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Lexer.h"

#include <string>
#include <vector>

namespace attnc {

constexpr int kMaxExprDepth = 256;

class Parser {
public:
  Parser(const std::string &path, const std::string &text, Diagnostic &diag);
  bool parseFile(SpecFile &out);

private:
  std::string path_;
  const std::string &text_;
  Diagnostic &diag_;
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  size_t prevEnd_ = 0;              // byte offset just past the last consumed token
  int depth_ = 0;                   // current expression recursion depth
  std::vector<size_t> lineStarts_;  // byte offset of each line, to turn a SourceLoc into an offset

  const Token &cur() const { return tokens_[pos_]; }
  Token take();
  bool accept(const char *punct);
  bool fail(SourceLoc loc, uint32_t length, std::string message, std::string hint = "");
  bool fail(const Token &t, std::string message, std::string hint = "");
  bool expectPunct(const char *punct, const std::string &context);
  bool expectName(std::string &name, SourceLoc &loc, const char *what);

  bool parseVariant(Variant &v);
  bool parseStatement(Variant &v);
  bool parseDims(Variant &v);
  bool parsePaged(Variant &v);
  bool parseFeature(Variant &v);
  bool parseNormOptions(Variant &v);
  bool parseDimDecl(DimDecl &d);
  bool parseTensor(TensorDecl &t, const char *what, bool rank0Allowed);  // what: input/param/output
  bool parseDType(std::optional<DType> &dtype);
  bool parseScore(Variant &v);
  bool parseNamedExpr(const char *keyword, const char *what, std::string &name, SourceLoc &loc,
                      ExprPtr &expr);
  bool parseLet(Variant &v);
  bool parseMask(Variant &v);
  bool parseNorm(Variant &v);
  bool parseOutput(Variant &v);

  // Each returns null after reporting an error; `height` receives the height of the tree.
  ExprPtr parseExpr();
  ExprPtr parseOr(int &height);
  ExprPtr parseAnd(int &height);
  ExprPtr parseCmp(int &height);
  ExprPtr parseAdd(int &height);
  ExprPtr parseMul(int &height);
  ExprPtr parseUnary(int &height);
  ExprPtr parsePrimary(int &height);
  ExprPtr parseNamed(int &height);
  bool parseArgs(Expr &e, const char *close, int &height);
  ExprPtr makeBinary(std::string op, ExprPtr lhs, ExprPtr rhs, int &height, int rhsHeight);
  bool checkHeight(int height);
  bool tooDeep();
  size_t offsetOf(SourceLoc loc) const;
  void setSpan(Expr &e, size_t startOffset) const;
};

// ---- helpers shared by the front-end sources (defined in Diagnostics.cpp) ----

/// "int", "float" or "bool", as messages and the AST dump name types.
const char *valueTypeName(ValueType t);

/// "a, b, c".
std::string joinNames(const std::vector<std::string> &names);

/// `text`, or `fallback` when text is empty (e.g. a did-you-mean hint, else a generic one).
std::string orElse(const std::string &text, const std::string &fallback);

/// "did you mean 'x'?" for the candidate closest to `name` by edit distance, if that distance
/// is at most 2 and smaller than the name's length (so 'x' does not suggest 'b'); else "".
std::string didYouMean(const std::string &name, const std::vector<std::string> &candidates);

/// The source text at [loc, loc + length), cut at the end of loc's line.
std::string sourceSnippet(const std::string &text, SourceLoc loc, uint32_t length);

}  // namespace attnc
