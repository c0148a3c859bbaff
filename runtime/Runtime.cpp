// The CUDA side of the runtime: the driver's entry points (dlopen'ed once), the module cache
// shared by all kernels per (context, PTX), device checks, the split-KV workspace and the
// launches. Every CUDA failure becomes a message that names the kernel, the driver call and the
// driver's error.
#include "runtime/Runtime.h"

#include <cuda.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <vector>

namespace attnc::rt {
namespace {

// Stringizes after macro expansion, so a name cuda.h maps to a versioned symbol (cuLaunchKernel
// -> cuLaunchKernel_ptsz under per-thread default streams) resolves to that symbol.
#define ATTNC_STR2(x) #x
#define ATTNC_STR(x) ATTNC_STR2(x)

struct Driver {
  decltype(&::cuInit) init = nullptr;
  decltype(&::cuDriverGetVersion) driverGetVersion = nullptr;
  decltype(&::cuGetErrorName) getErrorName = nullptr;
  decltype(&::cuGetErrorString) getErrorString = nullptr;
  decltype(&::cuDeviceGet) deviceGet = nullptr;
  decltype(&::cuDeviceGetAttribute) deviceGetAttribute = nullptr;
  decltype(&::cuDeviceGetName) deviceGetName = nullptr;
  decltype(&::cuDevicePrimaryCtxRetain) primaryCtxRetain = nullptr;
  decltype(&::cuCtxGetCurrent) ctxGetCurrent = nullptr;
  decltype(&::cuCtxSetCurrent) ctxSetCurrent = nullptr;
  decltype(&::cuCtxGetDevice) ctxGetDevice = nullptr;
  decltype(&::cuModuleLoadDataEx) moduleLoadDataEx = nullptr;
  decltype(&::cuModuleGetFunction) moduleGetFunction = nullptr;
  decltype(&::cuModuleUnload) moduleUnload = nullptr;
  decltype(&::cuFuncSetAttribute) funcSetAttribute = nullptr;
  decltype(&::cuPointerGetAttribute) pointerGetAttribute = nullptr;
  decltype(&::cuLaunchKernel) launchKernel = nullptr;
  decltype(&::cuMemAlloc) memAlloc = nullptr;
  decltype(&::cuMemFree) memFree = nullptr;
  decltype(&::cuCtxSynchronize) ctxSynchronize = nullptr;
  decltype(&::cuStreamIsCapturing) streamIsCapturing = nullptr;
  decltype(&::cuMemsetD32Async) memsetD32Async = nullptr;
  // Optional (CUDA 12+ drivers): only kernels that copy by TMA (manifest tensor_maps) need it.
  decltype(&::cuTensorMapEncodeTiled) tensorMapEncodeTiled = nullptr;
  int version = 0;  // e.g. 13000 for CUDA 13.0

