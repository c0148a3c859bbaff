// Interval evaluation of a mask region (MaskInterval.h).
#include "dialect/MaskInterval.h"

#include "dialect/AttnDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Matchers.h"

#include <algorithm>
#include <limits>

using namespace mlir;
using namespace mlir::attn;

namespace {

/// The largest magnitude, in bits, an i64 evaluation step may reach: sums and products of
/// values below 2^62 cannot wrap in i64.
constexpr int kMaxBits = 62;

int widthOf(Type t) {
  if (t.isIndex())
    return 64;
  auto it = dyn_cast<IntegerType>(t);
  return it ? int(it.getWidth()) : 0;
}

int bitsOf(int64_t c) {
  uint64_t mag = c < 0 ? uint64_t(-(c + 1)) + 1 : uint64_t(c);
  int bits = 1;
  while (bits < 64 && (mag >> (bits - 1)))
    ++bits;
  return bits;
}

} // namespace

bool mlir::attn::maskReadsParams(Region &mask) {
  return mask.walk([](memref::LoadOp) { return WalkResult::interrupt(); }).wasInterrupted();
}

bool mlir::attn::maskReadsHead(Region &mask) {
  return !mask.empty() && !mask.front().getArgument(1).use_empty();
}

MaskIntervals::MaskIntervals(Region &mask, const IRMapping &captures)
    : mask(mask), captures(captures), loc(UnknownLoc::get(mask.getContext())) {
  Block &block = mask.front();
  keyDependent.insert(block.getArgument(3));
  block.walk([&](Operation *op) {
    bool dependent = op->getNumRegions() > 0;
    for (Value operand : op->getOperands())
      dependent |= keyDependent.contains(operand);
    if (dependent)
      for (Value r : op->getResults())
        keyDependent.insert(r);
  });
}

Value MaskIntervals::i64(int64_t c) {
  return arith::ConstantIntOp::create(*b, loc, b->getI64Type(), c);
}
Value MaskIntervals::i1(bool c) { return arith::ConstantIntOp::create(*b, loc, b->getI1Type(), c); }

Value MaskIntervals::toI64(Value v) {
  if (v.getType().isIndex())
    return arith::IndexCastOp::create(*b, loc, b->getI64Type(), v);
  if (widthOf(v.getType()) < 64)
    return arith::ExtSIOp::create(*b, loc, b->getI64Type(), v);
  return v;
}

void MaskIntervals::emitQuery(OpBuilder &builder, Location at, Value batch, Value hLo, Value hHi,
                              Value iLo, Value iHi) {
  b = &builder;
  loc = at;
  Block &block = mask.front();
  auto set = [&](unsigned arg, Value lo, Value hi) {
    Ints x{toI64(lo), lo == hi ? Value() : toI64(hi), 31, lo == hi};
    if (!x.hi)
      x.hi = x.lo;
    ints[block.getArgument(arg)] = x;
  };
  set(0, batch, batch);
  set(1, hLo, hHi);
  set(2, iLo, iHi);
  for (Operation &op : block.without_terminator())
    if (!llvm::any_of(op.getResults(), [&](Value r) { return keyDependent.contains(r); }))
      evaluate(&op);
}

std::pair<Value, Value> MaskIntervals::emitKey(OpBuilder &builder, Location at, Value j) {
  b = &builder;
  loc = at;
  Block &block = mask.front();
  Value j64 = toI64(j);
  ints[block.getArgument(3)] = Ints{j64, j64, 31, true};
  for (Operation &op : block.without_terminator())
    if (llvm::any_of(op.getResults(), [&](Value r) { return keyDependent.contains(r); }))
      evaluate(&op);
  Bools out = boolOf(block.getTerminator()->getOperand(0));
  return {out.may, out.must};
}

std::optional<MaskIntervals::Ints> MaskIntervals::intOf(Value v) {
  if (auto it = ints.find(v); it != ints.end())
    return it->second;
  if (mask.isAncestor(v.getParentRegion()) || !widthOf(v.getType()) ||
      v.getType().isInteger(1))
    return std::nullopt;
  // A value from above the region: exact. Sizes and constants have known magnitudes.
  Value here = captures.lookupOrDefault(v);
  int bits = std::min(widthOf(v.getType()), 64);
  APInt c;
  if (matchPattern(v, m_ConstantInt(&c)))
    bits = bitsOf(c.getSExtValue());
  else if (v.getDefiningOp<memref::DimOp>())
    bits = 31;  // extents are below 2^31 (the runtime and the host runner check)
  Value x = toI64(here);
  Ints out{x, x, bits, true};
  ints[v] = out;
  return out;
}

