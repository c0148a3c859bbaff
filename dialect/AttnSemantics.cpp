// The op-level definitions both back ends share (declared in AttnDialect.h): the causal mask's
// recognition, a score's constant scale, the log decay, the paged-KV lookups, packed rows,
// region inlining and the loads of quantised storage.
#include "dialect/AttnDialect.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Builders.h"

using namespace mlir;
using namespace mlir::attn;

bool mlir::attn::isCausalMask(Region &mask, bool strict) {
  if (mask.empty())
    return false;
  Block &block = mask.front();
  auto yield = dyn_cast<YieldOp>(block.getTerminator());
  if (!yield || yield.getValues().size() != 1 || block.getNumArguments() != 4)
    return false;
  auto cmp = yield.getValues()[0].getDefiningOp<arith::CmpIOp>();
  if (!cmp || cmp->getBlock() != &block)
    return false;
  auto p = cmp.getPredicate();
  bool matches = strict ? p == arith::CmpIPredicate::ult || p == arith::CmpIPredicate::slt
                        : p == arith::CmpIPredicate::ule || p == arith::CmpIPredicate::sle;
  return matches && cmp.getLhs() == block.getArgument(3) && cmp.getRhs() == block.getArgument(2);
}

/// The value of a region's float computed from constants alone (arith.constant, casts,
/// products, quotients, sums, negations, sqrt, rsqrt), if it is one.
static std::optional<double> evaluateConstant(Value v) {
  Operation *op = v.getDefiningOp();
  if (!op)
    return std::nullopt;
  if (auto c = dyn_cast<arith::ConstantOp>(op)) {
    if (auto i = dyn_cast<IntegerAttr>(c.getValue()))
      return double(i.getValue().getSExtValue());
    auto f = dyn_cast<FloatAttr>(c.getValue());
    return f ? std::optional<double>(f.getValueAsDouble()) : std::nullopt;
  }
  SmallVector<double, 2> x;
  for (Value operand : op->getOperands()) {
    std::optional<double> value = evaluateConstant(operand);
    if (!value)
      return std::nullopt;
    x.push_back(*value);
  }
  if (isa<arith::IndexCastOp, arith::SIToFPOp, arith::ExtFOp, arith::TruncFOp>(op))
    return x[0];
  if (isa<math::SqrtOp>(op))
    return std::sqrt(x[0]);
  if (isa<math::RsqrtOp>(op))
    return 1 / std::sqrt(x[0]);
  if (isa<arith::NegFOp>(op))
    return -x[0];
  if (isa<arith::MulFOp>(op))
    return x[0] * x[1];
  if (isa<arith::DivFOp>(op))
    return x[0] / x[1];
  if (isa<arith::AddFOp>(op))
    return x[0] + x[1];
  if (isa<arith::SubFOp>(op))
    return x[0] - x[1];
  return std::nullopt;
}

/// C > 0 when the score region is exactly dot * C (or C * dot) for a constant C: then
/// max(dot * C) = C max(dot), and the softmax takes the raw dot with C folded into its
/// exp2's one fma (FlashAttention's softmax_scale_log2); 0 otherwise.
double mlir::attn::positiveScoreScale(Region &score) {
  if (!llvm::hasSingleElement(score))
    return 0;
  Block &body = score.front();
  auto yield = dyn_cast<YieldOp>(body.getTerminator());
  if (!yield || yield->getNumOperands() != 1 || body.getNumArguments() < 5)
    return 0;
  auto mul = yield->getOperand(0).getDefiningOp<arith::MulFOp>();
  Value dot = body.getNumArguments() > 4 ? body.getArgument(4) : Value();
  if (!mul || (mul.getLhs() != dot && mul.getRhs() != dot))
    return 0;
  std::optional<double> c = evaluateConstant(mul.getLhs() == dot ? mul.getRhs() : mul.getLhs());
  return c && *c > 0 && std::isfinite(*c) ? *c : 0;
}

Value mlir::attn::buildLogDecay(OpBuilder &b, Location loc, Value gamma) {
  if (auto exp = gamma.getDefiningOp<math::ExpOp>())
    return exp.getOperand();
  return math::LogOp::create(b, loc, gamma);
}

Value mlir::attn::buildKVLength(OpBuilder &b, Location loc, Value kv, Value table,
                                int64_t pageSize) {
  if (!table)
    return memref::DimOp::create(b, loc, kv, 2);
  Value pages = memref::DimOp::create(b, loc, table, 1);
  return arith::MulIOp::create(b, loc, pages, arith::ConstantIndexOp::create(b, loc, pageSize));
}