  /// "cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE (invalid argument)".
  std::string fail(CUresult r, const std::string &call) const {
    const char *name = nullptr, *text = nullptr;
    getErrorName(r, &name);
    getErrorString(r, &text);
    return call + " failed: " + (name ? name : "CUDA error " + std::to_string(int(r))) +
           (text ? std::string(" (") + text + ")" : "");
  }
};

template <typename F>
bool resolve(void *lib, const char *symbol, F &fn, std::string &error) {
  fn = reinterpret_cast<F>(dlsym(lib, symbol));
  if (!fn)
    error = std::string("the CUDA driver libcuda.so.1 has no '") + symbol + "': the driver is too old";
  return fn != nullptr;
}

bool loadDriver(Driver &d, std::string &error) {
  // Kept loaded for the life of the process: modules and contexts outlive any one kernel.
  void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    error = std::string("cannot load the CUDA driver libcuda.so.1 (") + (why ? why : "not found") +
            "): is an NVIDIA driver installed on this machine?";
    return false;
  }
#define ATTNC_RESOLVE(field, fn) resolve(lib, ATTNC_STR(fn), d.field, error)
  bool ok = ATTNC_RESOLVE(init, cuInit) && ATTNC_RESOLVE(driverGetVersion, cuDriverGetVersion) &&
            ATTNC_RESOLVE(getErrorName, cuGetErrorName) &&
            ATTNC_RESOLVE(getErrorString, cuGetErrorString) && ATTNC_RESOLVE(deviceGet, cuDeviceGet) &&
            ATTNC_RESOLVE(deviceGetAttribute, cuDeviceGetAttribute) &&
            ATTNC_RESOLVE(deviceGetName, cuDeviceGetName) &&
            ATTNC_RESOLVE(primaryCtxRetain, cuDevicePrimaryCtxRetain) &&
            ATTNC_RESOLVE(ctxGetCurrent, cuCtxGetCurrent) &&
            ATTNC_RESOLVE(ctxSetCurrent, cuCtxSetCurrent) &&
            ATTNC_RESOLVE(ctxGetDevice, cuCtxGetDevice) &&
            ATTNC_RESOLVE(moduleLoadDataEx, cuModuleLoadDataEx) &&
            ATTNC_RESOLVE(moduleGetFunction, cuModuleGetFunction) &&
            ATTNC_RESOLVE(moduleUnload, cuModuleUnload) &&
            ATTNC_RESOLVE(funcSetAttribute, cuFuncSetAttribute) &&
            ATTNC_RESOLVE(pointerGetAttribute, cuPointerGetAttribute) &&
            ATTNC_RESOLVE(launchKernel, cuLaunchKernel) &&
            ATTNC_RESOLVE(memAlloc, cuMemAlloc) && ATTNC_RESOLVE(memFree, cuMemFree) &&
            ATTNC_RESOLVE(ctxSynchronize, cuCtxSynchronize) &&
            ATTNC_RESOLVE(streamIsCapturing, cuStreamIsCapturing) &&
            ATTNC_RESOLVE(memsetD32Async, cuMemsetD32Async);
#undef ATTNC_RESOLVE
  if (!ok)
    return false;
  d.tensorMapEncodeTiled =
      reinterpret_cast<decltype(d.tensorMapEncodeTiled)>(dlsym(lib, "cuTensorMapEncodeTiled"));
  if (CUresult r = d.init(0)) {
    error = d.fail(r, "cuInit") + (r == CUDA_ERROR_NO_DEVICE ? ": this machine has no usable GPU" : "");
    return false;
  }
  d.driverGetVersion(&d.version);
  return true;
}

/// The driver, loaded and initialised once per process; null with the reason otherwise.
const Driver *driver(std::string &error) {
  static std::once_flag once;
  static Driver d;
  static bool ok = false;
  static std::string loadError;
  std::call_once(once, [] { ok = loadDriver(d, loadError); });
  if (!ok)
    error = loadError;
  return ok ? &d : nullptr;
}

/// The current context; without one, device 0's primary context (retained once, never released:
/// the CUDA runtime and PyTorch share it) is made current.
bool currentContext(const Driver &d, CUcontext &ctx, std::string &error) {
  if (CUresult r = d.ctxGetCurrent(&ctx)) {
    error = d.fail(r, "cuCtxGetCurrent");
    return false;
  }
  if (ctx)
    return true;
  static std::once_flag once;
  static CUcontext primary = nullptr;
  static std::string primaryError;
  std::call_once(once, [&d] {
    CUdevice dev;
    if (CUresult r = d.deviceGet(&dev, 0))
      primaryError = d.fail(r, "cuDeviceGet(0)");
    else if (CUresult r = d.primaryCtxRetain(&primary, dev))
      primaryError = d.fail(r, "cuDevicePrimaryCtxRetain");
  });
  if (!primary) {
    error = primaryError;
    return false;
  }
  if (CUresult r = d.ctxSetCurrent(primary)) {
    error = d.fail(r, "cuCtxSetCurrent");
    return false;
  }
  ctx = primary;
  return true;
}

std::string archText(int major, int minor) {
  return "sm_" + std::to_string(major) + std::to_string(minor);
}

/// The manifest's arch against the device: sm_80 runs on 8.0 and newer, sm_90a only on 9.0
/// (arch-specific instructions), sm_100f on the 10.x family.
bool checkDevice(const Driver &d, const Manifest &m, CUdevice dev, std::string &error) {
  int major = 0, minor = 0, smemOptin = 0;
  char name[256] = "?";
  d.deviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
  d.deviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
  d.deviceGetAttribute(&smemOptin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev);
  d.deviceGetName(name, sizeof name, dev);
  bool newer = major > m.archMajor || (major == m.archMajor && minor >= m.archMinor);
  bool ok = m.archSuffix == 'a'   ? major == m.archMajor && minor == m.archMinor
            : m.archSuffix == 'f' ? major == m.archMajor && minor >= m.archMinor
                                  : newer;
  std::string device = "device " + std::to_string(int(dev)) + " (" + name + ")";
  if (!ok) {
    std::string need = m.archSuffix == 'a'   ? archText(m.archMajor, m.archMinor) + " exactly"
                       : m.archSuffix == 'f' ? "the sm_" + std::to_string(m.archMajor) + "x family"
                                             : m.arch + " or newer";
    error = "compiled for " + m.arch + ", needs " + need + ", but " + device + " is " +
            archText(major, minor);
    return false;
  }
  if (m.dynamicSharedMemory > uint32_t(smemOptin)) {
    error = "needs " + std::to_string(m.dynamicSharedMemory) + " bytes of shared memory per block, but " +
            device + " allows at most " + std::to_string(smemOptin);
    return false;
  }
  return true;
}

/// Runs `body` with `ctx` current (cuModuleUnload and cuMemFree act in the current context),
/// then restores the previous one. Errors are ignored: at process exit the driver may be gone.
template <typename F>
void inContext(const Driver &d, CUcontext ctx, F &&body) {
  CUcontext previous = nullptr;
  d.ctxGetCurrent(&previous);
  if (previous != ctx && d.ctxSetCurrent(ctx) != CUDA_SUCCESS)
    return;
  body();
  if (previous != ctx)
    d.ctxSetCurrent(previous);
}

/// Frees device memory once the work queued in its context, which may still read it, is done.
void freeAfterWork(const Driver &d, CUcontext ctx, uint64_t ptr) {
  inContext(d, ctx, [&] {
    d.ctxSynchronize();
    d.memFree(CUdeviceptr(ptr));
  });
}

/// True if `ptx` defines `.entry NAME` (followed by its parameter list or whitespace).
bool hasEntry(std::string_view ptx, const std::string &name) {
  std::string entry = ".entry " + name;
  for (size_t at = ptx.find(entry); at != std::string_view::npos; at = ptx.find(entry, at + 1)) {
    char next = at + entry.size() < ptx.size() ? ptx[at + entry.size()] : 0;
    if (next == '(' || next == ' ' || next == '\n' || next == '\t')
      return true;
  }
  return false;
}

bool loadModule(const Driver &d, const std::string &ptx, CUmodule &module, std::string &error) {
  std::vector<char> log(1 << 14, 0);
  CUjit_option options[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {log.data(), reinterpret_cast<void *>(uintptr_t(log.size() - 1))};
  CUresult r = d.moduleLoadDataEx(&module, ptx.c_str(), 2, options, values);
  if (r == CUDA_SUCCESS)
    return true;
  error = d.fail(r, "cuModuleLoadDataEx") + "; driver " + std::to_string(d.version / 1000) + "." +
          std::to_string(d.version % 1000 / 10);
  if (log[0])
    error += "; JIT log:\n" + std::string(log.data());
  return false;
}

/// Modules shared by every kernel with the same PTX in the same context, counted by users.
class ModuleCache {
public:
  bool acquire(const Driver &d, CUcontext ctx, uint64_t hash,
               const std::shared_ptr<const std::string> &ptx, CUmodule &module, std::string &error) {
    std::lock_guard<std::mutex> lock(mutex_);
    Key key{ctx, hash};
    // A 64-bit hash collision between two loaded PTX texts is unlikely but cheap to rule out.
    while (entries_.count(key) && *entries_[key].ptx != *ptx)
      ++key.second;
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      if (!loadModule(d, *ptx, module, error))
        return false;
      it = entries_.emplace(key, Entry{module, ptx, 0}).first;
    }
    ++it->second.users;
    module = it->second.module;
    return true;
  }

  void release(const Driver &d, CUcontext ctx, const std::shared_ptr<const std::string> &ptx,
               uint64_t hash) {
    std::lock_guard<std::mutex> lock(mutex_);
    Key key{ctx, hash};
    while (entries_.count(key) && entries_[key].ptx != ptx && *entries_[key].ptx != *ptx)
      ++key.second;
    auto it = entries_.find(key);
    if (it == entries_.end() || --it->second.users > 0)
      return;
    unload(d, ctx, it->second.module);
    entries_.erase(it);
  }

private:
  using Key = std::pair<CUcontext, uint64_t>;
  struct Entry {
    CUmodule module;
    std::shared_ptr<const std::string> ptx;
    int users;
  };

  static void unload(const Driver &d, CUcontext ctx, CUmodule module) {
    inContext(d, ctx, [&] { d.moduleUnload(module); });
  }

  std::mutex mutex_;
  std::map<Key, Entry> entries_;
};

ModuleCache &moduleCache() {
  // Never destroyed: kernels released during static destruction must still find it.
  static ModuleCache *cache = new ModuleCache;
  return *cache;
}

std::string hex(uint64_t v) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%llx", (unsigned long long)v);
  return text;
}

