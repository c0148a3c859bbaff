// AST of the attnc spec language, annotated in place by semantic analysis.
// The parser fills the syntactic fields; Sema fills the "resolved" fields and the Variant's roles.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace attnc {

/// 1-based position in a spec file.
struct SourceLoc {
  uint32_t line = 0;
  uint32_t col = 0;
};

/// Element types a tensor or a param may have.
/// Element types. I8, F8E4M3 (OCP e4m3fn: 4 exponent bits, bias 7, no infinities) and I4 are
/// the quantised storage types of k and v (with a scale, see TensorDecl::scale). I4 packs two
/// signed values per byte along the tensor's last axis, low nibble first.
enum class DType { F32, F16, BF16, I32, I8, F8E4M3, I4 };
/// The largest extent of any dim (static in a spec, or given at run time): 2^31 - 1, CUDA's
/// grid limit, and small enough that products of a few extents stay far from int64 overflow.
inline constexpr int64_t kMaxExtent = 2147483647;
/// floor(x) saturates at +-2^30: exact in f32 and f64, and a position-sized int (a bucket, an
/// index) that stays in 32 bits through a few more additions, so the GPU computes it in i32.
inline constexpr double kFloorLimit = 1073741824.0;
const char *dtypeName(DType t);
/// The dtype spelled `name` ("f32", "bf16", ..., as dtypeName writes it), if any.
std::optional<DType> dtypeFromName(const std::string &name);
int64_t dtypeBytes(DType t);
bool isFloat(DType t);                // f32, f16, bf16: arithmetic types
inline bool isQuantized(DType t) {
  return t == DType::I8 || t == DType::F8E4M3 || t == DType::I4;
}
/// Values per addressable byte unit: 2 for I4, else 1.
inline int64_t dtypePacking(DType t) { return t == DType::I4 ? 2 : 1; }
/// e4m3fn byte -> value (0x7f / 0xff are NaN) and value -> nearest e4m3fn byte (saturating to
/// +-448, ties to even).
double f8e4m3ToDouble(uint8_t bits);
uint8_t f8e4m3FromDouble(double x);

/// Type of an expression after Sema.
enum class ValueType { Unknown, Int, Float, Bool };

/// Role a dim plays in an attention variant, inferred by Sema.
/// QKHead: the head of q and k when they are shared by groups of heads (Mamba-2's B/C groups).
enum class DimRole { None, Batch, QHead, KVHead, QSeq, KVSeq, HeadDim, ValueDim, QKHead };

/// Built-in functions of score/mask/output expressions. Floor: the largest integer <= x, as an
/// Int (NaN gives 0; beyond +-2^30 it saturates; see kFloorLimit).
enum class Builtin {
  None, Exp, Log, Tanh, Sigmoid, Abs, Min, Max, Select, Sqrt, Rsqrt, Relu, Dot, Attend, Size,
  Floor
};

struct Expr {
  enum class Kind {
    IntLit,    // intValue
    FloatLit,  // floatValue
    BoolLit,   // intValue (0/1)
    Ident,     // name; resolved by Sema into one of the Res* kinds below
    Index,     // name[args...]: a param (or tensor) access
    Call,      // name(args...)
    Unary,     // op in {"-", "!"}, args[0]
    Binary,    // op in {"+","-","*","/","%","<","<=",">",">=","==","!=","&&","||"}, args[0..1]
  };
  Kind kind;
  SourceLoc loc;
  uint32_t length = 1;  // characters covered at loc (for carets)
  std::string name;     // Ident / Index / Call
  std::string op;       // Unary / Binary
  int64_t intValue = 0;
  double floatValue = 0;
  std::vector<std::unique_ptr<Expr>> args;

