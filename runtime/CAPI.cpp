// The C ABI over attnc::rt::Kernel: handles, status codes and a thread-local last error. No C++
// exception crosses this boundary.
#include "runtime/attnc_runtime.h"

#include "runtime/Runtime.h"

#include <exception>
#include <vector>

struct attnc_rt_kernel {
  std::unique_ptr<attnc::rt::Kernel> kernel;
};

namespace {

thread_local std::string lastError;

int fail(std::string message) {
  lastError = std::move(message);
  return -1;
}

/// Runs `body` (returning 0 or -1), turning any escaping exception into an error status.
template <typename F>
int guarded(F &&body) {
  lastError.clear();
  try {
    return body();
  } catch (const std::exception &e) {
    return fail(std::string("attnc runtime: internal error: ") + e.what());
  } catch (...) {
    return fail("attnc runtime: internal error");
  }
}

}  // namespace

extern "C" {

int attnc_rt_load(const char *ptx, size_t ptx_len, const char *manifest_json, size_t manifest_len,
                  attnc_rt_kernel **out) {
  return guarded([&] {
    if (!out)
      return fail("attnc_rt_load: `out` is null");
    *out = nullptr;
    if (!ptx || ptx_len == 0)
      return fail("attnc_rt_load: the PTX text is null or empty");
    if (!manifest_json || manifest_len == 0)
      return fail("attnc_rt_load: the manifest text is null or empty");
    std::string error;
    auto kernel = attnc::rt::Kernel::load(std::string_view(ptx, ptx_len),
                                          std::string_view(manifest_json, manifest_len), error);
    if (!kernel)
      return fail(error);
    *out = new attnc_rt_kernel{std::move(kernel)};
    return 0;
  });
}

int attnc_rt_launch(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs, void *cu_stream) {
  return guarded([&] {
    if (!k)
      return fail("attnc_rt_launch: the kernel handle is null");
    if (nargs < 0)
      return fail("attnc_rt_launch: nargs is negative (" + std::to_string(nargs) + ")");
    std::vector<attnc::rt::TensorArg> converted = attnc::rt::tensorArgs(args, nargs);
    std::string error;
    const attnc::rt::TensorArg *list = args ? converted.data() : nullptr;
    if (!k->kernel->launch(list, size_t(nargs), cu_stream, error))
      return fail(error);
    return 0;
  });
}

int attnc_rt_set_splits(attnc_rt_kernel *k, int32_t splits) {
  return guarded([&] {
    if (!k)
      return fail("attnc_rt_set_splits: the kernel handle is null");
    std::string error;
    return k->kernel->setSplits(splits, error) ? 0 : fail(error);
  });
}

int32_t attnc_rt_last_splits(attnc_rt_kernel *k) {
  lastError.clear();
  if (!k) {
    fail("attnc_rt_last_splits: the kernel handle is null");
    return -1;
  }
  return k->kernel->lastSplits();
}

const char *attnc_rt_manifest(attnc_rt_kernel *k) {
  lastError.clear();
  if (!k) {
    fail("attnc_rt_manifest: the kernel handle is null");
    return nullptr;
  }
  return k->kernel->manifest().text.c_str();
}

void attnc_rt_release(attnc_rt_kernel *k) {
  lastError.clear();
  delete k;
}

const char *attnc_rt_last_error(void) { return lastError.c_str(); }

}  // extern "C"
