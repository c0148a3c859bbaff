// Random inputs in each tensor's declared storage order, a NaN-poisoned output, the kernel on the
// host through its C interface, and the float64 reference on the very same (rounded) inputs.
#include "compiler/pipeline/HostRun.h"
#include "compiler/pipeline/OwnedTensor.h"

#include "codegen/cpu/CPUExecutor.h"
#include "compiler/lowering/ASTToAttn.h"

#include "llvm/Support/Error.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <cerrno>
#include <sstream>

namespace attnc {

using namespace host;

namespace {

/// An i32 param whose last axis is a sequence dim (document ids): the ones RunConfig::sortedIds
/// sorts along that axis.
bool sortableIds(const Variant &v, const TensorDecl &p) {
  return p.resolvedDType == DType::I32 && !p.dims.empty() &&
         (p.dims.back() == v.qSeqDim || p.dims.back() == v.kvSeqDim);
}

/// Ascending ids along the last axis: a new document starts at each position with probability
/// 0, 0.02, 0.3 or 1 (by row), so rows hold one document, long ones, short ones, or one-token
/// documents.
void fillSortedIds(OwnedTensor &o, std::mt19937_64 &rng) {
  static constexpr double kNewDocument[] = {0.0, 0.02, 0.3, 1.0};
  std::uniform_real_distribution<double> uniform(0, 1);
  int64_t row = -1, id = 0;
  double p = 0;
  o.forEach([&](const std::vector<int64_t> &idx) {
    if (idx.back() == 0) {
      ++row;
      p = kNewDocument[row % 4];
      id = 0;
    } else if (uniform(rng) < p) {
      ++id;
    }
    o.view.store(idx, double(id));
  });
}

}  // namespace


std::string RunReport::describeSizes(const Variant &v) const {
  std::ostringstream os;
  for (size_t d = 0; d < v.dims.size(); ++d)
    os << (d ? "," : "") << v.dims[d].name << "=" << sizes[d];
  return os.str();
}

std::vector<std::pair<std::string, int64_t>> defaultDimSizes(const Variant &v) {
  std::vector<std::pair<std::string, int64_t>> out;
  for (size_t d = 0; d < v.dims.size(); ++d) {
    const DimDecl &dim = v.dims[d];
    if (dim.kind != DimDecl::Kind::Dynamic)
      continue;
    int64_t size = 16;
    switch (dim.role) {
    case DimRole::Batch: size = 2; break;
    case DimRole::QHead: size = 2 * v.group * v.qkGroup; break;
    case DimRole::KVHead: size = 2; break;
    case DimRole::QKHead: size = 2; break;
    case DimRole::QSeq: size = 77; break;
    case DimRole::KVSeq: size = 131; break;
    case DimRole::HeadDim:
    case DimRole::ValueDim: size = 64; break;
    case DimRole::None: break;
    }
    out.emplace_back(dim.name, size);
  }
  return out;
}

bool parseSizeList(const std::string &text, std::vector<std::pair<std::string, int64_t>> &out,
                   std::string &error) {
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    size_t eq = item.find('=');
    char *end = nullptr;
    errno = 0;
    long long value = eq == std::string::npos ? 0 : std::strtoll(item.c_str() + eq + 1, &end, 10);
    if (eq == std::string::npos || eq == 0 || !end || *end || end == item.c_str() + eq + 1) {
      error = "bad size '" + item + "': expected NAME=INTEGER, e.g. i=128";
      return false;
    }
    if (errno == ERANGE || value < 1 || value > kMaxExtent) {
      error = "bad size '" + item + "': a size must be 1 to " + std::to_string(kMaxExtent);
      return false;
    }
    out.emplace_back(item.substr(0, eq), value);
  }
  return true;
}

