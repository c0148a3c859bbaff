// The C ABI over attnc::rt::Kernel: handles, status codes and a thread-local last error. No C++
// exception crosses this boundary.
#include "runtime/attnc_runtime.h"

#include "runtime/Runtime.h"

#include <algorithm>
#include <array>
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

namespace {

/// attnc_rt_compute_plan and attnc_rt_launch_with_plan: the checks of the C boundary.
template <typename F>
int withPlan(const char *name, attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
             const attnc_tensor *plan, F &&call) {
  return guarded([&] {
    if (!k)
      return fail(std::string(name) + ": the kernel handle is null");
    if (!plan)
      return fail(std::string(name) + ": `plan` is null");
    if (nargs < 0)
      return fail(std::string(name) + ": nargs is negative (" + std::to_string(nargs) + ")");
    std::vector<attnc::rt::TensorArg> converted = attnc::rt::tensorArgs(args, nargs);
    attnc::rt::TensorArg given = attnc::rt::tensorArgs(plan, 1)[0];
    std::string error;
    if (!call(args ? converted.data() : nullptr, size_t(nargs), given, error))
      return fail(error);
    return 0;
  });
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

int attnc_rt_combine(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                     void *cu_stream) {
  return guarded([&] {
    if (!k)
      return fail("attnc_rt_combine: the kernel handle is null");
    if (nargs < 0)
      return fail("attnc_rt_combine: nargs is negative (" + std::to_string(nargs) + ")");
    std::vector<attnc::rt::TensorArg> converted = attnc::rt::tensorArgs(args, nargs);
    std::string error;
    if (!k->kernel->combine(args ? converted.data() : nullptr, size_t(nargs), cu_stream, error))
      return fail(error);
    return 0;
  });
}

int attnc_rt_plan_shape(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                        int64_t sizes[4]) {
  return guarded([&] {
    if (!k || !sizes || nargs < 0)
      return fail(!k ? "attnc_rt_plan_shape: the kernel handle is null"
                     : !sizes ? "attnc_rt_plan_shape: `sizes` is null"
                              : "attnc_rt_plan_shape: nargs is negative");
    std::vector<attnc::rt::TensorArg> converted = attnc::rt::tensorArgs(args, nargs);
    std::array<int64_t, 4> shape{};
    std::string error;
    if (!k->kernel->planShape(args ? converted.data() : nullptr, size_t(nargs), shape, error))
      return fail(error);
    std::copy(shape.begin(), shape.end(), sizes);
    return 0;
  });
}


int attnc_rt_compute_plan(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                          const attnc_tensor *plan, void *cu_stream) {
  return withPlan("attnc_rt_compute_plan", k, args, nargs, plan,
                  [&](const attnc::rt::TensorArg *a, size_t n, const attnc::rt::TensorArg &p,
                      std::string &error) { return k->kernel->computePlan(a, n, p, cu_stream, error); });
}

int attnc_rt_launch_with_plan(attnc_rt_kernel *k, const attnc_tensor *args, int32_t nargs,
                              const attnc_tensor *plan, void *cu_stream) {
  return withPlan("attnc_rt_launch_with_plan", k, args, nargs, plan,
                  [&](const attnc::rt::TensorArg *a, size_t n, const attnc::rt::TensorArg &p,
                      std::string &error) { return k->kernel->launchWithPlan(a, n, p, cu_stream, error); });
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
