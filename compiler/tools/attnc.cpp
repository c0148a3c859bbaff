// attnc: the command-line driver. `attnc [compile] FILE --emit=STAGE` stops after any stage of the
// pipeline (a spec or a saved .mlir as input); `attnc run FILE` compiles a spec for the host, runs
// it on random inputs and checks it against the float64 reference.
#include "codegen/cpu/CPUExecutor.h"
#include "compiler/Compiler.h"
#include "compiler/Manifest.h"
#include "compiler/pipeline/HostRun.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <cmath>

using namespace attnc;
namespace cl = llvm::cl;

static cl::OptionCategory category("attnc options");
static cl::opt<std::string> inputPath(cl::Positional, cl::desc("<spec.attn | module.mlir>"),
                                      cl::Required, cl::cat(category));
static cl::opt<std::string> emit("emit",
                                 cl::desc("Stop after a stage: ast, attn, tiled, llvm (host), "
                                          "ptx (CUDA: -o DIR gets <variant>.ptx, .json and "
                                          ".ref.py); or torch (a float64 torch reference)"),
                                 cl::init("llvm"), cl::cat(category));
static cl::opt<std::string> outputPath("o",
                                       cl::desc("Output file (default: stdout); a directory "
                                                "for --emit=ptx"),
                                       cl::init("-"), cl::cat(category));
static cl::opt<int64_t> blockQ("block-q",
                               cl::desc("Queries per tile (default 64; on sm_90a 128, with 128 "
                                        "keys, for plain softmax attention at head dims "
                                        "96-128, warp-specialised)"),
                               cl::init(0), cl::cat(category));
static cl::opt<int64_t> blockK("block-k",
                               cl::desc("Keys per tile (default: 32 on sm_80; on sm_90a 64 when "
                                        "the head and value dims are multiples of 64, else 32)"),
                               cl::init(0),
                               cl::cat(category));
static cl::opt<bool> noOnlineSoftmax("no-online-softmax",
                                     cl::desc("Keep the exact two-pass softmax"),
                                     cl::cat(category));
static cl::opt<bool> noMaskBounds("no-mask-bounds",
                                  cl::desc("Visit every key tile, whatever the mask"),
                                  cl::cat(category));
static cl::opt<bool> noBlockPlan("no-block-plan",
                                 cl::desc("No block plan: masks that read params visit every key "
                                          "tile their affine bounds allow"),
                                 cl::cat(category));
static cl::opt<bool> overlap("overlap",
                             cl::desc("sm_90a: each key tile's softmax under the next tile's "
                                      "Q K^T (async wgmma; slower on the H200 so far)"),
                             cl::cat(category));
static cl::opt<bool> tensorCopies("tma",
                                  cl::desc("sm_90a: copy key and value tiles by TMA (one thread, "
                                           "mbarriers; the default); --tma=false: cp.async"),
                                  cl::init(true), cl::cat(category));
static cl::opt<bool> warpSpecialize(
    "warp-specialize",
    cl::desc("sm_90a, with --tma: a producer warp issues the key/value copies into a ring of "
             "two buffers per tile while the consumer warpgroups compute (setmaxnreg)"),
    cl::cat(category));
static cl::opt<bool> dqAtomic("dq-atomic",
                              cl::desc("CUDA backward: dQ added by f32 atomics from the dK/dV "
                                       "kernel (three kernels, 5 matmuls) instead of its own "
                                       "kernel (7); --dq-atomic=false for the latter"),
                              cl::init(attnc::PipelineOptions().dqAtomic), cl::cat(category));
static cl::opt<bool> noPackGQA("no-pack-gqa",
                               cl::desc("One query head per tile even for GQA (no attn-pack-gqa)"),
                               cl::cat(category));
static cl::opt<bool> noSplitKV("no-split-kv",
                               cl::desc("One block per query tile: no attn-split-kv"),
                               cl::cat(category));