/// The pointer must be device memory on `dev` (the kernel dereferences it there).
bool checkDevicePointer(const Driver &d, const Arg &a, uint64_t data, CUdevice dev, std::string &error) {
  std::string prefix = "argument '" + a.name + "': ";
  unsigned int memoryType = 0;
  CUresult r = d.pointerGetAttribute(&memoryType, CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CUdeviceptr(data));
  if (r == CUDA_ERROR_INVALID_VALUE || (r == CUDA_SUCCESS && memoryType == CU_MEMORYTYPE_HOST)) {
    error = prefix + "pointer " + hex(data) + " is host memory, not device memory" +
            (r == CUDA_SUCCESS ? " (pinned)" : "");
    return false;
  }
  if (r != CUDA_SUCCESS) {
    error = prefix + d.fail(r, "cuPointerGetAttribute");
    return false;
  }
  int ordinal = -1;
  if (d.pointerGetAttribute(&ordinal, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, CUdeviceptr(data)) ==
          CUDA_SUCCESS && ordinal != int(dev)) {
    error = prefix + "is on device " + std::to_string(ordinal) + ", but the kernel runs on device " +
            std::to_string(int(dev)) + " (the current context's)";
    return false;
  }
  return true;
}

}  // namespace

uint64_t hashPtx(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text)
    h = (h ^ c) * 1099511628211ull;
  return h;
}

std::unique_ptr<Kernel> Kernel::load(std::string_view ptx, std::string_view manifestJson,
                                     std::string &error) {
  std::unique_ptr<Kernel> k(new Kernel);
  if (!parseManifest(manifestJson, k->manifest_, error))
    return nullptr;
  // The driver wants NUL-terminated PTX; callers may or may not count the terminator.
  while (!ptx.empty() && ptx.back() == '\0')
    ptx.remove_suffix(1);
  const Manifest &m = k->manifest_;
  if (m.host()) {
    error = "kernel '" + m.variant + "' was compiled for the host (\"arch\": \"host\", the CPU "
            "back end): it runs through attnc.h's attnc_launch, not the CUDA runtime";
    return nullptr;
  }
  for (const std::string *entry :
       {&m.entry, m.splitKV ? &m.splitKV->combineEntry : nullptr,
        m.backward ? &m.backward->dkdvEntry : nullptr,
        m.backward && !m.backward->dqEntry.empty() ? &m.backward->dqEntry : nullptr,
        m.backward && !m.backward->decayEntry.empty() ? &m.backward->decayEntry : nullptr})
    if (entry && !hasEntry(ptx, *entry)) {
      error = "kernel '" + m.variant + "': the PTX has no '.entry " + *entry + "'";
      return nullptr;
    }
  k->ptx_ = std::make_shared<const std::string>(ptx);
  k->ptxHash_ = hashPtx(ptx);

  // JIT now if a context is current, so PTX errors surface at load; the driver missing is not
  // an error here (the manifest can be inspected on any machine).
  std::string ignored;
  const Driver *d = driver(ignored);
  CUcontext ctx = nullptr;
  Functions fns;
  if (d && d->ctxGetCurrent(&ctx) == CUDA_SUCCESS && ctx && !k->functionsFor(ctx, fns, error))
    return nullptr;
  return k;
}

