// Math in score regions -> PTX approximations (ex2, lg2, tanh, rsqrt, sqrt), so kernels need no
// libdevice. Their relative error (about 2^-22; tanh.approx.f32's 2^-11) is below what bf16/f16
// outputs can show. A derivative that would cancel on such a value is formed without it
// (attn-grad's tanh': sech^2 from exp, not 1 - tanh^2).
#include "codegen/cuda/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"

#include <cmath>

using namespace mlir;

namespace {

/// One f32 PTX instruction as inline assembly without side effects (nvvm.inline_ptx's has
/// them): LLVM may then merge, hoist and reorder it like any pure op, and with it the loads
/// around it (a row's norm, a per-head param read per element), so repeated divisions by one
/// value become a reciprocal and multiplies.
Value inlinePtx(PatternRewriter &rw, Location loc, StringRef code, Value x) {
  return LLVM::InlineAsmOp::create(rw, loc, rw.getF32Type(), ValueRange{x},
                                   rw.getStringAttr(code), rw.getStringAttr("=f,f"), UnitAttr(),
                                   UnitAttr(), LLVM::TailCallKindAttr::get(rw.getContext(),
                                                                           LLVM::TailCallKind::None),
                                   LLVM::AsmDialectAttr::get(rw.getContext(),
                                                             LLVM::AsmDialect::AD_ATT),
                                   ArrayAttr())
      .getRes();
}

Value constant(PatternRewriter &rw, Location loc, double v) {
  return arith::ConstantOp::create(rw, loc, rw.getF32FloatAttr(float(v)));
}

/// One PTX instruction, with the argument and result scaled by constants: y = post * op(pre * x).
/// A constant argument is folded here instead (inline PTX would take it as an immediate).
template <typename MathOp>
struct ToPtx : OpRewritePattern<MathOp> {
  ToPtx(MLIRContext *ctx, StringRef code, double pre, double post, double (*fold)(double))
      : OpRewritePattern<MathOp>(ctx), code(code), pre(pre), post(post), fold(fold) {}

  LogicalResult matchAndRewrite(MathOp op, PatternRewriter &rw) const override {
    if (!op.getType().isF32())
      return rw.notifyMatchFailure(op, "only f32 has a PTX approximation here");
    Location loc = op.getLoc();
    Value x = op->getOperand(0);
    FloatAttr known;
    if (matchPattern(x, m_Constant(&known))) {
      rw.replaceOp(op, constant(rw, loc, fold(known.getValueAsDouble())));
      return success();
    }
    if (pre != 1.0)
      x = arith::MulFOp::create(rw, loc, x, constant(rw, loc, pre));
    Value y = inlinePtx(rw, loc, code, x);
    if (post != 1.0)
      y = arith::MulFOp::create(rw, loc, y, constant(rw, loc, post));
    rw.replaceOp(op, y);
    return success();
  }

  std::string code;
  double pre, post;
  double (*fold)(double);
};

struct AbsToSelect : OpRewritePattern<math::AbsFOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(math::AbsFOp op, PatternRewriter &rw) const override {
    Location loc = op.getLoc();
    Value x = op.getOperand();
    Value neg = arith::CmpFOp::create(rw, loc, arith::CmpFPredicate::OLT, x,
                                      constant(rw, loc, 0.0));
    rw.replaceOpWithNewOp<arith::SelectOp>(op, neg, arith::NegFOp::create(rw, loc, x), x);
    return success();
  }
};

} // namespace

void mlir::attn::populateApproxMathToNVVMPatterns(RewritePatternSet &patterns) {
  MLIRContext *ctx = patterns.getContext();
  constexpr double log2e = 1.4426950408889634, ln2 = 0.6931471805599453;
  patterns.add<ToPtx<math::ExpOp>>(ctx, "ex2.approx.ftz.f32 $0, $1;", log2e, 1.0,
                                   [](double x) { return std::exp(x); });
  patterns.add<ToPtx<math::Exp2Op>>(ctx, "ex2.approx.ftz.f32 $0, $1;", 1.0, 1.0,
                                    [](double x) { return std::exp2(x); });
  patterns.add<ToPtx<math::Log2Op>>(ctx, "lg2.approx.f32 $0, $1;", 1.0, 1.0,
                                    [](double x) { return std::log2(x); });
  patterns.add<ToPtx<math::LogOp>>(ctx, "lg2.approx.f32 $0, $1;", 1.0, ln2,
                                   [](double x) { return std::log(x); });
  patterns.add<ToPtx<math::TanhOp>>(ctx, "tanh.approx.f32 $0, $1;", 1.0, 1.0,
                                    [](double x) { return std::tanh(x); });
  patterns.add<ToPtx<math::RsqrtOp>>(ctx, "rsqrt.approx.f32 $0, $1;", 1.0, 1.0,
                                     [](double x) { return 1.0 / std::sqrt(x); });
  patterns.add<ToPtx<math::SqrtOp>>(ctx, "sqrt.approx.f32 $0, $1;", 1.0, 1.0,
                                    [](double x) { return std::sqrt(x); });
  patterns.add<AbsToSelect>(ctx);
}