static cl::opt<bool> backward("backward",
                              cl::desc("Also derive each variant's backward, <name>_grad (attn-grad; "
                                       "--emit=ptx: <name>_grad.ptx/.json, its dQ and dK/dV kernels). "
                                       "run: check its gradients against central differences of "
                                       "the float64 reference"),
                              cl::cat(category));
static cl::opt<int64_t> gradElements(
    "grad-elements",
    cl::desc("run --backward: central differences (two float64 forwards each) at this many "
             "random elements of each gradient larger than that (default 32; 0: every element); "
             "every element is still checked for being written"),
    cl::init(32), cl::cat(category));
static cl::opt<bool> kernelReport(
    "report",
    cl::desc("--emit=ptx: a report per kernel on stdout (chip, tensor-core instruction, tile, "
             "threads, shared memory; registers and spills from ptxas -v when ptxas is found: "
             "$ATTNC_PTXAS, the PATH, /usr/local/cuda/bin). Fails if ptxas serialised a wgmma"),
    cl::cat(category));
static cl::opt<bool> noChunk("no-chunk",
                             cl::desc("Recurrences in the quadratic form, not chunked (no "
                                      "attn-chunk)"),
                             cl::cat(category));
static cl::opt<int64_t> valueSlice("value-slice",
                                   cl::desc("Value channels per block of the CUDA chunked "
                                            "recurrence kernel (default: automatic)"),
                                   cl::init(0), cl::cat(category));
static cl::opt<int64_t> chunkSize("chunk-size",
                                  cl::desc("Positions per chunk of attn-chunk (default 64)"),
                                  cl::init(64), cl::cat(category));
static cl::opt<int64_t> splits("splits",
                               cl::desc("Split-KV count: force it in the manifest (default 0: the "
                                        "runtime's heuristic); run: the count used on the CPU "
                                        "(default 1)"),
                               cl::init(0), cl::cat(category));
static cl::opt<int64_t> pageSize("page-size",
                                 cl::desc("Tokens per page of paged K/V (overrides the spec's)"),
                                 cl::init(0), cl::cat(category));
static cl::opt<std::string> dtype("dtype",
                                  cl::desc("Override the dtype of q, k, v and o: f32, f16, bf16"),
                                  cl::init(""), cl::cat(category));
static cl::opt<std::string> outDType("out-dtype",
                                     cl::desc("Override the output's dtype (f32, f16, bf16): "
                                              "f32 for ring attention's partial results"),
                                     cl::init(""), cl::cat(category));
static cl::opt<bool> positionOffsets(
    "position-offsets",
    cl::desc("Ring attention's blocks: every variant also takes the rank-0 i32 params q_offset "
             "and k_offset, the global positions of its first query and key, which its score "
             "and mask then compare"),
    cl::cat(category));
static cl::list<std::string> setDims("set", cl::desc("Fix a dynamic dim, e.g. --set d=128"),
                                     cl::cat(category));
static cl::opt<std::string> chip("chip", cl::desc("CUDA target: sm_80 or sm_90a"),
                                 cl::init("sm_80"), cl::cat(category));
// `run` only.
static cl::opt<std::string> sizes("sizes", cl::desc("run: extents, e.g. b=2,h=8,i=100,j=300"),
                                  cl::init(""), cl::cat(category));
static cl::opt<uint64_t> seed("seed", cl::desc("run: random seed"), cl::init(1), cl::cat(category));
static cl::opt<bool> sortedIds("sorted-ids",
                               cl::desc("run: integer params indexed by a sequence dim (document "
                                        "ids) ascend along it, in documents of random lengths"),
                               cl::init(false), cl::cat(category));
static cl::opt<int> repeats("repeat", cl::desc("run: timed repeats"), cl::init(3),
                            cl::cat(category));
static cl::opt<double> tolerance("tolerance",
                                 cl::desc("run: max relative error (default 1e-5 for f32, "
                                          "2e-2 for f16/bf16 outputs)"),
                                 cl::init(-1), cl::cat(category));

static int report(const Diagnostic &diag, const std::string &text) {
  llvm::errs() << diag.render(text);
  return 1;
}

