// The `attn` dialect: declarations generated from AttnDialect.td and AttnOps.td.
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/ControlFlowInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialect/AttnEnums.h.inc"
#include "dialect/AttnDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialect/AttnAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialect/AttnOps.h.inc"

namespace mlir::attn {
/// The key range of a k or v operand: dim(kv, 2), or for a page pool with block table `table`
/// (non-null), dim(table, 1) * pageSize.
Value buildKVLength(OpBuilder &b, Location loc, Value kv, Value table, int64_t pageSize);

/// log gamma of a decay or gate factor; exactly x when gamma = exp(x), so a decay written as the
/// exp of log gates (`decay exp(log_f[b, h, i])`) keeps its range (no exp underflowing to 0
/// and a log of 0). The one definition of a log decay, used by attn-tile and both lowerings.
Value buildLogDecay(OpBuilder &b, Location loc, Value gamma);

/// Whether a mask region (b, h, i, j) is exactly `j <= i` (the causal mask of a recurrence), or
/// with `strict` exactly `j < i` (a strict-causal recurrence's): one cmpi of j against i.
bool isCausalMask(Region &mask, bool strict);

/// C > 0 when a score region is exactly dot * C (or C * dot) for a constant C (constant
/// expressions folded: 1 / sqrt(128)); 0 otherwise. The softmax then takes the raw dot with C
/// folded into its exp2 (attn-gpu-distribute), and such a variant is plain attention.
double positiveScoreScale(Region &score);

/// The page of the pool `pool` that holds key j of batch b in a paged k or v:
/// table[b, min(j / P, dim(table, 1) - 1)], clamped into [0, dim(pool, 0) - 1] so that a bad
/// table entry cannot read outside the pool. The key's row in the page is j % P. The one
/// definition of paging, used by the CPU and the GPU lowerings.
Value buildPageLookup(OpBuilder &b, Location loc, Value table, Value pool, Value batch, Value j,
                      int64_t pageSize);

/// (head, query) of row p of a GQA-packed tile (attn-pack-gqa): (h + p % pack, p / pack), or
/// (h, p) unpacked. The one definition of the packed row mapping, used by every lowering.
std::pair<Value, Value> buildPackedRow(OpBuilder &b, Location loc, Value h, Value p,
                                       int64_t pack);

/// Clones the body of a single-block region (a score, mask, feature, decay... region, ended by
/// a yield of one value) at `b`'s insertion point with its arguments bound to `args` (and
/// outside values through `outside`); returns the yielded value. Every lowering inlines
/// regions with it.
Value buildInlinedRegion(OpBuilder &b, Region &region, ValueRange args,
                         const IRMapping &outside = IRMapping());
} // namespace mlir::attn

namespace mlir::attn {
/// An element of a quantised k or v as f32 (no scale): i8 and i4 by sitofp, e4m3fn by integer
/// arithmetic (its 7 magnitude bits placed in an f16, scaled by 2^8: exact for normals,
/// subnormals and zero; the NaN code reads as 480), so no back end needs f8 support.
Value buildDequantToF32(OpBuilder &b, Location loc, Value x);

/// Values per element of a memref: 2 for packed i4 storage (element vector<2xi4>, one byte,
/// low nibble first), else 1. Only the last axis is packed.
int64_t packingOf(MemRefType t);
/// Extent of `axis` of `t` in values (kDynamic if unknown): a packed last axis holds
/// packingOf(t) values per element.
int64_t valuesAlong(MemRefType t, unsigned axis);
/// The stored value at `idx` of `mem`, whose last index counts values: a scalar of the element
/// type, or of packed i4 storage the i4 nibble (element idx / 2, lane idx % 2).
Value buildLoadStored(OpBuilder &b, Location loc, Value mem, ValueRange idx);
} // namespace mlir::attn

namespace mlir::attn {
/// attn.tile_online_update's unified max: a row without mass starts below it only when its
/// scores are this far below it (e^-64 is well inside f32), so no exponential underflows.
inline constexpr float kUnifiedMaxRange = 64.0f;
} // namespace mlir::attn
