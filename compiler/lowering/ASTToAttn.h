// Lowering of a checked spec (AST after Sema) to the `attn` dialect: one func.func per variant
// holding one attn.attention whose score and mask regions are built from the spec's expressions.
#pragma once

#include "compiler/frontend/Frontend.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace attnc {

/// The kernel ABI, in argument order: q, k, v (canonical order, free strides), the params in
/// declaration order, o, then lse (f32 [b, h, i], softmax only). Element types as declared.
struct KernelArg {
  enum class Kind { Q, K, V, Param, Out, Lse, State } kind;
  std::string name;
  /// Param: index into Variant::params; Q, K, V: into Variant::inputs; Lse: the score whose
  /// statistics it holds (0: "lse"; several scores: "lse_<score>" after the others).
  int index = -1;
};
std::vector<KernelArg> kernelArgs(const Variant &v);

/// Builds `func.func @<variant name>` for every variant in `file` into a new module. Returns null
/// and fills `diag` if a construct cannot be lowered (it names the spec location).
mlir::OwningOpRef<mlir::ModuleOp> lowerToAttn(mlir::MLIRContext &ctx, const SpecFile &file,
                                              Diagnostic &diag);

/// Adds `func.func @<v.name>_combine(part_out, part_lse, out, lse)` holding one attn.combine
/// (f32 [S, b, h, i, dv] and [S, b, h, i] partial results, out of the output's dtype, lse f32;
/// strided): the host entry of attnc_combine, ring attention's merge on the CPU back end.
void addCombineFunction(mlir::ModuleOp module, const Variant &v);

}  // namespace attnc
