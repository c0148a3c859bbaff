// Verifiers of the backward ops: attn.attention_grad and attn.accumulate.
#include "dialect/AttnDialect.h"
#include "dialect/AttnVerify.h"

#include <deque>

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

/// Several scores: counts, shapes, and one gradient buffer per distinct tensor read as a
/// score's q or k (named after the first role that reads it, so distinctBuffers lets a tensor's
/// roles share it and nothing else).
static LogicalResult verifyMoreScores(AttentionGradOp op) {
  size_t more = op.getMoreQ().size();
  if (op.getMoreK().size() != more || op.getMoreDq().size() != more ||
      op.getMoreDk().size() != more || op.getMoreScores().size() != 2 * more)
    return op.emitOpError() << "several scores need, per extra score, a query, a key, their "
                               "gradients, a score and a score_grad region: got "
                            << more << " queries, " << op.getMoreK().size() << " keys, "
                            << op.getMoreDq().size() << " + " << op.getMoreDk().size()
                            << " gradients and " << op.getMoreScores().size()
                            << " more_scores regions (the scores, then their score_grads)";
  if (op.getMoreLse().size() != (op.getLse() ? more : 0))
    return op.emitOpError() << "'lses' holds the lse of each extra score: "
                            << (op.getLse() ? more : 0) << " expected, got "
                            << op.getMoreLse().size();
  if (op.getMix().empty() != !more || op.getMixGrad().empty() != !more)
    return op.emitOpError("takes 'mix' and 'mix_grad' regions exactly with several scores");
  if (!more)
    return success();
  if (op.getNorm() != NormKind::softmax || !op.getDecay().empty())
    return op.emitOpError("several scores need norm softmax and no decay");
  Operation *o = op.getOperation();
  std::deque<std::string> names;  // kept alive (and in place) for the StringRefs below
  SmallVector<std::pair<StringRef, Value>> reads = {{"q", op.getQ()}, {"k", op.getK()}},
                                           grads = {{"dq", op.getDq()}, {"dk", op.getDk()}};
  for (size_t n = 0; n < more; ++n)
    for (auto [x, g, role, like] :
         {std::tuple(op.getMoreQ()[n], op.getMoreDq()[n], "q", op.getQ()),
          std::tuple(op.getMoreK()[n], op.getMoreDk()[n], "k", op.getK())}) {
      auto xt = cast<MemRefType>(x.getType()), lt = cast<MemRefType>(like.getType());
      if (xt.getElementType() != lt.getElementType())
        return op.emitOpError() << "every score's " << role << " has " << role
                                << "'s element type";
      for (unsigned d = 0; d < 4; ++d)
        if (failed(sameExtent(o, "a dim", role, lt, d, "a score's", xt, d)) ||
            failed(sameExtent(o, "a dim", "a score's input", xt, d, "its gradient",
                              cast<MemRefType>(g.getType()), d)))
          return failure();
      auto seen = llvm::find_if(reads, [&](auto &r) { return r.second == x; });
      if (seen != reads.end()) {
        if (grads[size_t(seen - reads.begin())].second != g)
          return op.emitOpError() << "a tensor read by several scores has one gradient buffer: '"
                                  << seen->first << "' is read again by score " << n + 1
                                  << " with another gradient";
        continue;
      }
      names.push_back(std::string(role) + std::to_string(n + 1));
      names.push_back("d" + names.back());
      reads.push_back({names[names.size() - 2], x});
      grads.push_back({names.back(), g});
    }
  SmallVector<std::pair<StringRef, Value>> all(reads);
  all.append(grads.begin(), grads.end());
  all.append({{"v", op.getV()}, {"out", op.getOut()}, {"lse", op.getLse()},
              {"dout", op.getDout()}, {"dv", op.getDv()}});
  for (Value lse : op.getMoreLse())
    all.push_back({"a score's lse", lse});
  return distinctBuffers(o, grads, all);
}