static bool readFile(const std::string &path, std::string &text) {
  auto buffer = llvm::MemoryBuffer::getFileOrSTDIN(path, /*IsText=*/true);
  if (!buffer) {
    llvm::errs() << "attnc: error: cannot read '" << path << "': " << buffer.getError().message()
                 << "\n";
    return false;
  }
  text = (*buffer)->getBuffer().str();
  return true;
}

static bool writeOutput(const std::string &text) {
  std::error_code ec;
  llvm::ToolOutputFile out(outputPath, ec, llvm::sys::fs::OF_Text);
  if (ec) {
    llvm::errs() << "attnc: error: cannot write '" << outputPath << "': " << ec.message() << "\n";
    return false;
  }
  out.os() << text;
  out.keep();
  return true;
}

static bool compileOptions(CompileOptions &options) {
  options.pipeline.blockQ = blockQ;
  options.pipeline.blockK = blockK;
  options.pipeline.onlineSoftmax = !noOnlineSoftmax;
  options.pipeline.maskBounds = !noMaskBounds;
  options.pipeline.blockPlan = !noBlockPlan;
  options.pipeline.packGQA = !noPackGQA;
  options.pipeline.overlap = overlap;
  options.pipeline.tensorCopies = tensorCopies;
  options.pipeline.warpSpecialize = warpSpecialize;
  options.pipeline.dqAtomic = dqAtomic;
  options.pipeline.splitKV = !noSplitKV;
  options.pipeline.chunk = !noChunk;
  options.pipeline.backward = backward;
  if (chunkSize < 1 || chunkSize > 1024) {
    llvm::errs() << "attnc: error: --chunk-size must be in [1, 1024], got " << chunkSize << "\n";
    return false;
  }
  options.pipeline.chunkSize = chunkSize;
  options.pipeline.valueSlice = valueSlice;
  if (splits < 0 || splits > 1024) {
    llvm::errs() << "attnc: error: --splits must be in [0, 1024], got " << splits << "\n";
    return false;
  }
  options.pipeline.splits = splits;
  if (pageSize.getNumOccurrences() && (pageSize < 1 || pageSize > 65536)) {  // 0 is not "unset"
    llvm::errs() << "attnc: error: --page-size must be in [1, 65536], got " << pageSize << "\n";
    return false;
  }
  options.pageSize = pageSize;
  options.pipeline.chip = chip;
  if (chip != "sm_80" && chip != "sm_90a") {
    llvm::errs() << "attnc: error: unknown --chip '" << chip << "'; use sm_80 or sm_90a\n";
    return false;
  }
  for (const std::string &item : setDims) {
    std::string error;
    if (!parseSizeList(item, options.staticDims, error)) {
      llvm::errs() << "attnc: error: --set: " << error << "\n";
      return false;
    }
  }
  options.positionOffsets = positionOffsets;
  if (!outDType.empty()) {
    std::optional<DType> t = dtypeFromName(outDType);
    if (!t || !isFloat(*t)) {
      llvm::errs() << "attnc: error: unknown --out-dtype '" << outDType
                   << "'; use f32, f16 or bf16\n";
      return false;
    }
    options.outDType = t;
  }
  if (dtype.empty())
    return true;
  if (std::optional<DType> t = dtypeFromName(dtype); t && isFloat(*t)) {
    options.dtypeOverride = t;
    return true;
  }
  llvm::errs() << "attnc: error: unknown --dtype '" << dtype << "'; use f32, f16 or bf16\n";
  return false;
}

/// --emit=ptx: DIR/<variant>.ptx and DIR/<variant>.json per variant.
/// Writes each (path, content); false after saying which path could not be written.
static bool writeFiles(const std::vector<std::pair<std::string, std::string>> &files) {
  for (const auto &[path, content] : files) {
    std::error_code ec;
    llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_Text);
    if (ec) {
      llvm::errs() << "attnc: error: cannot write '" << path << "': " << ec.message() << "\n";
      return false;
    }
    os << content;
  }
  return true;
}