Value mlir::attn::buildPageLookup(OpBuilder &b, Location loc, Value table, Value pool,
                                  Value batch, Value j, int64_t pageSize) {
  auto idx = [&](int64_t x) { return arith::ConstantIndexOp::create(b, loc, x).getResult(); };
  auto last = [&](Value mem, int64_t axis) {
    return arith::AddIOp::create(b, loc, memref::DimOp::create(b, loc, mem, axis), idx(-1));
  };
  Value entry = arith::DivUIOp::create(b, loc, j, idx(pageSize));
  entry = arith::MinUIOp::create(b, loc, entry, last(table, 1));
  Value page = memref::LoadOp::create(b, loc, table, ValueRange{batch, entry});
  page = arith::IndexCastOp::create(b, loc, b.getIndexType(), page);
  page = arith::MaxSIOp::create(b, loc, page, idx(0));
  return arith::MinUIOp::create(b, loc, page, last(pool, 0));
}

std::pair<Value, Value> mlir::attn::buildPackedRow(OpBuilder &b, Location loc, Value h, Value p,
                                                   int64_t pack) {
  if (pack == 1)
    return {h, p};
  Value g = arith::ConstantIndexOp::create(b, loc, pack);
  return {arith::AddIOp::create(b, loc, h, arith::RemUIOp::create(b, loc, p, g)),
          arith::DivUIOp::create(b, loc, p, g)};
}

Value mlir::attn::buildInlinedRegion(OpBuilder &b, Region &region, ValueRange args,
                                     const IRMapping &outside) {
  IRMapping map = outside;
  Block &block = region.front();
  map.map(block.getArguments(), args);
  for (Operation &op : block.without_terminator())
    b.clone(op, map);
  return map.lookupOrDefault(block.getTerminator()->getOperand(0));
}

int64_t mlir::attn::packingOf(MemRefType t) {
  auto packed = dyn_cast<VectorType>(t.getElementType());
  return packed ? packed.getNumElements() : 1;
}

int64_t mlir::attn::valuesAlong(MemRefType t, unsigned axis) {
  int64_t extent = t.getDimSize(axis);
  if (ShapedType::isDynamic(extent) || axis + 1 != unsigned(t.getRank()))
    return extent;
  return extent * packingOf(t);
}

Value mlir::attn::buildLoadStored(OpBuilder &b, Location loc, Value mem, ValueRange idx) {
  auto type = cast<MemRefType>(mem.getType());
  int64_t packing = packingOf(type);
  if (packing == 1)
    return memref::LoadOp::create(b, loc, mem, idx);
  SmallVector<Value> at(idx);
  Value p = arith::ConstantIndexOp::create(b, loc, packing);
  Value lane = arith::RemUIOp::create(b, loc, at.back(), p);
  at.back() = arith::DivUIOp::create(b, loc, at.back(), p);
  Value pair = memref::LoadOp::create(b, loc, mem, at);
  return vector::ExtractOp::create(b, loc, pair, OpFoldResult(lane));
}

Value mlir::attn::buildDequantToF32(OpBuilder &b, Location loc, Value x) {
  Type f32 = b.getF32Type();
  if (x.getType().isInteger(8) || x.getType().isInteger(4))
    return arith::SIToFPOp::create(b, loc, f32, x);
  if (!isa<Float8E4M3FNType>(x.getType()))
    return x.getType() == f32 ? x : arith::ExtFOp::create(b, loc, f32, x).getResult();
  auto i32 = [&](int64_t v) { return arith::ConstantIntOp::create(b, loc, v, 32).getResult(); };
  Value bits = arith::BitcastOp::create(b, loc, b.getI8Type(), x);
  Value wide = arith::ExtUIOp::create(b, loc, b.getI32Type(), bits);
  Value sign = arith::ShLIOp::create(b, loc, arith::AndIOp::create(b, loc, wide, i32(0x80)),
                                     i32(8));
  Value mag = arith::ShLIOp::create(b, loc, arith::AndIOp::create(b, loc, wide, i32(0x7f)),
                                    i32(7));
  Value half = arith::TruncIOp::create(b, loc, b.getI16Type(),
                                       arith::OrIOp::create(b, loc, sign, mag));
  Value f16 = arith::BitcastOp::create(b, loc, b.getF16Type(), half);
  Value f = arith::ExtFOp::create(b, loc, f32, f16);
  return arith::MulFOp::create(b, loc, f,
                               arith::ConstantOp::create(b, loc, b.getF32FloatAttr(256.0f)));
}
