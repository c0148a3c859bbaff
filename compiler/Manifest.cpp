// Kernel manifest writer (format attnc-kernel-manifest/1, see docs/manifest.md).
#define JSON_NOEXCEPTION 1  // built with -fno-exceptions; serialisation does not throw
#include "compiler/Manifest.h"

#include "compiler/lowering/ASTToAttn.h"
#include "compiler/pipeline/HostRun.h"

#include <nlohmann/json.hpp>

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/SHA256.h"

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
/// Marks the dims of param axes read at clamped computed indices (`table[h, bucket]`).
void markGathered(const Variant &v, const Expr &e, std::vector<bool> &out) {
  if (e.res == Expr::Res::ParamLoad)
    for (size_t a = 0; a < e.args.size(); ++a)
      if (e.args[a]->clamp)
        out[size_t(v.params[size_t(e.paramIndex)].dims[a])] = true;
  for (const ExprPtr &a : e.args)
    markGathered(v, *a, out);
}

/// Dims the kernel needs non-empty: the non-iteration dims of param axes read at clamped
/// computed indices (an empty batch, head or sequence axis means no score is computed).
std::vector<bool> gatheredDims(const Variant &v) {
  std::vector<bool> read(v.dims.size(), false);
  for (const ScoreDecl &s : v.scores)
    markGathered(v, *s.expr, read);
  if (v.mask)
    markGathered(v, *v.mask, read);
  for (size_t d = 0; d < v.dims.size(); ++d) {
    DimRole r = v.dims[d].role;
    if (r == DimRole::Batch || r == DimRole::QHead || r == DimRole::KVHead ||
        r == DimRole::QKHead || r == DimRole::QSeq || r == DimRole::KVSeq)
      read[d] = false;
  }
  return read;
}
}  // namespace

std::string hashText(const std::string &text) {
  llvm::SHA256 sha;
  sha.update(llvm::StringRef(text));
  std::array<uint8_t, 32> digest = sha.final();
  return "sha256:" + llvm::toHex(digest, /*LowerCase=*/true);
}


/// A grid axis of the IR's launch ABI in the manifest's terms: the extent's dim name (the dims
/// of the kernel argument it reads, as `args` lists them), {"dim"} or {"ceil_div", "scale"}.
static nlohmann::json gridAxis(const nlohmann::json &args, const std::array<int64_t, 4> &axis) {
  auto [arg, dim, scale, divisor] = axis;
  if (arg < 0)  // a fixed number of blocks
    return {{"blocks", scale}};
  nlohmann::json name = args.at(size_t(arg)).at("dims").at(size_t(dim));
  if (scale == 1 && divisor == 1)
    return {{"dim", name}};
  nlohmann::json out = {{"ceil_div", {name, divisor}}};
  if (scale != 1)
    out["scale"] = scale;
  return out;
}

/// `block_plan` when the module holds `<entry>_plan` (attn-block-plan): its kernel, launched
/// first; its grid is the plan's [z, y, x] shape.
static void addBlockPlan(nlohmann::json &manifest, const nlohmann::json &args,
                         const std::map<std::string, KernelLaunch> &launches,
                         const std::string &entry) {
  auto plan = launches.find(entry + "_plan");
  if (plan == launches.end())
    return;
  nlohmann::json grid = nlohmann::json::array();
  for (const auto &axis : plan->second.grid)
    grid.push_back(gridAxis(args, axis));
  manifest["block_plan"] = {{"entry", entry + "_plan"},
                            {"block", {plan->second.threads, 1, 1}},
                            {"grid", grid}};
}

/// `tensor_maps` when the kernel copies tiles by TMA (attn-gpu-tensor-copies): per descriptor
/// it takes after its memrefs, in order, the argument it describes and its box.
static void addTensorMaps(nlohmann::json &manifest, const nlohmann::json &args,
                          const KernelLaunch &launch) {
  if (launch.tensorMaps.empty())
    return;
  nlohmann::json maps = nlohmann::json::array();
  for (const auto &[arg, rows, columns] : launch.tensorMaps)
    maps.push_back({{"arg", args.at(size_t(arg)).at("name")}, {"box", {rows, columns}}});
  manifest["tensor_maps"] = maps;
}

