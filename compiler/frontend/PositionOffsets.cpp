// Ring attention's block form: the q_offset / k_offset params a launch's block of a longer
// sequence takes (attn-position-offsets then rewrites the positions its score and mask compare).
#include "compiler/frontend/Frontend.h"

namespace attnc {

namespace {

/// The dim `d` stands for, following aliases (`dv = d`).
int rootDim(const Variant &v, int d) {
  for (int hops = 0; d >= 0 && v.dims[d].kind == DimDecl::Kind::Alias && hops < 64; ++hops)
    d = v.dims[d].sourceIndex;
  return d;
}

/// The first expression under `e` that reads the extent of a sequence dim, or null.
const Expr *readsSequenceLength(const Variant &v, const Expr &e) {
  if (e.res == Expr::Res::DimSize && e.dimIndex >= 0) {
    int root = rootDim(v, e.dimIndex);
    if (root == v.qSeqDim || root == v.kvSeqDim)
      return &e;
  }
  for (const ExprPtr &arg : e.args)
    if (const Expr *found = readsSequenceLength(v, *arg))
      return found;
  return nullptr;
}

}  // namespace

bool addPositionOffsets(Variant &v, const std::string &file, Diagnostic &diag) {
  if (v.positionOffsets >= 0)
    return true;
  auto fail = [&](SourceLoc loc, uint32_t length, const std::string &message,
                  const std::string &hint) {
    diag = Diagnostic{file, loc, length, message, hint};
    return false;
  };
  const char *form = v.recurrence ? "a linear recurrence"
                     : v.paged    ? "paged keys"
                     : v.decay    ? "a decay"
                     : v.gate     ? "a gate"
                     : v.state    ? "a state"
                     : v.outputMap || v.rmsEps
                         ? "an output expression (applied to the merged rows only)"
                                  : nullptr;
  if (form)
    return fail(v.loc, uint32_t(v.name.size()),
                "position offsets (ring attention's blocks) need attention computed tile by tile; "
                "variant '" + v.name + "' has " + form,
                "ring attention splits the sequence of a softmax, sigmoid or ReLU^2 variant");
  std::vector<const Expr *> exprs;
  for (const ScoreDecl &s : v.scores)
    exprs.push_back(s.expr.get());
  if (v.mask)
    exprs.push_back(v.mask.get());
  for (const Expr *e : exprs)
    if (const Expr *length = e ? readsSequenceLength(v, *e) : nullptr)
      return fail(length->loc, length->length,
                  "position offsets: this reads the length of a sequence, and a block of a "
                  "ring knows only its own",
                  "write the mask with positions only (j <= i), or pass the length as a param");
  for (const char *name : {"q_offset", "k_offset"})
    for (const TensorDecl &p : v.params)
      if (p.name == name)
        return fail(p.loc, uint32_t(p.name.size()),
                    std::string("position offsets add a param named '") + name +
                        "', and the variant already has one",
                    "rename this param");
  // Self-attention's `j : kv_len = i`: the sequence is one, but a block's keys need not be as
  // many as its queries.
  DimDecl &keys = v.dims[size_t(v.kvSeqDim)];
  if (keys.kind == DimDecl::Kind::Alias && rootDim(v, v.kvSeqDim) == rootDim(v, v.qSeqDim)) {
    keys.kind = DimDecl::Kind::Dynamic;
    keys.source.clear();
    keys.sourceIndex = -1;
  }
  v.positionOffsets = int(v.params.size());
  for (const char *name : {"q_offset", "k_offset"}) {
    TensorDecl p;
    p.name = name;
    p.loc = v.loc;
    p.dtype = DType::I32;
    p.resolvedDType = DType::I32;
    v.params.push_back(std::move(p));
  }
  return true;
}

}  // namespace attnc