bool resolveRunSizes(const Variant &v, const RunConfig &config, DimSizes &sizes,
                     std::string &error) {
  // The user's extents, then defaults for the dynamic dims the user left out.
  auto given = config.sizes;
  for (const auto &[name, size] : defaultDimSizes(v)) {
    auto dim = std::find_if(v.dims.begin(), v.dims.end(), [&](const DimDecl &d) { return d.name == name; });
    bool userGave = std::any_of(given.begin(), given.end(), [&](const auto &g) {
      return g.first == dim->name || (!dim->extentName.empty() && g.first == dim->extentName);
    });
    if (!userGave)
      given.emplace_back(name, size);
  }
  return resolveDimSizes(v, given, sizes, error) && checkHostMemory(v, sizes, error);
}

bool checkHostMemory(const Variant &v, const DimSizes &sizes, std::string &error) {
  // Each element is held in its storage type, in the float64 reference's copies and its
  // results: about 24 bytes per element of every tensor, checked before anything is allocated.
  constexpr int64_t kBytesPerElement = 24;
  std::vector<const TensorDecl *> tensors = {&v.output};
  for (const auto *list : {&v.inputs, &v.params})
    for (const TensorDecl &t : *list)
      tensors.push_back(&t);
  if (v.state)
    tensors.push_back(&*v.state);
  int64_t total = 0;
  std::string largest;
  int64_t largestBytes = 0;
  for (const TensorDecl *t : tensors) {
    int64_t elements = 1, bytes = 0;
    std::string shape;
    for (int d : t->dims) {
      int64_t extent = d >= 0 ? sizes[size_t(d)] : 1;
      shape += (shape.empty() ? "" : ", ") + (d >= 0 ? v.dims[size_t(d)].name : "?") + "=" +
               std::to_string(extent);
      if (__builtin_mul_overflow(elements, extent, &elements))
        elements = INT64_MAX;
    }
    if (__builtin_mul_overflow(elements, kBytesPerElement, &bytes))
      bytes = INT64_MAX;
    if (__builtin_add_overflow(total, bytes, &total))
      total = INT64_MAX;
    if (bytes >= largestBytes)
      largest = t->name + " [" + shape + "]", largestBytes = bytes;
  }
  int64_t limit = hostMemoryLimit();
  if (total <= limit)
    return true;
  auto gib = [](int64_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g GiB", double(bytes) / (1ull << 30));
    return std::string(buf);
  };
  error = "these sizes need about " + (total == INT64_MAX ? std::string("more than 2^63 bytes")
                                                          : gib(total)) +
          " of host memory (the largest tensor: " + largest + "), over the limit of " +
          gib(limit) + " (half of this machine's memory, or $ATTNC_RUN_MEMORY_LIMIT in bytes); "
          "give smaller --sizes";
  return false;
}

int64_t hostMemoryLimit() {
  if (const char *env = std::getenv("ATTNC_RUN_MEMORY_LIMIT")) {
    char *end = nullptr;
    errno = 0;
    long long value = std::strtoll(env, &end, 10);
    if (errno == 0 && end && !*end && value > 0)
      return value;
  }
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0)
    return int64_t(8) << 30;
  return int64_t(pages) / 2 * int64_t(page);
}

