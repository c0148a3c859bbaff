// Argument checks of a launch against the manifest. The order of the checks fixes which error a
// caller sees first: per argument dtype, rank and extents (in argument order), then per
// argument pointer and strides, then the launch grid.
#include "runtime/ArgCheck.h"

#include <algorithm>
#include <cmath>
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

/// The largest extent of a dim (the front end's kMaxExtent): positions fit in 31 bits, which
/// the kernels' 32-bit index math (attn-gpu-narrow-index) relies on.
constexpr int64_t kMaxExtent = 2147483647;

/// a * b for a, b >= 0, saturating at INT64_MAX.
int64_t mulSat(int64_t a, int64_t b) { return b != 0 && a > INT64_MAX / b ? INT64_MAX : a * b; }

/// Values per unit along `axis` of argument `arg`: 2 on the last axis of an i4 argument, else 1.
int64_t packing(const Manifest &m, size_t arg, int axis) {
  const Arg &a = m.args[arg];
  return size_t(axis) + 1 == a.dims.size() ? a.packed : 1;
}

/// What a dim's extent must be: `value` (if >= 0) or a multiple of `multipleOf` (if > 0),
/// because of `why`. Neither: anything goes.
struct Expectation {
  int64_t value = -1, multipleOf = 0;
  std::string why;

  bool allows(int64_t got) const {
    return value >= 0 ? got == value : multipleOf <= 0 || got % multipleOf == 0;
  }
  /// "2 (= h / 4)", "a multiple of 4 (hk = h / 4)".
  std::string text() const {
    return (value >= 0 ? str(value) : "a multiple of " + str(multipleOf)) + " (" + why + ")";
  }
};

/// Binds each dim name to one extent across all arguments, honouring static and derived dims.
/// A packed axis (i4) binds its dim to the number of values, its size times the packing.
class DimBinder {
public:
  explicit DimBinder(const Manifest &m)
      : m(m), size(m.dims.size(), -1), boundAt(m.dims.size(), {0, 0}) {}