Kernel::~Kernel() {
  std::string ignored;
  const Driver *d = functions_.empty() ? nullptr : driver(ignored);
  if (d && workspace_.ptr)
    freeAfterWork(*d, workspace_.ctx, workspace_.ptr);
  for (const auto &entry : functions_)
    moduleCache().release(*d, entry.first, ptx_, ptxHash_);
}

bool Kernel::setSplits(int32_t splits, std::string &error) {
  if (!manifest_.splitKV) {
    error = "kernel '" + manifest_.variant + "' has no split_kv";
    return false;
  }
  if (splits < 0) {
    error = "kernel '" + manifest_.variant + "': splits must be >= 0 (0: the heuristic), got " +
            std::to_string(splits);
    return false;
  }
  splitsOverride_ = splits;
  return true;
}

bool Kernel::functionsFor(CUcontext ctx, Functions &fns, std::string &error) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = functions_.find(ctx); it != functions_.end()) {
    fns = it->second;
    return true;
  }
  if (!loadFunctions(ctx, fns, error)) {
    error = "kernel '" + manifest_.variant + "': " + error;
    return false;
  }
  functions_[ctx] = fns;
  return true;
}

bool Kernel::loadFunctions(CUcontext ctx, Functions &fns, std::string &error) {
  const Driver *d = driver(error);
  if (!d)
    return false;
  CUdevice dev;
  CUmodule module;
  if (CUresult r = d->ctxGetDevice(&dev)) {
    error = d->fail(r, "cuCtxGetDevice");
    return false;
  }
  if (!checkDevice(*d, manifest_, dev, error) ||
      !moduleCache().acquire(*d, ctx, ptxHash_, ptx_, module, error))
    return false;
  std::string combine = manifest_.splitKV ? manifest_.splitKV->combineEntry
                        : manifest_.backward ? manifest_.backward->dkdvEntry
                                             : "";
  CUresult r = d->moduleGetFunction(&fns.main, module, manifest_.entry.c_str());
  if (r != CUDA_SUCCESS)
    error = d->fail(r, "cuModuleGetFunction('" + manifest_.entry + "')");
  else if (manifest_.dynamicSharedMemory > 0 &&
           (r = d->funcSetAttribute(fns.main, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                    int(manifest_.dynamicSharedMemory))) != CUDA_SUCCESS)
    error = d->fail(r, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, " +
                           std::to_string(manifest_.dynamicSharedMemory) + ")");
  else if (!combine.empty() &&
           (r = d->moduleGetFunction(&fns.combine, module, combine.c_str())) != CUDA_SUCCESS)
    error = d->fail(r, "cuModuleGetFunction('" + combine + "')");
  else if (manifest_.backward && !manifest_.backward->dqEntry.empty() &&
           (r = d->moduleGetFunction(&fns.dq, module, manifest_.backward->dqEntry.c_str())) !=
               CUDA_SUCCESS)
    error = d->fail(r, "cuModuleGetFunction('" + manifest_.backward->dqEntry + "')");
  else if (manifest_.backward && !manifest_.backward->decayEntry.empty() &&
           (r = d->moduleGetFunction(&fns.decay, module,
                                     manifest_.backward->decayEntry.c_str())) != CUDA_SUCCESS)
    error = d->fail(r, "cuModuleGetFunction('" + manifest_.backward->decayEntry + "')");
  else if (manifest_.blockPlan &&
           (r = d->moduleGetFunction(&fns.plan, module, manifest_.blockPlan->entry.c_str())) !=
               CUDA_SUCCESS)
    error = d->fail(r, "cuModuleGetFunction('" + manifest_.blockPlan->entry + "')");
  else if (manifest_.backward && manifest_.backward->dkdvSharedMemory > 0 &&
           (r = d->funcSetAttribute(fns.combine, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                    int(manifest_.backward->dkdvSharedMemory))) != CUDA_SUCCESS)
    error = d->fail(r, "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, " +
                           std::to_string(manifest_.backward->dkdvSharedMemory) + ") of '" +
                           combine + "'");
  if (r != CUDA_SUCCESS) {
    moduleCache().release(*d, ctx, ptx_, ptxHash_);
    return false;
  }
  // For the split heuristic: without it, it assumes one SM.
  d->deviceGetAttribute(&fns.smCount, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev);
  return true;
}

bool Kernel::launch(const TensorArg *args, size_t count, void *stream, std::string &error) {
  LaunchPlan plan;
  if (!checkArgs(manifest_, args, count, plan, error)) {
    error = "kernel '" + manifest_.variant + "': " + error;
    return false;
  }
  if (plan.empty)
    return true;
  return launchPlanned(args, plan, stream, error);
}

