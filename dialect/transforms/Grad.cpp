// attn-grad: the backward of a variant, derived by the compiler. Each function holding one
// attn.attention gets a sibling `<name>_grad` holding attn.attention_grad, whose score_grad
// region is the score region differentiated in reverse mode: the forward ops are cloned, then
// every op on a path from dot (or from a float param's load) to the score gets its adjoint.
#include "dialect/transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/TypeSwitch.h"



namespace mlir::attn {
#define GEN_PASS_DEF_ATTNGRAD
#include "dialect/transforms/Passes.h.inc"
} // namespace mlir::attn

using namespace mlir;
using namespace mlir::attn;

namespace {

constexpr double kLn2 = 0.6931471805599453;

/// Why `op` has no backward, or null.
const char *noBackward(AttentionOp op) {
  if (op.getBlockTable() || op.getKScale() || op.getVScale())
    return "paged or quantised K/V is for decoding, which needs no backward";
  bool recurrentDecay = !op.getDecay().empty() && op.getNorm() != NormKind::softmax;
  if (op.getState() || recurrentDecay || !op.getGate().empty() || !op.getSkip().empty() ||
      !op.getBonus().empty() || op.getProjection() || op.getQkGroup() > 1 ||
      op.getNorm() == NormKind::sum)
    return "the backward of a recurrence (state, decay, gate, bonus, skip, projection, norm "
           "sum, rmsnorm, q/k head groups) is not implemented yet";
  if (!op.getFeatureQ().empty() || !op.getFeatureK().empty())
    return "the backward through feature maps is not implemented yet";
  if (op.getUnifiedMax())
    return "a unified max is a decoding schedule, which needs no backward";
  return nullptr;
}

/// Reverse-mode differentiation of a score block (b, h, i, j, dot) -> s into the score_grad
/// block (b, h, i, j, dot, g) -> g ds/d(dot), accumulating g ds/dp into the gradient of each
/// param element p it loads (`paramGrads`: param memref -> its gradient). With row norms the
/// score block is (b, h, i, j, dot, qq, kk) and its grad yields the three adjoints. With no
/// argument differentiated (a forget gate's log decay, (b, h, t) -> log gamma) the grad block
/// (b, h, t, g) only accumulates, and yields nothing.
class Differentiator {
public:
  /// `wrt`: how many of the block's last arguments are differentiated (their adjoints are
  /// yielded in order): 1 (a score's dot, an output map's z), 3 (dot and the row norms
  /// dot(q, q), dot(k, k)), or 0 (params only: a forget gate's log decay).
  Differentiator(OpBuilder &b, Block &score, Block &grad, const IRMapping &paramGrads,
                 unsigned wrt = 1)
      : b(b), score(score), grad(grad), paramGrads(paramGrads), wrt(wrt) {}

  LogicalResult run() {
    b.setInsertionPointToStart(&grad);
    unsigned n = score.getNumArguments();
    for (unsigned a = 0; a < n; ++a)
      fwd.map(score.getArgument(a), grad.getArgument(a));
    for (Operation &op : score.without_terminator())
      b.clone(op, fwd);
    markActive();
    Value s = cast<YieldOp>(score.getTerminator()).getValues()[0];
    if (active.contains(s))
      adjoint[s] = grad.getArgument(n);
    SmallVector<Operation *> ops;
    for (Operation &op : score.without_terminator())
      ops.push_back(&op);
    for (Operation *op : llvm::reverse(ops))
      if (failed(backprop(op)))
        return failure();
    SmallVector<Value> adjoints;
    for (unsigned a = n - wrt; a < n; ++a) {
      Value d = adjoint.lookup(score.getArgument(a));
      adjoints.push_back(d ? d : f32(0.0));
    }
    YieldOp::create(b, b.getUnknownLoc(), adjoints);
    // Adjoints of inactive operands and forward values only the score needed go.
    SmallVector<Operation *> cloned;
    for (Operation &op : grad.without_terminator())
      cloned.push_back(&op);
    for (Operation *op : llvm::reverse(cloned))
      if (isOpTriviallyDead(op))
        op->erase();
    return success();
  }

private:
  OpBuilder &b;
  Block &score, &grad;
  const IRMapping &paramGrads;
  unsigned wrt;  // the last `wrt` arguments (dot, z; dot, qq, kk) are differentiated
  IRMapping fwd;                       // score value -> its clone in grad
  llvm::DenseSet<Value> active;        // float values that depend on dot or a param
  llvm::DenseMap<Value, Value> adjoint;  // score value -> d(score)/d(value) * g, in grad

