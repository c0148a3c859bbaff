// attn-gpu-narrow-index: the integer math of the per-element regions (attn_gpu.score's score
// and mask, attn_gpu.score_grad's) in i32 wherever an interval analysis proves that every
// operand and the result fit, so that a position, a bucket or a gathered index costs 32-bit
// instructions and its conversion to float a 32-bit cvt.
#include "codegen/gpu/transforms/Passes.h"
#include "dialect/transforms/Patterns.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Matchers.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <limits>
#include <optional>

namespace mlir::attngpu {
#define GEN_PASS_DEF_ATTNGPUNARROWINDEX
#include "codegen/gpu/transforms/Passes.h.inc"
} // namespace mlir::attngpu

using namespace mlir;
using namespace mlir::attngpu;

namespace {

/// The largest position: the runtime refuses extents above 2^31 - 1.
constexpr int64_t kMaxPosition = 2147483646;
constexpr int64_t kI32Min = std::numeric_limits<int32_t>::min();
constexpr int64_t kI32Max = std::numeric_limits<int32_t>::max();

struct Interval {
  int64_t lo, hi;
  bool fitsI32() const { return lo >= kI32Min && hi <= kI32Max; }
};

/// A float's bounds (infinite when unknown) and whether it may be NaN.
struct FloatRange {
  double lo = -INFINITY, hi = INFINITY;
  bool nan = true;
};

bool isWideInt(Type t) { return t.isIndex() || t.isInteger(64); }

class Narrower {
public:
  explicit Narrower(Block &block) : block(block) {}

  void run() {
    for (BlockArgument a : block.getArguments())
      if (a.getType().isIndex())
        ranges[a] = {0, kMaxPosition};
    for (Operation &op : block.without_terminator())
      analyze(&op);
    SmallVector<Operation *> ops;
    for (Operation &op : block.without_terminator())
      ops.push_back(&op);
    for (Operation *op : ops)
      rewrite(op);
    // the wide forms nothing reads any more
    for (Operation &op : llvm::make_early_inc_range(llvm::reverse(block)))
      if (isa<arith::ArithDialect>(op.getDialect()) && isOpTriviallyDead(&op))
        op.erase();
  }

private:
  Block &block;
  DenseMap<Value, Interval> ranges;
  DenseMap<Value, Value> narrow;  // a wide value -> its i32 form