bool Kernel::planShape(const TensorArg *args, size_t count, std::array<int64_t, 4> &shape,
                       std::string &error) {
  std::string prefix = "kernel '" + manifest_.variant + "': ";
  if (!manifest_.blockPlan) {
    error = prefix + "has no block plan (its mask reads no params, or attnc was told "
                     "--no-block-plan)";
    return false;
  }
  LaunchPlan plan;
  if (!checkArgs(manifest_, args, count, plan, error)) {
    error = prefix + error;
    return false;
  }
  std::copy(plan.blockPlan.sizes.begin(), plan.blockPlan.sizes.end(), shape.begin());
  return true;
}

bool Kernel::checkWithPlan(const TensorArg *args, size_t count, const TensorArg &given,
                           LaunchPlan &plan, const char *what, std::string &error) {
  std::string prefix = "kernel '" + manifest_.variant + "': " + what + ": ";
  if (manifest_.backward) {
    error = prefix + "a backward computes its block plan at each launch";
    return false;
  }
  std::array<int64_t, 4> shape{};
  if (!planShape(args, count, shape, error) || !checkArgs(manifest_, args, count, plan, error))
    return false;
  auto text = [](const int64_t *v, int32_t n) {
    std::string s = "[";
    for (int32_t a = 0; a < n; ++a)
      s += (a ? ", " : "") + std::to_string(v[a]);
    return s + "]";
  };
  const Workspace &w = plan.blockPlan;
  bool sameShape = given.rank == 4 && given.sizes && given.strides &&
                   std::equal(w.sizes.begin(), w.sizes.end(), given.sizes) &&
                   std::equal(w.strides.begin(), w.strides.end(), given.strides);
  if (given.dtype != int32_t(DType::I32) || !sameShape) {
    error = prefix + "the block plan must be a contiguous i32 tensor of shape " +
            text(w.sizes.data(), 4) + " (planShape for these arguments), got " +
            (given.rank == 4 && given.sizes ? text(given.sizes, 4) : "rank " + std::to_string(given.rank)) +
            (given.dtype != int32_t(DType::I32) ? " of dtype code " + std::to_string(given.dtype) : "");
    return false;
  }
  if (!given.data && w.bytes > 0) {
    error = prefix + "the block plan's data pointer is null";
    return false;
  }
  return true;
}

bool Kernel::computePlan(const TensorArg *args, size_t count, const TensorArg &given, void *stream,
                         std::string &error) {
  LaunchPlan plan;
  if (!checkWithPlan(args, count, given, plan, "computePlan", error))
    return false;
  return launchPlanned(args, plan, stream, error, PlanUse::Only, given.data);
}

bool Kernel::launchWithPlan(const TensorArg *args, size_t count, const TensorArg &given,
                            void *stream, std::string &error) {
  LaunchPlan plan;
  if (!checkWithPlan(args, count, given, plan, "launchWithPlan", error))
    return false;
  if (plan.empty)
    return true;
  return launchPlanned(args, plan, stream, error, PlanUse::Reuse, given.data);
}

bool Kernel::workspaceFor(CUcontext ctx, int64_t bytes, void *stream, uint64_t &ptr,
                          std::string &error) {
  DeviceWorkspace &w = workspace_;
  if (w.ptr && w.ctx == ctx && w.bytes >= uint64_t(bytes)) {
    ptr = w.ptr;
    return true;
  }
  const Driver *d = driver(error);
  if (!d)
    return false;
  // Growing synchronises the context, which a stream capture would not survive; and a captured
  // graph would keep the old pointer.
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  if (d->streamIsCapturing(static_cast<CUstream>(stream), &capture) == CUDA_SUCCESS &&
      capture != CU_STREAM_CAPTURE_STATUS_NONE) {
    error = "the workspace (split-KV partial results, block plan) must grow to " + std::to_string(bytes) +
            " bytes during a CUDA graph capture; launch once with these shapes before capturing";
    return false;
  }
  if (w.ptr)
    freeAfterWork(*d, w.ctx, w.ptr);
  w = DeviceWorkspace();
  // Rounded up to 1 MiB, so that slowly growing shapes reallocate (and synchronise) rarely.
  size_t size = (uint64_t(bytes) + (1u << 20) - 1) & ~uint64_t((1u << 20) - 1);
  CUdeviceptr p = 0;
  if (CUresult r = d->memAlloc(&p, size)) {
    error = d->fail(r, "cuMemAlloc(" + std::to_string(size) + ") of the workspace");
    return false;
  }
  w = {ctx, uint64_t(p), size};
  ptr = w.ptr;
  return true;
}

namespace {

/// The "memref" parameter ABI: allocated ptr, aligned ptr, offset 0, sizes, strides.
void pushMemref(std::vector<uint64_t> &out, uint64_t data, int32_t rank, const int64_t *sizes,
                const int64_t *strides) {
  out.insert(out.end(), {data, data, 0});
  for (int32_t i = 0; i < rank; ++i)
    out.push_back(uint64_t(sizes[i]));
  for (int32_t i = 0; i < rank; ++i)
    out.push_back(uint64_t(strides[i]));
}

void pushMemref(std::vector<uint64_t> &out, const TensorArg &t) {
  pushMemref(out, t.data, t.rank, t.sizes, t.strides);
}

void pushMemref(std::vector<uint64_t> &out, uint64_t base, const Workspace &w) {
  pushMemref(out, base + uint64_t(w.offset), int32_t(w.sizes.size()), w.sizes.data(), w.strides.data());
}

std::string launchText(const std::array<uint32_t, 3> &grid, const std::array<uint32_t, 3> &block,
                       uint32_t sharedMemory) {
  auto triple = [](const std::array<uint32_t, 3> &v) {
    return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " + std::to_string(v[2]) + ")";
  };
  return " with grid " + triple(grid) + ", block " + triple(block) + ", " +
         std::to_string(sharedMemory) + " bytes of shared memory";
}

