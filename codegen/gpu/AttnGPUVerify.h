// Checks the attn_gpu verifiers share (AttnGPUDialect.cpp, AttnGPUVerifiers.cpp).
#pragma once

#include "codegen/gpu/AttnGPUDialect.h"

namespace mlir::attngpu::detail {

/// Checks that `type` is a fragment of layout `kind` (rank 2 for acc / operand_a, 1 for rows,
/// rows a multiple of 16, columns of 8 (acc) or 16 (operand_a)).
LogicalResult checkFragment(Operation *op, Type type, FragmentKind kind, StringRef what);
bool isWorkgroup(MemRefType type);
/// `tile` is in shared memory (#gpu.address_space<workgroup>).
LogicalResult checkShared(Operation *op, Value tile, StringRef what);

} // namespace mlir::attngpu::detail
