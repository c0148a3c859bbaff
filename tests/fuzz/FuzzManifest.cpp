// libFuzzer target: what attnc reads back from disk or from a caller -- a kernel manifest
// (runtime/Manifest.cpp, then the argument checks against it) and a kernel-cache entry
// (compiler/capi/KernelCache.cpp). A corrupt or hostile file must be refused with a message,
// never crash (docs/fuzzing.md).
#include "compiler/capi/KernelCache.h"
#include "runtime/ArgCheck.h"
#include "runtime/Manifest.h"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

/// A scratch cache directory per process.
const std::string &cacheDir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/attnc-fuzz-cache-XXXXXX";
    const char *made = mkdtemp(tmpl);
    return std::string(made ? made : "/tmp");
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(reinterpret_cast<const char *>(data), size);
  attnc::rt::Manifest m;
  std::string error;
  if (attnc::rt::parseManifest(text, m, error)) {
    // Arguments of rank and extent 1 for every declared axis: the checks must refuse or plan.
    std::vector<std::vector<int64_t>> sizes, strides;
    std::vector<attnc::rt::TensorArg> args;
    for (const attnc::rt::Arg &a : m.args) {
      sizes.emplace_back(a.dims.size(), 1);
      strides.emplace_back(a.dims.size(), 1);
    }
    for (size_t n = 0; n < m.args.size(); ++n)
      args.push_back({0x100000 * (n + 1), int32_t(m.args[n].dtype),
                      int32_t(m.args[n].dims.size()), sizes[n].data(), strides[n].data()});
    attnc::rt::LaunchPlan plan;
    (void)attnc::rt::checkArgs(m, args.data(), args.size(), plan, error);
  }
  // The same bytes as a cache entry.
  attnc::KernelCache cache(cacheDir());
  std::string key = "sha256:fuzz";
  {
    std::ofstream out(cache.pathFor(key), std::ios::binary | std::ios::trunc);
    out.write(text.data(), std::streamsize(text.size()));
  }
  attnc::CacheEntry entry;
  (void)cache.load(key, entry);
  return 0;
}