  // ---- filled by Sema ----
  ValueType type = ValueType::Unknown;
  enum class Res {
    None,
    IterIndex,  // Ident: the current index of an iteration dim (dimIndex; role tells which)
    DimSize,    // Ident or size(x): the runtime extent of dim dimIndex (an Int)
    ParamLoad,  // Index: params[paramIndex][args...]; every arg is an IterIndex
    Builtin,    // Call: builtin
    FeatureArg, // Ident `x` in a feature map: the element being mapped (a Float)
    ValueAt,    // Index v[b, i, h, dv] in a skip term: v at the query position (a Float)
    FeatureProj, // dot(x, w[m]) in a feature map: the row x projected on row m of param w
    FeatureSq,   // dot(x, x) in a feature map: the row's sum of squares
  } res = Res::None;
  int dimIndex = -1;    // IterIndex / DimSize: index into Variant::dims
  int paramIndex = -1;  // ParamLoad: index into Variant::params
  Builtin builtin = Builtin::None;
  /// An index of a ParamLoad computed by an integer expression rather than a dim (in the
  /// score or the mask): it reads the element at the index clamped into [0, extent - 1].
  bool clamp = false;
  /// An attend(s_n, v) call in the mix of a variant with several scores (Variant::mix): n, the
  /// index of its score in Variant::scores. -1 for every other attend (one score: the attend
  /// result y; an rmsnorm(...) node standing for the normalised element).
  int attendScore = -1;
  /// A row norm in a score (Builtin::Dot of one input with itself): 1 for dot(q, q), the sum
  /// of squares of query i's row, 2 for dot(k, k), key j's; 0 for the score's dot(q, k).
  int rowNorm = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

struct DimDecl {
  std::string name;
  SourceLoc loc;
  std::string extentName;  // "q_len" in `i : q_len`; empty if none
  enum class Kind { Dynamic, Static, Derived, Alias } kind = Kind::Dynamic;
  int64_t staticSize = 0;  // Static
  std::string source;      // Derived (`hk = h / 4`) and Alias (`dv = d`)
  int64_t divisor = 1;     // Derived
  // ---- Sema ----
  DimRole role = DimRole::None;
  int sourceIndex = -1;    // Derived/Alias: index of `source` in Variant::dims
};

struct TensorDecl {
  std::string name;
  SourceLoc loc;
  std::vector<std::string> dimNames;  // as written; order = storage order (outermost first)
  std::vector<SourceLoc> dimLocs;
  std::optional<DType> dtype;         // as written; Sema fills `dtype`
  DType resolvedDType = DType::F32;
  std::string scale;                  // `k[...] : i8 * k_scale`: the dequantisation scale param
  SourceLoc scaleLoc;
  // ---- Sema ----
  std::vector<int> dims;              // index into Variant::dims, per position
  int scaleParam = -1;                // index into Variant::params of `scale`
  /// Per scale axis: the position in `dims` it indexes; the axis of a group dim (g = d / G)
  /// indexes the position of d, with scaleGroup = G (1 when the scale has no group dim).
  std::vector<int> scaleAxes;
  int64_t scaleGroup = 1;
};

struct ScoreDecl {
  std::string name;
  SourceLoc loc;
  ExprPtr expr;
};

/// `let t = expr`: a named subexpression. Sema substitutes a copy of expr (its own lets already
/// substituted) for every use of the name in the score, mask, output, feature maps, decay and
/// gate, so the later stages never see a let; the lowering emits each copy, and a dot(q, k) in
/// it is the score region's one dot argument, so no dot is computed twice.
struct LetDecl {
  std::string name;
  SourceLoc loc;
  ExprPtr expr;
  bool used = false;  // Sema: substituted somewhere (kept, so that checking is idempotent)
};

/// Sum: a linear recurrence's weights divided by their sum over the keys (normalised linear
/// attention, Katharopoulos et al. 2020; Performer's D^-1).
enum class Norm { Softmax, None, Sigmoid, Relu2, Sum };

/// `feature q, k = select(x > 0, x + 1, exp(x))`: an elementwise map (linear attention's phi)
/// applied to every element `x` of the named tensors (q and/or k) before the dot product.
struct FeatureDecl {
  std::vector<std::string> tensors;
  std::vector<SourceLoc> tensorLocs;
  SourceLoc loc;
  ExprPtr expr;
};

/// `paged k, v by table size 16`: k and v live in a pool of pages of `pageSize` tokens; the
/// i32 param `table[b, n]` gives the pool page of each sequence's n-th page (vLLM's block table).
struct PagedDecl {
  std::vector<std::string> tensors;
  std::vector<SourceLoc> tensorLocs;
  std::string table;
  SourceLoc tableLoc;
  int64_t pageSize = 0;
  SourceLoc loc, sizeLoc;
  // ---- Sema ----
  int tableParam = -1;  // index into Variant::params
};

struct Variant {
  std::string name;
  SourceLoc loc;
  std::vector<DimDecl> dims;
  std::vector<TensorDecl> inputs;
  std::vector<TensorDecl> params;  // rank 0 allowed (dimNames empty)
  std::vector<ScoreDecl> scores;
  std::vector<LetDecl> lets;
  ExprPtr mask;                    // null if no mask
  SourceLoc maskLoc;
  Norm norm = Norm::Softmax;
  SourceLoc normLoc;
  /// `norm softmax(max = M)`: a fixed max for the exponentials (FlashDecoding++'s unified max);
  /// the kernels fall back to the running max when a score exceeds it. Same semantics.
  std::optional<double> unifiedMax;
  SourceLoc unifiedMaxLoc;
  TensorDecl output;               // o[b, h, i, dv] (dtype optional: defaults to q's)
  ExprPtr outputExpr;              // attend(s, v), or attend(s, v) +/- a skip term
  /// The skip term of `output o[...] = attend(s, v) + E` (Mamba's D x): E may read v at the
  /// query position (v[b, i, h, dv], Res::ValueAt), params indexed by the batch, head, query
  /// and value dims, and numbers; it is added to (skipNegate: subtracted from) every output
  /// element. Points into outputExpr; null when there is none.
  const Expr *skip = nullptr;
  bool skipNegate = false;
  /// `output o[...] = rmsnorm(attend(s, v), eps)` (TransNormer's NormAttention): each output
  /// row y (over the value dim) becomes y / sqrt(mean(y^2) + eps), before any skip term.
  std::optional<double> rmsEps;
  /// `output o[...] = F(attend(s, v))` in the quadratic (flash) form: outputExpr is an
  /// elementwise map of the attend result y (its one attend call, Builtin::Attend, stands for
  /// y[b, h, i, e]) that may read params by the batch, head, query and value dims (or computed
  /// indices), dims, sizes and numbers: output gates (attend(s, v) * sigmoid(g[b, i, h, dv])),
  /// scales, biases. Applied to every output element after the normalisation. No skip term
  /// or rmsnorm with it.
  bool outputMap = false;
  /// Several scores (differential attention): `output o[...] = F(rmsnorm(M, eps))`,
  /// `rmsnorm(M, eps)` or `M`, where the mix M is an elementwise expression of the attends
  /// attend(s_n, v) (one per score at least, all over the same values; Expr::attendScore says
  /// which) and of params at the batch, head, query and value dims. mix points at M (into
  /// outputExpr); the rows y_n of every score are computed in one pass over the keys, each
  /// with its own softmax statistics, then mixed, normalised (rmsEps) and mapped (outputMap,
  /// where the rmsnorm node stands for the normalised element). Null with one score.
  const Expr *mix = nullptr;
  /// Per score: the inputs its dot reads (indices into inputs); q and k below are score 0's.
  /// Every score's q has q's dims and dtype, every k k's.
  std::vector<int> scoreQ, scoreK;
  /// The score reads the row norms dot(q, q) (of query i) and / or dot(k, k) (of key j): cosine
  /// attention, a distance score. One score only; computed once per row, not per pair.
  bool rowNormQ = false, rowNormK = false;
  bool hasOutput = false;
  /// Ring attention's block form (addPositionOffsets): the index in `params` of the rank-0 i32
  /// param q_offset (k_offset follows it), the global positions of the block's first query and
  /// key; the score and mask then read i + q_offset and j + k_offset wherever they use a
  /// position as a value (a plain param index stays the block's own row). -1 without.
  int positionOffsets = -1;
  std::optional<PagedDecl> paged;  // k and v stored as pages
  std::vector<FeatureDecl> features;
  /// `decay EXPR`: the per-step decay factor gamma(b, h, i) of a recurrence (RetNet's fixed
  /// 1 - 2^(-5-h), Mamba-2's exp(dt * A)): key j's weight for query i is multiplied by
  /// gamma(i) * gamma(i - 1) * ... * gamma(j + 1). Needs norm none and mask j <= i (a
  /// recurrence), or norm softmax and a mask that implies j <= i (a forget-gate softmax: the
  /// unnormalised weight exp(s) decays, i.e. the score gains the log decays).
  ExprPtr decay;
  SourceLoc decayLoc;
  /// `state S[b, h, d, dv]`: a recurrence's state (f32), read as the state before position 0
  /// and overwritten with the state after the last query position (kernel argument kind
  /// "state"). Its dims are the batch, the query head, the head dim and the value dim.
  std::optional<TensorDecl> state;
  /// `gate EXPR`: a per-step, per-channel decay gamma(b, h, i, d) (GLA's forget gate): the dot
  /// of query i and key j becomes sum_d fq(q_i[d]) fk(k_j[d]) gamma(j+1, d) ... gamma(i, d).
  /// It may index params by the head dim. Needs a linear recurrence.
  ExprPtr gate;
  SourceLoc gateLoc;
  /// `bonus EXPR` (RWKV's u): a strict-causal recurrence's current-token term. Query i reads
  /// its own key and value besides the state before its step: the term is the score of (i, i)
  /// with its dot taken as sum_d fq(q_i[d]) fk(k_i[d]) bonus(b, h, i, d), times v_i. A per-
  /// channel weight like a gate (it may index params by the head dim), any sign. Needs
  /// `strict`.
  ExprPtr bonus;
  SourceLoc bonusLoc;

