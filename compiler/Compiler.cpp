// The C++ compile API (see Compiler.h). MLIR diagnostics raised by passes are captured and turned
// into attnc Diagnostics, so no failure reaches the user as an MLIR assertion or a crash.
#include "compiler/Compiler.h"

#include "codegen/cpu/CPUExecutor.h"
#include "codegen/cuda/Passes.h"
#include "codegen/gpu/AttnGPUDialect.h"
#include "compiler/Registration.h"
#include "compiler/lowering/ASTToAttn.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

namespace attnc {

namespace {
/// Collects the first MLIR error (with its location) while alive.
class CaptureDiagnostics {
public:
  explicit CaptureDiagnostics(mlir::MLIRContext &ctx)
      : handler(&ctx, [this](mlir::Diagnostic &d) {
          if (d.getSeverity() == mlir::DiagnosticSeverity::Error && message.empty()) {
            message = d.str();
            if (auto loc = mlir::dyn_cast<mlir::FileLineColLoc>(d.getLocation())) {
              file = loc.getFilename().str();
              where = {loc.getLine(), loc.getColumn()};
            }
          }
          return mlir::success();
        }) {}

  Diagnostic take(const std::string &fallbackFile, const std::string &what) const {
    Diagnostic diag;
    diag.file = file.empty() ? fallbackFile : file;
    diag.loc = where;
    diag.message = message.empty() ? what : what + ": " + message;
    return diag;
  }

private:
  std::string message, file;
  SourceLoc where;
  mlir::ScopedDiagnosticHandler handler;
};

/// Which stage a parsed module is at, judged by the ops it holds.
Stage detectStage(mlir::ModuleOp module) {
  Stage stage = Stage::LLVM;
  module.walk([&](mlir::Operation *op) {
    llvm::StringRef ns = op->getDialect() ? op->getDialect()->getNamespace() : "";
    if (op->getName().getStringRef() == "gpu.binary")
      stage = Stage::PTX;
    else if (op->getName().getStringRef() == "attn.attention")
      stage = Stage::Attn;
    else if (ns == "attn" && stage != Stage::Attn)
      stage = Stage::Tiled;
    else if (ns != "llvm" && ns != "builtin" && ns != "gpu" && stage == Stage::LLVM)
      stage = Stage::Tiled;
  });
  return stage;
}

void applyDTypeOverride(Variant &v, DType dtype) {
  std::vector<int> inputs = {v.q, v.k, v.v};  // and every score's q and k
  inputs.insert(inputs.end(), v.scoreQ.begin(), v.scoreQ.end());
  inputs.insert(inputs.end(), v.scoreK.begin(), v.scoreK.end());
  for (int t : inputs)
    if (!isQuantized(v.inputs[t].resolvedDType))  // quantised storage is kept
      v.inputs[t].resolvedDType = dtype;
  v.output.resolvedDType = dtype;
}
}  // namespace

Compiler::Compiler() {
  mlir::DialectRegistry registry;
  registerAttncDialects(registry);
  ctx.appendDialectRegistry(registry);
  ctx.loadAllAvailableDialects();
}

Compiler::~Compiler() = default;

bool Compiler::loadSpec(const std::string &path, const std::string &text, Diagnostic &diag) {
  sourcePath = path;
  file = SpecFile();
  current = Stage::AST;
  return attnc::loadSpec(path, text, file, diag);
}

bool Compiler::applyStaticDims(const CompileOptions &options, Diagnostic &diag) {
  for (const auto &[name, size] : options.staticDims) {
    bool found = false;
    for (Variant &v : file.variants)
      for (DimDecl &d : v.dims) {
        if (d.name != name)
          continue;
        found = true;
        diag = Diagnostic{file.path, d.loc, uint32_t(d.name.size()), "", ""};
        if (size < 1) {
          diag.message = "--set " + name + "=" + std::to_string(size) + ": extents must be >= 1";
          return false;
        }
        if (d.kind == DimDecl::Kind::Derived || d.kind == DimDecl::Kind::Alias) {
          diag.message = "--set " + name + ": '" + name + "' follows another dim";
          diag.hint = "set the dim it is derived from instead";
          return false;
        }
        if (d.kind == DimDecl::Kind::Static && d.staticSize != size) {
          diag.message = "--set " + name + "=" + std::to_string(size) + " contradicts '" + name +
                         " = " + std::to_string(d.staticSize) + "' in the spec";
          return false;
        }
        d.kind = DimDecl::Kind::Static;
        d.staticSize = size;
      }
    if (!found) {
      diag = Diagnostic{file.path, {1, 1}, 1, "--set " + name + ": no dim named '" + name + "'", ""};
      return false;
    }
  }
  return true;
}

bool Compiler::lowerToAttn(const CompileOptions &options, Diagnostic &diag) {
  if (!applyStaticDims(options, diag))
    return false;
  if (options.dtypeOverride)
    for (Variant &v : file.variants)
      applyDTypeOverride(v, *options.dtypeOverride);
  if (options.pageSize < 0 || options.pageSize > 65536) {
    diag = Diagnostic{sourcePath, {1, 1}, 1,
                      "--page-size must be in [1, 65536], got " + std::to_string(options.pageSize),
                      "vLLM and FlashInfer use 16 to 256 tokens per page"};
    return false;
  }
  for (Variant &v : file.variants) {
    if (options.pageSize && v.paged)
      v.paged->pageSize = options.pageSize;
    if (options.outDType)
      v.output.resolvedDType = *options.outDType;
    if (options.positionOffsets && !addPositionOffsets(v, sourcePath, diag))
      return false;
  }
  CaptureDiagnostics capture(ctx);
  moduleOp = attnc::lowerToAttn(ctx, file, diag);
  if (!moduleOp)
    return false;
  if (mlir::failed(mlir::verify(*moduleOp))) {
    diag = capture.take(sourcePath, "internal error: the lowered module does not verify");
    return false;
  }
  current = Stage::Attn;
  return true;
}

bool Compiler::loadMLIR(const std::string &path, const std::string &text, Diagnostic &diag) {
  sourcePath = path;
  CaptureDiagnostics capture(ctx);
  moduleOp = mlir::parseSourceString<mlir::ModuleOp>(text, &ctx, path);
  if (!moduleOp) {
    diag = capture.take(path, "cannot parse the MLIR module");
    return false;
  }
  current = detectStage(*moduleOp);
  return true;
}

bool Compiler::lowerTo(Stage to, const CompileOptions &options, Diagnostic &diag) {
  if (to == current || (to < current && to <= Stage::Tiled))
    return true;
  if (current > Stage::Tiled) {
    diag = Diagnostic{sourcePath, {1, 1}, 1,
                      "the module is already lowered for a target; start from the spec or from "
                      "the attn/tiled level", ""};
    return false;
  }
  mlir::PassManager pm(&ctx);
  if (current < Stage::Tiled) {
    buildAttnToTiledPipeline(pm, options.pipeline);
  }
  if (to == Stage::LLVM)
    buildTiledToCPUPipeline(pm);
  if (to == Stage::PTX)
    buildTiledToCUDAPipeline(pm, options.pipeline);
  // ATTNC_TIMING=1: each pass's wall time on stderr (what a compile spends where).
  if (const char *timing = std::getenv("ATTNC_TIMING"); timing && *timing && *timing != '0')
    pm.enableTiming();
  CaptureDiagnostics capture(ctx);
  if (mlir::failed(pm.run(*moduleOp))) {
    diag = capture.take(sourcePath, "the pipeline failed");
    return false;
  }
  current = to;
  return true;
}

std::string Compiler::printModule() {
  std::string text;
  llvm::raw_string_ostream os(text);
  moduleOp->print(os);
  return text;
}

bool Compiler::printLLVMIR(std::string &out, Diagnostic &diag) {
  CaptureDiagnostics capture(ctx);
  llvm::LLVMContext llvmCtx;
  auto llvmModule = mlir::translateModuleToLLVMIR(*moduleOp, llvmCtx);
  if (!llvmModule) {
    diag = capture.take(sourcePath, "cannot translate to LLVM IR");
    return false;
  }
  llvm::raw_string_ostream os(out);
  llvmModule->print(os, nullptr);
  return true;
}

std::map<std::string, KernelLaunch> Compiler::launchesByKernel() {
  std::map<std::string, KernelLaunch> out;
  auto launches = (*moduleOp)->getAttrOfType<mlir::DictionaryAttr>(mlir::attngpu::kLaunchesAttrName);
  if (!launches)
    return out;
  for (mlir::NamedAttribute entry : launches) {
    auto launch = mlir::dyn_cast<mlir::attngpu::LaunchAttr>(entry.getValue());
    if (!launch)
      continue;
    KernelLaunch &l = out[entry.getName().str()];
    l.threads = launch.getThreads();
    l.sharedMemory = launch.getSharedMemory();
    l.splits = launch.getSplits();
    for (mlir::attngpu::GridAxisAttr axis : launch.getGrid())
      l.grid.push_back({axis.getArg(), axis.getDim(), axis.getScale(), axis.getDivisor()});
    for (mlir::attngpu::TensorMapAttr map : launch.getTensorMaps())
      l.tensorMaps.push_back({map.getArg(), map.getRows(), map.getColumns()});
    if (mlir::DictionaryAttr schedule = launch.getSchedule())
      for (mlir::NamedAttribute choice : schedule)
        if (auto value = mlir::dyn_cast<mlir::IntegerAttr>(choice.getValue()))
          l.schedule[choice.getName().str()] = value.getInt();
  }
  return out;
}

bool Compiler::ptxByVariant(std::map<std::string, std::string> &out, Diagnostic &diag) {
  CaptureDiagnostics capture(ctx);
  if (mlir::failed(mlir::attn::extractPTX(*moduleOp, out))) {
    diag = capture.take(sourcePath, "cannot extract PTX");
    return false;
  }
  return true;
}

std::unique_ptr<CPUModule> Compiler::loadOnCPU(Diagnostic &diag) {
  CaptureDiagnostics capture(ctx);
  auto module = CPUModule::create(*moduleOp);
  if (!module) {
    diag = capture.take(sourcePath, "cannot JIT-compile for the host: " +
                                        llvm::toString(module.takeError()));
    return nullptr;
  }
  return std::move(*module);
}

}  // namespace attnc
