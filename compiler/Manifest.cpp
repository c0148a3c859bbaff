// Kernel manifest writer (format attnc-kernel-manifest/1, see docs/manifest.md).
#define JSON_NOEXCEPTION 1  // built with -fno-exceptions; serialisation does not throw
#include "compiler/Manifest.h"

#include "codegen/cuda/Passes.h"
#include "compiler/lowering/ASTToAttn.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace attnc {

namespace {

/// The most splits a runtime may choose: enough to fill an H100 at batch 1 with one kv head.
constexpr int64_t kMaxSplits = 128;

/// Names of the page-pool axes of paged K/V (Sema reserves them).
constexpr const char *kPagesName = "kv_pages", *kSlotName = "page_size";

nlohmann::json dimNames(const Variant &v, const std::vector<int> &dims) {
  nlohmann::json names = nlohmann::json::array();
  for (int d : dims)
    names.push_back(d == Variant::kPageAxis  ? kPagesName
                    : d == Variant::kSlotAxis ? kSlotName
                                              : v.dims[d].name.c_str());
  return names;
}

/// `vectorized`: read in 16-byte rows (a unit last stride, rows aligned to 16 bytes);
/// `unitStride`: a unit last stride only (the scan kernel's scalar loads).
nlohmann::json tensorArg(const Variant &v, const std::string &name, const char *kind, DType dtype,
                         const std::vector<int> &canonical, const std::vector<int> &storage,
                         bool vectorized, bool unitStride = false) {
  nlohmann::json arg = {{"name", name},
                        {"kind", kind},
                        {"dtype", dtypeName(dtype)},
                        {"dims", dimNames(v, canonical)},
                        {"storage_dims", dimNames(v, storage)},
                        {"unit_stride_last", vectorized || unitStride},
                        {"alignment", vectorized ? 16 : dtypeBytes(dtype)},
                        {"row_alignment", vectorized ? 16 : 0}};
  if (dtypePacking(dtype) > 1)  // i4: two values per byte along the last axis
    arg["packed"] = dtypePacking(dtype);
  return arg;
}
}  // namespace

/// Bits per value of quantised storage (0 for f16/bf16/f32 K/V, which need no staging tile).
static int64_t storedBits(DType t) { return isQuantized(t) ? 8 / dtypePacking(t) : 0; }

std::string hashText(const std::string &text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : text) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  char buf[40];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

int64_t chunkOf(const Variant &v, const PipelineOptions &options) {
  bool quantised = isQuantized(v.inputs[v.k].resolvedDType) ||
                   isQuantized(v.inputs[v.v].resolvedDType);
  if (!options.chunk || !v.recurrence || v.paged || quantised)
    return 0;
  return staticExtent(v, v.qSeqDim) == 1 ? 1 : options.chunkSize;
}

