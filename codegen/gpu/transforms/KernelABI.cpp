// What every GPU kernel of attnc shares: its module and function, argument types, the strategy
// attribute, and the check that a kernel uses no value of the host function it replaces.
#include "codegen/gpu/transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

using namespace mlir;
using namespace mlir::attngpu;

std::optional<StrategyKind> mlir::attngpu::strategyOf(Operation *f) {
  if (auto attr = f->getAttrOfType<StrategyKindAttr>(kStrategyAttrName))
    return attr.getValue();
  return std::nullopt;
}

Type mlir::attngpu::kernelArgType(Type hostType, bool unitLastStride) {
  auto type = cast<MemRefType>(hostType);
  Type elt = attn::packingOf(type) > 1 ? IntegerType::get(type.getContext(), 8)
                                       : type.getElementType();
  if (!unitLastStride)
    return MemRefType::get(type.getShape(), elt, type.getLayout(), type.getMemorySpace());
  SmallVector<int64_t> strides(type.getRank(), ShapedType::kDynamic);
  strides.back() = 1;
  auto layout = StridedLayoutAttr::get(type.getContext(), ShapedType::kDynamic, strides);
  return MemRefType::get(type.getShape(), elt, layout);
}

gpu::GPUFuncOp mlir::attngpu::createKernel(OpBuilder &b, func::FuncOp f, ArrayRef<Value> tensors,
                                           StringRef chip) {
  Location loc = f.getLoc();
  MLIRContext *ctx = f.getContext();
  auto target = NVVM::NVVMTargetAttr::get(ctx, /*optLevel=*/3, "nvptx64-nvidia-cuda", chip,
                                          "+ptx80");
  auto gpuModule = gpu::GPUModuleOp::create(b, loc, (f.getName() + "_kernels").str(),
                                            b.getArrayAttr({target}));
  b.setInsertionPointToStart(gpuModule.getBody());
  SmallVector<Type> argTypes;
  for (BlockArgument arg : f.getArguments())
    argTypes.push_back(kernelArgType(arg.getType(), llvm::is_contained(tensors, arg)));
  auto kernel = gpu::GPUFuncOp::create(b, loc, f.getName(), b.getFunctionType(argTypes, {}));
  kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  return kernel;
}

LogicalResult mlir::attngpu::materializeCapture(OpBuilder &b, IRMapping &map, Value v,
                                               ArrayRef<Value> written, Operation *anchor) {
  if (map.contains(v))
    return success();
  if (isa<BlockArgument>(v))
    return anchor->emitError("a region or a key bound uses a loop value the GPU kernel does "
                             "not have");
  Operation *def = v.getDefiningOp();
  auto load = dyn_cast<memref::LoadOp>(def);
  bool paramLoad = load && isa<BlockArgument>(load.getMemRef()) &&
                   !llvm::is_contained(written, load.getMemRef());
  if ((!isMemoryEffectFree(def) && !paramLoad) || def->getNumRegions())
    return anchor->emitError("a score/mask region or a key bound uses a host value that is "
                             "neither pure index math nor a param read");
  for (Value operand : def->getOperands())
    if (failed(materializeCapture(b, map, operand, written, anchor)))
      return failure();
  b.clone(*def, map);
  return success();
}

LogicalResult mlir::attngpu::materializeCaptures(OpBuilder &b, IRMapping &map, Region &region,
                                                ArrayRef<Value> written, Operation *anchor) {
  LogicalResult result = success();
  region.walk([&](Operation *op) {
    for (Value operand : op->getOperands())
      if (!region.isAncestor(operand.getParentRegion()) &&
          failed(materializeCapture(b, map, operand, written, anchor)))
        result = failure();
  });
  return result;
}

void mlir::attngpu::setLaunch(gpu::GPUFuncOp kernel, int64_t threads,
                              ArrayRef<std::array<int64_t, 4>> grid, int64_t sharedMemory,
                              ArrayRef<std::pair<StringRef, int64_t>> schedule) {
  MLIRContext *ctx = kernel.getContext();
  SmallVector<GridAxisAttr> axes;
  for (auto [arg, dim, scale, divisor] : grid)
    axes.push_back(GridAxisAttr::get(ctx, arg, dim, scale, divisor));
  SmallVector<NamedAttribute> entries;
  for (auto [name, value] : schedule)
    entries.push_back(NamedAttribute(StringAttr::get(ctx, name),
                                     IntegerAttr::get(IntegerType::get(ctx, 64), value)));
  kernel->setAttr(kLaunchAttrName, LaunchAttr::get(ctx, threads, axes, sharedMemory, false,
                                                   DictionaryAttr::get(ctx, entries), {}));
}

LogicalResult mlir::attngpu::checkSelfContained(gpu::GPUFuncOp kernel) {
  Operation *leak = nullptr;
  kernel.walk([&](Operation *op) {
    for (Value operand : op->getOperands())
      if (!kernel->isAncestor(operand.getParentRegion()->getParentOp())) {
        leak = op;
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  if (leak)
    return leak->emitError("internal error: the GPU kernel uses a value of the host function "
                           "(an unmapped region capture)");
  return success();
}