/// ptxas -v on one PTX file: per entry function, its registers, spill bytes and the wgmma
/// serialisation warnings ptxas printed. Empty when no ptxas is found.
struct PtxasFacts {
  int64_t registers = -1, spills = -1;
  std::string serialised;
};
static std::string findPtxas() {
  if (const char *env = std::getenv("ATTNC_PTXAS"))
    return llvm::sys::fs::can_execute(env) ? env : "";
  if (auto found = llvm::sys::findProgramByName("ptxas"))
    return *found;
  if (llvm::sys::fs::can_execute("/usr/local/cuda/bin/ptxas"))
    return "/usr/local/cuda/bin/ptxas";
  return "";
}
static std::map<std::string, PtxasFacts> runPtxas(const std::string &ptxas, const std::string &ptx,
                                                  const std::string &chip) {
  std::map<std::string, PtxasFacts> out;
  llvm::SmallString<128> log;
  if (llvm::sys::fs::createTemporaryFile("attnc-ptxas", "log", log))
    return out;
  std::string arch = "-arch=" + chip;
  llvm::StringRef args[] = {ptxas, arch, "-v", ptx, "-o", "/dev/null"};
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(log),
                                                llvm::StringRef(log)};
  llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, redirects);
  auto text = llvm::MemoryBuffer::getFile(log);
  llvm::sys::fs::remove(log);
  if (!text)
    return out;
  llvm::SmallVector<llvm::StringRef> lines;
  (*text)->getBuffer().split(lines, '\n');
  PtxasFacts *current = nullptr;
  for (llvm::StringRef line : lines) {
    if (size_t at = line.find("Compiling entry function '"); at != llvm::StringRef::npos) {
      llvm::StringRef name = line.drop_front(at + 26).take_until([](char c) { return c == '\''; });
      current = &out[name.str()];
    } else if (current && line.contains("Used ") && line.contains(" registers")) {
      line.drop_front(line.find("Used ") + 5).take_while(llvm::isDigit).getAsInteger(10,
                                                                                 current->registers);
    } else if (current && line.contains("bytes spill stores")) {
      line.ltrim().take_while(llvm::isDigit).getAsInteger(10, current->spills);
    } else if (line.contains_insensitive("wgmma") && line.contains_insensitive("serializ")) {
      (current ? current : &out["?"])->serialised += line.trim().str() + "\n";
    }
  }
  return out;
}

/// Blocks per SM and the share of the SM's 64 warps they fill, from registers (allocated per
/// warp in units of 256), shared memory (1 KB reserved per block) and threads, with the limits
/// of the target's SM (sm_90a: H100/H200, 228 KB; sm_80: A100, 164 KB).
static std::string theoreticalOccupancy(const std::string &chip, const KernelLaunch &launch,
                                        int64_t registers) {
  int64_t warps = std::max<int64_t>(1, (launch.threads + 31) / 32);
  int64_t smemPerSM = chip == "sm_90a" ? 233472 : 167936;
  int64_t regsPerWarp = (std::max<int64_t>(registers, 1) * 32 + 255) / 256 * 256;
  int64_t blocks = std::min<int64_t>({65536 / (regsPerWarp * warps), 64 / warps, 32,
                                      smemPerSM / (launch.sharedMemory + 1024)});
  return std::to_string(blocks) + " blocks, " + std::to_string(100 * blocks * warps / 64) + "%";
}