  static bool isFloat(Value v) { return isa<FloatType>(v.getType()); }

  /// Float values that depend on dot or on a load of a param with a gradient.
  void markActive() {
    for (BlockArgument a : score.getArguments().take_back(wrt))
      active.insert(a);
    for (Operation &op : score.without_terminator()) {
      bool in = false;
      if (auto load = dyn_cast<memref::LoadOp>(op))
        in = paramGrads.contains(load.getMemRef());
      for (Value x : op.getOperands())
        in |= active.contains(x);
      if (in)
        for (Value r : op.getResults())
          if (isFloat(r))
            active.insert(r);
    }
  }

  Value f32(double x) {
    return arith::ConstantOp::create(b, b.getUnknownLoc(), b.getF32FloatAttr(float(x)));
  }
  Value x(Value scoreValue) { return fwd.lookup(scoreValue); }  // the forward value in grad
  Value add(Value a, Value c) { return arith::AddFOp::create(b, b.getUnknownLoc(), a, c); }
  Value sub(Value a, Value c) { return arith::SubFOp::create(b, b.getUnknownLoc(), a, c); }
  Value mul(Value a, Value c) { return arith::MulFOp::create(b, b.getUnknownLoc(), a, c); }
  Value div(Value a, Value c) { return arith::DivFOp::create(b, b.getUnknownLoc(), a, c); }
  Value neg(Value a) { return arith::NegFOp::create(b, b.getUnknownLoc(), a); }
  Value select(Value c, Value a, Value d) {
    return arith::SelectOp::create(b, b.getUnknownLoc(), c, a, d);
  }
  Value cmp(arith::CmpFPredicate p, Value a, Value c) {
    return arith::CmpFOp::create(b, b.getUnknownLoc(), p, a, c);
  }

  /// sech(u)^2 = 4 e / (1 + e)^2 with e = exp(-2 |u|): exact where tanh saturates, where
  /// 1 - tanh(u)^2 cancels (the GPU's tanh.approx.f32 is good to 2^-11 relative, so its
  /// 1 - tanh^2 had an absolute error of 2^-10 where the true value is 1e-6: a param read
  /// through a saturated tanh, e.g. tanh(attend(s, v) * t), got a wrong gradient).
  Value sech2(Value u) {
    Location loc = b.getUnknownLoc();
    Value e = math::ExpOp::create(b, loc, mul(f32(-2), math::AbsFOp::create(b, loc, u)));
    Value onePlus = add(f32(1), e);
    return div(mul(f32(4), e), mul(onePlus, onePlus));
  }

  /// adjoint[v] += d (only for active values: the others get no gradient).
  void contribute(Value v, Value d) {
    if (!active.contains(v))
      return;
    Value &a = adjoint[v];
    a = a ? add(a, d) : d;
  }