std::string buildManifest(const Variant &v, const PipelineOptions &options,
                          const std::string &ptxFile, const std::string &specText) {
  using nlohmann::json;
  const TensorDecl &q = v.inputs[v.q];
  int64_t headDim = staticExtent(v, v.headDim), valueDim = staticExtent(v, v.valueDim);
  // A projected feature map (Performer): the kernels' dot and state run over the feature dim.
  int64_t dotDim = staticExtent(v, v.dotDim()), rawDim = v.featureDim >= 0 ? headDim : 0;
  int64_t warps = options.blockQ / 16;
  json dims = json::array();
  for (const DimDecl &d : v.dims) {
    json entry = {{"name", d.name}, {"role", roleName(d.role)}};
    int64_t fixed = staticExtent(v, int(&d - v.dims.data()));
    if (d.kind == DimDecl::Kind::Derived)
      entry["derived"] = {{"source", v.dims[d.sourceIndex].name}, {"divisor", d.divisor}};
    else if (d.kind == DimDecl::Kind::Alias)
      entry["alias"] = v.dims[d.sourceIndex].name;
    if (fixed >= 0 && d.kind != DimDecl::Kind::Derived)
      entry["static"] = fixed;
    dims.push_back(entry);
  }
  if (v.paged) {  // the pool: any number of pages of page_size tokens
    dims.push_back({{"name", kPagesName}, {"role", "kv_page"}});
    dims.push_back({{"name", kSlotName}, {"role", "page_slot"}, {"static", v.paged->pageSize}});
  }
  std::vector<int> poolCanon = {Variant::kPageAxis, v.kvHeadDim, Variant::kSlotAxis, v.headDim};
  int qkHeads = v.qkGroupDim;  // q and k shared by groups of heads, or -1
  std::vector<int> qCanon = {v.batchDim, qkHeads >= 0 ? qkHeads : v.qHeadDim, v.qSeqDim,
                             v.headDim};
  std::vector<int> kCanon = {v.batchDim, qkHeads >= 0 ? qkHeads : v.kvHeadDim, v.kvSeqDim,
                             v.headDim};
  std::vector<int> vCanon = {v.batchDim, v.kvHeadDim, v.kvSeqDim, v.valueDim};
  std::vector<int> oCanon = {v.batchDim, v.qHeadDim, v.qSeqDim, v.valueDim};
  // The scan kernel reads q, k, v and writes o one element at a time: no row alignment.
  int64_t chunk = chunkOf(v, options);
  bool scanKernel = chunk && dotDim > 0 && valueDim > 0 &&
                    mlir::attn::cudaUsesScan(dotDim, valueDim);
  bool rows = !scanKernel;
  json args = json::array();
  for (const KernelArg &a : kernelArgs(v)) {
    switch (a.kind) {
    case KernelArg::Kind::Q:
      args.push_back(tensorArg(v, a.name, "input", q.resolvedDType, qCanon, q.dims, rows, true));
      break;
    case KernelArg::Kind::K:
    case KernelArg::Kind::V: {
      bool isK = a.kind == KernelArg::Kind::K;
      const TensorDecl &t = v.inputs[isK ? v.k : v.v];
      std::vector<int> canon = isK ? kCanon : vCanon, storage = t.dims;
      if (v.paged) {
        canon = poolCanon;
        canon[3] = isK ? v.headDim : v.valueDim;
        storage = v.pagedStorage(t);
      }
      args.push_back(tensorArg(v, a.name, "input", t.resolvedDType, canon, storage, rows, true));
      if (t.scaleParam >= 0) {  // quantised: the dequantisation scale param and its group
        args.back()["scale"] = v.params[size_t(t.scaleParam)].name;
        args.back()["scale_group"] = t.scaleGroup;
      }
      break;
    }
    case KernelArg::Kind::Param: {
      const TensorDecl &p = v.params[a.index];
      args.push_back(tensorArg(v, a.name, "param", p.resolvedDType, p.dims, p.dims, false));
      break;
    }
    case KernelArg::Kind::Out:
      args.push_back(tensorArg(v, a.name, "output", v.output.resolvedDType, oCanon,
                               v.output.dims, false));
      break;
    case KernelArg::Kind::State: {  // f32 [b, h, d, dv], read and overwritten in place
      std::vector<int> stateDims = {v.batchDim, v.qHeadDim, v.headDim, v.valueDim};
      args.push_back(
          tensorArg(v, a.name, "state", DType::F32, stateDims, v.state->dims, false));
      break;
    }
    case KernelArg::Kind::Lse: {
      std::vector<int> lseDims = {v.batchDim, v.qHeadDim, v.qSeqDim};
      args.push_back(tensorArg(v, a.name, "lse", DType::F32, lseDims, lseDims, false));
      break;
    }
    }
  }
  // Packed GQA tiles (attn-pack-gqa) run one block row per kv head over q_len x group rows;
  // split-KV (attn-split-kv) multiplies the query tiles by the split count.
  int64_t pack = options.packGQA && v.group > 1 ? v.group : 1;
  bool split = splitsKeys(options, v.norm == Norm::Softmax);
  json gridX = {{"ceil_div", {v.dims[v.qSeqDim].name, options.blockQ}}};
  if (pack > 1)
    gridX["scale"] = pack;
  if (split)
    gridX["splits"] = true;
  json manifest = {
      {"format", "attnc-kernel-manifest/1"},
      {"compiler", "attnc 0.1.0"},
      {"variant", v.name},
      {"entry", v.name},
      {"ptx", ptxFile},
      {"arch", options.chip},
      {"spec_hash", hashText(specText)},
      {"block", {32 * warps, 1, 1}},
      {"grid", {gridX, {{"dim", v.dims[pack > 1 ? v.kvHeadDim : v.qHeadDim].name}},
                {{"dim", v.dims[v.batchDim].name}}}},
      {"dynamic_shared_memory",
       mlir::attn::cudaSharedMemoryBytes(options.blockQ, options.blockK, headDim, valueDim,
                                         dtypeBytes(q.resolvedDType),
                                         storedBits(v.inputs[v.k].resolvedDType),
                                         storedBits(v.inputs[v.v].resolvedDType),
                                         v.decay != nullptr)},
      {"tile", {{"block_q", options.blockQ}, {"block_k", options.blockK}, {"warps", warps}}},
      {"dims", dims},
      {"args", args}};
  mlir::attn::CUDAScanConfig scan;
  std::string why;
  if (scanKernel) {
    // The scan kernel: a thread per (batch, head, value channel) over all the positions.
    if (mlir::succeeded(mlir::attn::cudaScanConfig(dotDim, valueDim, scan, why))) {
      manifest["block"] = {scan.threads, 1, 1};
      manifest["grid"] = {{{"ceil_div", {v.dims[v.qHeadDim].name, scan.headsPerBlock}}},
                          {{"dim", v.dims[v.batchDim].name}},
                          {{"ceil_div", {v.dims[v.valueDim].name, scan.valueBlock}}}};
      manifest["dynamic_shared_memory"] = 0;
      manifest["tile"] = {{"block_q", 1}, {"block_k", 1}, {"warps", scan.threads / 32}};
      manifest["scan"] = {{"lanes", scan.lanes}, {"heads_per_block", scan.headsPerBlock},
                          {"value_block", scan.valueBlock}};
    }
  } else if (chunk) {
    // attn-chunk's kernel: one block per (value slice, q head, batch) over all the chunks.
    mlir::attn::CUDAChunkConfig config;
    if (mlir::succeeded(mlir::attn::cudaChunkConfig(chunk, dotDim, valueDim, config, why,
                                                    options.valueSlice, v.rmsEps.has_value()))) {
      manifest["block"] = {config.threads, 1, 1};
      manifest["grid"] = {{{"ceil_div", {v.dims[v.valueDim].name, config.valueSlice}}},
                          {{"dim", v.dims[v.qHeadDim].name}},
                          {{"dim", v.dims[v.batchDim].name}}};
      manifest["dynamic_shared_memory"] = mlir::attn::cudaChunkSharedMemoryBytes(
          config, dotDim, dtypeBytes(q.resolvedDType), v.decay != nullptr, v.gate != nullptr,
          v.keyScale != nullptr, v.norm == Norm::Sum, rawDim);
      manifest["tile"] = {{"block_q", config.rows}, {"block_k", config.rows},
                          {"warps", config.warps}};
      manifest["chunk"] = {{"size", chunk}, {"rows", config.rows},
                           {"value_slice", config.valueSlice}};
    }
  }
  if (v.paged)
    manifest["paged"] = {{"block_table", v.params[v.paged->tableParam].name},
                         {"page_size", v.paged->pageSize}};
  if (split)
    manifest["split_kv"] = {
        {"combine_entry", v.name + "_combine"},
        {"combine_block", {mlir::attn::kCUDACombineThreads, 1, 1}},
        {"combine_grid",
         {{{"dim", v.dims[v.qSeqDim].name}},
          {{"dim", v.dims[v.qHeadDim].name}},
          {{"dim", v.dims[v.batchDim].name}}}},
        {"max_splits", kMaxSplits},
        {"splits", options.splits},
        {"block_k", options.blockK},
        {"min_tiles_per_split", 2}};
  return manifest.dump(2) + "\n";
}

}  // namespace attnc
