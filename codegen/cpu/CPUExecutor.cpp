// CPU back end runtime: JIT through MLIR's ExecutionEngine, calls through the C interface.
#include "codegen/cpu/CPUExecutor.h"

#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "llvm/Support/TargetSelect.h"

#include <cstring>

namespace attnc {

MemRefDescriptor::MemRefDescriptor(void *data, const std::vector<int64_t> &sizes,
                                   const std::vector<int64_t> &strides) {
  words.assign(3 + 2 * sizes.size(), 0);
  std::memcpy(&words[0], &data, sizeof(void *));
  std::memcpy(&words[1], &data, sizeof(void *));
  std::copy(sizes.begin(), sizes.end(), words.begin() + 3);
  std::copy(strides.begin(), strides.end(), words.begin() + 3 + sizes.size());
}

CPUModule::~CPUModule() = default;

llvm::Expected<std::unique_ptr<CPUModule>> CPUModule::create(mlir::ModuleOp llvmModule,
                                                             unsigned optLevel) {
  static bool initialized = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)initialized;
  mlir::ExecutionEngineOptions options;
  // The options hold a function_ref: the transformer itself must outlive create().
  std::function<llvm::Error(llvm::Module *)> transformer =
      mlir::makeOptimizingTransformer(optLevel, /*sizeLevel=*/0, nullptr);
  options.transformer = transformer;
  options.jitCodeGenOptLevel = static_cast<llvm::CodeGenOptLevel>(optLevel);
  auto engine = mlir::ExecutionEngine::create(llvmModule, options);
  if (!engine)
    return engine.takeError();
  std::unique_ptr<CPUModule> module(new CPUModule());
  module->engine = std::move(*engine);
  return module;
}

llvm::Error CPUModule::invoke(const std::string &entry, std::vector<MemRefDescriptor> &args) {
  std::vector<void *> descriptors;
  for (MemRefDescriptor &d : args)
    descriptors.push_back(d.get());
  // The packed interface takes a pointer to each argument; each argument is a descriptor pointer.
  std::vector<void *> packed;
  for (void *&d : descriptors)
    packed.push_back(&d);
  return engine->invokePacked("_mlir_ciface_" + entry, packed);
}

}  // namespace attnc