/// --report: one line per kernel from the launch ABIs the lowering recorded, plus ptxas's
/// facts. Returns 1 if ptxas serialised a wgmma.
static int printReport(Compiler &compiler, const CompileOptions &options,
                       const std::vector<std::string> &ptxFiles) {
  std::string ptxas = findPtxas();
  std::map<std::string, PtxasFacts> facts;
  for (const std::string &file : ptxFiles)
    if (!ptxas.empty())
      for (auto &[name, f] : runPtxas(ptxas, file, options.pipeline.chip))
        facts[name] = f;
  llvm::outs() << llvm::format("%-26s %-7s %-18s %-8s %-12s %7s %9s %5s %6s %s\n", "kernel",
                               "arch", "mma", "copies", "tile q x k/w", "threads", "smem (B)",
                               "regs", "spills", "occupancy");
  int status = 0;
  for (const auto &[name, launch] : compiler.launchesByKernel()) {
    auto get = [&](const char *key) {
      auto it = launch.schedule.find(key);
      return it == launch.schedule.end() ? int64_t(-1) : it->second;
    };
    std::string mma = get("wgmma") < 0 ? "-" : get("wgmma") ? "wgmma_m64nNk16" : "mma_sync_m16n8k16";
    std::string tile = get("block_q") < 0 ? "-"
                                          : std::to_string(get("block_q")) + " x " +
                                                std::to_string(get("block_k")) + "/" +
                                                std::to_string(get("warps"));
    // K/V tiles by TMA (the launch takes tensor maps) or by cp.async (every tiled kernel).
    std::string copies = get("consumers") > 0      ? "tma+ws"
                         : !launch.tensorMaps.empty() ? "tma"
                         : get("block_q") < 0         ? "-"
                                                      : "cp.async";
    auto f = facts.find(name);
    std::string regs = f != facts.end() && f->second.registers >= 0
                           ? std::to_string(f->second.registers) : "?";
    std::string spills = f != facts.end() && f->second.spills >= 0
                             ? std::to_string(f->second.spills) : "?";
    std::string occupancy = "?";
    if (f != facts.end() && f->second.registers >= 0)
      occupancy = theoreticalOccupancy(options.pipeline.chip, launch, f->second.registers);
    llvm::outs() << llvm::format("%-26s %-7s %-18s %-8s %-12s %7lld %9lld %5s %6s %s\n",
                                 name.c_str(), options.pipeline.chip.c_str(), mma.c_str(),
                                 copies.c_str(), tile.c_str(),
                                 (long long)launch.threads, (long long)launch.sharedMemory,
                                 regs.c_str(), spills.c_str(), occupancy.c_str());
    if (f != facts.end() && !f->second.serialised.empty()) {
      llvm::errs() << "attnc: error: ptxas serialised the wgmmas of '" << name << "':\n"
                   << f->second.serialised;
      status = 1;
    }
  }
  if (ptxas.empty())
    llvm::outs() << "(no ptxas found: registers and spills unknown; set ATTNC_PTXAS)\n";
  return status;
}

static int writeKernels(Compiler &compiler, const CompileOptions &options, const std::string &text,
                        double compileMs) {
  Diagnostic diag;
  std::map<std::string, std::string> ptx;
  if (!compiler.ptxByVariant(ptx, diag))
    return report(diag, text);
  std::string dir = outputPath == "-" ? "." : std::string(outputPath);
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
    llvm::errs() << "attnc: error: cannot create '" << dir << "': " << ec.message() << "\n";
    return 1;
  }
  std::vector<std::string> written;
  for (const Variant &v : compiler.spec().variants) {
    auto it = ptx.find(v.name);
    if (it == ptx.end()) {
      llvm::errs() << "attnc: error: no PTX for variant '" << v.name << "'\n";
      return 1;
    }
    std::string base = dir + "/" + v.name;
    std::string manifest =
        buildManifest(v, options.pipeline, v.name + ".ptx", text, compiler.launchesByKernel());
    std::string reference = emitTorchReference(v, inputPath);
    if (!writeFiles({{base + ".ptx", it->second}, {base + ".json", manifest},
                     {base + ".ref.py", reference}}))
      return 1;
    llvm::errs() << "attnc: wrote " << base << ".ptx, .json and .ref.py ("
                 << llvm::format("%.0f", compileMs) << " ms)\n";
    written.push_back(base + ".ptx");
    auto grad = ptx.find(v.name + "_grad");
    if (grad == ptx.end())
      continue;
    std::string gradManifest = buildGradManifest(v, options.pipeline, v.name + "_grad.ptx", text,
                                                 compiler.launchesByKernel());
    if (!writeFiles({{base + "_grad.ptx", grad->second}, {base + "_grad.json", gradManifest}}))
      return 1;
    llvm::errs() << "attnc: wrote " << base << "_grad.ptx and .json\n";
    written.push_back(base + "_grad.ptx");
  }
  return kernelReport ? printReport(compiler, options, written) : 0;
}