MaskIntervals::Bools MaskIntervals::boolOf(Value v) {
  if (auto it = bools.find(v); it != bools.end())
    return it->second;
  if (!mask.isAncestor(v.getParentRegion()) && v.getType().isInteger(1)) {
    Value here = captures.lookupOrDefault(v);
    return bools[v] = Bools{here, here};
  }
  return Bools{i1(true), i1(false)};  // unknown: may hold, need not
}

Value MaskIntervals::andI(Value x, Value y) { return arith::AndIOp::create(*b, loc, x, y); }
Value MaskIntervals::orI(Value x, Value y) { return arith::OrIOp::create(*b, loc, x, y); }
Value MaskIntervals::notI(Value x) { return arith::XOrIOp::create(*b, loc, x, i1(true)); }
Value MaskIntervals::cmp(arith::CmpIPredicate p, Value x, Value y) {
  return arith::CmpIOp::create(*b, loc, p, x, y);
}
Value MaskIntervals::sel(Value c, Value x, Value y) {
  return arith::SelectOp::create(*b, loc, c, x, y);
}
Value MaskIntervals::smin(Value x, Value y) { return arith::MinSIOp::create(*b, loc, x, y); }
Value MaskIntervals::smax(Value x, Value y) { return arith::MaxSIOp::create(*b, loc, x, y); }
int MaskIntervals::limitOf(Value r) { return std::min(kMaxBits, widthOf(r.getType()) - 1); }

void MaskIntervals::evaluate(Operation *op) {
  if (op->getNumResults() != 1 || op->getNumRegions())
    return;  // unknown
  Value r = op->getResult(0);
  if (auto cst = dyn_cast<arith::ConstantOp>(op)) {
    auto attr = dyn_cast<IntegerAttr>(cst.getValue());
    if (!attr)
      return;
    if (r.getType().isInteger(1)) {
      Value c = i1(attr.getValue().getBoolValue());
      bools[r] = Bools{c, c};
      return;
    }
    Value c = i64(attr.getValue().getSExtValue());
    ints[r] = Ints{c, c, bitsOf(attr.getValue().getSExtValue()), true};
    return;
  }
  if (isa<memref::LoadOp>(op))
    return evaluateLoad(op);
  if (auto dim = dyn_cast<memref::DimOp>(op)) {  // a param's extent (a computed index's clamp)
    std::optional<int64_t> axis = dim.getConstantIndex();
    if (!axis || mask.isAncestor(dim.getSource().getParentRegion()))
      return;
    Value d = memref::DimOp::create(*b, loc, captures.lookupOrDefault(dim.getSource()), *axis);
    Value x = toI64(d);
    ints[r] = Ints{x, x, 32, true};  // extents are below 2^31
    return;
  }
  if (r.getType().isInteger(1))
    return evaluateBool(op);
  if (widthOf(r.getType()))  // floats and other types: unknown
    evaluateInt(op);
}

/// Comparisons, logic and selects of i1: whether the result may hold and must hold.
void MaskIntervals::evaluateBool(Operation *op) {
  Value r = op->getResult(0);
  if (auto c = dyn_cast<arith::CmpIOp>(op)) {
    auto x = intOf(c.getLhs()), y = intOf(c.getRhs());
    if (!x || !y)
      return;
    using P = arith::CmpIPredicate;
    Value may, must;
    P pred = c.getPredicate();
    bool isUnsigned = llvm::is_contained({P::ult, P::ule, P::ugt, P::uge}, pred);
    switch (pred) {
    case P::slt: case P::ult:
      may = cmp(P::slt, x->lo, y->hi), must = cmp(P::slt, x->hi, y->lo); break;
    case P::sle: case P::ule:
      may = cmp(P::sle, x->lo, y->hi), must = cmp(P::sle, x->hi, y->lo); break;
    case P::sgt: case P::ugt:
      may = cmp(P::sgt, x->hi, y->lo), must = cmp(P::sgt, x->lo, y->hi); break;
    case P::sge: case P::uge:
      may = cmp(P::sge, x->hi, y->lo), must = cmp(P::sge, x->lo, y->hi); break;
    case P::eq: case P::ne: {
      Value overlap = andI(cmp(P::sle, x->lo, y->hi), cmp(P::sle, y->lo, x->hi));
      Value same = andI(andI(cmp(P::eq, x->lo, x->hi), cmp(P::eq, y->lo, y->hi)),
                        cmp(P::eq, x->lo, y->lo));
      may = pred == P::eq ? overlap : notI(same);
      must = pred == P::eq ? same : notI(overlap);
      break;
    }
    }
    if (isUnsigned) {  // the signed reading holds when neither side can be negative
      Value nonNeg = andI(cmp(P::sge, x->lo, i64(0)), cmp(P::sge, y->lo, i64(0)));
      may = sel(nonNeg, may, i1(true));
      must = sel(nonNeg, must, i1(false));
    }
    bools[r] = Bools{may, must};
    return;
  }
  if (isa<arith::AndIOp, arith::OrIOp, arith::XOrIOp>(op)) {
    Bools x = boolOf(op->getOperand(0)), y = boolOf(op->getOperand(1));
    if (isa<arith::AndIOp>(op))
      bools[r] = Bools{andI(x.may, y.may), andI(x.must, y.must)};
    else if (isa<arith::OrIOp>(op))
      bools[r] = Bools{orI(x.may, y.may), orI(x.must, y.must)};
    else  // may differ: one may be true while the other may be false
      bools[r] = Bools{orI(andI(x.may, notI(y.must)), andI(notI(x.must), y.may)),
                       orI(andI(x.must, notI(y.may)), andI(notI(x.may), y.must))};
    return;
  }
  if (auto s = dyn_cast<arith::SelectOp>(op)) {
    Bools c = boolOf(s.getCondition()), x = boolOf(s.getTrueValue()),
          y = boolOf(s.getFalseValue());
    bools[r] = Bools{orI(andI(c.may, x.may), andI(notI(c.must), y.may)),
                     andI(orI(notI(c.may), x.must), orI(c.must, y.must))};
  }
}

