// libFuzzer target: the spec front end (lexer, parser, Sema), the AST dump and the torch
// reference emitter on arbitrary text. Any input must give a clean result or one diagnostic:
// a crash, an abort, a sanitizer report or a hang is a bug (docs/fuzzing.md).
#include "compiler/frontend/Frontend.h"

#include <cstddef>
#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  attnc::SpecFile file;
  attnc::Diagnostic diag;
  if (!attnc::loadSpec("fuzz.attn", text, file, diag)) {
    (void)diag.render(text);  // the message, with its source line and caret, must render
    return 0;
  }
  (void)attnc::dumpAST(file);
  for (const attnc::Variant &v : file.variants)
    (void)attnc::emitTorchReference(v, "fuzz.attn");
  return 0;
}