static int compileMain() {
  Stage stop;
  bool torch = emit == "torch";
  if (!torch && !parseStage(emit, stop)) {
    llvm::errs() << "attnc: error: unknown stage '" << emit << "' for --emit; stages: ast, attn, "
                    "tiled, llvm, ptx, torch\n";
    return 1;
  }
  if (kernelReport && stop != Stage::PTX) {
    llvm::errs() << "attnc: error: --report describes compiled kernels: use it with --emit=ptx\n";
    return 1;
  }
  CompileOptions options;
  std::string text;
  if (!compileOptions(options) || !readFile(inputPath, text))
    return 1;
  Compiler compiler;
  Diagnostic diag;
  bool isMLIR = llvm::StringRef(inputPath).ends_with(".mlir");
  if (isMLIR ? !compiler.loadMLIR(inputPath, text, diag) : !compiler.loadSpec(inputPath, text, diag))
    return report(diag, text);
  if (torch || stop == Stage::AST) {
    if (isMLIR) {
      llvm::errs() << "attnc: error: --emit=" << emit << " needs a spec, not a .mlir module\n";
      return 1;
    }
    if (!torch)
      return writeOutput(dumpAST(compiler.spec())) ? 0 : 1;
    // The options that change the variant (--position-offsets, dtypes, --set) apply to its
    // reference too.
    if (!compiler.lowerToAttn(options, diag))
      return report(diag, text);
    const auto &variants = compiler.spec().variants;
    if (variants.size() != 1) {  // one Python module defines one `reference`
      llvm::errs() << "attnc: error: --emit=torch writes one module per variant, and '"
                   << inputPath << "' has " << variants.size()
                   << "; use --emit=ptx -o DIR (one <variant>.ref.py each)\n";
      return 1;
    }
    return writeOutput(emitTorchReference(variants.front(), inputPath)) ? 0 : 1;
  }
  auto start = std::chrono::steady_clock::now();
  if (!isMLIR && !compiler.lowerToAttn(options, diag))
    return report(diag, text);
  if (!compiler.lowerTo(stop, options, diag))
    return report(diag, text);
  if (stop == Stage::PTX && !isMLIR) {
    std::chrono::duration<double, std::milli> took = std::chrono::steady_clock::now() - start;
    return writeKernels(compiler, options, text, took.count());
  }
  std::string out;
  if (stop == Stage::LLVM) {
    if (!compiler.printLLVMIR(out, diag))
      return report(diag, text);
  } else {
    out = compiler.printModule();
  }
  return writeOutput(out) ? 0 : 1;
}

