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
  /// The module was compiled with attn-split-kv (softmax variants then take the partial
  /// buffers); `splits` is the split count S they are allocated with.
  bool splitKV = false;
  int64_t splits = 1;
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

/// Draws inputs, runs `entry` of `module` and the reference, and compares them.
bool runAndCheck(CPUModule &module, const Variant &v, const RunConfig &config, RunReport &report,
                 std::string &error);

}  // namespace attnc