  /// The arithmetic ops: contributes g's share to each active operand; false if not one.
  bool backpropArith(Operation *op, Value r, Value g) {
    auto operand = [&](unsigned n) { return op->getOperand(n); };
    return TypeSwitch<Operation *, bool>(op)
        .Case([&](arith::AddFOp) {
          contribute(operand(0), g), contribute(operand(1), g);
          return true;
        })
        .Case([&](arith::SubFOp) {
          contribute(operand(0), g), contribute(operand(1), neg(g));
          return true;
        })
        .Case([&](arith::MulFOp) {
          contribute(operand(0), mul(g, x(operand(1))));
          contribute(operand(1), mul(g, x(operand(0))));
          return true;
        })
        .Case([&](arith::DivFOp) {  // r = a / c: da = g / c, dc = -g r / c
          contribute(operand(0), div(g, x(operand(1))));
          contribute(operand(1), neg(div(mul(g, x(r)), x(operand(1)))));
          return true;
        })
        .Case([&](arith::RemFOp) {  // r = a - c trunc(a / c): dc = -g (a - r) / c
          contribute(operand(0), g);
          contribute(operand(1),
                     neg(div(mul(g, sub(x(operand(0)), x(r))), x(operand(1)))));
          return true;
        })
        .Case([&](arith::NegFOp) {
          contribute(operand(0), neg(g));
          return true;
        })
        .Case<arith::ExtFOp, arith::TruncFOp>([&](Operation *) {
          contribute(operand(0), g);
          return true;
        })
        .Case<arith::MaximumFOp, arith::MaxNumFOp, arith::MinimumFOp, arith::MinNumFOp>(
            [&](Operation *m) {  // the chosen operand takes g (the first on a tie)
              bool isMax = isa<arith::MaximumFOp, arith::MaxNumFOp>(m);
              Value first = cmp(isMax ? arith::CmpFPredicate::OGE : arith::CmpFPredicate::OLE,
                                x(operand(0)), x(operand(1)));
              contribute(operand(0), select(first, g, f32(0)));
              contribute(operand(1), select(first, f32(0), g));
              return true;
            })
        .Case([&](arith::SelectOp s) {
          contribute(operand(1), select(x(s.getCondition()), g, f32(0)));
          contribute(operand(2), select(x(s.getCondition()), f32(0), g));
          return true;
        })
        .Default([](Operation *) { return false; });
  }

  /// The math ops (and pow), the same way.
  bool backpropMath(Operation *op, Value r, Value g) {
    auto operand = [&](unsigned n) { return op->getOperand(n); };
    return TypeSwitch<Operation *, bool>(op)
        .Case([&](math::ExpOp) {
          contribute(operand(0), mul(g, x(r)));
          return true;
        })
        .Case([&](math::Exp2Op) {
          contribute(operand(0), mul(g, mul(x(r), f32(kLn2))));
          return true;
        })
        .Case([&](math::LogOp) {
          contribute(operand(0), div(g, x(operand(0))));
          return true;
        })
        .Case([&](math::Log2Op) {
          contribute(operand(0), div(g, mul(x(operand(0)), f32(kLn2))));
          return true;
        })
        .Case([&](math::Log1pOp) {
          contribute(operand(0), div(g, add(f32(1), x(operand(0)))));
          return true;
        })
        .Case([&](math::TanhOp) {  // 1 - tanh(u)^2 = sech(u)^2
          contribute(operand(0), mul(g, sech2(x(operand(0)))));
          return true;
        })
        .Case([&](math::SqrtOp) {  // 1 / (2 sqrt)
          contribute(operand(0), div(mul(g, f32(0.5)), x(r)));
          return true;
        })
        .Case([&](math::RsqrtOp) {  // -r^3 / 2
          contribute(operand(0), mul(g, mul(f32(-0.5), mul(x(r), mul(x(r), x(r))))));
          return true;
        })
        .Case([&](math::AbsFOp) {
          Value negative = cmp(arith::CmpFPredicate::OLT, x(operand(0)), f32(0));
          contribute(operand(0), select(negative, neg(g), g));
          return true;
        })
        .Case([&](math::SinOp) {
          contribute(operand(0), mul(g, math::CosOp::create(b, op->getLoc(), x(operand(0)))));
          return true;
        })
        .Case([&](math::CosOp) {
          contribute(operand(0),
                     neg(mul(g, math::SinOp::create(b, op->getLoc(), x(operand(0))))));
          return true;
        })
        .Case([&](math::PowFOp) {  // d/da = c a^(c-1) = c r / a, d/dc = r log a
          contribute(operand(0), div(mul(g, mul(x(operand(1)), x(r))), x(operand(0))));
          if (active.contains(operand(1)))
            contribute(operand(1),
                       mul(g, mul(x(r), math::LogOp::create(b, op->getLoc(), x(operand(0))))));
          return true;
        })
        .Default([](Operation *) { return false; });
  }

