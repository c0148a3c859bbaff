#include "compiler/frontend/Lexer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace attnc {
namespace {

const char *const kKeywords[] = {"variant", "dims",  "input",   "param", "score", "mask",
                                 "norm",    "output", "paged",  "decay", "state", "feature",
                                 "gate",    "bonus", "true",    "false", "let"};

bool isIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c); }

bool isKeyword(const std::string &word) {
  for (const char *k : kKeywords)
    if (word == k)
      return true;
  return false;
}

/// A character as messages show it: itself if printable ASCII, else a \xNN escape.
std::string showChar(unsigned char c) {
  if (c >= 0x20 && c < 0x7f)
    return std::string(1, char(c));
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", c);
  return buf;
}

class Lexer {
public:
  explicit Lexer(const std::string &text) : text_(text) {}

  std::vector<Token> run() {
    std::vector<Token> tokens;
    for (;;) {
      skipSpaceAndComments();
      Token t = next();
      Token::Kind kind = t.kind;
      tokens.push_back(std::move(t));
      if (kind == Token::Kind::Eof || kind == Token::Kind::Error)
        return tokens;
    }
  }

private:
  const std::string &text_;
  size_t pos_ = 0;
  uint32_t line_ = 1, col_ = 1;

  char peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  bool atEnd() const { return pos_ >= text_.size(); }

  void advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }

  void skipSpaceAndComments() {
    while (!atEnd()) {
      char c = peek();
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        advance();
      } else if (c == '#') {  // comments may hold any bytes, up to the end of the line
        while (!atEnd() && peek() != '\n')
          advance();
      } else {
        return;
      }
    }
  }

  Token start(Token::Kind kind) const {
    Token t;
    t.kind = kind;
    t.loc = {line_, col_};
    t.offset = pos_;
    return t;
  }

  /// Gives t the length and spelling of the characters from t.offset to the current position.
  Token finish(Token t) const {
    t.length = uint32_t(pos_ - t.offset);
    if (t.kind != Token::Kind::Error)
      t.text = text_.substr(t.offset, t.length);
    return t;
  }

  Token error(Token t, std::string message, std::string hint = "") const {
    t.kind = Token::Kind::Error;
    t.length = uint32_t(pos_ > t.offset ? pos_ - t.offset : 1);
    t.text = std::move(message);
    t.hint = std::move(hint);
    return t;
  }

  Token next() {
    if (atEnd())
      return start(Token::Kind::Eof);
    char c = peek();
    if (isIdentStart(c))
      return identifier();
    if (isDigit(c) || (c == '.' && isDigit(peek(1))))
      return number();
    return punctuation();
  }

  Token identifier() {
    Token t = start(Token::Kind::Ident);
    while (!atEnd() && isIdentChar(peek()))
      advance();
    t = finish(std::move(t));
    if (isKeyword(t.text))
      t.kind = Token::Kind::Keyword;
    return t;
  }

  void digits() {
    while (!atEnd() && isDigit(peek()))
      advance();
  }

  /// INT = digits; FLOAT = digits '.' digits? exponent? | '.' digits exponent? | digits exponent.
  /// A number running straight into letters, digits or dots ("1e", "2x", "1.2.3") is malformed.
  Token number() {
    Token t = start(Token::Kind::Int);
    bool wellFormed = true;
    digits();
    if (peek() == '.') {
      t.kind = Token::Kind::Float;
      advance();
      digits();
    }
    if (peek() == 'e' || peek() == 'E') {
      t.kind = Token::Kind::Float;
      advance();
      if (peek() == '+' || peek() == '-')
        advance();
      wellFormed = isDigit(peek());
      digits();
    }
    if (!atEnd() && (isIdentChar(peek()) || peek() == '.'))
      wellFormed = false;
    while (!atEnd() && (isIdentChar(peek()) || peek() == '.'))
      advance();
    std::string spelling = text_.substr(t.offset, pos_ - t.offset);
    if (!wellFormed)
      return error(std::move(t), "malformed number '" + spelling + "'",
                   "numbers look like 42, 1.5, 2., .5 or 1e-3");
    return t.kind == Token::Kind::Int ? makeInt(std::move(t), spelling)
                                      : makeFloat(std::move(t), spelling);
  }

  Token makeInt(Token t, const std::string &spelling) {
    int64_t value = 0;
    for (char c : spelling) {
      if (value > (INT64_MAX - (c - '0')) / 10)
        return error(std::move(t), "integer literal '" + spelling + "' is too large");
      value = value * 10 + (c - '0');
    }
    t.intValue = value;
    return finish(std::move(t));
  }

  Token makeFloat(Token t, const std::string &spelling) {
    // Underflow quietly gives 0 (or a subnormal); only overflow is an error.
    double value = std::strtod(spelling.c_str(), nullptr);
    if (std::isinf(value))
      return error(std::move(t), "floating-point literal '" + spelling + "' is out of range");
    t.floatValue = value;
    return finish(std::move(t));
  }

  Token punctuation() {
    static const char *const twoChar[] = {"<=", ">=", "==", "!=", "&&", "||"};
    Token t = start(Token::Kind::Punct);
    for (const char *p : twoChar) {
      if (peek() == p[0] && peek(1) == p[1]) {
        advance();
        advance();
        return finish(std::move(t));
      }
    }
    char c = peek();
    static const std::string single = "{}[](),:=+-*/%<>!";
    if (single.find(c) != std::string::npos) {
      advance();
      return finish(std::move(t));
    }
    std::string hint;
    if (c == '&' || c == '|')
      hint = std::string("did you mean '") + c + c + "'?";
    else if ((unsigned char)c >= 0x80)
      hint = "only ASCII is allowed outside comments";
    advance();
    return error(std::move(t), "unexpected character '" + showChar((unsigned char)c) + "'", hint);
  }
};

}  // namespace

std::vector<Token> tokenize(const std::string &text) { return Lexer(text).run(); }

std::string describeToken(const Token &t) {
  if (t.kind == Token::Kind::Eof)
    return "end of file";
  return "'" + t.text + "'";
}

}  // namespace attnc