/// Integer arithmetic: the interval of the result, or nothing where it could wrap.
void MaskIntervals::evaluateInt(Operation *op) {
  Value r = op->getResult(0);
  int limit = limitOf(r);
  auto operand = [&](unsigned n) { return intOf(op->getOperand(n)); };
  if (isa<arith::ExtSIOp, arith::IndexCastOp, arith::TruncIOp>(op)) {
    // Widening is exact; narrowing only when the value fits the narrower type.
    auto x = operand(0);
    bool widens = widthOf(r.getType()) >= widthOf(op->getOperand(0).getType());
    if (x && (widens || x->bits <= limit))
      ints[r] = *x;
    return;
  }
  if (isa<arith::AddIOp, arith::SubIOp, arith::MulIOp, arith::MinSIOp, arith::MaxSIOp>(op)) {
    auto x = operand(0), y = operand(1);
    if (!x || !y)
      return;
    Ints out;
    out.point = x->point && y->point;
    if (isa<arith::AddIOp>(op)) {
      out = Ints{arith::AddIOp::create(*b, loc, x->lo, y->lo),
                 arith::AddIOp::create(*b, loc, x->hi, y->hi), std::max(x->bits, y->bits) + 1,
                 out.point};
    } else if (isa<arith::SubIOp>(op)) {
      out = Ints{arith::SubIOp::create(*b, loc, x->lo, y->hi),
                 arith::SubIOp::create(*b, loc, x->hi, y->lo), std::max(x->bits, y->bits) + 1,
                 out.point};
    } else if (isa<arith::MulIOp>(op)) {
      auto mul = [&](Value p, Value q) { return arith::MulIOp::create(*b, loc, p, q).getResult(); };
      Value a = mul(x->lo, y->lo), c = mul(x->lo, y->hi), d = mul(x->hi, y->lo),
            e = mul(x->hi, y->hi);
      out = Ints{smin(smin(a, c), smin(d, e)), smax(smax(a, c), smax(d, e)), x->bits + y->bits,
                 out.point};
    } else {
      bool isMin = isa<arith::MinSIOp>(op);
      auto f = [&](Value p, Value q) { return isMin ? smin(p, q) : smax(p, q); };
      out = Ints{f(x->lo, y->lo), f(x->hi, y->hi), std::max(x->bits, y->bits), out.point};
    }
    if (out.bits <= limit)
      ints[r] = out;
    return;
  }
  if (isa<arith::DivSIOp>(op))
    return evaluateDiv(op);
  if (auto s = dyn_cast<arith::SelectOp>(op)) {
    Bools c = boolOf(s.getCondition());
    auto x = intOf(s.getTrueValue()), y = intOf(s.getFalseValue());
    if (!x || !y)
      return;
    Value onlyFalse = notI(c.may);
    Value lo = sel(c.must, x->lo, sel(onlyFalse, y->lo, smin(x->lo, y->lo)));
    Value hi = sel(c.must, x->hi, sel(onlyFalse, y->hi, smax(x->hi, y->hi)));
    ints[r] = Ints{lo, hi, std::max(x->bits, y->bits), false};
  }
}

