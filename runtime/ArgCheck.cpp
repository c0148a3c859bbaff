// Argument checks of a launch against the manifest. The order of the checks fixes which error a
// caller sees first: per argument dtype, rank and extents (in argument order), then per
// argument pointer and strides, then the launch grid.
#include "runtime/ArgCheck.h"

#include <cstdio>

namespace attnc::rt {

bool hasElements(const TensorArg &t) {
  if (!t.sizes)
    return t.rank == 0;
  for (int32_t a = 0; a < t.rank; ++a)
    if (t.sizes[a] == 0)
      return false;
  return true;
}

namespace {

std::string where(const Manifest &m, size_t arg, int axis) {
  const Arg &a = m.args[arg];
  return "argument '" + a.name + "' axis " + std::to_string(axis) + " (" +
         m.dims[size_t(a.dims[size_t(axis)])].name + ")";
}

std::string str(int64_t v) { return std::to_string(v); }

/// Binds each dim name to one extent across all arguments, honouring static and derived dims.
class DimBinder {
public:
  explicit DimBinder(const Manifest &m)
      : m(m), size(m.dims.size(), -1), boundAt(m.dims.size(), {0, 0}) {}

  bool bind(size_t arg, int axis, int64_t got, std::string &error) {
    int d = m.args[arg].dims[size_t(axis)];
    const Dim &dim = m.dims[size_t(d)];
    std::string expected;
    if (got < 0) {
      error = where(m, arg, axis) + ": size must be >= 0, got " + str(got);
      return false;
    }
    if (dim.staticSize >= 0 && got != dim.staticSize)
      expected = str(dim.staticSize) + " (fixed by the spec)";
    else if (dim.derivedSource >= 0 && size[size_t(dim.derivedSource)] >= 0)
      expected = checkDerived(dim, got);
    else if (size[size_t(d)] >= 0)
      expected = got == size[size_t(d)] ? "" : str(size[size_t(d)]) + " (as in " + firstSeen(d) + ")";
    else
      expected = checkSource(d, got);
    if (!expected.empty()) {
      error = where(m, arg, axis) + ": expected " + expected + ", got " + str(got);
      return false;
    }
    if (size[size_t(d)] < 0) {
      size[size_t(d)] = got;
      boundAt[size_t(d)] = {arg, axis};
    }
    return true;
  }

  /// Extents of the dims no argument holds but a static size or a derivation fixes.
  std::vector<int64_t> resolve() const {
    std::vector<int64_t> out = size;
    for (size_t d = 0; d < out.size(); ++d) {
      const Dim &dim = m.dims[d];
      if (out[d] >= 0)
        continue;
      if (dim.staticSize >= 0)
        out[d] = dim.staticSize;
      else if (dim.derivedSource >= 0 && size[size_t(dim.derivedSource)] >= 0)
        out[d] = size[size_t(dim.derivedSource)] / dim.divisor;
      for (size_t x = 0; x < out.size() && out[d] < 0; ++x)
        if (m.dims[x].derivedSource == int(d) && size[x] >= 0)
          out[d] = size[x] * m.dims[x].divisor;
    }
    return out;
  }

private:
  /// "argument 'k' axis 2": the dim's name is already in the message.
  std::string firstSeen(int d) const {
    return "argument '" + m.args[boundAt[size_t(d)].first].name + "' axis " +
           str(boundAt[size_t(d)].second);
  }

  /// `dim` = source / divisor with the source known: "" if `got` matches.
  std::string checkDerived(const Dim &dim, int64_t got) const {
    const Dim &src = m.dims[size_t(dim.derivedSource)];
    int64_t want = size[size_t(dim.derivedSource)] / dim.divisor;
    return got == want ? "" : str(want) + " (= " + src.name + " / " + str(dim.divisor) + ")";
  }

  /// `d` is unbound; if derived dims come from it, `got` must agree with them / be divisible.
  std::string checkSource(int d, int64_t got) const {
    for (size_t x = 0; x < m.dims.size(); ++x) {
      const Dim &derived = m.dims[x];
      if (derived.derivedSource != d)
        continue;
      std::string relation = derived.name + " = " + m.dims[size_t(d)].name + " / " + str(derived.divisor);
      if (size[x] >= 0 && got != size[x] * derived.divisor)
        return str(size[x] * derived.divisor) + " (= " + derived.name + " * " + str(derived.divisor) + ")";
      if (size[x] < 0 && got % derived.divisor != 0)
        return "a multiple of " + str(derived.divisor) + " (" + relation + ")";
    }
    return "";
  }