bool runAndCheck(CPUModule &module, const Variant &v, const RunConfig &config, RunReport &report,
                 std::string &error) {
  if (!resolveRunSizes(v, config, report.sizes, error))
    return false;
  // Paged: whole pages per sequence, kv_len = ceil(kv_len / P) P; the block table has n
  // columns, ceil(kv_len / P) unless the sizes name n (then at least that many).
  int64_t pageSize = v.paged ? v.paged->pageSize : 0, pagesPerSeq = 0, pages = 0;
  if (v.paged) {
    int nDim = v.params[v.paged->tableParam].dims[1];
    const DimDecl &n = v.dims[size_t(nDim)];
    int64_t needed = (report.sizes[v.kvSeqDim] + pageSize - 1) / pageSize;
    bool given = std::any_of(config.sizes.begin(), config.sizes.end(), [&](const auto &g) {
      return g.first == n.name || (!n.extentName.empty() && g.first == n.extentName);
    });
    pagesPerSeq = given ? report.sizes[nDim] : needed;
    if (pagesPerSeq < needed) {
      error = "'" + n.name + "' = " + std::to_string(pagesPerSeq) + " pages of " +
              std::to_string(pageSize) + " tokens hold " + std::to_string(pagesPerSeq * pageSize) +
              " keys per sequence, but '" + v.dims[size_t(v.kvSeqDim)].name + "' is " +
              std::to_string(report.sizes[v.kvSeqDim]) + ": give " + n.name + " >= " +
              std::to_string(needed) + ", or leave it out";
      return false;
    }
    report.sizes[nDim] = pagesPerSeq;
    report.sizes[v.kvSeqDim] = needed * pageSize;
    pages = report.sizes[v.batchDim] * pagesPerSeq + 1;  // one page no sequence uses
  }
  const DimSizes &sizes = report.sizes;

  std::mt19937_64 rng(config.seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<OwnedTensor> inputs, params;
  for (const TensorDecl &t : v.inputs) {
    std::vector<int64_t> extents;
    if (v.isPaged(int(&t - v.inputs.data())))
      for (int d : v.pagedStorage(t))
        extents.push_back(d == Variant::kPageAxis ? pages
                          : d == Variant::kSlotAxis ? pageSize
                                                    : sizes[d]);
    else
      extents = extentsOf(t, sizes);
    inputs.emplace_back(t.resolvedDType, extents);
    OwnedTensor &o = inputs.back();
    // Quantised: the whole integer range.
    double range = t.resolvedDType == DType::I8 ? 127 : t.resolvedDType == DType::I4 ? 7 : 1;
    o.forEach([&](const std::vector<int64_t> &idx) { o.view.store(idx, range * uniform(rng)); });
  }
  for (const TensorDecl &p : v.params) {
    params.emplace_back(p.resolvedDType, extentsOf(p, sizes));
    OwnedTensor &o = params.back();
    int64_t bound = intParamBound(v, p, sizes);
    std::uniform_int_distribution<int64_t> ints(0, bound - 1);
    // Dequantisation scales: positive, sized so that integer values land in about [-1, 1].
    bool scale = false;
    double intRange = 1;
    for (const TensorDecl &t : v.inputs)
      if (t.scaleParam == int(&p - v.params.data())) {
        scale = true;
        intRange = t.resolvedDType == DType::I8 ? 127 : t.resolvedDType == DType::I4 ? 7 : 1;
      }
    if (config.sortedIds && sortableIds(v, p)) {
      fillSortedIds(o, rng);
      continue;
    }
    o.forEach([&](const std::vector<int64_t> &idx) {
      double x = p.resolvedDType == DType::I32 ? double(ints(rng)) : uniform(rng);
      if (scale)
        x = (1.25 + 0.75 * x) / intRange;
      o.view.store(idx, x);
    });
  }
  // The block table: the pool's pages shuffled over the sequences; the reference reads K and V
  // gathered back into contiguous [b, j, ...] tensors.
  std::vector<OwnedTensor> logical;
  if (v.paged) {
    std::vector<int64_t> order(pages);
    for (int64_t n = 0; n < pages; ++n)
      order[n] = n;
    std::shuffle(order.begin(), order.end(), rng);
    OwnedTensor &table = params[v.paged->tableParam];
    int64_t n = 0;
    table.forEach([&](const std::vector<int64_t> &idx) { table.view.store(idx, double(order[n++])); });
    for (int index : {v.k, v.v}) {
      const TensorDecl &t = v.inputs[index];
      std::vector<int> storage = v.pagedStorage(t);
      logical.emplace_back(t.resolvedDType, extentsOf(t, sizes));
      OwnedTensor &dst = logical.back();
      std::vector<int64_t> src(storage.size());
      dst.forEach([&](const std::vector<int64_t> &idx) {
        int64_t b = 0, j = 0;
        for (size_t a = 0; a < t.dims.size(); ++a) {
          if (t.dims[a] == v.batchDim)
            b = idx[a];
          if (t.dims[a] == v.kvSeqDim)
            j = idx[a];
        }
        for (size_t a = 0; a < storage.size(); ++a) {
          if (storage[a] == Variant::kPageAxis)
            src[a] = int64_t(table.view.load({b, j / pageSize}));
          else if (storage[a] == Variant::kSlotAxis)
            src[a] = j % pageSize;
          else
            for (size_t c = 0; c < t.dims.size(); ++c)
              if (t.dims[c] == storage[a])
                src[a] = idx[c];
        }
        dst.view.store(idx, inputs[index].view.load(src));
      });
    }
  }
  // A recurrence's state: random initial values, overwritten by the kernel with the final state
  // (restored before every repeat from `initialState`).
  std::vector<OwnedTensor> state, initialState;
  if (v.state) {
    for (auto *list : {&state, &initialState})
      list->emplace_back(DType::F32, extentsOf(*v.state, sizes));
    initialState[0].forEach([&](const std::vector<int64_t> &idx) {
      initialState[0].view.store(idx, uniform(rng));
    });
  }
  OwnedTensor out(v.output.resolvedDType, extentsOf(v.output, sizes));
  std::vector<OwnedTensor> lses;  // one per score
  for (size_t n = 0; n < v.scores.size(); ++n)
    lses.emplace_back(DType::F32,
                      std::vector<int64_t>{sizes[v.batchDim], sizes[v.qHeadDim], sizes[v.qSeqDim]});

  // Descriptors in the kernel's argument order (kernelArgs), canonical axes.
  std::vector<MemRefDescriptor> args;
  for (const KernelArg &a : kernelArgs(v)) {
    switch (a.kind) {
    case KernelArg::Kind::Q: args.push_back(inputs[a.index].descriptor(v.canonicalPerm(v.inputs[a.index]))); break;
    case KernelArg::Kind::K:
    case KernelArg::Kind::V: {
      int index = a.index;
      const TensorDecl &t = v.inputs[index];
      args.push_back(inputs[index].descriptor(v.paged ? v.pagedCanonicalPerm(t) : v.canonicalPerm(t)));
      break;
    }
    case KernelArg::Kind::Param: args.push_back(params[a.index].descriptor()); break;
    case KernelArg::Kind::Out: args.push_back(out.descriptor(v.canonicalPerm(v.output))); break;
    case KernelArg::Kind::Lse: args.push_back(lses[size_t(a.index)].descriptor()); break;
    case KernelArg::Kind::State: args.push_back(state[0].descriptor(v.statePerm())); break;
    }
  }
  // Split-KV workspace: partial outputs [S, b, h, i, dv] and log-sum-exps [S, b, h, i], when
  // attn-split-kv gave the function those two arguments (it leaves several scores whole).
  // An output map or rmsnorm is applied by the merge (attn.combine) to the merged rows.
  bool softmax = v.norm == Norm::Softmax;
  std::vector<OwnedTensor> workspace;
  if (config.splitKV && softmax && module.arity(v.name) == int64_t(args.size()) + 2) {
    if (config.splits < 1) {
      error = "the split count must be at least 1, got " + std::to_string(config.splits);
      return false;
    }
    std::vector<int64_t> rowDims = {config.splits, sizes[v.batchDim], sizes[v.qHeadDim],
                                    sizes[v.qSeqDim]};
    std::vector<int64_t> partDims = rowDims;
    partDims.push_back(sizes[v.valueDim]);
    workspace.emplace_back(DType::F32, partDims);
    workspace.emplace_back(DType::F32, rowDims);
    for (OwnedTensor &w : workspace) {
      w.forEach([&](const std::vector<int64_t> &idx) {
        w.view.store(idx, std::numeric_limits<double>::quiet_NaN());
      });
      args.push_back(w.descriptor());
    }
  }

  const double nan = std::numeric_limits<double>::quiet_NaN();
  report.bestSeconds = std::numeric_limits<double>::infinity();
  for (int r = 0; r < std::max(1, config.repeats); ++r) {
    out.forEach([&](const std::vector<int64_t> &idx) { out.view.store(idx, nan); });
    for (OwnedTensor &lse : lses)
      lse.forEach([&](const std::vector<int64_t> &idx) { lse.view.store(idx, nan); });
    if (v.state)
      state[0].forEach([&](const std::vector<int64_t> &idx) {
        state[0].view.store(idx, initialState[0].view.load(idx));
      });
    auto start = std::chrono::steady_clock::now();
    if (llvm::Error err = module.invoke(v.name, args)) {
      error = "cannot run '" + v.name + "': " + llvm::toString(std::move(err));
      return false;
    }
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    report.bestSeconds = std::min(report.bestSeconds, took.count());
  }

  std::vector<HostTensor> inViews, paramViews;
  for (OwnedTensor &t : inputs)
    inViews.push_back(t.view);
  if (v.paged) {
    inViews[v.k] = logical[0].view;
    inViews[v.v] = logical[1].view;
  }
  for (OwnedTensor &t : params)
    paramViews.push_back(t.view);
  std::vector<double> refOut, refLse;
  const HostTensor *state0 = v.state ? &initialState[0].view : nullptr;
  referenceForward(v, sizes, inViews, paramViews, refOut, softmax ? &refLse : nullptr, state0);
  std::vector<double> recurrentOut, finalState;
  report.recurrence = v.recurrence;
  if (v.recurrence)
    referenceRecurrent(v, sizes, inViews, paramViews, state0, recurrentOut, finalState);

  // Gather the kernel's output in canonical [b, h, i, dv] order, like the reference.
  std::vector<int> perm = v.canonicalPerm(v.output);
  std::vector<double> got(refOut.size());
  std::vector<int64_t> storageIdx(4);
  int64_t n = 0, unwritten = 0;
  std::vector<int64_t> canon = {sizes[v.batchDim], sizes[v.qHeadDim], sizes[v.qSeqDim],
                                sizes[v.valueDim]};
  for (int64_t b = 0; b < canon[0]; ++b)
    for (int64_t h = 0; h < canon[1]; ++h)
      for (int64_t i = 0; i < canon[2]; ++i)
        for (int64_t e = 0; e < canon[3]; ++e, ++n) {
          int64_t c[4] = {b, h, i, e};
          for (int a = 0; a < 4; ++a)
            storageIdx[perm[a]] = c[a];
          got[n] = out.view.load(storageIdx);
          unwritten += std::isnan(got[n]);
        }
  report.unwritten = unwritten;
  report.relError = unwritten ? nan : relativeError(got, refOut);
  report.recurrentRelError = !v.recurrence ? 0 : unwritten ? nan : relativeError(got, recurrentOut);
  report.stateRelError = 0;
  if (v.state) {  // the kernel's final state, canonical [b, h, d, dv]
    std::vector<int> sp = v.statePerm();
    std::vector<double> gotState;
    std::vector<int64_t> at(4);
    for (int64_t b = 0; b < sizes[v.batchDim]; ++b)
      for (int64_t h = 0; h < sizes[v.qHeadDim]; ++h)
        for (int64_t d = 0; d < sizes[v.headDim]; ++d)
          for (int64_t e = 0; e < sizes[v.valueDim]; ++e) {
            int64_t c[4] = {b, h, d, e};
            for (int a = 0; a < 4; ++a)
              at[sp[a]] = c[a];
            gotState.push_back(state[0].view.load(at));
          }
    report.stateRelError = relativeError(gotState, finalState);
  }

  report.lseRelError = 0;
  report.lseInfMatches = true;
  if (softmax) {
    std::vector<double> gotFinite, refFinite;
    size_t rows = refLse.size() / lses.size();  // several scores: [score, b, h, i]
    for (size_t r = 0; r < refLse.size(); ++r) {
      float got = static_cast<const float *>(lses[r / rows].view.data)[r % rows];
      bool refInf = std::isinf(refLse[r]), gotInf = std::isinf(got) && got < 0;
      if (refInf != gotInf || std::isnan(got))
        report.lseInfMatches = false;
      else if (!refInf) {
        gotFinite.push_back(got);
        refFinite.push_back(refLse[r]);
      }
    }
    report.lseRelError = relativeError(gotFinite, refFinite);
  }
  return true;
}

}  // namespace attnc
