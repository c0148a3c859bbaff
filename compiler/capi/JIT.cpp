// The JIT C ABI (attnc.h): spec text -> PTX + manifest (compiler or cache) -> attnc_runtime.
#include "compiler/capi/attnc.h"

#include "compiler/Compiler.h"
#include "compiler/Manifest.h"
#include "compiler/capi/KernelCache.h"
#include "compiler/pipeline/HostRun.h"

#define JSON_NOEXCEPTION 1  // built with -fno-exceptions; parse errors are checked, not thrown
#include <nlohmann/json.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <string>

struct attnc_kernel {
  attnc_rt_kernel *rt = nullptr;
  std::string manifest, ptx;
  bool fromCache = false;
};

namespace {

thread_local std::string lastError;
std::atomic<bool> warnedUnwritable{false};  // the unwritable-cache warning, once a process

int fail(const std::string &message) {
  lastError = message;
  return -1;
}

/// Whether a cache entry is the kernel of this request: its manifest names the spec's hash
/// (and the variant, when one was named). A misplaced or stale entry whose checksum is intact
/// must not be served as another spec's kernel.
bool entryMatches(const attnc::CacheEntry &entry, const std::string &specText,
                  const char *variant) {
  nlohmann::json manifest = nlohmann::json::parse(entry.manifest, nullptr, false);
  if (manifest.is_discarded() || !manifest.is_object())
    return false;
  auto hash = manifest.find("spec_hash");
  if (hash == manifest.end() || !hash->is_string() ||
      hash->get<std::string>() != attnc::hashText(specText))
    return false;
  auto name = manifest.find("variant");
  return !variant || (name != manifest.end() && name->is_string() &&
                      name->get<std::string>() == variant);
}

/// The CUDA driver's version (part of the cache key), 0 without a driver.
int driverVersion() {
  static int version = [] {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      return 0;
    using Fn = int (*)(int *);
    auto fn = reinterpret_cast<Fn>(dlsym(lib, "cuDriverGetVersion"));
    int v = 0;
    if (!fn || fn(&v) != 0)
      v = 0;
    return v;
  }();
  return version;
}

bool compileSpec(const std::string &spec, const char *variant, const attnc::CompileOptions &options,
                 attnc::CacheEntry &entry, std::string &error) {
  attnc::Compiler compiler;
  attnc::Diagnostic diag;
  const std::string path = "<spec>";
  if (!compiler.loadSpec(path, spec, diag) || !compiler.lowerToAttn(options, diag) ||
      !compiler.lowerTo(attnc::Stage::PTX, options, diag)) {
    error = diag.render(spec);
    return false;
  }
  const auto &variants = compiler.spec().variants;
  const attnc::Variant *chosen = nullptr;
  std::string names;
  for (const attnc::Variant &v : variants) {
    names += (names.empty() ? "'" : ", '") + v.name + "'";
    if ((variant && v.name == variant) || (!variant && variants.size() == 1))
      chosen = &v;
  }
  if (!chosen) {
    error = variant ? "no variant '" + std::string(variant) + "' in the spec; it has " + names
                    : "the spec has several variants (" + names + "): name one";
    return false;
  }
  std::map<std::string, std::string> ptx;
  if (!compiler.ptxByVariant(ptx, diag)) {
    error = diag.render(spec);
    return false;
  }
  entry.ptx = ptx[chosen->name];
  entry.manifest = attnc::buildManifest(*chosen, options.pipeline, chosen->name + ".ptx", spec,
                                        compiler.launchesByKernel());
  return true;
}

}  // namespace

extern "C" {

int attnc_compile(const char *spec, size_t spec_len, const char *variant,
                  const attnc_options *opts, attnc_kernel **out) {
  if (!out)
    return fail("attnc_compile: 'out' is null");
  *out = nullptr;
  if (!spec)
    return fail("attnc_compile: 'spec' is null");
  attnc_options o = opts ? *opts : attnc_options{0, 0, nullptr, nullptr, nullptr};
  attnc::CompileOptions options;
  options.pipeline.blockQ = o.block_q ? o.block_q : 64;
  options.pipeline.blockK = o.block_k ? o.block_k : 32;
  options.pipeline.chip = o.chip ? o.chip : "sm_80";
  if (options.pipeline.chip != "sm_80" && options.pipeline.chip != "sm_90a")
    return fail("attnc_compile: unknown chip '" + options.pipeline.chip + "'; use sm_80 or sm_90a");
  std::string error;
  if (o.dims && !attnc::parseSizeList(o.dims, options.staticDims, error))
    return fail("attnc_compile: dims: " + error);

  std::string text(spec, spec_len);
  std::string material = std::string("attnc 0.1.0\n") + options.pipeline.chip + "\n" +
                         std::to_string(options.pipeline.blockQ) + "x" +
                         std::to_string(options.pipeline.blockK) + "\n" + (o.dims ? o.dims : "") +
                         "\n" + (variant ? variant : "") + "\n" +
                         std::to_string(driverVersion()) + "\n" + text;
  std::string key = attnc::hashText(material);
  attnc::KernelCache cache(o.cache_dir ? o.cache_dir : attnc::KernelCache::defaultDir());

  auto kernel = std::make_unique<attnc_kernel>();
  attnc::CacheEntry entry;
  kernel->fromCache = cache.load(key, entry) == attnc::KernelCache::Lookup::Hit &&
                      entryMatches(entry, text, variant);
  // A cached entry the runtime rejects (written by another build, say) is rebuilt once.
  if (kernel->fromCache && attnc_rt_load(entry.ptx.data(), entry.ptx.size(),
                                         entry.manifest.data(), entry.manifest.size(),
                                         &kernel->rt) != 0)
    kernel->fromCache = false;
  if (!kernel->fromCache) {  // a miss, a corrupt, foreign or rejected entry: (re)build it
    if (!compileSpec(text, variant, options, entry, error))
      return fail(error);
    // A cache that cannot be written (read-only, a file in its place) costs the caching only.
    if (!cache.store(key, entry, error) && !warnedUnwritable.exchange(true))
      std::fprintf(stderr, "attnc: warning: %s; compiling without the kernel cache\n",
                   error.c_str());
    if (attnc_rt_load(entry.ptx.data(), entry.ptx.size(), entry.manifest.data(),
                      entry.manifest.size(), &kernel->rt) != 0)
      return fail(attnc_rt_last_error());
  }
  kernel->manifest = std::move(entry.manifest);
  kernel->ptx = std::move(entry.ptx);
  *out = kernel.release();
  lastError.clear();
  return 0;
}

int attnc_launch(attnc_kernel *k, const attnc_tensor *args, int32_t nargs, void *cu_stream) {
  if (!k)
    return fail("attnc_launch: the kernel handle is null");
  if (attnc_rt_launch(k->rt, args, nargs, cu_stream) != 0)
    return fail(attnc_rt_last_error());
  lastError.clear();
  return 0;
}

const char *attnc_kernel_manifest(attnc_kernel *k) { return k ? k->manifest.c_str() : nullptr; }
const char *attnc_kernel_ptx(attnc_kernel *k) { return k ? k->ptx.c_str() : nullptr; }
int attnc_kernel_from_cache(attnc_kernel *k) { return k && k->fromCache ? 1 : 0; }

void attnc_release(attnc_kernel *k) {
  if (!k)
    return;
  attnc_rt_release(k->rt);
  delete k;
}

const char *attnc_last_error(void) { return lastError.c_str(); }

}  // extern "C"