/// The TMA descriptors of `m.tensorMaps` for `args` (canonical [b, h, s, c] order): the
/// tensor's axes innermost first, byte strides, boxes of [rows, 64] written in the 128-byte
/// swizzle, out-of-range elements read as zeros. A tensor without elements (kv_len 0: the
/// kernel loads a tile it never reads) is described as one row of the first input that has
/// elements, so the descriptor stays valid and the load reads valid memory.
bool encodeTensorMaps(const Driver &d, const Manifest &m, const TensorArg *args,
                      std::vector<CUtensorMap> &maps, std::string &error) {
  maps.clear();
  if (m.tensorMaps.empty())
    return true;
  if (!d.tensorMapEncodeTiled) {
    error = "the CUDA driver has no cuTensorMapEncodeTiled (a CUDA 12 or newer driver is needed "
            "for kernels compiled for sm_90a with TMA copies; hint: recompile with --tma=false)";
    return false;
  }
  maps.resize(m.tensorMaps.size());
  for (size_t i = 0; i < m.tensorMaps.size(); ++i) {
    const TensorMap &tm = m.tensorMaps[i];
    const TensorArg &t = args[size_t(tm.arg)];
    const Arg &a = m.args[size_t(tm.arg)];
    int64_t elementBytes = dtypeBytes(a.dtype);
    cuuint64_t dims[4], strides[3];
    uint64_t data = t.data;
    if (hasElements(t)) {
      for (int axis = 0; axis < 4; ++axis)
        dims[axis] = cuuint64_t(t.sizes[3 - axis]);
      // An axis of extent 1 is never stepped: any valid stride does (torch leaves arbitrary
      // ones there), so it gets the dense one.
      int64_t dense = t.sizes[3] * elementBytes;
      for (int axis = 1; axis < 4; ++axis) {
        int64_t stride = t.sizes[3 - axis] > 1 ? t.strides[3 - axis] * elementBytes : dense;
        strides[axis - 1] = cuuint64_t(stride);
        dense = stride * t.sizes[3 - axis];
      }
    } else {
      const TensorArg *other = nullptr;
      for (size_t b = 0; b < m.args.size() && !other; ++b)
        if (m.args[b].kind == ArgKind::Input && dtypeBytes(m.args[b].dtype) == elementBytes &&
            m.args[b].unitStrideLast && hasElements(args[b]) && args[b].rank >= 1)
          other = &args[b];
      if (!other) {
        error = "argument '" + a.name + "' has no elements and no other input can stand in "
                "for its tensor map";
        return false;
      }
      data = other->data;
      dims[0] = cuuint64_t(std::min<int64_t>(other->sizes[other->rank - 1], 64));
      dims[1] = dims[2] = dims[3] = 1;
      strides[0] = strides[1] = strides[2] = 256;
    }
    cuuint32_t box[4] = {cuuint32_t(tm.columns), cuuint32_t(tm.rows), 1, 1};
    cuuint32_t unit[4] = {1, 1, 1, 1};
    CUresult r = d.tensorMapEncodeTiled(
        &maps[i], a.dtype == DType::BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                          : CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        4, reinterpret_cast<void *>(data), dims, strides, box, unit,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
      error = d.fail(r, "cuTensorMapEncodeTiled('" + a.name + "')") +
              ": TMA needs a 16-byte aligned pointer and strides that are multiples of 16 bytes "
              "below 2^40 (hint: make the tensor contiguous, or recompile with --tma=false)";
      return false;
    }
  }
  return true;
}

/// Launches `fn` with `storage` as its parameters (one pointer per 8-byte value), then the
/// tensor maps `maps` (by value, 128 bytes each) when given.
bool launchWith(const Driver &d, CUfunction fn, const std::array<uint32_t, 3> &grid,
                const std::array<uint32_t, 3> &block, uint32_t sharedMemory, void *stream,
                std::vector<uint64_t> &storage, const std::string &what, std::string &error,
                std::vector<CUtensorMap> *maps = nullptr) {
  std::vector<void *> params;
  params.reserve(storage.size() + (maps ? maps->size() : 0));
  for (uint64_t &v : storage)
    params.push_back(&v);
  if (maps)
    for (CUtensorMap &map : *maps)
      params.push_back(&map);
  CUresult r = d.launchKernel(fn, grid[0], grid[1], grid[2], block[0], block[1], block[2], sharedMemory,
                              static_cast<CUstream>(stream), params.data(), nullptr);
  if (r != CUDA_SUCCESS)
    error = d.fail(r, what) + launchText(grid, block, sharedMemory);
  return r == CUDA_SUCCESS;
}

/// The block plan's kernel with `args` (a copy: launchWith points into its storage); nothing to
/// launch for an empty grid.
bool launchPlanKernel(const Driver &d, CUfunction fn, const Manifest &m, const LaunchPlan &plan,
                      std::vector<uint64_t> args, void *stream, std::string &error) {
  if (std::find(plan.planGrid.begin(), plan.planGrid.end(), 0u) != plan.planGrid.end())
    return true;
  return launchWith(d, fn, plan.planGrid, m.blockPlan->block, 0, stream, args,
                    "cuLaunchKernel('" + m.blockPlan->entry + "')", error);
}