LogicalResult AttentionGradOp::verify() {
  MemRefType q = getQ().getType(), k = getK().getType(), v = getV().getType(),
             o = getOut().getType(), dout = getDout().getType();
  Operation *op = getOperation();
  if (failed(distinctBuffers(op, {{"dq", getDq()}, {"dk", getDk()}, {"dv", getDv()}},
                             {{"q", getQ()}, {"k", getK()}, {"v", getV()}, {"out", getOut()},
                              {"lse", getLse()}, {"dout", getDout()}, {"dq", getDq()},
                              {"dk", getDk()}, {"dv", getDv()}})))
    return failure();
  if (failed(verifyMoreScores(*this)))
    return failure();
  if (failed(sameExtent(op, "batch", "q", q, 0, "k", k, 0)) ||
      failed(sameExtent(op, "batch", "k", k, 0, "v", v, 0)) ||
      failed(sameExtent(op, "batch", "q", q, 0, "out", o, 0)) ||
      failed(sameExtent(op, "head dim", "q", q, 3, "k", k, 3)) ||
      failed(sameExtent(op, "value dim", "v", v, 3, "out", o, 3)) ||
      failed(sameExtent(op, "kv heads", "k", k, 1, "v", v, 1)) ||
      failed(sameExtent(op, "kv length", "k", k, 2, "v", v, 2)) ||
      failed(sameExtent(op, "query heads", "q", q, 1, "out", o, 1)) ||
      failed(sameExtent(op, "query length", "q", q, 2, "out", o, 2)))
    return failure();
  // Each gradient has the shape of what it differentiates; dout that of out.
  for (auto [name, grad, of] : {std::tuple("dout", dout, o), std::tuple("dq", getDq().getType(), q),
                                std::tuple("dk", getDk().getType(), k),
                                std::tuple("dv", getDv().getType(), v)})
    for (unsigned axis = 0; axis < 4; ++axis)
      if (failed(sameExtent(op, "shape", name, grad, axis, "what it differentiates", of, axis)))
        return failure();
  int64_t h = q.getDimSize(1), hk = k.getDimSize(1);
  if (!ShapedType::isDynamic(h) && !ShapedType::isDynamic(hk) && h != hk * int64_t(getGroup()))
    return emitOpError() << "query heads (" << h << ") must be kv heads (" << hk
                         << ") times group (" << getGroup() << ")";
  bool softmax = getNorm() == NormKind::softmax;
  if (softmax != bool(getLse()))
    return emitOpError("takes the forward's lse exactly when the norm is softmax");
  if (getNorm() == NormKind::sum)
    return emitOpError("has no backward for norm sum (a chunked recurrence) yet");
  if (auto eps = getRmsEps(); eps && !(eps->convertToFloat() > 0))
    return emitOpError() << "rms_eps must be positive, got " << eps->convertToFloat();
  return success();
}

/// A gradient region (b, h, i, x : index, value : f32, g : f32) -> f32: `score_grad` (x the
/// key, value the dot) or `output_grad` (x the value channel, value the output element).
static LogicalResult verifyGradRegion(Operation *op, Region &region, StringRef name,
                                      StringRef args) {
  Block &grad = region.front();
  auto idx = IndexType::get(op->getContext());
  auto f32 = Float32Type::get(op->getContext());
  bool argsOk = grad.getNumArguments() == 6 && grad.getArgument(4).getType() == f32 &&
                grad.getArgument(5).getType() == f32;
  for (unsigned a = 0; argsOk && a < 4; ++a)
    argsOk = grad.getArgument(a).getType() == idx;
  if (!argsOk)
    return op->emitOpError() << "'" << name << "' region must take (" << args << ")";
  return verifyYield(op, grad, name, f32);
}