  const Manifest &m;
  std::vector<int64_t> size;
  std::vector<std::pair<size_t, int>> boundAt;
};

bool checkShape(const Manifest &m, size_t arg, const TensorArg &t, DimBinder &dims,
                std::string &error) {
  const Arg &a = m.args[arg];
  std::string prefix = "argument '" + a.name + "': ";
  if (t.dtype < 0 || t.dtype > int32_t(DType::I32)) {
    error = prefix + "expected dtype " + dtypeName(a.dtype) + ", got unknown dtype code " + str(t.dtype);
    return false;
  }
  if (DType(t.dtype) != a.dtype) {
    error = prefix + "expected dtype " + dtypeName(a.dtype) + ", got " + dtypeName(DType(t.dtype));
    return false;
  }
  if (size_t(t.rank) != a.dims.size() || t.rank < 0) {
    std::string names;
    for (int d : a.dims)
      names += (names.empty() ? "" : ", ") + m.dims[size_t(d)].name;
    error = prefix + "expected rank " + str(int64_t(a.dims.size())) + " [" + names + "], got rank " + str(t.rank);
    return false;
  }
  if (t.rank > 0 && (!t.sizes || !t.strides)) {
    error = prefix + "sizes and strides must not be null for rank " + str(t.rank);
    return false;
  }
  for (int axis = 0; axis < t.rank; ++axis)
    if (!dims.bind(arg, axis, t.sizes[axis], error))
      return false;
  return true;
}

bool checkPointer(const Arg &a, const TensorArg &t, std::string &error) {
  std::string prefix = "argument '" + a.name + "': ";
  if (t.data == 0) {
    error = prefix + "data pointer is null";
    return false;
  }
  if (t.data % uint64_t(a.alignment) != 0) {
    char hex[32];
    std::snprintf(hex, sizeof hex, "0x%llx", (unsigned long long)t.data);
    error = prefix + "data pointer " + hex + " is not aligned to " + str(a.alignment) + " bytes";
    return false;
  }
  return true;
}

/// Strides of axes of extent <= 1 are never multiplied by a non-zero index: they are free, as
/// in torch's own contiguity rules (views like x[:, :1] keep arbitrary strides there).
bool checkStrides(const Manifest &m, size_t arg, const TensorArg &t, std::string &error) {
  const Arg &a = m.args[arg];
  for (int axis = 0; axis < t.rank; ++axis) {
    int64_t size = t.sizes[axis], stride = t.strides[axis];
    bool last = axis == t.rank - 1;
    std::string problem;
    if (size <= 1)
      continue;
    if (stride < 0)
      problem = "stride must be >= 0, got " + str(stride);
    else if (stride == 0 && a.writes())
      problem = "stride 0 would make " + str(size) + " output elements share one address";
    else if (last && a.unitStrideLast && stride != 1)
      problem = "expected stride 1 (the last axis must be contiguous), got " + str(stride);
    else if (!last && a.rowAlignment > 0 && stride * dtypeBytes(a.dtype) % a.rowAlignment != 0)
      problem = "stride " + str(stride) + " is " + str(stride * dtypeBytes(a.dtype)) +
                " bytes, not a multiple of " + str(a.rowAlignment) + " (row alignment)";
    if (!problem.empty()) {
      error = where(m, arg, axis) + ": " + problem;
      return false;
    }
  }
  return true;
}

bool computeGrid(const Manifest &m, LaunchPlan &plan, std::string &error) {
  static const char *axisName[3] = {"x", "y", "z"};
  const int64_t limit[3] = {INT32_MAX, 65535, 65535};
  for (int a = 0; a < 3; ++a) {
    const GridAxis &g = m.grid[a];
    const std::string &dim = m.dims[size_t(g.dim)].name;
    int64_t extent = plan.dimSizes[size_t(g.dim)];
    int64_t blocks = (extent + g.divisor - 1) / g.divisor;
    if (blocks > limit[a]) {
      std::string formula = g.divisor == 1 ? dim + " = " + str(extent)
                                           : "ceil(" + dim + " / " + str(g.divisor) + "), " + dim + " = " + str(extent);
      error = std::string("launch grid ") + axisName[a] + " = " + str(blocks) + " (" + formula +
              ") exceeds CUDA's limit of " + str(limit[a]);
      return false;
    }
    plan.grid[a] = uint32_t(blocks);
    plan.empty = plan.empty || blocks == 0;
  }
  return true;
}

}  // namespace

bool checkArgs(const Manifest &m, const TensorArg *args, size_t count, LaunchPlan &plan,
               std::string &error) {
  if (count > 0 && !args) {
    error = "the argument array is null";
    return false;
  }
  if (count != m.args.size()) {
    error = "expected " + str(int64_t(m.args.size())) + " arguments (" + m.argNames() + "), got " +
            str(int64_t(count));
    return false;
  }
  DimBinder dims(m);
  for (size_t a = 0; a < count; ++a)
    if (!checkShape(m, a, args[a], dims, error))
      return false;
  for (size_t a = 0; a < count; ++a)
    if (hasElements(args[a]) &&
        (!checkPointer(m.args[a], args[a], error) || !checkStrides(m, a, args[a], error)))
      return false;
  plan = LaunchPlan();
  plan.dimSizes = dims.resolve();
  plan.block = m.block;
  plan.sharedMemory = m.dynamicSharedMemory;
  return computeGrid(m, plan, error);
}

}  // namespace attnc::rt
