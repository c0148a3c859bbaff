// Registration of attnc's dialects, passes and named pipelines (see Registration.h).
#include "compiler/Registration.h"

#include "codegen/cpu/Passes.h"
#include "compiler/pipeline/Pipeline.h"
#include "dialect/transforms/Passes.h"

#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

void attnc::registerAttncDialects(mlir::DialectRegistry &registry) {
  registry.insert<mlir::attn::AttnDialect, mlir::arith::ArithDialect, mlir::cf::ControlFlowDialect,
                  mlir::func::FuncDialect, mlir::LLVM::LLVMDialect, mlir::math::MathDialect,
                  mlir::memref::MemRefDialect, mlir::scf::SCFDialect, mlir::ub::UBDialect>();
  mlir::registerBuiltinDialectTranslation(registry);
  mlir::registerLLVMDialectTranslation(registry);
}

void attnc::registerAttncPasses() {
  mlir::attn::registerAttnPasses();
  mlir::attn::registerAttnCPUPasses();
  mlir::registerCanonicalizerPass();
  mlir::registerCSEPass();
  registerAttncPipelines();
}
