// The float64 reference: a direct interpreter of the checked AST, written to be obviously
// right rather than fast. The compiler's numerics are tested against it.
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Half.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace attnc {

// ---- host tensors ---------------------------------------------------------------------------

namespace {

int64_t elementOffset(const HostTensor &t, const std::vector<int64_t> &idx) {
  int64_t offset = 0;
  for (size_t a = 0; a < idx.size(); ++a)
    offset += idx[a] * t.strides[a];
  return offset;
}

/// I4: the byte holding value idx (the last axis is packed, two values per byte) and the
/// nibble's shift, low nibble first.
std::pair<int64_t, int> nibbleAt(const HostTensor &t, const std::vector<int64_t> &idx) {
  int64_t offset = 0;
  for (size_t a = 0; a + 1 < idx.size(); ++a)
    offset += idx[a] * t.strides[a];
  return {offset + idx.back() / 2, int(idx.back() % 2) * 4};
}

/// Nearest int32 (ties to even); NaN gives 0 and out-of-range values saturate.
int32_t toInt32(double value) {
  if (std::isnan(value))
    return 0;
  double r = std::nearbyint(value);
  r = std::min<double>(std::max<double>(r, std::numeric_limits<int32_t>::min()),
                       std::numeric_limits<int32_t>::max());
  return int32_t(r);
}

}  // namespace

int64_t HostTensor::unitsAlong(size_t axis) const {
  if (axis + 1 != sizes.size())
    return sizes[axis];
  int64_t packing = dtypePacking(dtype);
  return (sizes[axis] + packing - 1) / packing;
}

int64_t HostTensor::layoutContiguous(DType type, std::vector<int64_t> extents) {
  dtype = type;
  sizes = std::move(extents);
  strides.assign(sizes.size(), 1);
  int64_t units = 1;
  for (size_t a = sizes.size(); a-- > 0;) {
    strides[a] = units;
    units *= unitsAlong(a);
  }
  return units * dtypeBytes(dtype);
}

double HostTensor::load(const std::vector<int64_t> &idx) const {
  if (dtype == DType::I4) {
    auto [byte, shift] = nibbleAt(*this, idx);
    int nibble = (static_cast<const uint8_t *>(data)[byte] >> shift) & 15;
    return nibble >= 8 ? nibble - 16 : nibble;
  }
  int64_t o = elementOffset(*this, idx);
  switch (dtype) {
  case DType::F32:
    return static_cast<const float *>(data)[o];
  case DType::F16:
    return f16ToDouble(static_cast<const uint16_t *>(data)[o]);
  case DType::BF16:
    return bf16ToDouble(static_cast<const uint16_t *>(data)[o]);
  case DType::I32:
    return static_cast<const int32_t *>(data)[o];
  case DType::I8:
    return static_cast<const int8_t *>(data)[o];
  case DType::F8E4M3:
    return f8e4m3ToDouble(static_cast<const uint8_t *>(data)[o]);
  case DType::I4:
    break;  // handled above
  }
  return 0;
}

void HostTensor::store(const std::vector<int64_t> &idx, double value) {
  if (dtype == DType::I4) {
    auto [byte, shift] = nibbleAt(*this, idx);
    int nibble = std::isnan(value) ? 0 : int(std::max(-8.0, std::min(7.0, std::nearbyint(value)))) & 15;
    uint8_t &cell = static_cast<uint8_t *>(data)[byte];
    cell = uint8_t((cell & ~(15 << shift)) | (nibble << shift));
    return;
  }
  int64_t o = elementOffset(*this, idx);
  switch (dtype) {
  case DType::F32:
    static_cast<float *>(data)[o] = float(value);
    break;
  case DType::F16:
    static_cast<uint16_t *>(data)[o] = f16FromDouble(value);
    break;
  case DType::BF16:
    static_cast<uint16_t *>(data)[o] = bf16FromDouble(value);
    break;
  case DType::I32:
    static_cast<int32_t *>(data)[o] = toInt32(value);
    break;
  case DType::I8:
    static_cast<int8_t *>(data)[o] = int8_t(std::max(-128.0, std::min(127.0, std::nearbyint(value))));
    break;
  case DType::F8E4M3:
    static_cast<uint8_t *>(data)[o] = f8e4m3FromDouble(value);
    break;
  case DType::I4:
    break;  // handled above
  }
}

// ---- expression evaluation ------------------------------------------------------------------

namespace {

/// A value of a checked expression; Int and Bool use `i`, Float uses `f`.
struct Value {
  ValueType type = ValueType::Int;
  int64_t i = 0;
  double f = 0;
  double real() const { return type == ValueType::Float ? f : double(i); }
};

Value intValue(int64_t i) { return {ValueType::Int, i, 0}; }
Value floatValue(double f) { return {ValueType::Float, 0, f}; }
Value boolValue(bool b) { return {ValueType::Bool, b, 0}; }

/// Int arithmetic in int64 with C truncation. Overflow wraps (through uint64, so it is not
/// undefined behaviour), and x / 0 and x % 0 give 0 as the language defines.
int64_t intArith(const std::string &op, int64_t a, int64_t b) {
  uint64_t ua = uint64_t(a), ub = uint64_t(b);
  if (op == "+")
    return int64_t(ua + ub);
  if (op == "-")
    return int64_t(ua - ub);
  if (op == "*")
    return int64_t(ua * ub);
  if (b == 0)
    return 0;
  if (b == -1)  // INT64_MIN / -1 overflows: wrap like the other operators
    return op == "/" ? int64_t(0 - ua) : 0;
  return op == "/" ? a / b : a % b;
}

double floatArith(const std::string &op, double a, double b) {
  if (op == "+")
    return a + b;
  if (op == "-")
    return a - b;
  if (op == "*")
    return a * b;
  if (op == "/")
    return a / b;
  return std::fmod(a, b);  // C semantics: the sign of the dividend, like int %
}

template <typename T> bool compare(const std::string &op, T a, T b) {
  if (op == "<")
    return a < b;
  if (op == "<=")
    return a <= b;
  if (op == ">")
    return a > b;
  if (op == ">=")
    return a >= b;
  if (op == "==")
    return a == b;
  return a != b;
}

class Evaluator {
public:
  Evaluator(const Variant &v, const DimSizes &sizes, const std::vector<HostTensor> &params)
      : sizes_(sizes), params_(params), iter_(v.dims.size(), 0), offset_(v.dims.size(), 0) {
    if (v.positionOffsets >= 0) {  // a ring block: positions are global as values
      offset_[v.qSeqDim] = int64_t(params[v.positionOffsets].load({}));
      offset_[v.kvSeqDim] = int64_t(params[v.positionOffsets + 1].load({}));
    }
  }

  /// Current index of every iteration dim (others stay 0 and are never read).
  std::vector<int64_t> &iter() { return iter_; }
  double dot = 0;  // dot(q, k) at the current (b, h, i, j)
  double rowQ = 0, rowK = 0;  // the row norms dot(q, q) of query i and dot(k, k) of key j
  double x = 0;    // the element a feature map is applied to (a skip term: v at i)
  double proj = 0, sq = 0;  // a projected feature map: dot(x, w[m]) and dot(x, x)
  double attend = 0;        // an output map's attend(s, v) element
  std::vector<double> attends;  // a mix's attend(s_n, v) elements (Expr::attendScore n)

  Value eval(const Expr &e) const {
    switch (e.kind) {
    case Expr::Kind::IntLit:
      return intValue(e.intValue);
    case Expr::Kind::FloatLit:
      return floatValue(e.floatValue);
    case Expr::Kind::BoolLit:
      return boolValue(e.intValue != 0);
    case Expr::Kind::Unary:
      return unary(e);
    case Expr::Kind::Binary:
      return binary(e);
    default:
      return resolved(e);
    }
  }

private:
  const DimSizes &sizes_;
  const std::vector<HostTensor> &params_;
  std::vector<int64_t> iter_;
  std::vector<int64_t> offset_;  // per dim: added to its index where it is read as a value

  /// An Ident, Index or Call, by what Sema resolved it to.
  Value resolved(const Expr &e) const {
    switch (e.res) {
    case Expr::Res::IterIndex:
      return intValue(iter_[e.dimIndex] + offset_[e.dimIndex]);
    case Expr::Res::DimSize:
      return intValue(sizes_[e.dimIndex]);
    case Expr::Res::ParamLoad:
      return paramLoad(e);
    case Expr::Res::Builtin:
      return builtin(e);
    case Expr::Res::FeatureArg:
    case Expr::Res::ValueAt:
      return floatValue(x);
    case Expr::Res::FeatureProj:
      return floatValue(proj);
    case Expr::Res::FeatureSq:
      return floatValue(sq);
    case Expr::Res::None:
      break;
    }
    return intValue(0);  // unreachable for a checked AST
  }

  Value paramLoad(const Expr &e) const {
    const HostTensor &p = params_[e.paramIndex];
    std::vector<int64_t> idx;
    for (size_t n = 0; n < e.args.size(); ++n) {
      const Expr &a = *e.args[n];
      if (!a.clamp) {
        idx.push_back(iter_[a.dimIndex]);
        continue;
      }
      // a computed index reads the element clamped into the axis (the runtime refuses an
      // empty axis)
      int64_t at = eval(a).i, last = std::max<int64_t>(p.sizes[n] - 1, 0);
      idx.push_back(std::min(std::max<int64_t>(at, 0), last));
    }
    double x = p.load(idx);
    return e.type == ValueType::Int ? intValue(int64_t(x)) : floatValue(x);
  }

  /// Converts a numeric branch to the (joined) type of its parent.
  static Value as(ValueType type, Value x) {
    return type == ValueType::Float ? floatValue(x.real()) : x;
  }

  Value builtin(const Expr &e) const {
    if (e.builtin == Builtin::Dot)  // dot(q, k) or a row norm
      return floatValue(e.rowNorm == 1 ? rowQ : e.rowNorm == 2 ? rowK : dot);
    if (e.builtin == Builtin::Attend)
      return floatValue(e.attendScore >= 0 ? attends[size_t(e.attendScore)] : attend);
    std::vector<Value> a;
    for (const ExprPtr &arg : e.args)
      a.push_back(eval(*arg));
    switch (e.builtin) {
    case Builtin::Exp:
      return floatValue(std::exp(a[0].real()));
    case Builtin::Log:
      return floatValue(std::log(a[0].real()));
    case Builtin::Tanh:
      return floatValue(std::tanh(a[0].real()));
    case Builtin::Sigmoid:
      return floatValue(1 / (1 + std::exp(-a[0].real())));
    case Builtin::Sqrt:
      return floatValue(std::sqrt(a[0].real()));
    case Builtin::Rsqrt:
      return floatValue(1 / std::sqrt(a[0].real()));
    case Builtin::Relu:
      return floatValue(std::max(a[0].real(), 0.0));
    case Builtin::Floor: {
      if (a[0].type == ValueType::Int)
        return a[0];
      double x = std::floor(a[0].f);
      return intValue(std::isnan(x) ? 0 : int64_t(std::clamp(x, -kFloorLimit, kFloorLimit)));
    }
    case Builtin::Abs:
      return e.type == ValueType::Int ? intValue(a[0].i < 0 ? intArith("-", 0, a[0].i) : a[0].i)
                                      : floatValue(std::fabs(a[0].f));
    case Builtin::Min:
    case Builtin::Max: {
      bool ints = e.type == ValueType::Int, min = e.builtin == Builtin::Min;
      bool less = ints ? a[0].i < a[1].i : a[0].real() < a[1].real();
      bool greater = ints ? a[0].i > a[1].i : a[0].real() > a[1].real();
      return as(e.type, (min ? less : greater) ? a[0] : a[1]);
    }
    case Builtin::Select:
      return as(e.type, a[0].i ? a[1] : a[2]);
    default:
      return intValue(0);  // Size is a DimSize and Attend is not evaluated here
    }
  }

  Value unary(const Expr &e) const {
    Value x = eval(*e.args[0]);
    if (e.op == "!")
      return boolValue(!x.i);
    return x.type == ValueType::Int ? intValue(intArith("-", 0, x.i)) : floatValue(-x.f);
  }

  Value binary(const Expr &e) const {
    Value l = eval(*e.args[0]), r = eval(*e.args[1]);
    const std::string &op = e.op;
    if (op == "&&")
      return boolValue(l.i && r.i);
    if (op == "||")
      return boolValue(l.i || r.i);
    if (e.type == ValueType::Bool) {  // a comparison: in int64 if both sides are ints
      bool ints = l.type == ValueType::Int && r.type == ValueType::Int;
      return boolValue(ints ? compare(op, l.i, r.i) : compare(op, l.real(), r.real()));
    }
    if (e.type == ValueType::Int)
      return intValue(intArith(op, l.i, r.i));
    return floatValue(floatArith(op, l.real(), r.real()));
  }
};

// ---- the forward pass -----------------------------------------------------------------------

/// Reads a q/k/v element by canonical indices: perm maps canonical axes to storage positions.
double loadCanonical(const HostTensor &t, const std::vector<int> &perm, int64_t a0, int64_t a1,
                     int64_t a2, int64_t a3) {
  std::vector<int64_t> idx(4);
  const int64_t canonical[4] = {a0, a1, a2, a3};
  for (int c = 0; c < 4; ++c)
    idx[perm[c]] = canonical[c];
  return t.load(idx);
}

/// The weight of each allowed key for the non-softmax norms.
double normWeight(Norm norm, double s) {
  switch (norm) {
  case Norm::None:
  case Norm::Sum:  // the caller divides by the weights' sum
    return s;
  case Norm::Sigmoid:
    return 1 / (1 + std::exp(-s));
  case Norm::Relu2: {
    double r = std::max(s, 0.0);
    return r * r;
  }
  case Norm::Softmax:
    break;
  }
  return 0;  // softmax is handled by the caller
}

/// Computes one output row (b, h, i) at a time.
class Forward {
public:
  Forward(const Variant &v, const DimSizes &sizes, const std::vector<HostTensor> &inputs,
          const std::vector<HostTensor> &params)
      : v_(v), sizes_(sizes), inputs_(inputs), q_(inputs[v.q]), k_(inputs[v.k]), val_(inputs[v.v]),
        pq_(v.canonicalPerm(v.inputs[v.q])), pk_(v.canonicalPerm(v.inputs[v.k])),
        pv_(v.canonicalPerm(v.inputs[v.v])), params_(params), ev_(v, sizes, params),
        s_(size_t(sizes[v.kvSeqDim])),
        allowed_(size_t(sizes[v.kvSeqDim])) {}

  /// Writes out[0..dv) for row (b, h, i) and returns its lse; with several scores
  /// (Variant::mix) each score's lse goes to lses[n] and score 0's is returned.
  double row(int64_t b, int64_t h, int64_t i, double *out, double *lses = nullptr) {
    if (v_.mix)
      return mixedRow(b, h, i, out, lses);
    const int64_t hk = h / v_.group;
    std::vector<int64_t> &iter = ev_.iter();
    iter[v_.batchDim] = b;
    iter[v_.kvHeadDim] = hk;
    if (v_.qkGroupDim >= 0)
      iter[v_.qkGroupDim] = h / v_.qkGroup;
    iter[v_.qHeadDim] = h;  // after kvHeadDim: for MHA they are the same dim
    iter[v_.qSeqDim] = i;
    bool any = scores(b, h, hk, i);
    std::vector<double> w(s_.size(), 0.0);
    double divisor = 1, lse = 0;
    if (v_.norm == Norm::Softmax) {
      if (!any) {  // every key masked: the attend row is 0 (then its output map, if any)
        mapRow(i, out);
        return -INFINITY;
      }
      if (v_.decay)
        addLogDecay(i);
      double m = -INFINITY;
      for (size_t j = 0; j < s_.size(); ++j)
        if (allowed_[j])
          m = std::max(m, s_[j]);
      divisor = 0;
      for (size_t j = 0; j < s_.size(); ++j)
        if (allowed_[j])
          divisor += w[j] = std::exp(s_[j] - m);
      lse = m + std::log(divisor);
    } else {
      for (size_t j = 0; j < s_.size(); ++j)
        if (allowed_[j])
          w[j] = normWeight(v_.norm, s_[j]);
      if (v_.decay)
        applyDecay(i, w);
    }
    if (v_.norm == Norm::Sum) {  // a sum of 0 (no key weighs anything) leaves the row 0
      divisor = 0;
      for (size_t j = 0; j < s_.size(); ++j)
        divisor += w[j];
    }
    for (int64_t dv = 0; dv < sizes_[v_.valueDim]; ++dv) {
      double acc = 0;
      for (size_t j = 0; j < s_.size(); ++j)
        if (allowed_[j])
          acc += w[j] * kv(v_.inputs[v_.v], val_, pv_, b, hk, int64_t(j), dv);
      out[dv] = divisor == 0 ? 0.0 : acc / divisor;
    }
    if (state_)
      addInitialState(b, h, i, out);
    if (v_.bonus)
      addBonus(b, h, hk, i, out);
    finishRow(b, hk, i, out);
    return lse;
  }

  /// A strict-causal recurrence's current-token term: score(i, i) with the dot taken as
  /// sum_d fq(q_i[d]) fk(k_i[d]) bonus(i, d), times v_i (Sema made the key length the query
  /// length). b, h and i are set.
  void addBonus(int64_t b, int64_t h, int64_t hk, int64_t i, double *out) {
    std::vector<int64_t> &iter = ev_.iter();
    std::vector<double> fq = queryFeatures(b, h, i);
    const double *fk = keyFeatures(b, hk, i);
    double dot = 0;
    for (size_t d = 0; d < fq.size(); ++d) {
      iter[v_.headDim] = int64_t(d);
      dot += fq[d] * fk[d] * ev_.eval(*v_.bonus).real();
    }
    iter[v_.kvSeqDim] = i;
    ev_.dot = dot;
    double weight = ev_.eval(*v_.scores[0].expr).real();
    for (int64_t e = 0; e < sizes_[v_.valueDim]; ++e)
      out[e] += weight * kv(v_.inputs[v_.v], val_, pv_, b, hk, i, e);
  }

  /// Several scores (Variant::mix): the softmax row y_n of every score over the same keys and
  /// values, then out[e] = mix(y_0[e], ..., y_n[e]), its rmsnorm and its output map.
  double mixedRow(int64_t b, int64_t h, int64_t i, double *out, double *lses) {
    const int64_t hk = h / v_.group, DV = sizes_[v_.valueDim], D = sizes_[v_.headDim];
    const size_t N = v_.scores.size(), J = s_.size();
    std::vector<int64_t> &iter = ev_.iter();
    iter[v_.batchDim] = b;
    iter[v_.kvHeadDim] = hk;
    iter[v_.qHeadDim] = h;
    iter[v_.qSeqDim] = i;
    bool any = false;
    for (size_t j = 0; j < J; ++j) {
      iter[v_.kvSeqDim] = int64_t(j);
      allowed_[j] = !v_.mask || ev_.eval(*v_.mask).i != 0;
      any = any || allowed_[j];
    }
    std::vector<std::vector<double>> y(N, std::vector<double>(size_t(DV), 0.0));
    double lse0 = -INFINITY;
    for (size_t n = 0; n < N && any; ++n) {
      const HostTensor &q = inputs_[size_t(v_.scoreQ[n])], &k = inputs_[size_t(v_.scoreK[n])];
      std::vector<int> pq = v_.canonicalPerm(v_.inputs[size_t(v_.scoreQ[n])]);
      std::vector<int> pk = v_.canonicalPerm(v_.inputs[size_t(v_.scoreK[n])]);
      double m = -INFINITY;
      for (size_t j = 0; j < J; ++j) {
        if (!allowed_[j])
          continue;
        iter[v_.kvSeqDim] = int64_t(j);
        ev_.dot = 0;
        for (int64_t d = 0; d < D; ++d)
          ev_.dot += loadCanonical(q, pq, b, h, i, d) * loadCanonical(k, pk, b, hk, int64_t(j), d);
        s_[j] = ev_.eval(*v_.scores[n].expr).real();
        m = std::max(m, s_[j]);
      }
      double sum = 0;
      std::vector<double> w(J, 0.0);
      for (size_t j = 0; j < J; ++j)
        if (allowed_[j])
          sum += w[j] = std::exp(s_[j] - m);
      double lse = m + std::log(sum);
      if (lses)
        lses[n] = lse;
      if (n == 0)
        lse0 = lse;
      for (int64_t e = 0; e < DV; ++e) {
        double acc = 0;
        for (size_t j = 0; j < J; ++j)
          if (allowed_[j])
            acc += w[j] * kv(v_.inputs[v_.v], val_, pv_, b, hk, int64_t(j), e);
        y[n][size_t(e)] = acc / sum;
      }
    }
    if (!any && lses)
      std::fill(lses, lses + N, -INFINITY);
    ev_.attends.assign(N, 0.0);
    for (int64_t e = 0; e < DV; ++e) {
      iter[v_.valueDim] = e;
      for (size_t n = 0; n < N; ++n)
        ev_.attends[n] = y[n][size_t(e)];
      out[e] = ev_.eval(*v_.mix).real();
    }
    finishRow(b, hk, i, out);
    return lse0;
  }

  /// The output row's rmsnorm (Variant::rmsEps), then its skip term.
  void finishRow(int64_t b, int64_t hk, int64_t i, double *out) {
    const int64_t DV = sizes_[v_.valueDim];
    if (v_.rmsEps) {
      double sq = 0;
      for (int64_t e = 0; e < DV; ++e)
        sq += out[e] * out[e];
      double scale = 1 / std::sqrt(sq / double(DV) + *v_.rmsEps);
      for (int64_t e = 0; e < DV; ++e)
        out[e] *= scale;
    }
    if (v_.skip)
      for (int64_t e = 0; e < DV; ++e)
        out[e] += skipAt(b, hk, i, e);
    mapRow(i, out);
  }

  /// The output map (Variant::outputMap) of row i, elementwise; b and h are set.
  void mapRow(int64_t i, double *out) {
    if (!v_.outputMap)
      return;
    std::vector<int64_t> &iter = ev_.iter();
    iter[v_.qSeqDim] = i;
    for (int64_t e = 0; e < sizes_[v_.valueDim]; ++e) {
      iter[v_.valueDim] = e;
      ev_.attend = out[e];
      out[e] = ev_.eval(*v_.outputExpr).real();
    }
  }

  /// The skip term (Variant::skip) of row (b, h, i) and value channel e: its `x` is v at
  /// (b, hk, i, e).
  double skipAt(int64_t b, int64_t hk, int64_t i, int64_t e) {
    std::vector<int64_t> &iter = ev_.iter();
    iter[v_.qSeqDim] = i;
    iter[v_.valueDim] = e;
    ev_.x = kv(v_.inputs[v_.v], val_, pv_, b, hk, i, e);
    double term = ev_.eval(*v_.skip).real();
    return v_.skipNegate ? -term : term;
  }

  /// The initial state's share of row i of a recurrence: c_i gamma(0..i) fq(q_i) S0, where
  /// c_i is the score's query factor (Variant::queryScale); gamma(0..i - 1) when strict.
  void addInitialState(int64_t b, int64_t h, int64_t i, double *out) {
    int64_t last = v_.strict ? i - 1 : i;  // the state query i reads: after step `last`
    double factor = scoreFactor() * decayProduct(0, last);
    std::vector<double> fq = queryFeatures(b, h, i);
    if (v_.gate && last >= 0) {  // channel d of S0 has decayed by gate(0, d) ... gate(last, d)
      const double *g = gateCum(b, h, last);
      for (size_t d = 0; d < fq.size(); ++d)
        fq[d] *= std::exp(g[d]);
    }
    for (int64_t e = 0; e < sizes_[v_.valueDim]; ++e) {
      double acc = 0;
      for (int64_t d = 0; d < sizes_[v_.dotDim()]; ++d)
        acc += fq[size_t(d)] * loadCanonical(*state_, ps_, b, h, d, e);
      out[e] += factor * acc;
    }
  }

  /// The recurrent form of one (b, h): S = S0 (or 0); for each position p < q_len,
  /// S = gamma(p) S + k_p fk(k_p) v_p^T (keys below kv_len; k_p the score's key factor), then
  /// out row p = c_p fq(q_p) S -- strict: the row first, from the S before the step, plus the
  /// bonus term.
  /// Writes the rows to out[p * dv + e] and the final state to finalState[d * dv + e].
  void recurrent(int64_t b, int64_t h, double *out, double *finalState) {
    const int64_t hk = h / v_.group, D = sizes_[v_.dotDim()], DV = sizes_[v_.valueDim];
    std::vector<double> S(size_t(D * DV), 0.0);
    std::vector<double> z(size_t(D), 0.0);  // norm sum: the weights' running sum, per channel
    if (state_)
      for (int64_t d = 0; d < D; ++d)
        for (int64_t e = 0; e < DV; ++e)
          S[size_t(d * DV + e)] = loadCanonical(*state_, ps_, b, h, d, e);
    std::vector<int64_t> &iter = ev_.iter();
    iter[v_.batchDim] = b;
    iter[v_.kvHeadDim] = hk;
    iter[v_.qHeadDim] = h;
    if (v_.qkGroupDim >= 0)
      iter[v_.qkGroupDim] = h / v_.qkGroup;
    auto writeRow = [&](int64_t p) {
      iter[v_.qSeqDim] = p;
      double c = scoreFactor();
      std::vector<double> fq = queryFeatures(b, h, p);
      double divisor = 1;
      if (v_.norm == Norm::Sum) {
        divisor = 0;
        for (int64_t d = 0; d < D; ++d)
          divisor += c * fq[size_t(d)] * z[size_t(d)];
      }
      double *row = &out[p * DV];
      for (int64_t e = 0; e < DV; ++e) {
        double acc = 0;
        for (int64_t d = 0; d < D; ++d)
          acc += fq[size_t(d)] * S[size_t(d * DV + e)];
        row[e] = divisor == 0 ? 0.0 : c * acc / divisor;
      }
      if (v_.bonus)
        addBonus(b, h, hk, p, row);
      finishRow(b, hk, p, row);
    };
    for (int64_t p = 0; p < sizes_[v_.qSeqDim]; ++p) {
      if (v_.strict)
        writeRow(p);
      double gamma = decayProduct(p, p);
      for (int64_t d = 0; d < D; ++d) {
        double channel = gamma * (v_.gate ? gateAt(p, d) : 1.0);
        for (int64_t e = 0; e < DV; ++e)
          S[size_t(d * DV + e)] *= channel;
        z[size_t(d)] *= channel;
      }
      if (p < sizes_[v_.kvSeqDim])
        for (int64_t d = 0; d < D; ++d) {
          double fk = keyFactor(p) * keyFeatures(b, hk, p)[d];
          for (int64_t e = 0; e < DV; ++e)
            S[size_t(d * DV + e)] += fk * kv(v_.inputs[v_.v], val_, pv_, b, hk, p, e);
          z[size_t(d)] += fk;
        }
      if (!v_.strict)
        writeRow(p);
    }
    std::copy(S.begin(), S.end(), finalState);
  }

private:
  const Variant &v_;
  const DimSizes &sizes_;
  const std::vector<HostTensor> &inputs_;
  const HostTensor &q_, &k_, &val_;
  const std::vector<int> pq_, pk_, pv_;
  const std::vector<HostTensor> &params_;
  Evaluator ev_;

  /// k or v at canonical (b, hk, j, e), dequantised: the stored value times its scale, read at
  /// the scale's dims (a group dim g = e / G).
  double kv(const TensorDecl &decl, const HostTensor &t, const std::vector<int> &perm, int64_t b,
            int64_t hk, int64_t j, int64_t e) const {
    double x = loadCanonical(t, perm, b, hk, j, e);
    if (decl.scaleParam < 0)
      return x;
    const TensorDecl &scale = v_.params[size_t(decl.scaleParam)];
    std::vector<int64_t> idx(scale.dims.size());
    for (size_t a = 0; a < idx.size(); ++a) {
      int d = decl.dims[size_t(decl.scaleAxes[a])];
      int64_t value = d == v_.batchDim ? b : d == v_.kvHeadDim ? hk : d == v_.kvSeqDim ? j : e;
      idx[a] = scale.dims[a] == d ? value : value / decl.scaleGroup;
    }
    return x * params_[size_t(decl.scaleParam)].load(idx);
  }
  std::vector<double> s_;      // score of each key of the current row
  std::vector<double> rowFeatures_;  // fq(q_i) of the current row
  std::vector<bool> allowed_;  // mask of each key of the current row
  const HostTensor *state_ = nullptr;  // a recurrence's initial state, if any
  std::vector<int> ps_;                // its canonical permutation [b, h, d, dv]

public:
  void setState(const HostTensor *state) {
    state_ = state;
    ps_ = v_.statePerm();
  }

private:
  /// gate(b, h, p, d) at the current (b, h).
  double gateAt(int64_t p, int64_t d) {
    std::vector<int64_t> &iter = ev_.iter();
    int64_t i = iter[v_.qSeqDim];
    iter[v_.qSeqDim] = p;
    iter[v_.headDim] = d;
    double g = ev_.eval(*v_.gate).real();
    iter[v_.qSeqDim] = i;
    return g;
  }
  /// log gate(0, d) + ... + log gate(p, d) for every channel d of (b, h), p < q_len; computed
  /// once per (b, h).
  const double *gateCum(int64_t b, int64_t h, int64_t p) {
    const int64_t I = sizes_[v_.qSeqDim], D = sizes_[v_.headDim];
    if (b != gateB_ || h != gateH_) {
      gateB_ = b, gateH_ = h;
      gateCum_.assign(size_t(I * D), 0.0);
      for (int64_t t = 0; t < I; ++t)
        for (int64_t d = 0; d < D; ++d)
          gateCum_[size_t(t * D + d)] =
              (t ? gateCum_[size_t((t - 1) * D + d)] : 0.0) + std::log(gateAt(t, d));
    }
    return &gateCum_[size_t(p * D)];
  }
  std::vector<double> gateCum_;
  int64_t gateB_ = -1, gateH_ = -1;

  /// A recurrence's query factor c_i (Variant::queryScale) for the current (b, h, i).
  double scoreFactor() { return ev_.eval(*v_.queryScale).real(); }
  /// The score's key factor k_j at key position j (1 when the score has none).
  double keyFactor(int64_t j) {
    if (!v_.keyScale)
      return 1;
    int64_t saved = ev_.iter()[v_.kvSeqDim];
    ev_.iter()[v_.kvSeqDim] = j;
    double x = ev_.eval(*v_.keyScale).real();
    ev_.iter()[v_.kvSeqDim] = saved;
    return x;
  }
  /// gamma(from) * ... * gamma(to) at the current (b, h) (1 without a decay, or when from > to).
  double decayProduct(int64_t from, int64_t to) {
    if (!v_.decay)
      return 1;
    std::vector<int64_t> &iter = ev_.iter();
    int64_t i = iter[v_.qSeqDim];
    double product = 1;
    for (int64_t p = from; p <= to; ++p) {
      iter[v_.qSeqDim] = p;
      product *= ev_.eval(*v_.decay).real();
    }
    iter[v_.qSeqDim] = i;
    return product;
  }
  std::vector<double> queryFeatures(int64_t b, int64_t h, int64_t i) {
    std::vector<double> x(static_cast<size_t>(sizes_[v_.headDim]));
    for (int64_t d = 0; d < sizes_[v_.headDim]; ++d)
      x[size_t(d)] = loadCanonical(q_, pq_, b, h / v_.qkGroup, i, d);
    return features(v_.featureQ, x);
  }
  /// fk(k_j) over the dot dim for key j of kv head hk, cached per (b, hk).
  const double *keyFeatures(int64_t b, int64_t hk, int64_t j) {
    const int64_t J = sizes_[v_.kvSeqDim], D = sizes_[v_.headDim], M = sizes_[v_.dotDim()];
    if (b != keyB_ || hk != keyH_) {
      keyB_ = b, keyH_ = hk;
      keyFeatures_.assign(size_t(J * M), 0.0);
      std::vector<double> x(static_cast<size_t>(D));
      for (int64_t t = 0; t < J; ++t) {
        for (int64_t d = 0; d < D; ++d)
          x[size_t(d)] = kv(v_.inputs[v_.k], k_, pk_, b, hk / v_.qkGroup, t, d);
        std::vector<double> f = features(v_.featureK, x);
        std::copy(f.begin(), f.end(), keyFeatures_.begin() + t * M);
      }
    }
    return &keyFeatures_[size_t(j * M)];
  }
  std::vector<double> keyFeatures_;
  int64_t keyB_ = -1, keyH_ = -1;
  /// A head-dim row through a feature map: elementwise, or projected onto the feature dim
  /// (Variant::featureDim: proj = x . w[m], sq = x . x per feature m); the row itself without one.
  std::vector<double> features(const Expr *map, const std::vector<double> &x) {
    if (v_.featureDim < 0) {
      std::vector<double> f(x.size());
      for (size_t d = 0; d < x.size(); ++d)
        f[d] = feature(map, x[d]);
      return f;
    }
    const HostTensor &w = params_[size_t(v_.projParam)];
    std::vector<double> f(static_cast<size_t>(sizes_[v_.featureDim]));
    ev_.sq = 0;
    for (double e : x)
      ev_.sq += e * e;
    for (size_t m = 0; m < f.size(); ++m) {
      ev_.proj = 0;
      for (size_t d = 0; d < x.size(); ++d)
        ev_.proj += x[d] * w.load({int64_t(m), int64_t(d)});
      f[m] = ev_.eval(*map).real();
    }
    return f;
  }

  /// Visits the keys j = i, i - 1, ..., 0 (below the key length) with the fold of
  /// `step(acc, gamma(t))` over t = j + 1 .. i (Sema made the mask allow no key past i).
  template <typename Step, typename Visit>
  void foldDecay(int64_t i, double acc, Step step, Visit visit) {
    std::vector<int64_t> &iter = ev_.iter();
    for (int64_t j = i; j >= 0; --j) {
      if (size_t(j) < s_.size())
        visit(size_t(j), acc);
      iter[v_.qSeqDim] = j;
      acc = step(acc, ev_.eval(*v_.decay).real());
    }
    iter[v_.qSeqDim] = i;
  }
  /// The recurrence's decay: w[j] *= gamma(j + 1) * ... * gamma(i) (strict: ... gamma(i - 1)).
  void applyDecay(int64_t i, std::vector<double> &w) {
    foldDecay(v_.strict ? i - 1 : i, 1.0, [](double p, double g) { return p * g; },
              [&](size_t j, double p) { w[j] *= p; });
    ev_.iter()[v_.qSeqDim] = i;
  }
  /// A forget-gate softmax: s[j] += log gamma(j + 1) + ... + log gamma(i).
  void addLogDecay(int64_t i) {
    foldDecay(i, 0.0, [](double sum, double g) { return sum + std::log(g); },
              [&](size_t j, double sum) { s_[j] += sum; });
  }

  /// x through a feature map (linear attention's phi), or x itself without one.
  double feature(const Expr *map, double x) {
    if (!map)
      return x;
    ev_.x = x;
    return ev_.eval(*map).real();
  }

  /// Fills s_ and allowed_ for the current row; returns whether any key is allowed.
  bool scores(int64_t b, int64_t h, int64_t hk, int64_t i) {
    bool any = false;
    rowFeatures_.clear();  // fq(q_i), computed at the first allowed key
    for (size_t j = 0; j < s_.size(); ++j) {
      ev_.iter()[v_.kvSeqDim] = int64_t(j);
      allowed_[j] = !v_.mask || ev_.eval(*v_.mask).i != 0;
      if (!allowed_[j])
        continue;
      any = true;
      ev_.dot = 0;
      // j <= i (j < i when strict: its gates run over j + 1 .. i - 1)
      const double *gi = v_.gate ? gateCum(b, h, v_.strict ? i - 1 : i) : nullptr;
      const double *gj = v_.gate ? gateCum(b, h, int64_t(j)) : nullptr;
      if (rowFeatures_.empty()) {
        rowFeatures_ = queryFeatures(b, h, i);
        ev_.rowQ = 0;  // dot(q, q): Sema keeps feature maps away from row norms
        for (double x : rowFeatures_)
          ev_.rowQ += x * x;
      }
      const double *fk = keyFeatures(b, hk, int64_t(j));
      ev_.rowK = 0;
      for (size_t d = 0; d < rowFeatures_.size(); ++d) {
        ev_.dot += rowFeatures_[d] * fk[d] * (gi ? std::exp(gi[d] - gj[d]) : 1.0);
        ev_.rowK += fk[d] * fk[d];
      }
      s_[j] = ev_.eval(*v_.scores[0].expr).real();
    }
    return any;
  }
};

}  // namespace

void referenceRecurrent(const Variant &v, const DimSizes &sizes,
                        const std::vector<HostTensor> &inputs,
                        const std::vector<HostTensor> &params, const HostTensor *state,
                        std::vector<double> &out, std::vector<double> &finalState) {
  const int64_t B = sizes[v.batchDim], H = sizes[v.qHeadDim], I = sizes[v.qSeqDim],
                D = sizes[v.dotDim()], DV = sizes[v.valueDim];
  out.assign(size_t(B * H * I * DV), 0.0);
  finalState.assign(size_t(B * H * D * DV), 0.0);
  Forward forward(v, sizes, inputs, params);
  forward.setState(state);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      forward.recurrent(b, h, &out[size_t((b * H + h) * I * DV)],
                        &finalState[size_t((b * H + h) * D * DV)]);
}

void referenceForward(const Variant &v, const DimSizes &sizes,
                      const std::vector<HostTensor> &inputs, const std::vector<HostTensor> &params,
                      std::vector<double> &out, std::vector<double> *lse,
                      const HostTensor *state) {
  const int64_t B = sizes[v.batchDim], H = sizes[v.qHeadDim], I = sizes[v.qSeqDim],
                DV = sizes[v.valueDim];
  const size_t N = v.scores.size(), rows = size_t(B * H * I);
  out.assign(size_t(B * H * I * DV), 0.0);
  if (lse)
    lse->assign(N * rows, 0.0);
  Forward forward(v, sizes, inputs, params);
  forward.setState(state);
  std::vector<double> lses(N);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < I; ++i) {
        size_t row = size_t((b * H + h) * I + i);
        double rowLse = forward.row(b, h, i, &out[row * size_t(DV)], lses.data());
        if (lse && v.mix)
          for (size_t n = 0; n < N; ++n)
            (*lse)[n * rows + row] = lses[n];
        else if (lse)
          (*lse)[row] = rowLse;
      }
}

}  // namespace attnc
