// CPU back end runtime: JIT through MLIR's ExecutionEngine, calls through the C interface.
#include "codegen/cpu/CPUExecutor.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "llvm/Analysis/CGSCCPassManager.h"
#include "llvm/Analysis/LoopAnalysisManager.h"
#include "llvm/IR/PassInstrumentation.h"
#include "llvm/Passes/PassBuilder.h"
#include "llvm/Support/TargetSelect.h"

#include <algorithm>
#include <cstring>

namespace attnc {

namespace {

/// Scalar arguments past which a host function skips the argument-quadratic passes.
constexpr size_t kWideSignature = 1024;

/// LLVM's default pipeline at `optLevel`, as mlir::makeOptimizingTransformer runs it, but
/// without CalledValuePropagation: the host kernels make no indirect calls, and its lattice
/// over every argument made a spec with 3,000 params (15,000 scalar arguments) take a minute.
llvm::Error optimize(llvm::Module &m, unsigned optLevel) {
  if (optLevel == 0)
    return llvm::Error::success();
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassInstrumentationCallbacks callbacks;
  // Functions with thousands of scalar arguments (thousands of params): the passes that grow
  // an attribute list one argument at a time (function attrs) or reason over all of them at
  // once (constraint elimination) are quadratic there, in time and memory (1 GB).
  size_t widest = 0;
  for (const llvm::Function &f : m)
    widest = std::max(widest, f.arg_size());
  bool wide = widest > kWideSignature;
  callbacks.registerShouldRunOptionalPassCallback([wide](llvm::StringRef pass, llvm::Any) {
    if (pass == "CalledValuePropagationPass")
      return false;
    return !wide || (pass != "PostOrderFunctionAttrsPass" &&
                     pass != "ReversePostOrderFunctionAttrsPass" &&
                     pass != "ConstraintEliminationPass");
  });
  llvm::PassBuilder pb(/*TM=*/nullptr, llvm::PipelineTuningOptions(), std::nullopt, &callbacks);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::OptimizationLevel level = optLevel == 1   ? llvm::OptimizationLevel::O1
                                  : optLevel == 2 ? llvm::OptimizationLevel::O2
                                                  : llvm::OptimizationLevel::O3;
  llvm::ModulePassManager mpm = pb.buildPerModuleDefaultPipeline(level);
  mpm.run(m, mam);
  return llvm::Error::success();
}

}  // namespace

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
  std::function<llvm::Error(llvm::Module *)> transformer = [optLevel](llvm::Module *m) {
    return optimize(*m, optLevel);
  };
  options.transformer = transformer;
  options.jitCodeGenOptLevel = static_cast<llvm::CodeGenOptLevel>(optLevel);
  std::map<std::string, int64_t> arities;
  constexpr llvm::StringLiteral prefix = "_mlir_ciface_";
  llvmModule.walk([&](mlir::LLVM::LLVMFuncOp f) {
    if (f.getSymName().starts_with(prefix))
      arities[f.getSymName().drop_front(prefix.size()).str()] = f.getNumArguments();
  });
  auto engine = mlir::ExecutionEngine::create(llvmModule, options);
  if (!engine)
    return engine.takeError();
  std::unique_ptr<CPUModule> module(new CPUModule());
  module->engine = std::move(*engine);
  module->arities = std::move(arities);
  return module;
}

int64_t CPUModule::arity(const std::string &entry) const {
  auto it = arities.find(entry);
  return it == arities.end() ? -1 : it->second;
}

llvm::Error CPUModule::invoke(const std::string &entry, std::vector<MemRefDescriptor> &args) {
  int64_t expected = arity(entry);
  if (expected < 0)
    return llvm::createStringError("no host entry '" + entry + "' in the module");
  if (expected != int64_t(args.size()))  // a mismatch would read or ignore descriptors
    return llvm::createStringError("'" + entry + "' takes " + std::to_string(expected) +
                                   " arguments, got " + std::to_string(args.size()));
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
