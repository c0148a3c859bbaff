// The `attn` dialect: declarations generated from AttnDialect.td and AttnOps.td.
#pragma once

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
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
