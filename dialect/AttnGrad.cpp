// Verifiers of the backward ops: attn.attention_grad and attn.accumulate.
#include "dialect/AttnDialect.h"
#include "dialect/AttnVerify.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

LogicalResult AttentionGradOp::verify() {
  MemRefType q = getQ().getType(), k = getK().getType(), v = getV().getType(),
             o = getOut().getType(), dout = getDout().getType();
  Operation *op = getOperation();
  if (failed(distinctBuffers(op, {{"dq", getDq()}, {"dk", getDk()}, {"dv", getDv()}},
                             {{"q", getQ()}, {"k", getK()}, {"v", getV()}, {"out", getOut()},
                              {"lse", getLse()}, {"dout", getDout()}, {"dq", getDq()},
                              {"dk", getDk()}, {"dv", getDv()}})))
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

LogicalResult AttentionGradOp::verifyRegions() {
  if (failed(verifyScoreAndMask(getOperation(), getScore(), getMask())))
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
