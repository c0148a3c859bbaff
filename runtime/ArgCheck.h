// Checks a launch's arguments against the kernel manifest and works out the launch (dim
// extents, grid, block, shared memory). Pure, with no CUDA calls, so that every rule and every
// message is unit-tested on machines without a GPU; the runtime adds the device-pointer check.
#pragma once

#include "runtime/Manifest.h"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attnc::rt {

/// One argument as the caller holds it. Sizes and strides are in elements, in the canonical
/// order of the manifest's `dims` for that argument (rank 0: both may be null).
struct TensorArg {
  uint64_t data = 0;
  int32_t dtype = 0;  // a DType code
  int32_t rank = 0;
  const int64_t *sizes = nullptr;
  const int64_t *strides = nullptr;
};

struct LaunchPlan {
  std::vector<int64_t> dimSizes;  // per Manifest::dims; -1 for a dim nothing determines
  std::array<uint32_t, 3> grid{}, block{};
  uint32_t sharedMemory = 0;
  bool empty = false;             // a grid axis is 0: there is no work and nothing to launch
};

/// True if the tensor has at least one element (only those are dereferenced by a kernel).
bool hasElements(const TensorArg &t);

/// Validates `args` (count, dtype, rank, extents by dim name, static and derived dims, strides,
/// alignment, null pointers, grid limits) and fills `plan`; false with a message that names the
/// argument, the axis, what was expected and what was given.
bool checkArgs(const Manifest &m, const TensorArg *args, size_t count, LaunchPlan &plan,
               std::string &error);

}  // namespace attnc::rt
