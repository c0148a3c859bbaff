// A loaded attnc kernel: its manifest and PTX, JIT-compiled per CUDA context through the driver
// API and launched after the manifest's argument checks. libcuda is dlopen'ed at first use and
// never linked, so this builds and loads on machines without a GPU or driver.
#pragma once

#include "runtime/ArgCheck.h"
#include "runtime/Manifest.h"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

// The driver's opaque handle types (cuda.h's CUcontext and CUfunction point to these), declared
// here so that users of this header need no cuda.h.
struct CUctx_st;
struct CUfunc_st;

namespace attnc::rt {

class Kernel {
public:
  /// Parses and validates the manifest and keeps a copy of the PTX. If a CUDA context is current
  /// on this thread, the PTX is also JIT-compiled into it, so that PTX errors show up here;
  /// otherwise that happens at the first launch. Null with a message on failure.
  static std::unique_ptr<Kernel> load(std::string_view ptx, std::string_view manifestJson,
                                      std::string &error);
  ~Kernel();
  Kernel(const Kernel &) = delete;
  Kernel &operator=(const Kernel &) = delete;

  /// Checks `args` (canonical order, see ArgCheck.h) and that every pointer is device memory of
  /// the current context's device, then launches on `stream` (a CUstream; null is the default
  /// stream). Without a current context, device 0's primary context is made current, as the
  /// CUDA runtime would. Work of size 0 returns true without touching CUDA.
  bool launch(const TensorArg *args, size_t count, void *stream, std::string &error);

  const Manifest &manifest() const { return manifest_; }

private:
  Kernel() = default;
  /// The kernel's function in `ctx`, JIT-compiling the PTX there on first use.
  bool functionFor(CUctx_st *ctx, CUfunc_st *&fn, std::string &error);
  bool loadFunction(CUctx_st *ctx, CUfunc_st *&fn, std::string &error);
  bool launchPlanned(const TensorArg *args, const LaunchPlan &plan, void *stream,
                     std::string &error);

  Manifest manifest_;
  std::shared_ptr<const std::string> ptx_;
  uint64_t ptxHash_ = 0;
  std::mutex mutex_;                             // guards functions_
  std::map<CUctx_st *, CUfunc_st *> functions_;  // one per context the kernel ran in
};

/// FNV-1a 64 of `text`: the key of the module cache (with the context).
uint64_t hashPtx(std::string_view text);

}  // namespace attnc::rt