/// A kernel's tile choices as the schedule recorded them, with its tensor-core instruction
/// (`mma`, when the kernel has matmuls: attn-gpu-select-mma's choice).
static nlohmann::json tileOf(const KernelLaunch &launch) {
  auto choice = [&](const char *key) {
    auto it = launch.schedule.find(key);
    return it == launch.schedule.end() ? int64_t(-1) : it->second;
  };
  nlohmann::json tile = {{"block_q", choice("block_q")}, {"block_k", choice("block_k")},
                         {"warps", choice("warps")}};
  if (choice("wgmma") >= 0)
    tile["mma"] = choice("wgmma") ? "wgmma_m64nNk16" : "mma_sync_m16n8k16";
  if (choice("min_blocks") > 0)  // the occupancy the kernel was compiled for (nvvm.minctasm)
    tile["min_blocks_per_sm"] = choice("min_blocks");
  if (choice("consumers") > 0) {  // warp-specialised: consumer warpgroups, a producer warp
    tile["consumer_warpgroups"] = choice("consumers");
    tile["stages"] = choice("stages");
  }
  return tile;
}

std::string buildManifest(const Variant &v, const PipelineOptions &options,
                          const std::string &ptxFile, const std::string &specText,
                          const std::map<std::string, KernelLaunch> &launches) {
  using nlohmann::json;
  const TensorDecl &q = v.inputs[v.q];
  // The kernel's launch ABI as its lowering recorded it; the manifest re-derives none of it.
  auto found = launches.find(v.name);
  KernelLaunch launch = found != launches.end() ? found->second : KernelLaunch();
  auto choice = [&](const char *name) {
    auto it = launch.schedule.find(name);
    return it == launch.schedule.end() ? int64_t(-1) : it->second;
  };
  std::vector<bool> gathered = gatheredDims(v);
  json dims = json::array();
  for (const DimDecl &d : v.dims) {
    json entry = {{"name", d.name}, {"role", roleName(d.role)}};
    if (gathered[size_t(&d - v.dims.data())])
      entry["min"] = 1;
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
  bool rows = choice("lanes") < 0;
  json args = json::array();
  for (const KernelArg &a : kernelArgs(v)) {
    switch (a.kind) {
    case KernelArg::Kind::Q: {
      const TensorDecl &t = v.inputs[size_t(a.index)];  // several scores: each one's q
      args.push_back(tensorArg(v, a.name, "input", t.resolvedDType, qCanon, t.dims, rows, true));
      break;
    }
    case KernelArg::Kind::K:
    case KernelArg::Kind::V: {
      bool isK = a.kind == KernelArg::Kind::K;
      const TensorDecl &t = v.inputs[size_t(a.index)];
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
  json manifest = {
      {"format", "attnc-kernel-manifest/1"},
      {"compiler", "attnc 0.1.0"},
      {"variant", v.name},
      {"entry", v.name},
      {"ptx", ptxFile},
      {"arch", options.chip},
      {"spec_hash", hashText(specText)},
      {"block", {launch.threads, 1, 1}},
      {"dynamic_shared_memory", launch.sharedMemory},
      {"tile", tileOf(launch)},
      {"dims", dims},
      {"args", args}};
  json grid = json::array();
  for (const auto &axis : launch.grid)
    grid.push_back(gridAxis(args, axis));
  if (launch.splits && !grid.empty())
    grid[0]["splits"] = true;
  manifest["grid"] = grid;
  if (choice("lanes") >= 0)  // the scan kernel: lanes per (batch, head, value channel)
    manifest["scan"] = {{"lanes", choice("lanes")}, {"heads_per_block", choice("heads_per_block")},
                        {"value_block", choice("value_block")}};
  if (choice("chunk") >= 0)  // attn-chunk's kernel: blocks walk the chunks in order
    manifest["chunk"] = {{"size", choice("chunk")}, {"rows", choice("rows")},
                         {"value_slice", choice("value_slice")}};
  if (choice("cluster") > 1)  // thread-block clusters along grid x (the chunk kernel's slices)
    manifest["cluster"] = {choice("cluster"), 1, 1};
  if (v.paged)
    manifest["paged"] = {{"block_table", v.params[v.paged->tableParam].name},
                         {"page_size", v.paged->pageSize}};
  auto combine = launches.find(v.name + "_combine");
  int64_t combineThreads = combine != launches.end() ? combine->second.threads : 0;
  // The combine kernel's grid is over (rows i, heads, batch) of its partial buffer; each axis
  // as the lowering divided it (rows per block), named by the main kernel's dims.
  json combineGrid = json::array();
  const int combineDims[3] = {v.qSeqDim, v.qHeadDim, v.batchDim};
  for (size_t a = 0; a < 3; ++a) {
    int64_t divisor = 1;
    if (combine != launches.end() && a < combine->second.grid.size())
      divisor = combine->second.grid[a][3];
    json name = v.dims[size_t(combineDims[a])].name;
    combineGrid.push_back(divisor == 1 ? json{{"dim", name}}
                                       : json{{"ceil_div", {name, divisor}}});
  }
  if (launch.splits)
    manifest["split_kv"] = {
        {"combine_entry", v.name + "_combine"},
        {"combine_block", {combineThreads, 1, 1}},
        {"combine_grid", combineGrid},
        {"max_splits", kMaxSplits},
        {"splits", options.splits},
        {"block_k", choice("block_k")},
        {"min_tiles_per_split", 2}};
  // A merge that applies the output expression takes the main kernel's arguments.
  if (launch.splits && combine != launches.end() && combine->second.schedule.count("all_arguments"))
    manifest["split_kv"]["combine_takes_arguments"] = true;
  addBlockPlan(manifest, args, launches, v.name);
  addTensorMaps(manifest, args, launch);
  return manifest.dump(2) + "\n";
}

std::string buildGradManifest(const Variant &v, const PipelineOptions &options,
                              const std::string &ptxFile, const std::string &specText,
                              const std::map<std::string, KernelLaunch> &launches) {
  using nlohmann::json;
  std::string name = v.name + "_grad";
  json manifest = json::parse(buildManifest(v, options, ptxFile, specText, launches));
  manifest.erase("tensor_maps");  // the forward kernel's, not the backward's
  auto found = launches.find(name), dkdv = launches.find(name + "_dkdv");
  KernelLaunch main = found != launches.end() ? found->second : KernelLaunch();
  KernelLaunch second = dkdv != launches.end() ? dkdv->second : KernelLaunch();
  // The forward's arguments are all read now (out and lse included), then dout, the
  // gradients of q, k and v, and those of the float params the score reads (f32, summed by
  // atomic adds: the runtime zeroes them first).
  json args = json::array();
  json byName = json::object();
  for (json arg : manifest["args"]) {
    byName[arg["name"].get<std::string>()] = arg;
    if (arg["kind"] == "output" || arg["kind"] == "lse") {
      bool vectorized = arg["kind"] == "output";  // out is copied by cp.async
      arg["kind"] = "input";
      arg["unit_stride_last"] = vectorized || arg["unit_stride_last"].get<bool>();
      if (vectorized)
        arg["alignment"] = 16, arg["row_alignment"] = 16;
    }
    args.push_back(arg);
  }
  json dout = byName[v.output.name];
  dout["name"] = "d" + v.output.name;
  dout["kind"] = "input";
  dout["unit_stride_last"] = true, dout["alignment"] = 16, dout["row_alignment"] = 16;
  args.push_back(dout);
  // dq, dk, dv, then (several scores) the gradient of each other input a score reads, once
  // per tensor -- the order attn-grad gives `<name>_grad`'s arguments.
  for (int index : gradInputs(v)) {
    json grad = byName[v.inputs[index].name];
    grad["name"] = "d" + v.inputs[index].name;
    grad["kind"] = "output";
    grad["alignment"] = dtypeBytes(v.inputs[index].resolvedDType);
    grad["row_alignment"] = 0;
    args.push_back(grad);
  }
  for (int p : gradParams(v)) {
    json grad = tensorArg(v, "d" + v.params[size_t(p)].name, "output", DType::F32,
                          v.params[size_t(p)].dims, v.params[size_t(p)].dims, false);
    grad["zeroed"] = true;
    args.push_back(grad);
  }
  manifest["variant"] = name;
  manifest["entry"] = name;
  manifest["args"] = args;
  manifest["block"] = {main.threads, 1, 1};
  manifest["dynamic_shared_memory"] = main.sharedMemory;
  manifest["tile"] = tileOf(main);
  json grid = json::array(), dkdvGrid = json::array();
  for (const auto &axis : main.grid)
    grid.push_back(gridAxis(args, axis));
  for (const auto &axis : second.grid)
    dkdvGrid.push_back(gridAxis(args, axis));
  manifest["grid"] = grid;
  manifest.erase("split_kv");
  manifest.erase("block_plan");
  addBlockPlan(manifest, args, launches, name);
  manifest["backward"] = {
      {"dkdv_entry", name + "_dkdv"},
      {"dkdv_block", {second.threads, 1, 1}},
      {"dkdv_grid", dkdvGrid},
      {"dkdv_dynamic_shared_memory", second.sharedMemory},
      {"dkdv_tile", tileOf(second)},
      {"delta_dims",
       {v.dims[v.batchDim].name, v.dims[v.qHeadDim].name, v.dims[v.qSeqDim].name}}};
  // Through an output expression: the first kernel writes dy [b, h, i, width] (q's 16-bit type)
  // into the workspace, after D (and dQacc), for the dK/dV kernel.
  if (auto width = main.schedule.find("dy_width"); width != main.schedule.end())
    manifest["backward"]["dy_width"] = width->second;
  // Several scores: D and dy hold a slot per score ([b, scores x h, i(, width)]).
  if (auto scores = main.schedule.find("scores"); scores != main.schedule.end())
    manifest["backward"]["scores"] = scores->second;
  // dQ by atomics: the conversion kernel of the f32 accumulator, launched last.
  if (auto dq = launches.find(name + "_dq"); dq != launches.end()) {
    auto width = dq->second.schedule.find("dq_accum_width");
    manifest["backward"]["dq_entry"] = name + "_dq";
    manifest["backward"]["dq_accum_width"] =
        width != dq->second.schedule.end() ? width->second : int64_t(0);
  }
  // A forget gate: its workspace [b, slots x h, i] (after D and dy: dS's row and column sums,
  // the cumulative log decays), and the kernel of the log decays' gradients, launched last.
  if (auto slots = main.schedule.find("decay_slots"); slots != main.schedule.end())
    manifest["backward"]["decay_slots"] = slots->second;
  if (auto decay = launches.find(name + "_decay"); decay != launches.end()) {
    json decayGrid = json::array();
    for (const auto &axis : decay->second.grid)
      decayGrid.push_back(gridAxis(args, axis));
    manifest["backward"]["decay_entry"] = name + "_decay";
    manifest["backward"]["decay_block"] = {decay->second.threads, 1, 1};
    manifest["backward"]["decay_grid"] = decayGrid;
  }
  // The backward kernels copy by cp.async; were one to take tensor maps, the runtime refuses
  // the manifest at load (it launches none) instead of launching it without them.
  addTensorMaps(manifest, args, main);
  addTensorMaps(manifest, args, second);
  return manifest.dump(2) + "\n";
}

}  // namespace attnc

namespace attnc {

std::string hostManifest(const std::string &cudaManifest) {
  using nlohmann::json;
  json m = json::parse(cudaManifest, nullptr, false);
  if (m.is_discarded() || !m.is_object())
    return cudaManifest;  // not ours to repair: the runtime's parser reports it
  m["arch"] = "host";
  for (const char *key : {"ptx", "block", "grid", "tile", "dynamic_shared_memory", "split_kv",
                          "backward", "scan", "chunk", "block_plan", "cluster"})
    m.erase(key);
  // The host loops read any strided layout element by element: no row or vector alignment.
  for (json &arg : m["args"]) {
    arg["unit_stride_last"] = false;
    if (std::optional<DType> t = dtypeFromName(arg["dtype"].get<std::string>()))
      arg["alignment"] = dtypeBytes(*t);
    arg["row_alignment"] = 0;
  }
  return m.dump(2) + "\n";
}

}  // namespace attnc