/// The driver, the current context (device 0's primary one if none) and its device.
bool currentDevice(const Driver *&d, CUcontext &ctx, CUdevice &dev, std::string &error) {
  d = driver(error);
  if (!d || !currentContext(*d, ctx, error))
    return false;
  if (CUresult r = d->ctxGetDevice(&dev)) {
    error = d->fail(r, "cuCtxGetDevice");
    return false;
  }
  return true;
}

}  // namespace

bool Kernel::launchPlanned(const TensorArg *args, LaunchPlan &plan, void *stream,
                           std::string &error, PlanUse use, uint64_t planData) {
  std::string prefix = "kernel '" + manifest_.variant + "': ";
  const Driver *d = nullptr;
  CUcontext ctx = nullptr;
  CUdevice dev;
  if (!currentDevice(d, ctx, dev, error)) {
    error = prefix + error;
    return false;
  }
  size_t values = 0;
  for (size_t a = 0; a < manifest_.args.size(); ++a) {
    if (hasElements(args[a]) && !checkDevicePointer(*d, manifest_.args[a], args[a].data, dev, error)) {
      error = prefix + error;
      return false;
    }
    values += 3 + 2 * size_t(args[a].rank);
  }
  Functions fns;
  if (!functionsFor(ctx, fns, error))
    return false;
  std::vector<uint64_t> storage;
  storage.reserve(values + 2 * 3 + 2 * (5 + 4));
  for (size_t a = 0; a < manifest_.args.size(); ++a)
    pushMemref(storage, args[a]);
  if (manifest_.backward)
    return launchBackward(ctx, fns, args, plan, storage, stream, error);
  std::vector<CUtensorMap> maps;
  if (!encodeTensorMaps(*d, manifest_, args, maps, error)) {
    error = prefix + error;
    return false;
  }
  if (!manifest_.splitKV && !manifest_.blockPlan) {
    if (!launchWith(*d, fns.main, plan.grid, plan.block, plan.sharedMemory, stream, storage,
                    "cuLaunchKernel", error, &maps)) {
      error = prefix + error;
      return false;
    }
    lastSplits_ = 1;
    return true;
  }

  // Split-KV: the main kernel also takes o_partial and lse_partial; then the combine kernel
  // reduces them into the output and the lse. A block plan: its kernel runs first and both
  // take the plan last. The workspace stays locked until every launch is queued.
  int64_t splits = manifest_.splitKV ? chooseSplits(manifest_, plan, splitsOverride_, fns.smCount) : 1;
  std::lock_guard<std::mutex> lock(workspaceMutex_);
  uint64_t workspace = 0;
  if (!applySplits(manifest_, splits, plan, error)) {
    error = prefix + error;
    return false;
  }
  // A caller's plan lies in its own buffer; only a computed one takes workspace.
  Workspace planAt = plan.blockPlan;
  uint64_t planBase = 0;
  if (manifest_.blockPlan && use != PlanUse::Compute) {
    plan.workspaceBytes = planAt.offset;  // what precedes the plan
    planAt.offset = 0;
    planBase = planData;
  }
  if (use == PlanUse::Only) {  // the plan kernel alone, into the caller's buffer
    if (manifest_.splitKV) {  // in its signature, never read: no workspace behind them
      pushMemref(storage, 0, plan.oPartial);
      pushMemref(storage, 0, plan.lsePartial);
    }
    pushMemref(storage, planBase, planAt);
    if (!launchPlanKernel(*d, fns.plan, manifest_, plan, storage, stream, error)) {
      error = prefix + error;
      return false;
    }
    return true;
  }
  if (!workspaceFor(ctx, std::max<int64_t>(plan.workspaceBytes, 4), stream, workspace, error)) {
    error = prefix + error;
    return false;
  }
  if (use == PlanUse::Compute)
    planBase = workspace;
  std::vector<uint64_t> combine;
  if (manifest_.splitKV) {
    const SplitKV &s = *manifest_.splitKV;
    pushMemref(storage, workspace, plan.oPartial);
    pushMemref(storage, workspace, plan.lsePartial);
    if (s.combineTakesArguments) {  // an output expression: the main kernel's arguments
      combine = storage;
    } else {
      pushMemref(combine, workspace, plan.oPartial);
      pushMemref(combine, workspace, plan.lsePartial);
      pushMemref(combine, args[size_t(s.outputArg)]);
      pushMemref(combine, args[size_t(s.lseArg)]);
    }
  }
  if (manifest_.blockPlan) {
    pushMemref(storage, planBase, planAt);
    if (use == PlanUse::Compute &&
        !launchPlanKernel(*d, fns.plan, manifest_, plan, storage, stream, error)) {
      error = prefix + error;
      return false;
    }
  }
  // With one split the main kernel writes the output and lse itself; the merge has nothing to do.
  bool combineEmpty = !manifest_.splitKV || splits == 1 ||
                      std::find(plan.combineGrid.begin(), plan.combineGrid.end(), 0u) !=
                          plan.combineGrid.end();
  if (!launchWith(*d, fns.main, plan.grid, plan.block, plan.sharedMemory, stream, storage,
                  "cuLaunchKernel", error, &maps) ||
      (!combineEmpty &&
       !launchWith(*d, fns.combine, plan.combineGrid, plan.combineBlock, 0, stream, combine,
                   "cuLaunchKernel('" + manifest_.splitKV->combineEntry + "')", error))) {
    error = prefix + error + (manifest_.splitKV ? " (" + std::to_string(splits) + " KV splits)" : "");
    return false;
  }
  lastSplits_ = int32_t(splits);
  return true;
}