  /// A param element read: accumulates its gradient g.
  bool backpropLoad(Operation *op, Value g) {
    return TypeSwitch<Operation *, bool>(op)
        .Case([&](memref::LoadOp load) {  // a param element: accumulate its gradient
          SmallVector<Value> idx;
          for (Value i : load.getIndices())
            idx.push_back(x(i));
          Value gradBuf = paramGrads.lookup(load.getMemRef());
          Value v = g.getType().isF32()
                        ? g
                        : arith::ExtFOp::create(b, op->getLoc(), b.getF32Type(), g).getResult();
          AccumulateOp::create(b, op->getLoc(), v, gradBuf, idx);
          return true;
        })
        .Default([](Operation *) { return false; });
  }

  LogicalResult backprop(Operation *op) {
    if (op->getNumResults() != 1)
      return success();
    Value r = op->getResult(0);
    Value g = adjoint.lookup(r);
    if (!g)
      return success();  // not on a path to the score (or an integer)
    b.setInsertionPointToEnd(&grad);
    bool handled = backpropArith(op, r, g) || backpropMath(op, r, g) || backpropLoad(op, g);
    if (!handled)
      return op->emitError("attn-grad: cannot differentiate '")
             << op->getName() << "' on the score's path from dot or a float param (supported: "
                                 "+ - * / % neg, exp, exp2, log, log2, log1p, tanh, sqrt, rsqrt, "
                                 "abs, sin, cos, pow, min, max, select, casts)";
    return success();
  }
};

/// A forget gate's decay_grad: (b, h, t, g) -> accumulates g d log gamma(b, h, t)/dp, the
/// decay's log (a scratch block) differentiated with respect to its params only.
LogicalResult buildDecayGrad(OpBuilder &b, OpBuilder &rb, AttentionOp op, AttentionGradOp grad,
                             const IRMapping &args, const IRMapping &paramGrads) {
  IRMapping logArgs = args;  // the captured params: forward -> grad function values
  IRMapping cloned = args;   // cloneInto adds the region's own values to its mapping
  op.getDecay().cloneInto(&grad.getDecay(), cloned);
  Location loc = op.getLoc();
  Type idx = b.getIndexType(), f32 = b.getF32Type();
  Region scratch;
  Block *logBlock = b.createBlock(&scratch, {}, {idx, idx, idx}, {loc, loc, loc});
  Block &decay = op.getDecay().front();
  logArgs.map(decay.getArguments(), logBlock->getArguments());
  for (Operation &o : decay.without_terminator())
    b.clone(o, logArgs);
  Value gamma = logArgs.lookup(cast<YieldOp>(decay.getTerminator()).getValues()[0]);
  YieldOp::create(b, loc, ValueRange{buildLogDecay(b, loc, gamma)});
  Block *out = b.createBlock(&grad.getDecayGrad(), {}, {idx, idx, idx, f32},
                             {loc, loc, loc, loc});
  LogicalResult result =
      Differentiator(rb, *logBlock, *out, paramGrads, /*wrt=*/0).run();
  scratch.dropAllReferences();
  return result;
}

/// Several scores: the forward's mix (b, h, i, e, y_0 ... y_N) -> m cloned into the grad op,
/// and mix_grad (..., g) -> (g dm/dy_0, ..., g dm/dy_N), its params' gradients accumulated.
LogicalResult buildMixGrad(OpBuilder &b, OpBuilder &rb, AttentionOp op, AttentionGradOp grad,
                           const IRMapping &args, const IRMapping &paramGrads) {
  IRMapping cloned = args;  // cloneInto adds the region's own values to its mapping
  op.getMix().cloneInto(&grad.getMix(), cloned);
  Block &mix = grad.getMix().front();
  SmallVector<Type> gradArgs(mix.getArgumentTypes());
  gradArgs.push_back(b.getF32Type());
  Block *g = b.createBlock(&grad.getMixGrad(), {}, gradArgs,
                           SmallVector<Location>(gradArgs.size(), op.getLoc()));
  return Differentiator(rb, mix, *g, paramGrads, mix.getNumArguments() - 4).run();
}

/// Builds `<name>_grad` next to `fn` for its attention `op`.
LogicalResult buildGrad(func::FuncOp fn, AttentionOp op) {
  MLIRContext *ctx = fn.getContext();
  Value q = op.getQ(), k = op.getK(), v = op.getV(), out = op.getOut(), lse = op.getLse();
  // Params: the function's other arguments; those of float type read by the score get an f32
  // gradient of the same shape.
  SmallVector<BlockArgument> params, floatParams;
  // Several scores: the extra scores' distinct inputs (not q or k), each with a gradient.
  SmallVector<Value> scoreInputs = {q, k};
  for (auto [qn, kn] : llvm::zip(op.getMoreQ(), op.getMoreK()))
    for (Value x : {qn, kn})
      if (!llvm::is_contained(scoreInputs, x))
        scoreInputs.push_back(x);
  ArrayRef<Value> moreInputs = ArrayRef<Value>(scoreInputs).drop_front(2);
  for (BlockArgument a : fn.getArguments())
    if (!llvm::is_contained({q, k, v, out, lse}, Value(a)) &&
        !llvm::is_contained(scoreInputs, Value(a)) &&
        !llvm::is_contained(op.getMoreLse(), Value(a)))
      params.push_back(a);
  llvm::SmallPtrSet<Value, 4> readByScore;  // or by the output map, a mix, or a forget gate
  SmallVector<Region *> reading = {&op.getScore(), &op.getOutput(), &op.getDecay(), &op.getMix()};
  for (Region &score : op.getMoreScores())
    reading.push_back(&score);
  for (Region *region : reading)
    region->walk([&](memref::LoadOp load) { readByScore.insert(load.getMemRef()); });
  for (BlockArgument p : params)
    if (auto t = dyn_cast<MemRefType>(p.getType());
        t && isa<FloatType>(t.getElementType()) && readByScore.contains(p))
      floatParams.push_back(p);

  auto dyn4 = [&](MemRefType t, Type elt) {
    int64_t d = ShapedType::kDynamic;
    SmallVector<int64_t> strides(t.getRank(), d);
    return MemRefType::get(t.getShape(), elt, StridedLayoutAttr::get(ctx, d, strides));
  };
  auto seq = [&](Value x) { return cast<MemRefType>(x.getType()); };
  SmallVector<Type> types(fn.getArgumentTypes());
  types.push_back(seq(out));                                       // dout
  for (Value x : {q, k, v})                                        // dq, dk, dv
    types.push_back(seq(x));
  for (Value x : moreInputs)                                       // d(more inputs)
    types.push_back(seq(x));
  for (BlockArgument p : floatParams)                              // dparams
    types.push_back(dyn4(cast<MemRefType>(p.getType()), Float32Type::get(ctx)));

  OpBuilder b(ctx);
  b.setInsertionPointAfter(fn);
  auto gradFn = func::FuncOp::create(b, fn.getLoc(), (fn.getSymName() + "_grad").str(),
                                     FunctionType::get(ctx, types, {}));
  gradFn->setDiscardableAttrs(fn->getDiscardableAttrDictionary());  // llvm.emit_c_interface
  gradFn->setAttr("attn.grad_of", FlatSymbolRefAttr::get(ctx, fn.getSymName()));
  Block *body = gradFn.addEntryBlock();
  b.setInsertionPointToStart(body);
  unsigned nFwd = fn.getNumArguments();
  IRMapping args;  // forward arguments -> the grad function's
  for (unsigned a = 0; a < nFwd; ++a)
    args.map(fn.getArgument(a), body->getArgument(a));
  unsigned nGrads = 4 + unsigned(moreInputs.size());  // dout, dq, dk, dv, d(more inputs)
  IRMapping paramGrads;  // in terms of the grad function's values
  for (auto [n, p] : llvm::enumerate(floatParams))
    paramGrads.map(args.lookup(p), body->getArgument(nFwd + nGrads + n));
  Value dout = body->getArgument(nFwd), dq = body->getArgument(nFwd + 1),
        dk = body->getArgument(nFwd + 2), dv = body->getArgument(nFwd + 3);
  // Each score input's gradient buffer (one per distinct tensor).
  IRMapping gradOf;
  gradOf.map(q, dq);
  gradOf.map(k, dk);
  for (auto [n, x] : llvm::enumerate(moreInputs))
    gradOf.map(x, body->getArgument(nFwd + 4 + n));
  SmallVector<Value> moreQ, moreK, moreLse, moreDq, moreDk;
  for (auto [qn, kn] : llvm::zip(op.getMoreQ(), op.getMoreK())) {
    moreQ.push_back(args.lookup(qn)), moreDq.push_back(gradOf.lookup(qn));
    moreK.push_back(args.lookup(kn)), moreDk.push_back(gradOf.lookup(kn));
  }
  for (Value l : op.getMoreLse())
    moreLse.push_back(args.lookup(l));

  unsigned more = unsigned(moreQ.size());
  auto grad = AttentionGradOp::create(
      b, op.getLoc(), args.lookup(q), args.lookup(k), args.lookup(v), args.lookup(out),
      lse ? args.lookup(lse) : Value(), dout, dq, dk, dv, moreQ, moreK, moreLse, moreDq, moreDk,
      op.getGroupAttr(), op.getNormAttr(), op.getRmsEpsAttr(), 2 * more);
  op.getScore().cloneInto(&grad.getScore(), args);
  op.getMask().cloneInto(&grad.getMask(), args);
  Type idx = b.getIndexType(), f32 = b.getF32Type();
  Location loc = op.getLoc();
  OpBuilder rb(ctx);
  // (b, h, i, j, dot[, qq, kk], g) -> g ds/d(dot)[, g ds/d(qq), g ds/d(kk)], for every score
  auto scoreGrad = [&](Region &score, Region &into) {
    unsigned wrt = score.front().getNumArguments() - 4;
    SmallVector<Type> gradArgs = {idx, idx, idx, idx};
    gradArgs.append(wrt + 1, f32);
    Block *g = b.createBlock(&into, {}, gradArgs, SmallVector<Location>(gradArgs.size(), loc));
    return Differentiator(rb, score.front(), *g, paramGrads, wrt).run();
  };
  if (failed(scoreGrad(grad.getScore(), grad.getScoreGrad())))
    return failure();
  for (auto [n, score] : llvm::enumerate(op.getMoreScores())) {
    score.cloneInto(&grad.getMoreScore(unsigned(n)), args);
    if (failed(scoreGrad(grad.getMoreScore(unsigned(n)), grad.getMoreScoreGrad(unsigned(n)))))
      return failure();
  }
  if (more && failed(buildMixGrad(b, rb, op, grad, args, paramGrads)))
    return failure();
  if (!op.getOutput().empty()) {  // the output map (b, h, i, e, z) -> F, differentiated alike
    Region &region = grad.getOutputGrad();
    op.getOutput().cloneInto(&region, args);  // the map itself: the differentiator's source
    Block &map = region.front();
    Block *og = b.createBlock(&region, region.end(), {idx, idx, idx, idx, f32, f32},
                              {loc, loc, loc, loc, loc, loc});
    if (failed(Differentiator(rb, map, *og, paramGrads).run()))
      return failure();
    map.dropAllReferences();
    map.erase();
  }
  if (!op.getDecay().empty() && failed(buildDecayGrad(b, rb, op, grad, args, paramGrads)))
    return failure();
  b.setInsertionPointToEnd(body);
  func::ReturnOp::create(b, fn.getLoc());
  return success();
}

struct AttnGradPass : mlir::attn::impl::AttnGradBase<AttnGradPass> {
  using AttnGradBase::AttnGradBase;
  void runOnOperation() override {
    SmallVector<std::pair<func::FuncOp, AttentionOp>> todo;
    for (auto fn : getOperation().getOps<func::FuncOp>()) {
      if (fn->hasAttr("attn.grad_of"))
        continue;
      SmallVector<AttentionOp> ops(fn.getOps<AttentionOp>());
      if (ops.size() == 1)
        todo.push_back({fn, ops.front()});
    }
    for (auto [fn, op] : todo) {
      if (const char *why = noBackward(op)) {
        op.emitError("attn-grad: no backward for '") << fn.getSymName() << "': " << why;
        return signalPassFailure();
      }
      if (failed(buildGrad(fn, op)))
        return signalPassFailure();
    }
    if (gradOnly)
      for (auto [fn, op] : todo)
        fn.erase();
  }
};

} // namespace