static int runMain() {
  CompileOptions options;
  std::string text, error;
  RunConfig config;
  config.seed = seed;
  config.sortedIds = sortedIds;
  config.repeats = repeats;
  config.gradElements = std::max<int64_t>(gradElements, 0);
  if (!compileOptions(options) || !readFile(inputPath, text))
    return 1;
  if (backward) {
    options.pipeline.splitKV = false;  // the gradient check runs the forward without splits
    if (options.dtypeOverride && *options.dtypeOverride != DType::F32) {
      llvm::errs() << "attnc: error: --backward checks gradients by central differences, "
                      "which need f32 inputs: leave out --dtype or use --dtype=f32\n";
      return 1;
    }
    options.dtypeOverride = DType::F32;
  }
  config.splitKV = options.pipeline.splitKV && options.pipeline.onlineSoftmax;
  config.splits = splits > 0 ? splits : 1;
  if (!parseSizeList(sizes, config.sizes, error)) {
    llvm::errs() << "attnc: error: " << error << "\n";
    return 1;
  }
  Compiler compiler;
  Diagnostic diag;
  auto start = std::chrono::steady_clock::now();
  if (!compiler.loadSpec(inputPath, text, diag) || !compiler.lowerToAttn(options, diag) ||
      !compiler.lowerTo(Stage::LLVM, options, diag))
    return report(diag, text);
  auto module = compiler.loadOnCPU(diag);
  if (!module)
    return report(diag, text);
  std::chrono::duration<double> compileTime = std::chrono::steady_clock::now() - start;

  int failures = 0;
  for (const Variant &v : compiler.spec().variants) {
    RunReport r;
    if (!runAndCheck(*module, v, config, r, error)) {
      llvm::errs() << "attnc: error: " << v.name << ": " << error << "\n";
      return 1;
    }
    bool lowPrecision = v.output.resolvedDType != DType::F32 ||
                        v.inputs[v.q].resolvedDType != DType::F32;
    double tol = tolerance >= 0 ? tolerance : (lowPrecision ? 2e-2 : 1e-5);
    bool ok = r.relError <= tol && (v.norm != Norm::Softmax ||
                                    (r.lseInfMatches && r.lseRelError <= tol));
    ok = ok && r.recurrentRelError <= tol && r.stateRelError <= tol;
    failures += !ok;
    llvm::outs() << llvm::format("%-16s %-5s %s  rel.err %.2e", v.name.c_str(),
                                 ok ? "PASS" : "FAIL", r.describeSizes(v).c_str(), r.relError);
    if (v.norm == Norm::Softmax)
      llvm::outs() << llvm::format("  lse %.2e%s", r.lseRelError,
                                   r.lseInfMatches ? "" : " (-inf rows differ)");
    if (r.recurrence)
      llvm::outs() << llvm::format("  recurrent %.2e", r.recurrentRelError);
    if (v.state)
      llvm::outs() << llvm::format("  state %.2e", r.stateRelError);
    if (r.unwritten)
      llvm::outs() << "  unwritten " << r.unwritten;
    llvm::outs() << llvm::format("  cpu %.3f ms  (compile %.0f ms, tol %.0e)\n",
                                 r.bestSeconds * 1e3, compileTime.count() * 1e3, tol);
    if (!backward)
      continue;
    GradReport g;
    if (!gradCheck(*module, v, config, g, error)) {
      llvm::errs() << "attnc: error: " << v.name << "_grad: " << error << "\n";
      return 1;
    }
    bool gradOk = !g.unwritten && g.dq <= tol && g.dk <= tol && g.dv <= tol;
    for (const auto &[name, err] : g.dparams)
      gradOk = gradOk && err <= tol;
    failures += !gradOk;
    llvm::outs() << llvm::format("%-16s %-5s dq %.2e  dk %.2e  dv %.2e",
                                 (v.name + "_grad").c_str(), gradOk ? "PASS" : "FAIL", g.dq, g.dk,
                                 g.dv);
    for (const auto &[name, err] : g.dparams)
      llvm::outs() << llvm::format("  d%s %.2e", name.c_str(), err);
    if (g.unwritten)
      llvm::outs() << "  unwritten " << g.unwritten;
    llvm::outs() << "  (vs central differences of the float64 reference";
    if (g.sampled)
      llvm::outs() << ", at " << config.gradElements << " random elements of "
                   << g.sampled << (g.sampled == 1 ? " tensor" : " tensors");
    llvm::outs() << ")\n";
  }
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  bool run = argc > 1 && llvm::StringRef(argv[1]) == "run";
  bool compile = argc > 1 && llvm::StringRef(argv[1]) == "compile";
  std::vector<const char *> args(argv, argv + argc);
  if (run || compile)
    args.erase(args.begin() + 1);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(int(args.size()), args.data(),
                              "attnc: a compiler for attention variants\n\n"
                              "  attnc [compile] FILE [--emit=ast|attn|tiled|llvm] [-o OUT]\n"
                              "  attnc run FILE [--sizes=b=2,i=100,...] [--dtype=f32]\n");
  return run ? runMain() : compileMain();
}
