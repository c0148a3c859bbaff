// libFuzzer target: the whole compile of arbitrary spec text, as `attnc compile --emit=ptx`
// runs it (front end, attn dialect, passes, CUDA back end for sm_90a, PTX), and the CPU
// pipeline to LLVM IR. Every input must end in PTX or one diagnostic (docs/fuzzing.md).
#include "compiler/Compiler.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace {

void compile(const std::string &text, bool cuda) {
  attnc::Compiler compiler;
  attnc::Diagnostic diag;
  attnc::CompileOptions options;
  options.pipeline.chip = "sm_90a";
  options.staticDims = {{"d", 64}};  // as `--set d=64`: the CUDA back end needs static dims
  if (!compiler.loadSpec("fuzz.attn", text, diag) || !compiler.lowerToAttn(options, diag))
    return;
  if (!cuda) {
    std::string ir;
    if (compiler.lowerTo(attnc::Stage::LLVM, options, diag))
      compiler.printLLVMIR(ir, diag);
    return;
  }
  std::map<std::string, std::string> ptx;
  if (compiler.lowerTo(attnc::Stage::PTX, options, diag))
    compiler.ptxByVariant(ptx, diag);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0;  // specs are short; long inputs only slow the search down
  std::string text(reinterpret_cast<const char *>(data), size);
  compile(text, /*cuda=*/true);
  compile(text, /*cuda=*/false);
  return 0;
}