  // ---- Sema: the resolved attention structure ----
  int q = -1, k = -1, v = -1;      // indices into inputs
  int batchDim = -1, qHeadDim = -1, kvHeadDim = -1, qSeqDim = -1, kvSeqDim = -1,
      headDim = -1, valueDim = -1; // indices into dims
  int64_t group = 1;               // query heads per kv head (GQA); 1 for MHA
  /// Shared q/k head groups (Mamba-2's B/C groups): q[b, i, g, d] and k[b, j, g, d] with
  /// g = h / qkGroup, while v and o have the heads h. qkGroupDim is g (-1 without groups).
  int qkGroupDim = -1;
  int64_t qkGroup = 1;
  const Expr *featureQ = nullptr;  // q's and k's feature maps (into `features`), if any
  const Expr *featureK = nullptr;
  /// Projected feature maps (Performer's random features): `feature q, k = f(dot(x, w[m]),
  /// dot(x, x))` maps the head-dim row x of q and of k to a row over the feature dim m, with
  /// param w[m, d]; the dot and the recurrence's state then run over m. -1 without one.
  int featureDim = -1, projParam = -1;
  /// The dim the dot (and a state's rows) run over: the feature dim, or the head dim.
  int dotDim() const { return featureDim >= 0 ? featureDim : headDim; }
  /// A linear recurrence (Sema): norm none, the mask exactly `j <= i` (or `j < i`: strict) and
  /// a score that is dot(q, k) times factors that read neither j nor the score. attnc may
  /// compute it in the chunked or the recurrent form; `decay` and `state` need it.
  bool recurrence = false;
  /// A strict-causal recurrence (mask exactly `j < i`): query i reads the state before its own
  /// step, S_{i-1}, so key j's decays and gates run over j + 1 .. i - 1 (RWKV's convention),
  /// and the key i enters only through `bonus`.
  bool strict = false;
  /// A recurrence's score split as dot * queryScale(b, h, i) * keyScale(b, h, j): the product of
  /// its factors that do not read j (with the sign), and of those that do (null when none, e.g.
  /// Mamba's dt_j). Built by Sema from copies of the score's factors.
  std::unique_ptr<Expr> queryScale, keyScale;
  /// Position of each canonical axis in a tensor's storage order, i.e. perm[c] = position in
  /// tensor.dims of canonical axis c, for canonical orders q/o: [b, h, i, d|dv], k/v: [b, hk, j, d|dv].
  std::vector<int> canonicalPerm(const TensorDecl &t) const;
  /// The same for the state, canonical order [b, h, d, dv].
  std::vector<int> statePerm() const;

  // ---- paged KV (valid when `paged` is set) ----
  /// Whether input `index` (k or v) is stored as pages.
  bool isPaged(int index) const { return paged && (index == k || index == v); }
  /// A paged tensor's storage dims: its declared dims without the batch dim, the kv dim
  /// replaced by the slot in a page, all after the page index: k[b, j, hk, d] is stored
  /// [pages, slot, hk, d]. Entries are indices into `dims`, kPageAxis or kSlotAxis.
  static constexpr int kPageAxis = -2, kSlotAxis = -3;
  std::vector<int> pagedStorage(const TensorDecl &t) const;
  /// Position in pagedStorage(t) of each canonical axis [page, kv head, slot, d|dv].
  std::vector<int> pagedCanonicalPerm(const TensorDecl &t) const;
};

struct SpecFile {
  std::string path;
  std::string text;
  std::vector<Variant> variants;
};

}  // namespace attnc
