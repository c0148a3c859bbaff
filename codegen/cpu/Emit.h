// Scalar loop code for the host lowerings (attn-cpu-lower-tiles, attn-cpu-lower-grad).
#pragma once

#include "dialect/AttnDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <limits>

namespace mlir::attn::cpu {

/// Emits scalar loop code at a builder's insertion point. Values are f32 unless said otherwise.
struct Emit {
  OpBuilder &b;
  Location loc;

  Value index(int64_t c) const { return arith::ConstantIndexOp::create(b, loc, c); }
  Value f32(float v) const { return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v)); }
  Value dim(Value mem, int64_t d) const { return memref::DimOp::create(b, loc, mem, d); }
  Value extent(Value mem, int64_t d) const {
    int64_t s = cast<MemRefType>(mem.getType()).getDimSize(d);
    return ShapedType::isDynamic(s) ? dim(mem, d) : index(s);
  }
  Value add(Value x, Value y) const { return arith::AddIOp::create(b, loc, x, y); }
  Value minIdx(Value x, Value y) const { return arith::MinUIOp::create(b, loc, x, y); }
  Value below(Value x, Value bound) const {
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, x, bound);
  }
  Value fadd(Value x, Value y) const { return arith::AddFOp::create(b, loc, x, y); }
  Value fmul(Value x, Value y) const { return arith::MulFOp::create(b, loc, x, y); }
  Value fsub(Value x, Value y) const { return arith::SubFOp::create(b, loc, x, y); }
  Value fmax(Value x, Value y) const { return arith::MaximumFOp::create(b, loc, x, y); }
  Value exp(Value x) const { return math::ExpOp::create(b, loc, x); }
  /// An index as f32 (a count: unsigned).
  Value indexToF32(Value x) const {
    return arith::UIToFPOp::create(b, loc, b.getF32Type(),
                                   arith::IndexCastUIOp::create(b, loc, b.getI64Type(), x));
  }
  /// An rmsnorm's factor 1 / sqrt(sumSquares / width + eps) of a row of `width` elements.
  Value rmsFactor(Value sumSquares, Value width, double eps) const {
    Value mean = arith::DivFOp::create(b, loc, sumSquares, indexToF32(width));
    return math::RsqrtOp::create(b, loc, fadd(mean, f32(float(eps))));
  }
  Value feq(Value x, Value y) const {
    return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ, x, y);
  }
  Value fgt(Value x, Value y) const {
    return arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT, x, y);
  }
  Value select(Value c, Value x, Value y) const { return arith::SelectOp::create(b, loc, c, x, y); }

  /// Loads an element as f32 (f16/bf16 are extended).
  Value load(Value mem, ValueRange ix) const {
    Value v = memref::LoadOp::create(b, loc, mem, ix);
    return v.getType().isF32() ? v : arith::ExtFOp::create(b, loc, b.getF32Type(), v).getResult();
  }
  /// Stores an f32, rounded to the buffer's element type.
  void store(Value v, Value mem, ValueRange ix) const {
    Type et = cast<MemRefType>(mem.getType()).getElementType();
    if (et != v.getType())
      v = arith::TruncFOp::create(b, loc, et, v);
    memref::StoreOp::create(b, loc, v, mem, ix);
  }

  void loop(Value ub, function_ref<void(Emit &, Value)> body) const {
    scf::ForOp::create(b, loc, index(0), ub, index(1), {},
                       [&](OpBuilder &nb, Location l, Value iv, ValueRange) {
                         Emit e{nb, l};
                         body(e, iv);
                         scf::YieldOp::create(nb, l);
                       });
  }
  Value reduce(Value ub, Value init, function_ref<Value(Emit &, Value, Value)> body) const {
    auto forOp = scf::ForOp::create(b, loc, index(0), ub, index(1), init,
                                    [&](OpBuilder &nb, Location l, Value iv, ValueRange acc) {
                                      Emit e{nb, l};
                                      scf::YieldOp::create(nb, l, body(e, iv, acc[0]));
                                    });
    return forOp.getResult(0);
  }
  void when(Value cond, function_ref<void(Emit &)> body) const {
    scf::IfOp::create(b, loc, cond, [&](OpBuilder &nb, Location l) {
      Emit e{nb, l};
      body(e);
      scf::YieldOp::create(nb, l);
    });
  }
  Value ifElse(Value cond, function_ref<Value(Emit &)> thenFn,
               function_ref<Value(Emit &)> elseFn) const {
    auto branch = [](function_ref<Value(Emit &)> fn) {
      return [fn](OpBuilder &nb, Location l) {
        Emit e{nb, l};
        scf::YieldOp::create(nb, l, fn(e));
      };
    };
    return scf::IfOp::create(b, loc, cond, branch(thenFn), branch(elseFn)).getResult(0);
  }
  /// Clones a score/mask region's body here with its block arguments bound to `args`.
  Value inlineRegion(Region &region, ValueRange args) const {
    return buildInlinedRegion(b, region, args);
  }
  /// A row-statistic base: m, or 0 where m is -inf (a row with no allowed key yet).
  Value safeBase(Value m) const {
    return select(feq(m, f32(-std::numeric_limits<float>::infinity())), f32(0), m);
  }
};

/// One attn.chunk_step as scalar loops at the builder's insertion point (CPULowerChunk.cpp).
void lowerChunkStep(Emit &e, ChunkStepOp op);

} // namespace mlir::attn::cpu
