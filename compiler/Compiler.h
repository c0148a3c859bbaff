// The C++ compile API: spec text (or saved .mlir) -> any stage of the pipeline -> text or a
// kernel loaded for the host. One Compiler owns one MLIRContext; errors come back as Diagnostics.
#pragma once

#include "compiler/Manifest.h"
#include "compiler/frontend/Frontend.h"
#include "compiler/pipeline/Pipeline.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

#include <map>
#include <memory>
#include <optional>
#include <string>

namespace attnc {

class CPUModule;

struct CompileOptions {
  PipelineOptions pipeline;
  /// Replaces the declared floating dtype of q, k, v and o (e.g. f32 for exact CPU checks).
  std::optional<DType> dtypeOverride;
  /// Fixes dynamic dims to static extents (`--set d=128`): the CUDA back end needs static
  /// head and value dims.
  std::vector<std::pair<std::string, int64_t>> staticDims;
  /// Overrides the page size of paged variants (`--page-size`); 0 keeps the spec's.
  int64_t pageSize = 0;
  /// Ring attention's block form (`--position-offsets`): every variant also takes the rank-0
  /// i32 params q_offset and k_offset, the global positions of its first query and key
  /// (addPositionOffsets, attn-position-offsets).
  bool positionOffsets = false;
  /// Replaces the output's dtype (`--out-dtype f32`: a ring block's partial result, merged in
  /// f32 by the combine kernel).
  std::optional<DType> outDType;
};

class Compiler {
public:
  Compiler();
  ~Compiler();

  /// Parses and checks a spec; the AST stays owned by the Compiler (spec()).
  bool loadSpec(const std::string &path, const std::string &text, Diagnostic &diag);
  const SpecFile &spec() const { return file; }

  /// AST -> attn dialect (applies the dtype override first).
  bool lowerToAttn(const CompileOptions &options, Diagnostic &diag);
  /// Parses a saved .mlir module (attn, tiled or LLVM level) instead of a spec.
  bool loadMLIR(const std::string &path, const std::string &text, Diagnostic &diag);

  /// Runs the pipeline from the level the module is at up to `to` (Attn, Tiled or LLVM).
  bool lowerTo(Stage to, const CompileOptions &options, Diagnostic &diag);

  mlir::ModuleOp module() { return *moduleOp; }
  Stage stage() const { return current; }
  std::string printModule();
  /// LLVM IR text of a module at the LLVM stage.
  bool printLLVMIR(std::string &out, Diagnostic &diag);

  /// The PTX of each variant (module at the PTX stage), keyed by variant name.
  bool ptxByVariant(std::map<std::string, std::string> &out, Diagnostic &diag);
  /// The launch ABI of each kernel (module at the PTX stage) as the lowering recorded it.
  std::map<std::string, KernelLaunch> launchesByKernel();

  /// JIT-compiles a module at the LLVM stage for the host.
  std::unique_ptr<CPUModule> loadOnCPU(Diagnostic &diag);

private:
  mlir::MLIRContext ctx;
  SpecFile file;
  mlir::OwningOpRef<mlir::ModuleOp> moduleOp;
  Stage current = Stage::AST;
  std::string sourcePath;
  bool applyStaticDims(const CompileOptions &options, Diagnostic &diag);
};

}  // namespace attnc
