// The C++ JIT API: RAII over attnc.h. Nothing throws: a failed compile leaves ok() false and a
// failed launch returns false, with the message in error() (attnc_last_error's text).
#pragma once

#include "attnc.h"

#include <string>
#include <utility>
#include <vector>

namespace attnc {

struct Options {
  int blockQ = 0, blockK = 0;
  std::string chip = "sm_80";
  std::string dims;      // "d=128"
  std::string cacheDir;  // empty = default location
  bool noCache = false;
  bool backward = false;  // also compile <variant>_grad (launchGrad)
  std::string target = "cuda";  // or "cpu": the CPU back end on f32 host tensors
  bool positionOffsets = false;  // ring attention's blocks: q_offset, k_offset params
  std::string outDtype;          // empty = the spec's; "f32" for ring blocks' partial results
};

class Kernel {
public:
  Kernel() = default;
  /// Compiles (or loads from the cache) one variant of a spec.
  Kernel(const std::string &spec, const std::string &variant = "", const Options &o = {}) {
    attnc_options c{o.blockQ,
                    o.blockK,
                    o.chip.c_str(),
                    o.dims.empty() ? nullptr : o.dims.c_str(),
                    o.noCache ? "" : (o.cacheDir.empty() ? nullptr : o.cacheDir.c_str()),
                    o.backward ? 1 : 0,
                    o.target.c_str(),
                    o.positionOffsets ? 1 : 0,
                    o.outDtype.empty() ? nullptr : o.outDtype.c_str()};
    if (attnc_compile(spec.data(), spec.size(), variant.empty() ? nullptr : variant.c_str(), &c,
                      &handle) != 0)
      message = attnc_last_error();
  }
  Kernel(const Kernel &) = delete;
  Kernel &operator=(const Kernel &) = delete;
  Kernel(Kernel &&other) noexcept { *this = std::move(other); }
  Kernel &operator=(Kernel &&other) noexcept {
    std::swap(handle, other.handle);
    std::swap(message, other.message);
    return *this;
  }
  ~Kernel() { attnc_release(handle); }

  bool ok() const { return handle != nullptr; }
  const std::string &error() const { return message; }
  std::string manifest() const { return handle ? attnc_kernel_manifest(handle) : ""; }
  std::string ptx() const { return handle ? attnc_kernel_ptx(handle) : ""; }
  bool fromCache() const { return handle && attnc_kernel_from_cache(handle); }

  std::string gradManifest() const {
    const char *m = handle ? attnc_kernel_grad_manifest(handle) : nullptr;
    return m ? m : "";
  }
  std::string gradPtx() const {
    const char *p = handle ? attnc_kernel_grad_ptx(handle) : nullptr;
    return p ? p : "";
  }

  /// Launches on `stream` (a CUstream); false with error() set on failure.
  bool launch(const std::vector<attnc_tensor> &args, void *stream = nullptr) {
    return call(attnc_launch, args, stream);
  }
  /// Launches the backward (compiled with Options::backward).
  bool launchGrad(const std::vector<attnc_tensor> &args, void *stream = nullptr) {
    return call(attnc_launch_grad, args, stream);
  }
  /// Merges partial results by their lse (attnc_combine: ring attention's blocks).
  bool combine(const std::vector<attnc_tensor> &args, void *stream = nullptr) {
    return call(attnc_combine, args, stream);
  }

private:
  attnc_kernel *handle = nullptr;
  std::string message;

  template <typename Fn>
  bool call(Fn fn, const std::vector<attnc_tensor> &args, void *stream) {
    if (!handle || fn(handle, args.data(), int32_t(args.size()), stream) != 0) {
      message = handle ? attnc_last_error() : message;
      return false;
    }
    return true;
  }
};

}  // namespace attnc