/// Several scores: each extra score like the first (no row norms), its score_grad, the
/// forward's mix and its mix_grad (b, h, i, e : index, y_0 ... y_N, g : f32) -> N + 1 f32.
static LogicalResult verifyMoreScoreRegions(AttentionGradOp op) {
  size_t scores = 1 + op.getNumMoreScores();
  if (scores == 1)
    return success();
  Operation *o = op.getOperation();
  if (failed(verifyMix(o, op.getMix(), scores)))
    return failure();
  for (unsigned n = 0; n + 1 < scores; ++n)
    if (failed(verifyScoreAndMask(o, op.getMoreScore(n), op.getMask())) ||
        failed(verifyGradRegion(o, op.getMoreScoreGrad(n), "a score_grad of more_scores",
                                "b, h, i, j : index, dot : f32, g : f32")))
      return failure();
  if (op.getScore().front().getNumArguments() != 5)
    return op.emitOpError("several scores read no row norms (dot(q, q), dot(k, k))");
  Block &grad = op.getMixGrad().front();
  auto idx = IndexType::get(op.getContext());
  auto f32 = Float32Type::get(op.getContext());
  bool ok = op.getMixGrad().hasOneBlock() && grad.getNumArguments() == 5 + scores;
  for (unsigned a = 0; ok && a < grad.getNumArguments(); ++a)
    ok = grad.getArgument(a).getType() == (a < 4 ? Type(idx) : Type(f32));
  auto yield = dyn_cast<YieldOp>(grad.getTerminator());
  if (!ok || !yield || yield.getValues().size() != scores ||
      llvm::any_of(yield.getValues().getTypes(), [&](Type t) { return t != f32; }))
    return op.emitOpError() << "'mix_grad' region must take (b, h, i, e : index, y_0 ... y_"
                            << scores - 1 << ", g : f32) and yield " << scores
                            << " f32 (the adjoints of the rows)";
  return success();
}

LogicalResult AttentionGradOp::verifyRegions() {
  if (failed(verifyScoreAndMask(getOperation(), getScore(), getMask())) ||
      failed(verifyMoreScoreRegions(*this)))
    return failure();
  if (getScore().front().getNumArguments() == 7) {  // row norms: three adjoints
    Block &grad = getScoreGrad().front();
    auto idx = IndexType::get(getContext());
    auto f32 = Float32Type::get(getContext());
    bool ok = grad.getNumArguments() == 8;
    for (unsigned a = 0; ok && a < 8; ++a)
      ok = grad.getArgument(a).getType() == (a < 4 ? Type(idx) : Type(f32));
    auto yield = dyn_cast<YieldOp>(grad.getTerminator());
    if (!ok || !yield || yield.getValues().size() != 3 ||
        llvm::any_of(yield.getValues().getTypes(), [&](Type t) { return t != f32; }))
      return emitOpError("'score_grad' region of a score with row norms must take (b, h, i, j "
                         ": index, dot, qq, kk, g : f32) and yield three f32 (its adjoints)");
  } else if (failed(verifyGradRegion(getOperation(), getScoreGrad(), "score_grad",
                                     "b, h, i, j : index, dot : f32, g : f32"))) {
    return failure();
  }
  if (!getOutputGrad().empty() &&
      failed(verifyGradRegion(getOperation(), getOutputGrad(), "output_grad",
                              "b, h, i, e : index, z : f32, g : f32")))
    return failure();
  if (getDecay().empty() != getDecayGrad().empty())
    return emitOpError("takes a 'decay' region exactly with its 'decay_grad'");
  if (getDecay().empty())
    return success();
  if (getNorm() != NormKind::softmax)
    return emitOpError("takes a decay (a forget gate) with norm softmax only");
  if (failed(verifyStepRegion(getOperation(), getDecay(), "decay", "b, h, i")))
    return failure();
  Block &grad = getDecayGrad().front();
  auto idx = IndexType::get(getContext());
  bool argsOk = getDecayGrad().hasOneBlock() && grad.getNumArguments() == 4 &&
                grad.getArgument(3).getType() == Float32Type::get(getContext());
  for (unsigned a = 0; argsOk && a < 3; ++a)
    argsOk = grad.getArgument(a).getType() == idx;
  auto yield = dyn_cast<YieldOp>(grad.getTerminator());
  if (!argsOk || !yield || !yield.getValues().empty())
    return emitOpError("'decay_grad' region must take (b, h, t : index, g : f32) and yield "
                       "nothing");
  return success();
}

LogicalResult AccumulateOp::verify() {
  if (int64_t(getIndices().size()) != int64_t(getGrad().getType().getRank()))
    return emitOpError() << "needs one index per axis of the gradient (rank "
                         << getGrad().getType().getRank() << "), got " << getIndices().size();
  return success();
}
