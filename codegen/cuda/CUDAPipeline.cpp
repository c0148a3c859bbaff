// The device lowering after attn-gpu-to-nvvm: gpu/nvgpu/nvvm/vector -> LLVM dialect ->
// LLVM NVPTX -> PTX, in process (gpu-module-to-binary, format=isa).
#include "codegen/cuda/Passes.h"

#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVGPUToNVVM/NVGPUToNVVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Transforms/Passes.h"
#include "codegen/gpu/AttnGPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Pass/Pass.h"

namespace {
using namespace mlir;
/// A kernel's tensor maps (its launch's `tensor_maps`, its last parameters) are CUtensorMap
/// structs passed by value as grid constants: 128 bytes, 64-byte aligned, whose address the
/// kernel takes (cvta.param) for cp.async.bulk.tensor. The GPU-to-NVVM conversion keeps no
/// byval attribute, so the kernel's LLVM function gets them here.
struct MarkTensorMapParams
    : PassWrapper<MarkTensorMapParams, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(MarkTensorMapParams)
  StringRef getArgument() const override { return "attn-mark-tensor-map-params"; }
  void runOnOperation() override {
    auto launches =
        getOperation()->getAttrOfType<DictionaryAttr>(attngpu::kLaunchesAttrName);
    if (!launches)
      return;
    MLIRContext *ctx = &getContext();
    getOperation().walk([&](LLVM::LLVMFuncOp f) {
      auto launch = dyn_cast_or_null<attngpu::LaunchAttr>(launches.get(f.getName()));
      size_t maps = launch ? launch.getTensorMaps().size() : 0;
      unsigned n = f.getNumArguments();
      if (!maps || maps > n)
        return;
      auto blob = LLVM::LLVMArrayType::get(IntegerType::get(ctx, 8), 128);
      for (unsigned i = n - unsigned(maps); i < n; ++i) {
        f.setArgAttr(i, LLVM::LLVMDialect::getByValAttrName(), TypeAttr::get(blob));
        f.setArgAttr(i, LLVM::LLVMDialect::getAlignAttrName(),
                     IntegerAttr::get(IntegerType::get(ctx, 64), 64));
        f.setArgAttr(i, NVVM::NVVMDialect::getGridConstantAttrName(), UnitAttr::get(ctx));
      }
    });
  }
};
} // namespace

void mlir::attn::buildCUDAToPTXPipeline(OpPassManager &pm) {
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  pm.addPass(createConvertNVGPUToNVVMPass());
  // After attn-gpu-to-nvvm only kernels remain, so the module-anchored conversions run at
  // the top level; the GPU ops conversion is anchored on gpu.module.
  pm.addPass(createSCFToControlFlowPass());
  pm.addNestedPass<gpu::GPUModuleOp>(createConvertGpuOpsToNVVMOps());
  pm.addPass(std::make_unique<MarkTensorMapParams>());
  pm.addPass(createConvertNVVMToLLVMPass());
  pm.addPass(createConvertVectorToLLVMPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createFinalizeMemRefToLLVMConversionPass());
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  GpuModuleToBinaryPassOptions binary;
  binary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
}

mlir::LogicalResult mlir::attn::extractPTX(ModuleOp module,
                                           std::map<std::string, std::string> &ptx) {
  ptx.clear();
  for (auto binary : module.getOps<gpu::BinaryOp>()) {
    StringRef name = binary.getName();
    name.consume_back("_kernels");
    for (Attribute object : binary.getObjects())
      if (auto obj = dyn_cast<gpu::ObjectAttr>(object))
        ptx[name.str()] += obj.getObject().getValue().str();
  }
  if (ptx.empty())
    return module.emitError("no PTX was produced (no kernel in the module?)");
  return success();
}
