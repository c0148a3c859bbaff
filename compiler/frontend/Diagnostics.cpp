#include <cmath>
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Parser.h"

#include <algorithm>

namespace attnc {
namespace {

/// Line `line` (1-based) of `text` without its line break; empty past the end of the text.
std::string sourceLine(const std::string &text, uint32_t line) {
  size_t begin = 0;
  for (uint32_t l = 1; l < line; ++l) {
    size_t nl = text.find('\n', begin);
    if (nl == std::string::npos)
      return "";
    begin = nl + 1;
  }
  size_t end = text.find('\n', begin);
  std::string s = text.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  if (!s.empty() && s.back() == '\r')
    s.pop_back();
  return s;
}

/// The caret line under `line`: '^' at col, '~' for the rest of `length` (within the line).
/// Tabs before the caret are copied so the caret lines up however tabs are displayed.
std::string caretLine(const std::string &line, uint32_t col, uint32_t length) {
  std::string out;
  for (uint32_t c = 1; c < col; ++c)
    out += c - 1 < line.size() && line[c - 1] == '\t' ? '\t' : ' ';
  out += '^';
  size_t rest = col <= line.size() ? line.size() - col : 0;
  out.append(std::min<size_t>(length > 0 ? length - 1 : 0, rest), '~');
  return out;
}

size_t editDistance(const std::string &a, const std::string &b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitute = diagonal + (a[i - 1] != b[j - 1]);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

}  // namespace

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32:
    return "f32";
  case DType::F16:
    return "f16";
  case DType::BF16:
    return "bf16";
  case DType::I32:
    return "i32";
  case DType::I8:
    return "i8";
  case DType::F8E4M3:
    return "f8e4m3";
  case DType::I4:
    return "i4";
  }
  return "?";
}

std::optional<DType> dtypeFromName(const std::string &name) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::I32, DType::I8, DType::F8E4M3,
                  DType::I4})
    if (name == dtypeName(t))
      return t;
  return std::nullopt;
}

bool isFloat(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

int64_t dtypeBytes(DType t) {
  switch (t) {
  case DType::F16:
  case DType::BF16:
    return 2;
  case DType::I8:
  case DType::F8E4M3:
  case DType::I4:  // the byte holding two values
    return 1;
  default:
    return 4;
  }
}

double f8e4m3ToDouble(uint8_t bits) {
  int sign = bits >> 7, exp = (bits >> 3) & 15, man = bits & 7;
  if (exp == 15 && man == 7)
    return std::nan("");
  double mag = exp ? std::ldexp(1.0 + man / 8.0, exp - 7) : std::ldexp(man / 8.0, -6);
  return sign ? -mag : mag;
}

uint8_t f8e4m3FromDouble(double x) {
  if (std::isnan(x))
    return 0x7f;
  uint8_t sign = std::signbit(x) ? 0x80 : 0;
  double a = std::fabs(x);
  // The 127 finite magnitudes are increasing in their codes: pick the nearest, ties to even.
  uint8_t best = 0;
  for (int code = 1; code < 127; ++code) {
    double d = std::fabs(f8e4m3ToDouble(uint8_t(code)) - a), e = std::fabs(f8e4m3ToDouble(best) - a);
    if (d < e || (d == e && !(code & 1)))
      best = uint8_t(code);
  }
  return sign | best;
}

const char *roleName(DimRole r) {
  switch (r) {
  case DimRole::None: return "none";
  case DimRole::Batch: return "batch";
  case DimRole::QHead: return "q_head";
  case DimRole::KVHead: return "kv_head";
  case DimRole::QKHead: return "qk_head";
  case DimRole::QSeq: return "q_seq";
  case DimRole::KVSeq: return "kv_seq";
  case DimRole::HeadDim: return "head_dim";
  case DimRole::ValueDim: return "value_dim";
  }
  return "none";
}

const char *normName(Norm n) {
  switch (n) {
  case Norm::Softmax: return "softmax";
  case Norm::None: return "none";
  case Norm::Sigmoid: return "sigmoid";
  case Norm::Relu2: return "relu2";
  case Norm::Sum: return "sum";
  }
  return "softmax";
}

int64_t staticExtent(const Variant &v, int d) {
  const DimDecl &dim = v.dims[d];
  switch (dim.kind) {
  case DimDecl::Kind::Static: return dim.staticSize;
  case DimDecl::Kind::Alias: return staticExtent(v, dim.sourceIndex);
  case DimDecl::Kind::Derived: {
    int64_t src = staticExtent(v, dim.sourceIndex);
    return src < 0 ? -1 : src / dim.divisor;
  }
  case DimDecl::Kind::Dynamic: return -1;
  }
  return -1;
}

std::string Diagnostic::render(const std::string &sourceText) const {
  if (loc.line == 0) {
    std::string out = file + ": error: " + message + "\n";
    if (!hint.empty())
      out += "  hint: " + hint + "\n";
    return out;
  }
  std::string line = sourceLine(sourceText, loc.line);
  std::string out = file + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.col) +
                    ": error: " + message + "\n";
  out += "  " + line + "\n";
  out += "  " + caretLine(line, loc.col, length) + "\n";
  if (!hint.empty())
    out += "  hint: " + hint + "\n";
  return out;
}

std::string didYouMean(const std::string &name, const std::vector<std::string> &candidates) {
  const std::string *best = nullptr;
  size_t bestDistance = 3;
  for (const std::string &c : candidates) {
    // Cheap bound first: names are short, but an input may hold a huge identifier.
    size_t lengthGap = c.size() > name.size() ? c.size() - name.size() : name.size() - c.size();
    if (lengthGap >= bestDistance || c == name)
      continue;
    size_t d = editDistance(name, c);
    if (d < bestDistance && d < name.size()) {
      best = &c;
      bestDistance = d;
    }
  }
  return best ? "did you mean '" + *best + "'?" : "";
}

std::string sourceSnippet(const std::string &text, SourceLoc loc, uint32_t length) {
  std::string line = sourceLine(text, loc.line);
  if (loc.col == 0 || loc.col > line.size())
    return "";
  return line.substr(loc.col - 1, length);
}

const char *valueTypeName(ValueType t) {
  switch (t) {
  case ValueType::Int:
    return "int";
  case ValueType::Float:
    return "float";
  case ValueType::Bool:
    return "bool";
  case ValueType::Unknown:
    break;
  }
  return "unknown";
}

std::string joinNames(const std::vector<std::string> &names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? ", " : "") + names[i];
  return out;
}

std::string orElse(const std::string &text, const std::string &fallback) {
  return text.empty() ? fallback : text;
}

}  // namespace attnc
