// The JIT C ABI (attnc.h): spec text -> PTX + manifest (compiler or cache) -> attnc_runtime.
#include "compiler/capi/attnc.h"

#include "compiler/Compiler.h"
#include "compiler/Manifest.h"
#include "compiler/capi/KernelCache.h"
#include "compiler/lowering/ASTToAttn.h"
#include "compiler/pipeline/HostRun.h"
#include "codegen/cpu/CPUExecutor.h"
#include "runtime/ArgCheck.h"

#define JSON_NOEXCEPTION 1  // built with -fno-exceptions; parse errors are checked, not thrown
#include <nlohmann/json.hpp>

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

/// One compiled variant: the forward and, when asked for, its backward (`<name>_grad`).
/// Target cuda: both loaded by the runtime. Target cpu: one host module holding both, each
/// with its host manifest (parsed once, checked at every launch).
struct attnc_kernel {
  struct Part {
    attnc_rt_kernel *rt = nullptr;  // cuda
    std::string manifest, ptx;
    attnc::rt::Manifest host;       // cpu: the parsed manifest, whose entry the module runs
  };
  Part forward;
  std::optional<Part> grad;
  std::unique_ptr<attnc::CPUModule> cpu;
  bool fromCache = false;
  ~attnc_kernel() {
    for (Part *p : {&forward, grad ? &*grad : nullptr})
      if (p)
        attnc_rt_release(p->rt);
  }
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

/// The manifest's "variant" ("" if it has none).
std::string manifestVariant(const std::string &manifest) {
  nlohmann::json m = nlohmann::json::parse(manifest, nullptr, false);
  auto name = m.is_object() ? m.find("variant") : m.end();
  return m.is_object() && name != m.end() && name->is_string() ? name->get<std::string>() : "";
}

/// Whether variant name `grad` is the backward of `forward`.
bool isGradOf(const std::string &grad, const std::string &forward) {
  return !forward.empty() && grad == forward + "_grad";
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

/// What one compile produces: the forward's PTX and manifest, the backward's when asked for,
/// and for the cpu target the host module.
struct Compiled {
  attnc::CacheEntry forward;
  std::optional<attnc::CacheEntry> grad;
  std::unique_ptr<attnc::CPUModule> cpu;
};

/// The variant the request names (or the file's only one); null with the error otherwise.
const attnc::Variant *chooseVariant(const attnc::SpecFile &file, const char *variant,
                                    std::string &error) {
  std::string names;
  const attnc::Variant *chosen = nullptr;
  for (const attnc::Variant &v : file.variants) {
    names += (names.empty() ? "'" : ", '") + v.name + "'";
    if ((variant && v.name == variant) || (!variant && file.variants.size() == 1))
      chosen = &v;
  }
  if (!chosen)
    error = variant ? "no variant '" + std::string(variant) + "' in the spec; it has " + names
                    : "the spec has several variants (" + names + "): name one";
  return chosen;
}

bool compileSpec(const std::string &spec, const char *variant, attnc::CompileOptions options,
                 bool cpu, Compiled &out, std::string &error) {
  attnc::Compiler compiler;
  attnc::Diagnostic diag;
  const std::string path = "<spec>";
  if (!compiler.loadSpec(path, spec, diag)) {
    error = diag.render(spec);
    return false;
  }
  const attnc::Variant *chosen = chooseVariant(compiler.spec(), variant, error);
  if (!chosen)
    return false;
  if (cpu) {  // the CPU back end computes in f32; it reads f32 q, k, v and writes f32 o
    options.dtypeOverride = attnc::DType::F32;
    options.pipeline.splitKV = false;  // one pass over the keys: no partial-result workspace
    bool packed = false;
    for (const auto *list : {&chosen->inputs, &chosen->params})
      for (const attnc::TensorDecl &t : *list)
        packed = packed || attnc::dtypePacking(t.resolvedDType) > 1;
    if (chosen->paged || packed) {
      error = "variant '" + chosen->name + "': the cpu target runs dense K/V only (" +
              (chosen->paged ? "this one reads a paged pool" : "this one reads packed i4") +
              "); compile it for cuda, or check it with `attnc run` on the CPU";
      return false;
    }
  }
  attnc::Stage last = cpu ? attnc::Stage::LLVM : attnc::Stage::PTX;
  if (!compiler.lowerToAttn(options, diag)) {
    error = diag.render(spec);
    return false;
  }
  if (cpu && chosen->norm == attnc::Norm::Softmax)  // attnc_combine's host entry
    attnc::addCombineFunction(compiler.module(), *chosen);
  if (!compiler.lowerTo(last, options, diag)) {
    error = diag.render(spec);
    return false;
  }
  const attnc::PipelineOptions &p = options.pipeline;
  if (cpu) {
    out.cpu = compiler.loadOnCPU(diag);
    if (!out.cpu) {
      error = diag.render(spec);
      return false;
    }
    out.forward.manifest = attnc::hostManifest(attnc::buildManifest(*chosen, p, "", spec));
    if (p.backward)
      out.grad = attnc::CacheEntry{
          attnc::hostManifest(attnc::buildGradManifest(*chosen, p, "", spec, {})), ""};
    return true;
  }
  std::map<std::string, std::string> ptx;
  if (!compiler.ptxByVariant(ptx, diag)) {
    error = diag.render(spec);
    return false;
  }
  auto launches = compiler.launchesByKernel();
  if (p.backwardOnly)
    out.grad = attnc::CacheEntry{
        attnc::buildGradManifest(*chosen, p, chosen->name + "_grad.ptx", spec, launches),
        ptx[chosen->name + "_grad"]};
  else
    out.forward = {attnc::buildManifest(*chosen, p, chosen->name + ".ptx", spec, launches),
                   ptx[chosen->name]};
  return true;
}

/// The CUDA forward and, with options.pipeline.backward, the backward: two compiles of their
/// own (a context each) in two threads, so that their NVPTX code generation (most of a
/// compile) overlaps.
bool compileCUDA(const std::string &spec, const char *variant, attnc::CompileOptions options,
                 Compiled &out, std::string &error) {
  bool backward = options.pipeline.backward;
  options.pipeline.backward = false;
  if (!backward)
    return compileSpec(spec, variant, options, /*cpu=*/false, out, error);
  attnc::CompileOptions gradOptions = options;
  gradOptions.pipeline.backward = gradOptions.pipeline.backwardOnly = true;
  Compiled grad;
  std::string gradError;
  bool gradOk = false;
  std::thread thread(
      [&] { gradOk = compileSpec(spec, variant, gradOptions, /*cpu=*/false, grad, gradError); });
  bool forwardOk = compileSpec(spec, variant, options, /*cpu=*/false, out, error);
  thread.join();
  if (forwardOk && !gradOk)
    error = gradError;
  out.grad = std::move(grad.grad);
  return forwardOk && gradOk;
}

/// Loads a cuda part into the runtime; false with the runtime's error.
bool loadPart(attnc::CacheEntry &entry, attnc_kernel::Part &part) {
  if (attnc_rt_load(entry.ptx.data(), entry.ptx.size(), entry.manifest.data(),
                    entry.manifest.size(), &part.rt) != 0)
    return false;
  part.manifest = std::move(entry.manifest);
  part.ptx = std::move(entry.ptx);
  return true;
}

/// The host back end's memref descriptors of checked arguments.
std::vector<attnc::MemRefDescriptor>
descriptorsOf(const std::vector<attnc::rt::TensorArg> &args) {
  std::vector<attnc::MemRefDescriptor> descriptors;
  for (const attnc::rt::TensorArg &t : args)
    descriptors.emplace_back(reinterpret_cast<void *>(t.data),
                             std::vector<int64_t>(t.sizes, t.sizes + t.rank),
                             std::vector<int64_t>(t.strides, t.strides + t.rank));
  return descriptors;
}

/// Runs a part of a cpu-target kernel on the host: the arguments are checked against its
/// manifest exactly as the CUDA runtime checks them, then passed as memref descriptors.
int launchHost(attnc_kernel &k, attnc_kernel::Part &part, const attnc_tensor *args,
               int32_t nargs) {
  const attnc::rt::Manifest &m = part.host;
  if (nargs < 0)
    return fail("kernel '" + m.variant + "': nargs is negative (" + std::to_string(nargs) + ")");
  std::vector<attnc::rt::TensorArg> converted = attnc::rt::tensorArgs(args, nargs);
  std::vector<int64_t> dimSizes;
  std::string error;
  if (!attnc::rt::checkTensors(m, args ? converted.data() : nullptr, size_t(nargs), dimSizes,
                               error))
    return fail("kernel '" + m.variant + "': " + error);
  std::vector<attnc::MemRefDescriptor> descriptors = descriptorsOf(converted);
  if (llvm::Error err = k.cpu->invoke(m.entry, descriptors))
    return fail("kernel '" + m.variant + "': " + llvm::toString(std::move(err)));
  lastError.clear();
  return 0;
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
  attnc_options o =
      opts ? *opts : attnc_options{0, 0, nullptr, nullptr, nullptr, 0, nullptr, 0, nullptr};
  attnc::CompileOptions options;
  options.pipeline.blockQ = o.block_q;  // 0: automatic
  options.pipeline.chip = o.chip ? o.chip : "sm_80";
  options.pipeline.blockK = o.block_k;  // 0: the pipeline's default for the chip and head dims
  options.pipeline.backward = o.backward != 0;
  if (options.pipeline.chip != "sm_80" && options.pipeline.chip != "sm_90a")
    return fail("attnc_compile: unknown chip '" + options.pipeline.chip + "'; use sm_80 or sm_90a");
  std::string target = o.target ? o.target : "cuda";
  if (target != "cuda" && target != "cpu")
    return fail("attnc_compile: unknown target '" + target + "'; use cuda or cpu");
  std::string error;
  if (o.dims && !attnc::parseSizeList(o.dims, options.staticDims, error))
    return fail("attnc_compile: dims: " + error);
  options.positionOffsets = o.position_offsets != 0;
  if (o.out_dtype) {
    std::optional<attnc::DType> t = attnc::dtypeFromName(o.out_dtype);
    if (!t || !attnc::isFloat(*t))
      return fail("attnc_compile: unknown out_dtype '" + std::string(o.out_dtype) +
                  "'; use f32, f16 or bf16");
    options.outDType = t;
  }
  std::string text(spec, spec_len);
  auto kernel = std::make_unique<attnc_kernel>();

  if (target == "cpu") {  // JIT-compiled machine code: nothing to cache
    Compiled compiled;
    if (!compileSpec(text, variant, options, /*cpu=*/true, compiled, error))
      return fail(error);
    kernel->cpu = std::move(compiled.cpu);
    std::vector<std::pair<attnc::CacheEntry *, attnc_kernel::Part *>> parts = {
        {&compiled.forward, &kernel->forward}};
    if (compiled.grad)
      parts.emplace_back(&*compiled.grad, &kernel->grad.emplace());
    for (auto [entry, part] : parts) {
      if (!attnc::rt::parseManifest(entry->manifest, part->host, error))
        return fail("attnc_compile: internal error: " + error);
      part->manifest = std::move(entry->manifest);
    }
    *out = kernel.release();
    lastError.clear();
    return 0;
  }

  std::string material = std::string("attnc 0.1.0\n") + options.pipeline.chip + "\n" +
                         std::to_string(options.pipeline.blockQ) + "x" +
                         std::to_string(options.pipeline.blockK) + "\n" + (o.dims ? o.dims : "") +
                         "\n" + (o.position_offsets ? "offsets" : "") + "\n" +
                         (o.out_dtype ? o.out_dtype : "") +
                         "\n" + (variant ? variant : "") + "\n" +
                         std::to_string(driverVersion()) + "\n" + text;
  // The backward is its own entry, so that a forward-only request is served by the forward
  // entry a backward compile stored.
  std::string key = attnc::hashText(material), gradKey = attnc::hashText(material + "\ngrad");
  std::string gradVariant = variant ? std::string(variant) + "_grad" : "";
  attnc::KernelCache cache(o.cache_dir ? o.cache_dir : attnc::KernelCache::defaultDir());

  Compiled cached;
  auto lookup = [&](const std::string &k, const char *name, attnc::CacheEntry &entry) {
    return cache.load(k, entry) == attnc::KernelCache::Lookup::Hit &&
           entryMatches(entry, text, name);
  };
  kernel->fromCache = lookup(key, variant, cached.forward);
  if (kernel->fromCache && options.pipeline.backward)
    kernel->fromCache = lookup(gradKey, variant ? gradVariant.c_str() : nullptr,
                               cached.grad.emplace()) &&
                        isGradOf(manifestVariant(cached.grad->manifest),
                                 manifestVariant(cached.forward.manifest));
  // A cached entry the runtime rejects (written by another build, say) is rebuilt once.
  if (kernel->fromCache)
    kernel->fromCache = loadPart(cached.forward, kernel->forward) &&
                        (!cached.grad || loadPart(*cached.grad, kernel->grad.emplace()));
  if (!kernel->fromCache) {  // a miss, a corrupt, foreign or rejected entry: (re)build it
    kernel = std::make_unique<attnc_kernel>();
    Compiled compiled;
    if (!compileCUDA(text, variant, options, compiled, error))
      return fail(error);
    // A cache that cannot be written (read-only, a file in its place) costs the caching only.
    bool stored = cache.store(key, compiled.forward, error) &&
                  (!compiled.grad || cache.store(gradKey, *compiled.grad, error));
    if (!stored && !warnedUnwritable.exchange(true))
      std::fprintf(stderr, "attnc: warning: %s; compiling without the kernel cache\n",
                   error.c_str());
    if (!loadPart(compiled.forward, kernel->forward) ||
        (compiled.grad && !loadPart(*compiled.grad, kernel->grad.emplace())))
      return fail(attnc_rt_last_error());
  }
  *out = kernel.release();
  lastError.clear();
  return 0;
}

int attnc_launch(attnc_kernel *k, const attnc_tensor *args, int32_t nargs, void *cu_stream) {
  if (!k)
    return fail("attnc_launch: the kernel handle is null");
  if (k->cpu)
    return launchHost(*k, k->forward, args, nargs);
  if (attnc_rt_launch(k->forward.rt, args, nargs, cu_stream) != 0)
    return fail(attnc_rt_last_error());
  lastError.clear();
  return 0;
}

int attnc_combine(attnc_kernel *k, const attnc_tensor *args, int32_t nargs, void *cu_stream) {
  if (!k)
    return fail("attnc_combine: the kernel handle is null");
  if (!k->cpu) {
    if (attnc_rt_combine(k->forward.rt, args, nargs, cu_stream) != 0)
      return fail(attnc_rt_last_error());
    lastError.clear();
    return 0;
  }
  const attnc::rt::Manifest &m = k->forward.host;
  if (nargs < 0)
    return fail("kernel '" + m.variant + "': nargs is negative (" + std::to_string(nargs) + ")");
  std::vector<attnc::rt::TensorArg> converted = attnc::rt::tensorArgs(args, nargs);
  std::array<uint32_t, 3> grid{};
  bool empty = false;
  std::string error;
  if (!attnc::rt::checkCombineArgs(m, args ? converted.data() : nullptr, size_t(nargs), grid,
                                   empty, error))
    return fail("kernel '" + m.variant + "': " + error);
  std::vector<attnc::MemRefDescriptor> descriptors = descriptorsOf(converted);
  if (!empty)
    if (llvm::Error err = k->cpu->invoke(m.entry + "_combine", descriptors))
      return fail("kernel '" + m.variant + "': " + llvm::toString(std::move(err)));
  lastError.clear();
  return 0;
}

int attnc_launch_grad(attnc_kernel *k, const attnc_tensor *args, int32_t nargs, void *cu_stream) {
  if (!k)
    return fail("attnc_launch_grad: the kernel handle is null");
  if (!k->grad)
    return fail("attnc_launch_grad: kernel '" + manifestVariant(k->forward.manifest) +
                "' was compiled without its backward (set attnc_options.backward = 1)");
  if (k->cpu)
    return launchHost(*k, *k->grad, args, nargs);
  if (attnc_rt_launch(k->grad->rt, args, nargs, cu_stream) != 0)
    return fail(attnc_rt_last_error());
  lastError.clear();
  return 0;
}

const char *attnc_kernel_manifest(attnc_kernel *k) {
  return k ? k->forward.manifest.c_str() : nullptr;
}
const char *attnc_kernel_ptx(attnc_kernel *k) { return k ? k->forward.ptx.c_str() : nullptr; }
const char *attnc_kernel_grad_manifest(attnc_kernel *k) {
  return k && k->grad ? k->grad->manifest.c_str() : nullptr;
}
const char *attnc_kernel_grad_ptx(attnc_kernel *k) {
  return k && k->grad ? k->grad->ptx.c_str() : nullptr;
}
int attnc_kernel_from_cache(attnc_kernel *k) { return k && k->fromCache ? 1 : 0; }

void attnc_release(attnc_kernel *k) { delete k; }

const char *attnc_last_error(void) { return lastError.c_str(); }

}  // extern "C"
