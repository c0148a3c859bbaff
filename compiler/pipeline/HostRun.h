// Runs a compiled variant on the CPU back end with random inputs and checks it against the
// float64 reference interpreter: the engine behind `attnc run` and the numeric tests.
#pragma once

#include "compiler/frontend/Frontend.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace attnc {

class CPUModule;

struct RunConfig {
  /// Extents by dim or extent name; dims left out get defaultDimSizes().
  std::vector<std::pair<std::string, int64_t>> sizes;
  uint64_t seed = 1;
  int repeats = 1;
  /// Integer params indexed by a sequence dim (document ids) ascend along it, as packed
  /// training sequences hold them: documents of random lengths, a new one starting at each
  /// position with a probability that varies over the batch (0: one document; 1: documents of
  /// one token). Otherwise they are random small ids.
  bool sortedIds = false;
  /// The module was compiled with attn-split-kv (softmax variants then take the partial
  /// buffers); `splits` is the split count S they are allocated with.
  bool splitKV = false;
  int64_t splits = 1;
  /// gradCheck: each gradient is compared with central differences (two float64 forwards
  /// per element) at every element of a tensor of at most this many elements, and at this
  /// many elements drawn at random (with the seed) of a larger one; every element is still
  /// checked for the NaN poison. 0: every element.
  int64_t gradElements = 0;
};

struct RunReport {
  DimSizes sizes;
  double relError = 0;      // ||out - ref|| / ||ref|| (absolute if ref is 0); NaN if out has NaN
  double lseRelError = 0;   // same over finite lse entries (softmax only)
  bool lseInfMatches = true;  // -inf exactly on the rows with no allowed key
  int64_t unwritten = 0;    // output elements still holding the NaN poison
  /// A linear recurrence (Variant::recurrence) is also checked against the recurrent float64
  /// reference (referenceRecurrent): the output, and with a `state` the final state.
  bool recurrence = false;
  double recurrentRelError = 0;  // output vs the recurrent reference
  double stateRelError = 0;      // final state vs the recurrent reference (with a state)
  double bestSeconds = 0;   // fastest of the repeats
  std::string describeSizes(const Variant &v) const;
};

/// Extents for the dims the user did not give: ragged, non-tile-multiple sizes, q_len != kv_len.
std::vector<std::pair<std::string, int64_t>> defaultDimSizes(const Variant &v);

/// Parses "b=2,h=8,i=100" into name/extent pairs; false with a message on bad syntax.
bool parseSizeList(const std::string &text, std::vector<std::pair<std::string, int64_t>> &out,
                   std::string &error);

/// The extents of a run: the user's (config.sizes), then defaultDimSizes for the others.
/// Fails (with the sizes, the largest tensor and the limit) when a run at `sizes` would need
/// more host memory than hostMemoryLimit(); element counts are overflow-checked.
bool checkHostMemory(const Variant &v, const DimSizes &sizes, std::string &error);
/// $ATTNC_RUN_MEMORY_LIMIT (bytes), else half of the machine's physical memory.
int64_t hostMemoryLimit();

bool resolveRunSizes(const Variant &v, const RunConfig &config, DimSizes &sizes,
                     std::string &error);

/// Gradients of a backward kernel (`<name>_grad`, attn-grad) against central differences of
/// the float64 reference: relative errors (norm-wise) of dq, dk, dv and each param gradient.
struct GradReport {
  DimSizes sizes;
  double dq = 0, dk = 0, dv = 0;
  /// The other gradients: those of the inputs that only later scores read (several scores),
  /// then those of the float params with a gradient (gradParams).
  std::vector<std::pair<std::string, double>> dparams;
  int64_t unwritten = 0;  // gradient elements still holding the NaN poison
  int64_t sampled = 0;    // tensors whose central differences ran at sampled elements only
};
/// The float params `<name>_grad` takes gradients of: those a score, the mix or the output
/// expression reads, in param order.
std::vector<int> gradParams(const Variant &v);
/// The inputs `<name>_grad` returns gradients of, in its argument order: q, k, v, then (several
/// scores) every other score input once, in kernelArgs order (indices into Variant::inputs).
std::vector<int> gradInputs(const Variant &v);
/// Runs `<v.name>` (forward, for out and lse) then `<v.name>_grad` of `module` on random inputs
/// and a random dout, and compares the gradients of L = sum(out * dout) with the reference's.
bool gradCheck(CPUModule &module, const Variant &v, const RunConfig &config, GradReport &report,
               std::string &error);

/// Draws inputs, runs `entry` of `module` and the reference, and compares them.
bool runAndCheck(CPUModule &module, const Variant &v, const RunConfig &config, RunReport &report,
                 std::string &error);

}  // namespace attnc
