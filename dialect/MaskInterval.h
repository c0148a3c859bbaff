// Interval evaluation of a mask region (b, h, i, j) -> i1 over a query tile: the block
// classification that attn.tile_key_range computes (docs/block-sparsity.md). Shared by the CPU
// lowering and the CUDA plan kernel, so both classify with the same IR.
#pragma once

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/Region.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::attn {

/// Whether the mask region reads a param (a memref.load): the masks that attn-mask-bounds
/// cannot read as affine bounds and that a block plan can narrow.
bool maskReadsParams(Region &mask);

/// Whether the mask region reads its head argument (the plan then differs per head).
bool maskReadsHead(Region &mask);

/// Emits the evaluation of a mask over a box: the batch and the key exact, the head in
/// [hLo, hHi] and the query in [iLo, iHi] (rows in range). The result `may` is false only
/// when the mask rejects the key for every (head, query) of the box, for any param values:
/// each integer value of the region is bounded by an interval [lo, hi] (i64, with a static
/// bound on its magnitude so that no step can wrap), each i1 by (may, must); a param read at
/// one interval index becomes the min and max it takes there (a loop over the index); what
/// cannot be bounded (floats, wrapping arithmetic, params read at two interval indices) is
/// unknown, and a comparison with an unknown operand may be true.
///
/// Two phases, so that a key loop re-evaluates only what depends on the key: `emitQuery`
/// (before the loop) evaluates every op that does not depend on j; `emitKey` (inside the
/// loop, at most once) the rest, returning `may`.
class MaskIntervals {
public:
  /// `captures` maps the values the region reads from above (params, sizes) to the values
  /// to use where the evaluation is emitted; unmapped ones are used as they are.
  MaskIntervals(Region &mask, const IRMapping &captures);

  void emitQuery(OpBuilder &b, Location loc, Value batch, Value hLo, Value hHi, Value iLo,
                 Value iHi);
  /// (may, must): whether the mask may allow key j for some (head, query) of the box, and
  /// whether it must allow it for all of them.
  std::pair<Value, Value> emitKey(OpBuilder &b, Location loc, Value j);

  /// An integer interval: lo <= x <= hi, |x| < 2^bits; `point` when lo and hi are one value.
  struct Ints {
    Value lo, hi;
    int bits = 64;
    bool point = false;
  };
  /// An i1: may be true, must be true.
  struct Bools {
    Value may, must;
  };

private:
  Region &mask;
  IRMapping captures;
  llvm::DenseSet<Value> keyDependent;
  llvm::DenseMap<Value, Ints> ints;
  llvm::DenseMap<Value, Bools> bools;
  OpBuilder *b = nullptr;
  Location loc;

  void evaluate(Operation *op);
  void evaluateBool(Operation *op);
  void evaluateInt(Operation *op);
  void evaluateDiv(Operation *op);
  void evaluateLoad(Operation *op);
  // i1 / i64 arithmetic at the builder's insertion point, for the bounds
  Value andI(Value x, Value y);
  Value orI(Value x, Value y);
  Value notI(Value x);
  Value cmp(arith::CmpIPredicate p, Value x, Value y);
  Value sel(Value c, Value x, Value y);
  Value smin(Value x, Value y);
  Value smax(Value x, Value y);
  /// The most bits a result of `r`'s type may use (its own width, at most kMaxBits), or the
  /// kernel's arithmetic would wrap where the interval's does not.
  int limitOf(Value r);
  std::optional<Ints> intOf(Value v);
  Bools boolOf(Value v);
  Value i64(int64_t c);
  Value i1(bool c);
  Value toI64(Value v);
};

class TileKeyRangeOp;

/// What a scan of keys found (index values): the first key the mask may allow (kv_len if
/// none) and one past the last (0 if none); the same for the keys it must allow for every
/// row, and how many those are. Partial scans combine by min, max, min, max and sum.
struct KeyScan {
  Value first, end, fullFirst, fullEnd, fullCount;
  SmallVector<Value> values() const { return {first, end, fullFirst, fullEnd, fullCount}; }
};

/// attn.tile_key_range's evaluation for the keys j = from, from + step, ... < kv_len, emitted
/// at `b` with the op's operands and captures mapped by `map`. A CUDA block runs it per thread
/// (from = the thread, step = the threads) and reduces; the CPU runs it once (0, 1).
KeyScan scanKeyRange(OpBuilder &b, Location loc, TileKeyRangeOp op, const IRMapping &map,
                     Value from, Value step);

/// The op's four results.
struct KeyRange {
  Value lower, upper, fullLower, fullUpper;
};

/// The op's results from a whole (reduced) scan: first rounded down to a whole key tile ((0, 0)
/// when no key may be allowed); the full range only when its keys are contiguous (their count
/// fills it), else (0, 0).
KeyRange finishKeyRange(OpBuilder &b, Location loc, TileKeyRangeOp op, const KeyScan &scan);

} // namespace mlir::attn
