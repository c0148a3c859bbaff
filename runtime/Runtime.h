// A loaded attnc kernel: its manifest and PTX, JIT-compiled per CUDA context through the driver
// API and launched after the manifest's argument checks. libcuda is dlopen'ed at first use and
// never linked, so this builds and loads on machines without a GPU or driver.
#pragma once

#include "runtime/ArgCheck.h"
#include "runtime/Manifest.h"

#include <array>
#include <atomic>
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
  /// A split_kv kernel also gets the workspace (after the arguments) and is followed by its
  /// combine kernel on the same stream. The workspace is one per kernel: launches of one kernel
  /// on several streams at once must be ordered by the caller (events), as it is shared.
  bool launch(const TensorArg *args, size_t count, void *stream, std::string &error);

  /// Block plans (manifest block_plan). The plan's shape for `args` (i32 [batch, heads or 1,
  /// query tiles, kBlockPlanValues], contiguous).
  bool planShape(const TensorArg *args, size_t count, std::array<int64_t, 4> &shape,
                 std::string &error);
  /// Computes the plan for `args` into `plan` (device memory of planShape) on `stream`: only
  /// the plan kernel runs.
  bool computePlan(const TensorArg *args, size_t count, const TensorArg &plan, void *stream,
                   std::string &error);
  /// Launches with a plan computed earlier for the same shapes and the same values of the
  /// params the mask reads: the plan kernel does not run.
  bool launchWithPlan(const TensorArg *args, size_t count, const TensorArg &plan, void *stream,
                      std::string &error);

  /// Ring attention's merge: the kernel's split-KV combine kernel on caller-given partial
  /// results (checkCombineArgs: part_out, part_lse, out, lse in canonical order), on `stream`.
  bool combine(const TensorArg *args, size_t count, void *stream, std::string &error);
  /// The runtime override of the number of KV splits: 0 = the heuristic; ignored where the
  /// manifest fixes `split_kv.splits`. False for a negative count or a kernel without split_kv.
  bool setSplits(int32_t splits, std::string &error);
  /// The splits of the last launch: 1 for kernels without split_kv, 0 before the first launch.
  int32_t lastSplits() const { return lastSplits_.load(); }

  const Manifest &manifest() const { return manifest_; }

private:
  /// The kernel's functions in one context and what the split heuristic needs to know there.
  struct Functions {
    CUfunc_st *main = nullptr;
    CUfunc_st *combine = nullptr;  // split_kv: the combine kernel; backward: the dK/dV kernel
    CUfunc_st *plan = nullptr;     // block_plan: the plan kernel
    CUfunc_st *dq = nullptr;       // backward with dQ by atomics: the dQacc -> dq kernel
    CUfunc_st *decay = nullptr;    // backward of a forget gate: the log decays' gradients
    int smCount = 1;
  };
  /// Device memory for the split-KV partial results, grown (never shrunk) as launches need.
  struct DeviceWorkspace {
    CUctx_st *ctx = nullptr;
    uint64_t ptr = 0;
    size_t bytes = 0;
  };

  Kernel() = default;
  /// The kernel's functions in `ctx`, JIT-compiling the PTX there on first use.
  bool functionsFor(CUctx_st *ctx, Functions &fns, std::string &error);
  bool loadFunctions(CUctx_st *ctx, Functions &fns, std::string &error);
  /// How a launch gets its block plan: computed into the workspace first (Compute), given by
  /// the caller (Reuse), or computed into the caller's buffer with nothing else (Only).
  enum class PlanUse { Compute, Reuse, Only };
  bool launchPlanned(const TensorArg *args, LaunchPlan &plan, void *stream, std::string &error,
                     PlanUse use = PlanUse::Compute, uint64_t planData = 0);
  /// checkArgs, then `plan` checked against the plan shape for these arguments.
  bool checkWithPlan(const TensorArg *args, size_t count, const TensorArg &plan,
                     LaunchPlan &launch, const char *what, std::string &error);
  /// Backward kernels: zero the summed gradients, then the dQ kernel (or, dQ by atomics, the
  /// D and dQacc-zeroing kernel), the dK/dV kernel and the dQacc -> dq kernel, all with the
  /// workspace D (and dQacc) after `storage` (the arguments).
  bool launchBackward(CUctx_st *ctx, const Functions &fns,
                      const TensorArg *args, const LaunchPlan &plan,
                      std::vector<uint64_t> &storage, void *stream, std::string &error);
  /// The workspace of at least `bytes` in `ctx`; the caller holds workspaceMutex_.
  bool workspaceFor(CUctx_st *ctx, int64_t bytes, void *stream, uint64_t &ptr, std::string &error);

  Manifest manifest_;
  std::shared_ptr<const std::string> ptx_;
  uint64_t ptxHash_ = 0;
  std::mutex mutex_;                            // guards functions_
  std::map<CUctx_st *, Functions> functions_;  // one per context the kernel ran in
  std::mutex workspaceMutex_;                   // held from taking the workspace to launching
  DeviceWorkspace workspace_;
  std::atomic<int32_t> splitsOverride_{0};
  std::atomic<int32_t> lastSplits_{0};
};

/// FNV-1a 64 of `text`: the key of the module cache (with the context).
uint64_t hashPtx(std::string_view text);

}  // namespace attnc::rt
