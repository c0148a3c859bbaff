// Kernel manifest writer (format attnc-kernel-manifest/1, see docs/manifest.md).
#define JSON_NOEXCEPTION 1  // built with -fno-exceptions; serialisation does not throw
#include "compiler/Manifest.h"

#include "codegen/cuda/Passes.h"
#include "compiler/lowering/ASTToAttn.h"

#include <nlohmann/json.hpp>

#include <cstdio>

namespace attnc {

namespace {

nlohmann::json dimNames(const Variant &v, const std::vector<int> &dims) {
  nlohmann::json names = nlohmann::json::array();
  for (int d : dims)
    names.push_back(v.dims[d].name);
  return names;
}

nlohmann::json tensorArg(const Variant &v, const std::string &name, const char *kind, DType dtype,
                         const std::vector<int> &canonical, const std::vector<int> &storage,
                         bool vectorized) {
  return {{"name", name},
          {"kind", kind},
          {"dtype", dtypeName(dtype)},
          {"dims", dimNames(v, canonical)},
          {"storage_dims", dimNames(v, storage)},
          {"unit_stride_last", vectorized},
          {"alignment", vectorized ? 16 : dtypeBytes(dtype)},
          {"row_alignment", vectorized ? 16 : 0}};
}
}  // namespace

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

std::string buildManifest(const Variant &v, const PipelineOptions &options,
                          const std::string &ptxFile, const std::string &specText) {
  using nlohmann::json;
  const TensorDecl &q = v.inputs[v.q];
  int64_t headDim = staticExtent(v, v.headDim), valueDim = staticExtent(v, v.valueDim);
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
  std::vector<int> qCanon = {v.batchDim, v.qHeadDim, v.qSeqDim, v.headDim};
  std::vector<int> kCanon = {v.batchDim, v.kvHeadDim, v.kvSeqDim, v.headDim};
  std::vector<int> vCanon = {v.batchDim, v.kvHeadDim, v.kvSeqDim, v.valueDim};
  std::vector<int> oCanon = {v.batchDim, v.qHeadDim, v.qSeqDim, v.valueDim};
  json args = json::array();
  for (const KernelArg &a : kernelArgs(v)) {
    switch (a.kind) {
    case KernelArg::Kind::Q:
      args.push_back(tensorArg(v, a.name, "input", q.resolvedDType, qCanon, q.dims, true));
      break;
    case KernelArg::Kind::K:
      args.push_back(tensorArg(v, a.name, "input", v.inputs[v.k].resolvedDType, kCanon,
                               v.inputs[v.k].dims, true));
      break;
    case KernelArg::Kind::V:
      args.push_back(tensorArg(v, a.name, "input", v.inputs[v.v].resolvedDType, vCanon,
                               v.inputs[v.v].dims, true));
      break;
    case KernelArg::Kind::Param: {
      const TensorDecl &p = v.params[a.index];
      args.push_back(tensorArg(v, a.name, "param", p.resolvedDType, p.dims, p.dims, false));
      break;
    }
    case KernelArg::Kind::Out:
      args.push_back(tensorArg(v, a.name, "output", v.output.resolvedDType, oCanon,
                               v.output.dims, false));
      break;
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
      {"block", {32 * warps, 1, 1}},
      {"grid",
       {{{"ceil_div", {v.dims[v.qSeqDim].name, options.blockQ}}},
        {{"dim", v.dims[v.qHeadDim].name}},
        {{"dim", v.dims[v.batchDim].name}}}},
      {"dynamic_shared_memory",
       mlir::attn::cudaSharedMemoryBytes(options.blockQ, options.blockK, headDim, valueDim,
                                         dtypeBytes(q.resolvedDType))},
      {"tile", {{"block_q", options.blockQ}, {"block_k", options.blockK}, {"warps", warps}}},
      {"dims", dims},
      {"args", args}};
  return manifest.dump(2) + "\n";
}

}  // namespace attnc
