// Tokenizer of the spec language. Produces the whole token list up front; the list always ends
// with an Eof token, or with an Error token at the first lexical error (the parser reports it
// when it gets there, so errors still come out in source order).
#pragma once

#include "compiler/frontend/AST.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace attnc {

struct Token {
  enum class Kind {
    Ident,    // [A-Za-z_][A-Za-z0-9_]*, not reserved
    Keyword,  // a reserved word (text)
    Int,      // intValue
    Float,    // floatValue
    Punct,    // operator or bracket (text)
    Eof,
    Error,  // text = message, hint = hint
  };
  Kind kind = Kind::Eof;
  std::string text;  // the spelling; for Error the message
  std::string hint;  // Error only
  SourceLoc loc;
  size_t offset = 0;    // byte offset of the first character
  uint32_t length = 1;  // characters covered
  int64_t intValue = 0;
  double floatValue = 0;

  bool is(Kind k, const char *s) const { return kind == k && text == s; }
  bool isPunct(const char *s) const { return is(Kind::Punct, s); }
  bool isKeyword(const char *s) const { return is(Kind::Keyword, s); }
};

std::vector<Token> tokenize(const std::string &text);

/// How a token is named in messages: its spelling, or "end of file".
std::string describeToken(const Token &t);

}  // namespace attnc