bool Kernel::combine(const TensorArg *args, size_t count, void *stream, std::string &error) {
  std::string prefix = "kernel '" + manifest_.variant + "': ";
  if (!manifest_.splitKV) {
    error = prefix + "has no combine kernel (compile the softmax variant with split-KV, the "
                     "default)";
    return false;
  }
  if (manifest_.splitKV->combineTakesArguments) {
    error = prefix + "its combine kernel applies the variant's output expression and takes the "
                     "kernel's own arguments: it runs inside the kernel's launch, not alone "
                     "(hint: ring attention and other merges of partial results need a variant "
                     "without an output expression)";
    return false;
  }
  std::array<uint32_t, 3> grid{};
  bool empty = false;
  if (!checkCombineArgs(manifest_, args, count, grid, empty, error)) {
    error = prefix + error;
    return false;
  }
  if (empty)
    return true;
  const Driver *d = nullptr;
  CUcontext ctx = nullptr;
  CUdevice dev;
  if (!currentDevice(d, ctx, dev, error)) {
    error = prefix + error;
    return false;
  }
  static const char *names[4] = {"part_out", "part_lse", "out", "lse"};
  std::vector<uint64_t> storage;
  for (size_t a = 0; a < 4; ++a) {
    Arg described;
    described.name = names[a];
    if (!checkDevicePointer(*d, described, args[a].data, dev, error)) {
      error = prefix + error;
      return false;
    }
    pushMemref(storage, args[a]);
  }
  Functions fns;
  if (!functionsFor(ctx, fns, error))
    return false;
  if (!launchWith(*d, fns.combine, grid, manifest_.splitKV->combineBlock, 0, stream, storage,
                  "cuLaunchKernel('" + manifest_.splitKV->combineEntry + "')", error)) {
    error = prefix + error;
    return false;
  }
  return true;
}

bool Kernel::launchBackward(CUcontext ctx, const Functions &fns, const TensorArg *args,
                            const LaunchPlan &plan, std::vector<uint64_t> &storage, void *stream,
                            std::string &error) {
  std::string prefix = "kernel '" + manifest_.variant + "': ";
  const Driver &d = *driver(error);  // loaded: the caller launched through it
  const Backward &bw = *manifest_.backward;
  // Param gradients are sums of atomic adds: zero first, on the same stream.
  for (size_t a = 0; a < manifest_.args.size(); ++a) {
    if (!manifest_.args[a].zeroed || !hasElements(args[a]))
      continue;
    size_t elements = 1;
    for (int32_t axis = 0; axis < args[a].rank; ++axis)
      elements *= size_t(args[a].sizes[axis]);
    if (CUresult r = d.memsetD32Async(CUdeviceptr(args[a].data), 0, elements,
                                      static_cast<CUstream>(stream))) {
      error = prefix + d.fail(r, "cuMemsetD32Async of '" + manifest_.args[a].name + "'");
      return false;
    }
  }
  std::lock_guard<std::mutex> lock(workspaceMutex_);
  uint64_t workspace = 0;
  if (!workspaceFor(ctx, plan.workspaceBytes, stream, workspace, error)) {
    error = prefix + error;
    return false;
  }
  pushMemref(storage, workspace, plan.delta);
  if (fns.dq)
    pushMemref(storage, workspace, plan.dqAccum);
  if (bw.dyWidth)
    pushMemref(storage, workspace, plan.dy);
  if (bw.decaySlots)
    pushMemref(storage, workspace, plan.sums);
  if (manifest_.blockPlan) {  // the plan of the dQ kernel's query tiles, read by both kernels
    pushMemref(storage, workspace, plan.blockPlan);
    if (!launchPlanKernel(d, fns.plan, manifest_, plan, storage, stream, error)) {
      error = prefix + error;
      return false;
    }
  }
  bool dkdvEmpty = std::find(plan.dkdvGrid.begin(), plan.dkdvGrid.end(), 0u) != plan.dkdvGrid.end();
  // launchWith points into its storage
  std::vector<uint64_t> second = storage, third = storage, fourth = storage;
  if ((!plan.mainEmpty && !launchWith(d, fns.main, plan.grid, plan.block, plan.sharedMemory,
                                      stream, storage, "cuLaunchKernel", error)) ||
      (!dkdvEmpty &&
       !launchWith(d, fns.combine, plan.dkdvGrid, bw.dkdvBlock, bw.dkdvSharedMemory, stream,
                   second, "cuLaunchKernel('" + bw.dkdvEntry + "')", error)) ||
      (fns.dq && !plan.mainEmpty &&
       !launchWith(d, fns.dq, plan.grid, plan.block, 0, stream, third,
                   "cuLaunchKernel('" + bw.dqEntry + "')", error)) ||
      (fns.decay && !plan.mainEmpty &&
       std::find(plan.decayGrid.begin(), plan.decayGrid.end(), 0u) == plan.decayGrid.end() &&
       !launchWith(d, fns.decay, plan.decayGrid, bw.decayBlock, 0, stream, fourth,
                   "cuLaunchKernel('" + bw.decayEntry + "')", error))) {
    error = prefix + error;
    return false;
  }
  lastSplits_ = 1;
  return true;
}

}  // namespace attnc::rt
