// Passes of the `attn` dialect (declared in Passes.td).
#pragma once

#include "dialect/AttnDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::attn {

#define GEN_PASS_DECL
#include "dialect/transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "dialect/transforms/Passes.h.inc"

} // namespace mlir::attn