/// x / y for a divisor that is positive over its whole interval: truncation is monotone in
/// both, so the corners bound it; otherwise |x / y| <= |x| (the language's guarded division
/// gives 0 for y = 0 and -x for y = -1, both within it).
void MaskIntervals::evaluateDiv(Operation *op) {
  Value r = op->getResult(0);
  auto x = intOf(op->getOperand(0)), y = intOf(op->getOperand(1));
  if (!x || !y || x->bits >= limitOf(r))
    return;
  Value positive = cmp(arith::CmpIPredicate::sgt, y->lo, i64(0));
  Value ylo = sel(positive, y->lo, i64(1)), yhi = sel(positive, y->hi, i64(1));
  auto div = [&](Value p, Value q) { return arith::DivSIOp::create(*b, loc, p, q).getResult(); };
  Value a = div(x->lo, ylo), c = div(x->lo, yhi), d = div(x->hi, ylo), e = div(x->hi, yhi);
  int64_t bound = (int64_t(1) << x->bits) - 1;
  Value lo = sel(positive, smin(smin(a, c), smin(d, e)), i64(-bound));
  Value hi = sel(positive, smax(smax(a, c), smax(d, e)), i64(bound));
  ints[r] = Ints{lo, hi, x->bits, false};
}

/// A param read: exact at point indices; at one index that is the query (or head) interval
/// itself, the min and max over it (the interval lies in range: the tile's rows in range).
void MaskIntervals::evaluateLoad(Operation *op) {
  auto load = cast<memref::LoadOp>(op);
  Type elt = load.getType();
  int width = widthOf(elt);
  if (!width || width > 32 || elt.isInteger(1))
    return;  // floats, bools and i64 params: unknown
  Block &block = mask.front();
  Value mem = captures.lookupOrDefault(load.getMemRef());
  SmallVector<Value> at;
  int spread = -1;
  Value exact;  // computed indices that must be one in-range value here, at run time
  for (auto [n, index] : llvm::enumerate(load.getIndices())) {
    auto x = intOf(index);
    if (!x)
      return;
    Value lo = arith::IndexCastOp::create(*b, loc, b->getIndexType(), x->lo);
    bool interval = index == block.getArgument(1) || index == block.getArgument(2);
    if (!x->point && interval) {
      if (spread >= 0)
        return;  // two spread indices
      spread = int(n);
    } else if (!x->point) {
      // e.g. layout[b, h, i / 128, j / 128] over a tile inside one block: exact when the
      // interval is one value inside the axis, else unknown; read at 0 otherwise (the
      // runtime refuses empty gathered axes).
      using P = arith::CmpIPredicate;
      Value extent = toI64(memref::DimOp::create(*b, loc, mem, int64_t(n)));
      Value one = arith::AndIOp::create(
          *b, loc, arith::CmpIOp::create(*b, loc, P::eq, x->lo, x->hi),
          arith::AndIOp::create(*b, loc, arith::CmpIOp::create(*b, loc, P::sge, x->lo, i64(0)),
                                arith::CmpIOp::create(*b, loc, P::slt, x->lo, extent)));
      exact = exact ? arith::AndIOp::create(*b, loc, exact, one).getResult() : one;
      lo = arith::SelectOp::create(*b, loc, one, lo, arith::ConstantIndexOp::create(*b, loc, 0));
    }
    at.push_back(lo);
  }
  if (exact && spread >= 0)
    return;  // a computed index beside a spread one: unknown
  auto read = [&](OpBuilder &ob, ValueRange idx) {
    Value v = memref::LoadOp::create(ob, loc, mem, idx);
    return arith::ExtSIOp::create(ob, loc, ob.getI64Type(), v).getResult();
  };
  if (exact) {
    Value v = read(*b, at);
    int64_t bound = int64_t(1) << (width - 1);
    ints[load.getResult()] = Ints{arith::SelectOp::create(*b, loc, exact, v, i64(-bound)),
                                  arith::SelectOp::create(*b, loc, exact, v, i64(bound - 1)),
                                  width, false};
    return;
  }
  if (spread < 0) {
    Value v = read(*b, at);
    ints[load.getResult()] = Ints{v, v, width, true};
    return;
  }
  auto x = *intOf(load.getIndices()[size_t(spread)]);
  Value from = at[size_t(spread)];
  Value to = arith::AddIOp::create(
      *b, loc, arith::IndexCastOp::create(*b, loc, b->getIndexType(), x.hi),
      arith::ConstantIndexOp::create(*b, loc, 1));
  Value one = arith::ConstantIndexOp::create(*b, loc, 1);
  auto loop = scf::ForOp::create(
      *b, loc, from, to, one,
      ValueRange{i64(std::numeric_limits<int64_t>::max()), i64(std::numeric_limits<int64_t>::min())},
      [&](OpBuilder &nb, Location l, Value iv, ValueRange acc) {
        SmallVector<Value> idx = at;
        idx[size_t(spread)] = iv;
        Value v = read(nb, idx);
        scf::YieldOp::create(nb, l, ValueRange{arith::MinSIOp::create(nb, l, acc[0], v),
                                               arith::MaxSIOp::create(nb, l, acc[1], v)});
      });
  ints[load.getResult()] = Ints{loop.getResult(0), loop.getResult(1), width, false};
}