  bool bind(size_t arg, int axis, int64_t got, std::string &error) {
    int d = m.args[arg].dims[size_t(axis)];
    int64_t packed = packing(m, arg, axis);
    if (got < 0) {
      error = where(m, arg, axis) + ": size must be >= 0, got " + str(got);
      return false;
    }
    if (got < m.dims[size_t(d)].minSize) {
      error = where(m, arg, axis) + ": size must be >= " + str(m.dims[size_t(d)].minSize) +
              ", got " + str(got) + " (the kernel reads this axis at computed indices, clamped "
              "into it, so it cannot be empty)";
      return false;
    }
    if (got > INT64_MAX / packed) {
      error = where(m, arg, axis) + ": size " + str(got) + " bytes is too large";
      return false;
    }
    if (got * packed > kMaxExtent) {  // the kernels compute positions in 32 bits
      error = where(m, arg, axis) + ": size " + str(got * packed) + " exceeds attnc's limit of " +
              str(kMaxExtent) + " per dim";
      return false;
    }
    Expectation want = expectation(d);
    if (!want.allows(got * packed)) {
      error = where(m, arg, axis) + ": " + mismatch(want, m.args[arg], packed, got);
      return false;
    }
    if (size[size_t(d)] < 0) {
      size[size_t(d)] = got * packed;
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
  /// The constraint on dim `d` from the spec and from the arguments bound so far.
  Expectation expectation(int d) const {
    const Dim &dim = m.dims[size_t(d)];
    if (dim.staticSize >= 0)
      return {dim.staticSize, 0, "fixed by the spec"};
    if (dim.derivedSource >= 0 && size[size_t(dim.derivedSource)] >= 0)
      return {size[size_t(dim.derivedSource)] / dim.divisor, 0,
              "= " + m.dims[size_t(dim.derivedSource)].name +
                  (dim.divisor > 1 ? " / " + str(dim.divisor) : "")};
    if (size[size_t(d)] >= 0)
      return {size[size_t(d)], 0, "as in " + firstSeen(d)};
    return sourceExpectation(d);
  }

  /// `d` is unbound; if derived dims come from it, it must agree with them / be divisible.
  Expectation sourceExpectation(int d) const {
    Expectation divisible;
    for (size_t x = 0; x < m.dims.size(); ++x) {
      const Dim &derived = m.dims[x];
      if (derived.derivedSource != d)
        continue;
      if (size[x] >= 0)
        return {size[x] * derived.divisor, 0,
                "= " + derived.name + (derived.divisor > 1 ? " * " + str(derived.divisor) : "")};
      if (divisible.multipleOf == 0)
        divisible = {-1, derived.divisor,
                     derived.name + " = " + m.dims[size_t(d)].name + " / " + str(derived.divisor)};
    }
    return divisible;
  }

  /// "expected 2 (= h / 4), got 3"; for a packed axis, in bytes and values.
  static std::string mismatch(const Expectation &want, const Arg &a, int64_t packed, int64_t got) {
    if (packed == 1)
      return "expected " + want.text() + ", got " + str(got);
    std::string perByte = str(packed) + " " + dtypeName(a.dtype) + " values per byte";
    if (want.value >= 0 && want.value % packed != 0)
      return "holds " + perByte + ", so the extent must be a multiple of " + str(packed) +
             ", but it is " + want.text();
    if (want.value >= 0)
      return "expected " + str(want.value / packed) + " bytes = " + want.text() + " values at " +
             perByte + ", got " + str(got) + " bytes";
    return "expected " + want.text() + " values, got " + str(got) + " bytes = " + str(got * packed) +
           " values at " + perByte;
  }

  /// "argument 'k' axis 2": the dim's name is already in the message.
  std::string firstSeen(int d) const {
    auto [arg, axis] = boundAt[size_t(d)];
    int64_t packed = packing(m, arg, axis);
    return "argument '" + m.args[arg].name + "' axis " + str(axis) +
           (packed > 1 ? ", " + str(size[size_t(d)] / packed) + " bytes of " + dtypeName(m.args[arg].dtype)
                       : "");
  }

  const Manifest &m;
  std::vector<int64_t> size;
  std::vector<std::pair<size_t, int>> boundAt;
};

bool checkShape(const Manifest &m, size_t arg, const TensorArg &t, DimBinder &dims,
                std::string &error) {
  const Arg &a = m.args[arg];
  std::string prefix = "argument '" + a.name + "': ";
  if (t.dtype < 0 || t.dtype > kLastDType) {
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
  // A zeroed output is cleared by one memset: it must be one dense row-major block.
  int64_t dense = 1;
  for (int axis = t.rank - 1; a.zeroed && axis >= 0; --axis) {
    if (t.sizes[axis] > 1 && t.strides[axis] != dense) {
      error = where(m, arg, axis) + ": expected stride " + str(dense) + ", got " +
              str(t.strides[axis]) + " (this gradient must be contiguous: the runtime zeroes it "
              "before the kernels add into it)";
      return false;
    }
    dense = mulSat(dense, t.sizes[axis]);
  }
  return true;
}

constexpr int64_t kGridLimit[3] = {INT32_MAX, 65535, 65535};

/// Blocks along one grid axis: ceil(extent * scale / divisor) * (splits if the axis has them).
int64_t axisBlocks(const GridAxis &g, int64_t extent, int64_t splits) {
  if (g.dim < 0)
    return g.blocks;
  int64_t rows = mulSat(extent, g.scale);
  int64_t blocks = rows / g.divisor + (rows % g.divisor != 0);
  return g.splits ? mulSat(blocks, splits) : blocks;
}

/// "ceil(i * 4 / 64) * splits, i = 77, splits = 8"; "h = 262144" for a plain {"dim": "h"}.
std::string axisFormula(const GridAxis &g, const std::string &dim, int64_t extent, int64_t splits) {
  std::string rows = g.scale == 1 ? dim : dim + " * " + str(g.scale);
  std::string term = g.divisor == 1 ? rows : "ceil(" + rows + " / " + str(g.divisor) + ")";
  if (g.splits)
    term += " * splits";
  std::string values = dim + " = " + str(extent) + (g.splits ? ", splits = " + str(splits) : "");
  return term == dim ? values : term + ", " + values;
}

/// Evaluates three grid axes for `splits`; `what` is "launch grid" or "combine grid".
bool evalGrid(const Manifest &m, const std::array<GridAxis, 3> &axes, const LaunchPlan &plan,
              int64_t splits, const char *what, std::array<uint32_t, 3> &out, std::string &error) {
  static const char *axisName[3] = {"x", "y", "z"};
  for (int a = 0; a < 3; ++a) {
    const GridAxis &g = axes[a];
    int64_t extent = g.dim < 0 ? 0 : plan.dimSizes[size_t(g.dim)];
    int64_t blocks = axisBlocks(g, extent, splits);
    if (blocks > kGridLimit[a]) {
      error = std::string(what) + " " + axisName[a] + " = " + str(blocks) + " (" +
              axisFormula(g, m.dims[size_t(g.dim)].name, extent, splits) + ") exceeds CUDA's limit of " +
              str(kGridLimit[a]);
      return false;
    }
    out[a] = uint32_t(blocks);
  }
  return true;
}

/// A contiguous row-major f32 array of `sizes` at `offset` bytes; false if its size overflows.
bool layoutWorkspace(std::vector<int64_t> sizes, int64_t offset, Workspace &w,
                     int64_t elementBytes = 4) {
  w.sizes = std::move(sizes);
  w.strides.assign(w.sizes.size(), 1);
  int64_t elements = 1;
  for (size_t a = w.sizes.size(); a-- > 0;) {
    w.strides[a] = elements;
    elements = mulSat(elements, w.sizes[a]);
  }
  w.offset = offset;
  w.bytes = mulSat(elements, elementBytes);
  return w.bytes < INT64_MAX / 2;
}

bool planWorkspace(const Manifest &m, LaunchPlan &plan, std::string &error) {
  const SplitKV &s = *m.splitKV;
  auto extent = [&](int d) { return plan.dimSizes[size_t(d)]; };
  std::vector<int64_t> lse = {plan.splits, extent(s.batch), extent(s.qHead), extent(s.qSeq)};
  std::vector<int64_t> o = lse;
  o.push_back(extent(s.valueDim));
  if (!layoutWorkspace(o, 0, plan.oPartial) ||
      !layoutWorkspace(lse, (plan.oPartial.bytes + 255) / 256 * 256, plan.lsePartial)) {
    error = "the split-KV workspace for " + str(plan.splits) + " splits is too large";
    return false;
  }
  plan.workspaceBytes = plan.lsePartial.offset + plan.lsePartial.bytes;
  return true;
}

}  // namespace

int64_t splitHeuristic(int64_t baseBlocks, int64_t keyTiles, int64_t maxSplits,
                       int64_t minTilesPerSplit, int64_t smCount) {
  int64_t sms = std::max<int64_t>(1, smCount);
  int64_t cap = keyTiles < 0 ? maxSplits
                             : std::min(maxSplits, std::max<int64_t>(1, keyTiles / std::max<int64_t>(1, minTilesPerSplit)));
  if (baseBlocks <= 0 || baseBlocks >= sms || cap <= 1)
    return 1;
  int64_t splits = std::min(cap, std::max<int64_t>(1, (3 * sms + baseBlocks) / (2 * baseBlocks)));
  if (keyTiles <= 0)
    return splits;
  int64_t tilesPer = (keyTiles + splits - 1) / splits;
  return (keyTiles + tilesPer - 1) / tilesPer;
}

int64_t chooseSplits(const Manifest &m, const LaunchPlan &plan, int64_t override,
                     int64_t smCount) {
  if (!m.splitKV)
    return 1;
  const SplitKV &s = *m.splitKV;
  int64_t kvLen = s.kvSeq >= 0 ? plan.dimSizes[size_t(s.kvSeq)] : -1;
  if (kvLen < 0 && s.pagesPerSeq >= 0 && plan.dimSizes[size_t(s.pagesPerSeq)] >= 0)
    kvLen = plan.dimSizes[size_t(s.pagesPerSeq)] * s.pageSize;
  int64_t keyTiles = kvLen < 0 ? -1 : kvLen / s.blockK + (kvLen % s.blockK != 0);
  int64_t splits = s.splits;
  if (splits <= 0)
    splits = override;
  if (splits <= 0) {
    int64_t base = 1;
    for (uint32_t blocks : plan.baseGrid)
      base = mulSat(base, blocks);
    splits = splitHeuristic(base, keyTiles, s.maxSplits, s.minTilesPerSplit, smCount);
  }
  int64_t hi = keyTiles < 0 ? s.maxSplits : std::min(s.maxSplits, keyTiles);
  for (int a = 0; a < 3; ++a)
    if (m.grid[a].splits && plan.baseGrid[size_t(a)] > 0)
      hi = std::min(hi, kGridLimit[a] / int64_t(plan.baseGrid[size_t(a)]));
  return std::max<int64_t>(1, std::min(splits, hi));
}

bool applySplits(const Manifest &m, int64_t splits, LaunchPlan &plan, std::string &error) {
  plan.splits = splits;
  if (!evalGrid(m, m.grid, plan, 1, "launch grid", plan.baseGrid, error) ||
      !evalGrid(m, m.grid, plan, splits, "launch grid", plan.grid, error))
    return false;
  plan.empty = std::find(plan.grid.begin(), plan.grid.end(), 0u) != plan.grid.end();
  for (int a = 0; a < 3; ++a)  // the PTX's .reqnctapercluster: whole clusters only
    if (plan.grid[size_t(a)] % m.cluster[size_t(a)]) {
      error = "launch grid axis " + std::to_string(a) + " has " +
              std::to_string(plan.grid[size_t(a)]) + " blocks, not a multiple of the kernel's " +
              std::to_string(m.cluster[size_t(a)]) + " blocks per cluster (the manifest's "
              "'cluster' does not match its grid: recompile the kernel)";
      return false;
    }
  if (m.backward) {  // the dK/dV kernel and the workspace D [b, h, i]
    const Backward &bw = *m.backward;
    if (!evalGrid(m, bw.dkdvGrid, plan, 1, "dK/dV grid", plan.dkdvGrid, error))
      return false;
    plan.mainEmpty = plan.empty;
    plan.empty = plan.empty &&
                 std::find(plan.dkdvGrid.begin(), plan.dkdvGrid.end(), 0u) != plan.dkdvGrid.end();
    std::vector<int64_t> sizes;
    for (int d : bw.deltaDims)
      sizes.push_back(plan.dimSizes[size_t(d)]);
    sizes[1] = mulSat(sizes[1], bw.scores);  // several scores: a slot of heads per score
    if (!layoutWorkspace(sizes, 0, plan.delta)) {
      error = "the backward's workspace D is too large";
      return false;
    }
    plan.workspaceBytes = std::max<int64_t>(plan.delta.bytes, 4);
    plan.dqAccum = Workspace();
    if (!bw.dqEntry.empty()) {
      sizes.push_back(bw.dqAccumWidth);
      if (!layoutWorkspace(sizes, (plan.delta.bytes + 255) / 256 * 256, plan.dqAccum)) {
        error = "the backward's workspace dQacc is too large";
        return false;
      }
      plan.workspaceBytes = plan.dqAccum.offset + std::max<int64_t>(plan.dqAccum.bytes, 4);
    }
    plan.dy = Workspace();
    if (bw.dyWidth) {
      sizes.resize(3);
      sizes.push_back(bw.dyWidth);
      if (!layoutWorkspace(sizes, (plan.workspaceBytes + 255) / 256 * 256, plan.dy, 2)) {
        error = "the backward's workspace dy is too large";
        return false;
      }
      plan.workspaceBytes = plan.dy.offset + std::max<int64_t>(plan.dy.bytes, 4);
    }
    plan.sums = Workspace();
    if (bw.decaySlots) {
      sizes.resize(3);
      sizes[1] = mulSat(sizes[1], bw.decaySlots);  // slot n of head h at n heads + h
      if (!bw.decayEntry.empty() &&
          !evalGrid(m, bw.decayGrid, plan, 1, "decay grid", plan.decayGrid, error))
        return false;
      if (!layoutWorkspace(sizes, (plan.workspaceBytes + 255) / 256 * 256, plan.sums)) {
        error = "the backward's workspace of the forget gate is too large";
        return false;
      }
      plan.workspaceBytes = plan.sums.offset + std::max<int64_t>(plan.sums.bytes, 4);
    }
  }
  if (m.splitKV) {
    plan.combineBlock = m.splitKV->combineBlock;
    if (!evalGrid(m, m.splitKV->combineGrid, plan, splits, "combine grid", plan.combineGrid, error) ||
        !planWorkspace(m, plan, error))
      return false;
  }
  return applyBlockPlan(m, plan, error);
}

bool applyBlockPlan(const Manifest &m, LaunchPlan &plan, std::string &error) {
  if (!m.blockPlan)
    return true;
  if (!evalGrid(m, m.blockPlan->grid, plan, 1, "block plan grid", plan.planGrid, error))
    return false;
  int64_t offset = (plan.workspaceBytes + 255) / 256 * 256;
  const auto &g = plan.planGrid;
  if (!layoutWorkspace({int64_t(g[2]), int64_t(g[1]), int64_t(g[0]), kBlockPlanValues}, offset,
                       plan.blockPlan)) {
    error = "the block plan's workspace is too large";
    return false;
  }
  plan.workspaceBytes = offset + plan.blockPlan.bytes;
  return true;
}

bool checkTensors(const Manifest &m, const TensorArg *args, size_t count,
                  std::vector<int64_t> &dimSizes, std::string &error) {
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
  dimSizes = dims.resolve();
  return true;
}

bool checkCombineArgs(const Manifest &m, const TensorArg *args, size_t count,
                      std::array<uint32_t, 3> &grid, bool &empty, std::string &error) {
  static const char *names[4] = {"part_out", "part_lse", "out", "lse"};
  static const char *axes[4][5] = {{"S", "b", "h", "i", "dv"}, {"S", "b", "h", "i", ""},
                                   {"b", "h", "i", "dv", ""}, {"b", "h", "i", "", ""}};
  const Arg *output = nullptr;
  for (const Arg &a : m.args)
    if (a.kind == ArgKind::Output)
      output = &a;
  bool softmax = false;
  for (const Arg &a : m.args)
    softmax |= a.kind == ArgKind::Lse;
  if (!output || !softmax) {
    error = "combine merges softmax results by their log-sum-exp; kernel '" + m.variant +
            "' has no lse";
    return false;
  }
  if (count != 4 || !args) {
    error = "combine takes 4 arguments (part_out, part_lse, out, lse), got " +
            str(int64_t(args ? count : 0));
    return false;
  }
  const int ranks[4] = {5, 4, 4, 3};
  const DType dtypes[4] = {DType::F32, DType::F32, output->dtype, DType::F32};
  for (size_t a = 0; a < 4; ++a) {
    const TensorArg &t = args[a];
    std::string prefix = std::string("combine argument '") + names[a] + "': ";
    if (t.rank != ranks[a] || t.dtype != int32_t(dtypes[a])) {
      error = prefix + "expected " + dtypeName(dtypes[a]) + " of rank " + str(ranks[a]) +
              ", got rank " + str(t.rank) + " (dtype code " + str(t.dtype) + ")";
      return false;
    }
    if (!t.sizes || !t.strides) {
      error = prefix + "the sizes or the strides are null";
      return false;
    }
    for (int32_t d = 0; d < t.rank; ++d)
      if (t.sizes[d] < 0 || t.sizes[d] > kMaxExtent || t.strides[d] < 0) {
        error = prefix + "axis " + str(d) + " (" + axes[a][d] + ") has size " + str(t.sizes[d]) +
                " and stride " + str(t.strides[d]) + "; sizes must be in [0, 2^31 - 1] and "
                "strides non-negative";
        return false;
      }
  }
  // Every tensor agrees with part_out on b, h, i (and dv).
  const int64_t *shape = args[0].sizes;
  const int at[4][4] = {{1, 2, 3, 4}, {1, 2, 3, -1}, {0, 1, 2, 3}, {0, 1, 2, -1}};
  for (size_t a = 1; a < 4; ++a)
    for (int d = 0; d < 4; ++d) {
      if (at[a][d] < 0)
        continue;
      if (args[a].sizes[at[a][d]] != shape[d + 1]) {
        error = std::string("combine argument '") + names[a] + "': axis " + axes[a][at[a][d]] +
                " is " + str(args[a].sizes[at[a][d]]) + ", but part_out's is " + str(shape[d + 1]);
        return false;
      }
    }
  if (args[1].sizes[0] != shape[0]) {
    error = "combine argument 'part_lse': " + str(args[1].sizes[0]) + " partial results, but "
            "part_out holds " + str(shape[0]);
    return false;
  }
  if (shape[0] < 2) {
    error = "combine merges at least 2 partial results, got S = " + str(shape[0]);
    return false;
  }
  int64_t dv = -1;
  if (output->dims.size() == 4)
    dv = m.dims[size_t(output->dims[3])].staticSize;
  if (dv > 0 && shape[4] != dv) {
    error = "combine argument 'part_out': dv is " + str(shape[4]) + ", but kernel '" + m.variant +
            "' has dv = " + str(dv);
    return false;
  }
  empty = shape[1] == 0 || shape[2] == 0 || shape[3] == 0;
  if (empty)
    return true;
  if (shape[1] > 65535 || shape[2] > 65535) {
    error = "combine: b = " + str(shape[1]) + " and h = " + str(shape[2]) +
            " must each be at most 65535 (grid z and y)";
    return false;
  }
  // Nothing is read through a null pointer, and the merge does not write its own inputs.
  uint64_t lo[4], hi[4];
  for (size_t a = 0; a < 4; ++a) {
    const TensorArg &t = args[a];
    int64_t bytes = a == 2 ? dtypeBytes(output->dtype) : 4, last = 0;
    for (int32_t d = 0; d < t.rank; ++d)
      last += (t.sizes[d] - 1) * t.strides[d];
    if (!t.data) {
      error = std::string("combine argument '") + names[a] + "' is a null pointer";
      return false;
    }
    lo[a] = t.data;
    hi[a] = t.data + uint64_t((last + 1) * bytes);
  }
  for (size_t w : {2u, 3u})
    for (size_t r : {0u, 1u})
      if (lo[w] < hi[r] && lo[r] < hi[w]) {
        error = std::string("combine argument '") + names[w] + "' overlaps '" + names[r] +
                "': the merge would write the partial results it reads";
        return false;
      }
  const int64_t extents[3] = {shape[3], shape[2], shape[1]};  // i, h, b
  for (size_t a = 0; a < 3; ++a) {
    if (!m.splitKV) {
      grid[a] = uint32_t(extents[a]);
      continue;
    }
    const SplitKV &split = *m.splitKV;
    const GridAxis &axis = split.combineGrid[a];
    int64_t extent = axis.dim < 0              ? axis.blocks
                     : axis.dim == split.qSeq  ? extents[0]
                     : axis.dim == split.qHead ? extents[1]
                                               : extents[2];
    grid[a] = uint32_t((extent * axis.scale + axis.divisor - 1) / axis.divisor);
  }
  return true;
}

bool checkArgs(const Manifest &m, const TensorArg *args, size_t count, LaunchPlan &plan,
               std::string &error) {
  plan = LaunchPlan();
  if (!checkTensors(m, args, count, plan.dimSizes, error))
    return false;
  plan.block = m.block;
  plan.sharedMemory = m.dynamicSharedMemory;
  return applySplits(m, 1, plan, error);
}

}  // namespace attnc::rt