  std::optional<Interval> rangeOf(Value v) const {
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)) && c.getBitWidth() <= 64)
      return Interval{c.getSExtValue(), c.getSExtValue()};
    auto it = ranges.find(v);
    if (it == ranges.end())
      return std::nullopt;
    return it->second;
  }

  static FloatRange floatRange(Value v, int depth = 0) {
    FloatRange any;
    if (depth > 8)
      return any;
    APFloat c(0.0);
    if (matchPattern(v, m_ConstantFloat(&c))) {
      double x = c.convertToDouble();
      return std::isnan(x) ? any : FloatRange{x, x, false};
    }
    Operation *def = v.getDefiningOp();
    if (!def)
      return any;
    auto both = [&](bool max) {
      FloatRange a = floatRange(def->getOperand(0), depth + 1);
      FloatRange b = floatRange(def->getOperand(1), depth + 1);
      // maxnumf / minnumf return the other operand for a NaN: NaN only if both may be.
      return max ? FloatRange{std::max(a.lo, b.lo), std::max(a.hi, b.hi), a.nan && b.nan}
                 : FloatRange{std::min(a.lo, b.lo), std::min(a.hi, b.hi), a.nan && b.nan};
    };
    if (isa<arith::MaxNumFOp>(def))
      return both(true);
    if (isa<arith::MinNumFOp>(def))
      return both(false);
    if (auto sel = dyn_cast<arith::SelectOp>(def)) {
      FloatRange a = floatRange(sel.getTrueValue(), depth + 1);
      FloatRange b = floatRange(sel.getFalseValue(), depth + 1);
      return {std::min(a.lo, b.lo), std::max(a.hi, b.hi), a.nan || b.nan};
    }
    return any;
  }

  static std::optional<Interval> corners(Interval x, Interval y,
                                         bool (*f)(int64_t, int64_t, int64_t &)) {
    int64_t r[4];
    if (f(x.lo, y.lo, r[0]) || f(x.lo, y.hi, r[1]) || f(x.hi, y.lo, r[2]) || f(x.hi, y.hi, r[3]))
      return std::nullopt;
    return Interval{*std::min_element(r, r + 4), *std::max_element(r, r + 4)};
  }
  static bool add(int64_t a, int64_t b, int64_t &r) { return llvm::AddOverflow(a, b, r); }
  static bool mul(int64_t a, int64_t b, int64_t &r) { return llvm::MulOverflow(a, b, r); }

  /// The largest magnitude in x, or nothing when it is INT64_MIN's.
  static std::optional<int64_t> magnitude(Interval x) {
    if (x.lo == std::numeric_limits<int64_t>::min())
      return std::nullopt;
    return std::max(-x.lo, x.hi);
  }

  void analyze(Operation *op) {
    if (op->getNumResults() != 1 || op->getNumRegions())
      return;
    Value r = op->getResult(0);
    auto intType = dyn_cast<IntegerType>(r.getType());
    if (!r.getType().isIndex() && !intType)
      return;
    auto set = [&](std::optional<Interval> x) {
      if (x)
        ranges[r] = *x;
    };
    auto operand = [&](unsigned n) { return rangeOf(op->getOperand(n)); };
    if (isa<arith::IndexCastOp, arith::ExtSIOp, arith::TruncIOp>(op)) {
      // the operand's range where it survives the cast, else the narrower type's
      Type from = op->getOperand(0).getType(), to = r.getType();
      int width = std::min(from.isIndex() ? 64 : int(from.getIntOrFloatBitWidth()),
                           to.isIndex() ? 64 : int(to.getIntOrFloatBitWidth()));
      auto x = operand(0);
      if (width >= 64) {
        set(x);
        return;
      }
      Interval full{-(int64_t(1) << (width - 1)), (int64_t(1) << (width - 1)) - 1};
      set(x && x->lo >= full.lo && x->hi <= full.hi ? *x : full);
      return;
    }
    if (auto load = dyn_cast<memref::LoadOp>(op)) {
      if (load.getType().isInteger(32))
        set(Interval{kI32Min, kI32Max});
      return;
    }
    if (isa<memref::DimOp>(op)) {
      set(Interval{0, kMaxPosition + 1});
      return;
    }
    if (auto fptosi = dyn_cast<arith::FPToSIOp>(op)) {
      FloatRange x = floatRange(fptosi.getIn());
      if (!x.nan && x.lo >= -9.0e18 && x.hi <= 9.0e18)
        set(Interval{int64_t(std::trunc(x.lo)), int64_t(std::trunc(x.hi))});
      return;
    }
    if (op->getNumOperands() == 2 && (!intType || intType.getWidth() > 1)) {
      auto x = operand(0), y = operand(1);
      if (!x || !y)
        return;
      if (isa<arith::AddIOp>(op))
        return set(corners(*x, *y, add));
      if (isa<arith::SubIOp>(op)) {
        if (y->lo == std::numeric_limits<int64_t>::min())
          return;
        return set(corners(*x, Interval{-y->hi, -y->lo}, add));
      }
      if (isa<arith::MulIOp>(op))
        return set(corners(*x, *y, mul));
      if (isa<arith::MaxSIOp>(op))
        return set(Interval{std::max(x->lo, y->lo), std::max(x->hi, y->hi)});
      if (isa<arith::MinSIOp>(op))
        return set(Interval{std::min(x->lo, y->lo), std::min(x->hi, y->hi)});
      if (isa<arith::DivSIOp, arith::RemSIOp>(op)) {  // |x / y|, |x % y| <= |x|
        if (auto m = magnitude(*x))
          set(Interval{-*m, *m});
        return;
      }
      return;
    }
    if (auto sel = dyn_cast<arith::SelectOp>(op)) {
      auto x = rangeOf(sel.getTrueValue()), y = rangeOf(sel.getFalseValue());
      if (x && y)
        set(Interval{std::min(x->lo, y->lo), std::max(x->hi, y->hi)});
    }
  }

  bool fits(Value v) const {
    auto x = rangeOf(v);
    return x && x->fitsI32();
  }

  /// The i32 form of a wide value that fits: a constant, the source of a widening cast, or a
  /// cast created at `b` (before the first op that needs it; later ones reuse it).
  Value narrowed(OpBuilder &b, Value v) {
    if (Value n = narrow.lookup(v))
      return n;
    Location loc = v.getLoc();
    APInt c;
    if (matchPattern(v, m_ConstantInt(&c)))
      return arith::ConstantIntOp::create(b, loc, c.getSExtValue(), 32);
    if (Operation *def = v.getDefiningOp())
      if (isa<arith::IndexCastOp, arith::ExtSIOp>(def) &&
          (def->getOperand(0).getType().isInteger(32) ||
           (isWideInt(def->getOperand(0).getType()) && fits(def->getOperand(0)))))
        return def->getOperand(0).getType().isInteger(32) ? def->getOperand(0)
                                                          : narrowed(b, def->getOperand(0));
    Type i32 = b.getI32Type();
    Value n = v.getType().isIndex() ? arith::IndexCastOp::create(b, loc, i32, v).getResult()
                                    : arith::TruncIOp::create(b, loc, i32, v).getResult();
    narrow[v] = n;
    return n;
  }

  void rewrite(Operation *op) {
    OpBuilder b(op);
    Location loc = op->getLoc();
    Type i32 = b.getI32Type();
    // int -> float: convert the 32-bit form
    if (isa<arith::SIToFPOp, arith::UIToFPOp>(op)) {
      Value x = op->getOperand(0);
      auto range = rangeOf(x);
      if (!isWideInt(x.getType()) || !range || !range->fitsI32() ||
          (isa<arith::UIToFPOp>(op) && range->lo < 0))
        return;
      Value f = arith::SIToFPOp::create(b, loc, op->getResult(0).getType(), narrowed(b, x));
      op->getResult(0).replaceAllUsesWith(f);
      op->erase();
      return;
    }
    if (auto fptosi = dyn_cast<arith::FPToSIOp>(op)) {
      if (!isWideInt(fptosi.getType()) || !fits(fptosi.getResult()))
        return;
      Value n = arith::FPToSIOp::create(b, loc, i32, fptosi.getIn());
      replaceWide(b, op, n);
      return;
    }
    bool cmp = isa<arith::CmpIOp>(op);
    bool arithmetic = isa<arith::AddIOp, arith::SubIOp, arith::MulIOp, arith::DivSIOp,
                          arith::RemSIOp, arith::MaxSIOp, arith::MinSIOp>(op);
    auto sel = dyn_cast<arith::SelectOp>(op);
    if (!cmp && !arithmetic && !sel)
      return;
    SmallVector<Value> ints = sel ? SmallVector<Value>{sel.getTrueValue(), sel.getFalseValue()}
                                  : SmallVector<Value>(op->getOperands());
    if (!isWideInt(ints[0].getType()))
      return;
    for (Value x : ints)
      if (!fits(x))
        return;
    if (!cmp && !fits(op->getResult(0)))
      return;
    SmallVector<Value> operands;
    for (Value x : op->getOperands())
      operands.push_back(x.getType() == ints[0].getType() ? narrowed(b, x) : x);
    Type result = cmp ? op->getResult(0).getType() : i32;
    OperationState state(loc, op->getName(), operands, {result}, op->getAttrs());
    Operation *n = b.create(state);
    if (cmp) {
      op->getResult(0).replaceAllUsesWith(n->getResult(0));
      op->erase();
      return;
    }
    replaceWide(b, op, n->getResult(0));
  }

  /// Replaces `op`'s wide result by the sign extension of its i32 form `n`.
  void replaceWide(OpBuilder &b, Operation *op, Value n) {
    Value old = op->getResult(0);
    Value wide = old.getType().isIndex()
                     ? arith::IndexCastOp::create(b, op->getLoc(), old.getType(), n).getResult()
                     : arith::ExtSIOp::create(b, op->getLoc(), old.getType(), n).getResult();
    ranges[wide] = ranges.lookup(old);
    narrow[wide] = n;
    old.replaceAllUsesWith(wide);
    op->erase();
  }
};

struct AttnGPUNarrowIndexPass
    : mlir::attngpu::impl::AttnGPUNarrowIndexBase<AttnGPUNarrowIndexPass> {
  void runOnOperation() override {
    getOperation().walk([](Operation *op) {
      if (auto score = dyn_cast<ScoreOp>(op)) {
        Narrower(score.getScore().front()).run();
        // An exactly affine mask keeps its index form: the lowering reads its key bounds
        // (attn-mask-bounds' analysis) to let fully allowed tiles skip it.
        bool exact = false;
        if (!score.getMask().empty()) {
          mlir::attn::analyzeMaskBounds(score.getMask(), exact);
          if (!exact)
            Narrower(score.getMask().front()).run();
        }
      } else if (auto grad = dyn_cast<ScoreGradOp>(op)) {
        Narrower(grad.getScoreGrad().front()).run();
      }
    });
  }
};

} // namespace