KeyScan mlir::attn::scanKeyRange(OpBuilder &b, Location loc, TileKeyRangeOp op,
                                 const IRMapping &map, Value from, Value step) {
  auto idx = [&](int64_t c) { return arith::ConstantIndexOp::create(b, loc, c).getResult(); };
  auto get = [&](Value v) { return map.lookupOrDefault(v); };
  Value qLen = get(op.getQLen()), kvLen = get(op.getKvLen()), i0 = get(op.getI0());
  Value h = get(op.getH());
  int64_t pack = op.getPack();
  // Rows [i0, i0 + rows) in range hold queries [i0 / pack, min((i0 + rows - 1) / pack,
  // q_len - 1)] of heads [h, h + pack - 1].
  Value iLo = arith::DivUIOp::create(b, loc, i0, idx(pack));
  Value iHi = arith::DivUIOp::create(b, loc, arith::AddIOp::create(b, loc, i0, idx(op.getRows() - 1)),
                                     idx(pack));
  iHi = arith::MinUIOp::create(b, loc, iHi, arith::SubIOp::create(b, loc, qLen, idx(1)));
  Value hHi = pack > 1 ? arith::AddIOp::create(b, loc, h, idx(pack - 1)).getResult() : h;
  MaskIntervals eval(op.getMask(), map);
  eval.emitQuery(b, loc, get(op.getB()), h, hHi, iLo, iHi);
  KeyScan init{kvLen, idx(0), kvLen, idx(0), idx(0)};
  auto loop = scf::ForOp::create(
      b, loc, from, kvLen, step, init.values(),
      [&](OpBuilder &nb, Location l, Value j, ValueRange acc) {
        auto [may, must] = eval.emitKey(nb, l, j);
        auto sel = [&](Value c, Value x, Value y) {
          return arith::SelectOp::create(nb, l, c, x, y).getResult();
        };
        Value one = arith::ConstantIndexOp::create(nb, l, 1);
        Value end = arith::AddIOp::create(nb, l, j, one);
        // Keys ascend in a scan: the first hit stays, the last one moves the end.
        SmallVector<Value> next = {
            sel(may, arith::MinUIOp::create(nb, l, acc[0], j), acc[0]), sel(may, end, acc[1]),
            sel(must, arith::MinUIOp::create(nb, l, acc[2], j), acc[2]), sel(must, end, acc[3]),
            sel(must, arith::AddIOp::create(nb, l, acc[4], one), acc[4])};
        scf::YieldOp::create(nb, l, next);
      });
  auto r = loop.getResults();
  return KeyScan{r[0], r[1], r[2], r[3], r[4]};
}

KeyRange mlir::attn::finishKeyRange(OpBuilder &b, Location loc, TileKeyRangeOp op,
                                    const KeyScan &scan) {
  auto idx = [&](int64_t c) { return arith::ConstantIndexOp::create(b, loc, c).getResult(); };
  auto eq = [&](Value x, Value y) {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, x, y).getResult();
  };
  auto sel = [&](Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y).getResult();
  };
  Value tile = arith::MulIOp::create(
      b, loc, arith::DivUIOp::create(b, loc, scan.first, idx(op.getBlockK())), idx(op.getBlockK()));
  Value none = eq(scan.end, idx(0));
  // Contiguous: as many keys as the range spans (and at least one).
  Value span = arith::SubIOp::create(b, loc, scan.fullEnd, scan.fullFirst);
  Value contiguous = arith::AndIOp::create(
      b, loc, eq(span, scan.fullCount),
      arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, scan.fullCount, idx(0)));
  return KeyRange{sel(none, idx(0), tile), scan.end, sel(contiguous, scan.fullFirst, idx(0)),
                  sel(contiguous, scan.fullEnd, idx(0))};
}
