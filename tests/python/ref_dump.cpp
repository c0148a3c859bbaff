// ref_dump: runs the float64 reference interpreter on one variant of a spec and writes its
// inputs and outputs as raw little-endian files plus an index.json, so that Python tests can
// compare other implementations (the emitted torch reference, compiled kernels) against it.
// Links only the front end (no MLIR).
//
//   ref_dump SPEC --list-variants          prints the variant names, one a line
//   ref_dump SPEC [--variant=NAME] [--sizes=b=2,q_len=7,...] [--role-sizes=batch=2,kv_seq=9,...]
//            [--seed=N] [--int-range=LO,HI] [--inputs=DIR] [--out=DIR] [--emit-torch=FILE]
//
// --sizes        sizes by dim or extent name (as `attnc run --sizes`).
// --role-sizes   sizes for the *dynamic* dims that --sizes leaves out, by role: batch, q_head,
//                kv_head, q_seq, kv_seq, head_dim, value_dim, none. Dims that neither gives
//                get defaults (batch 2, q_head 4, q_seq 5, kv_seq 7, head_dim 16, others 3).
// --seed         inputs are filled deterministically from it: floats uniform in [-1, 1)
//                rounded to the declared dtype, i32 params uniform in --int-range (default 0,3).
// --inputs=DIR   read DIR/<name>.bin instead (float64, or int32 for i32 params, storage order,
//                row-major); values are rounded to the declared dtype as a kernel would see them.
// --out=DIR      writes DIR/index.json, DIR/<name>.bin for every input and param (the values
//                the interpreter read: float64, or int32 for i32 params, storage order),
//                DIR/<output>.bin (float64, canonical [b, h, i, dv]) and, for softmax,
//                DIR/lse.bin (float64 [b, h, i], [score, b, h, i] with several scores;
//                "lse_" if a tensor is called lse). A
//                recurrence's state is listed with the params (its initial values), and
//                DIR/<state>_final.bin holds the final state (float64, canonical [b, h, d, dv]).
// --emit-torch   writes the module of emitTorchReference (with --out, the output still happens).
#include "compiler/frontend/Frontend.h"
#include "compiler/frontend/Half.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

using namespace attnc;

namespace {

int usage(const char *message) {
  std::fprintf(stderr, "ref_dump: %s\n", message);
  std::fprintf(stderr,
               "usage: ref_dump SPEC [--list-variants] [--variant=NAME] [--sizes=...] [--role-sizes=...] "
               "[--seed=N] [--int-range=LO,HI] [--inputs=DIR] [--out=DIR] [--emit-torch=FILE]\n");
  return 2;
}

bool readFile(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return false;
  std::stringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

bool writeFile(const std::string &path, const void *data, size_t bytes) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f)
    return false;
  bool ok = std::fwrite(data, 1, bytes, f) == bytes;
  return std::fclose(f) == 0 && ok;
}

bool parseInt(const std::string &s, int64_t &out) {
  if (s.empty())
    return false;
  char *end = nullptr;
  long long x = std::strtoll(s.c_str(), &end, 10);
  if (*end != '\0')
    return false;
  out = x;
  return true;
}

/// "a=1,b=2" -> pairs; false on a malformed item.
bool parsePairs(const std::string &text, std::vector<std::pair<std::string, int64_t>> &out) {
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty())
      continue;
    size_t eq = item.find('=');
    int64_t value;
    if (eq == std::string::npos || eq == 0 || !parseInt(item.substr(eq + 1), value))
      return false;
    out.emplace_back(item.substr(0, eq), value);
  }
  return true;
}

int64_t defaultSize(DimRole r) {
  switch (r) {
  case DimRole::Batch:
    return 2;
  case DimRole::QHead:
  case DimRole::KVHead:
  case DimRole::QKHead:
    return 4;
  case DimRole::QSeq:
    return 5;
  case DimRole::KVSeq:
    return 7;
  case DimRole::HeadDim:
  case DimRole::ValueDim:
    return 16;
  case DimRole::None:
    break;
  }
  return 3;
}

/// splitmix64: a small, well-mixed deterministic generator.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

/// A host tensor of the declared dtype, row-major in storage order, with its own storage.
struct OwnedTensor {
  HostTensor view;
  std::vector<unsigned char> bytes;
  int64_t count = 1;
};

OwnedTensor makeTensor(const TensorDecl &t, const DimSizes &sizes) {
  OwnedTensor o;
  std::vector<int64_t> extents;
  for (int d : t.dims)
    extents.push_back(sizes[d]);
  o.bytes.assign(size_t(o.view.layoutContiguous(t.resolvedDType, extents)), 0);
  o.view.data = o.bytes.data();
  for (int64_t s : o.view.sizes)
    o.count *= s;
  return o;
}

/// Storage-order multi-index of linear element `n` (row-major over the values).
std::vector<int64_t> unravel(const HostTensor &t, int64_t n) {
  std::vector<int64_t> idx(t.sizes.size());
  for (size_t a = idx.size(); a-- > 0;) {
    idx[a] = n % t.sizes[a];
    n /= t.sizes[a];
  }
  return idx;
}

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

std::string jsonNames(const std::vector<std::string> &names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? ", " : "") + jsonString(names[i]);
  return out + "]";
}

std::string jsonInts(const std::vector<int64_t> &xs) {
  std::string out = "[";
  for (size_t i = 0; i < xs.size(); ++i)
    out += (i ? ", " : "") + std::to_string(xs[i]);
  return out + "]";
}

std::string tensorEntry(const std::string &name, const std::string &file, const char *dtype,
                        const std::vector<std::string> &dims, const std::vector<int64_t> &shape,
                        const std::string &declared) {
  return "    " + jsonString(name) + ": {\"file\": " + jsonString(file) + ", \"dtype\": \"" +
         dtype + "\", \"dims\": " + jsonNames(dims) + ", \"shape\": " + jsonInts(shape) +
         (declared.empty() ? "" : ", \"declared\": \"" + declared + "\"") + "}";
}

}  // namespace

int main(int argc, char **argv) {
  std::string specPath, variantName, sizesText, roleSizesText, inputsDir, outDir, torchPath;
  int64_t seed = 1, intLo = 0, intHi = 3;
  bool listVariants = false;
  for (int a = 1; a < argc; ++a) {
    std::string arg = argv[a];
    auto value = [&](const char *flag, std::string &into) {
      size_t n = std::strlen(flag);
      if (arg.compare(0, n, flag) != 0)
        return false;
      into = arg.substr(n);
      return true;
    };
    std::string text;
    if (arg == "--list-variants") {
      listVariants = true;
      continue;
    }
    if (value("--variant=", variantName) || value("--sizes=", sizesText) ||
        value("--role-sizes=", roleSizesText) || value("--inputs=", inputsDir) ||
        value("--out=", outDir) || value("--emit-torch=", torchPath))
      continue;
    if (value("--seed=", text)) {
      if (!parseInt(text, seed))
        return usage("bad --seed");
    } else if (value("--int-range=", text)) {
      size_t comma = text.find(',');
      if (comma == std::string::npos || !parseInt(text.substr(0, comma), intLo) ||
          !parseInt(text.substr(comma + 1), intHi) || intLo > intHi)
        return usage("bad --int-range, want LO,HI");
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage(("unknown option " + arg).c_str());
    } else if (specPath.empty()) {
      specPath = arg;
    } else {
      return usage("more than one spec");
    }
  }
  if (specPath.empty())
    return usage("no spec");

  std::string text;
  if (!readFile(specPath, text)) {
    std::fprintf(stderr, "ref_dump: cannot read %s\n", specPath.c_str());
    return 1;
  }
  SpecFile file;
  Diagnostic diag;
  if (!loadSpec(specPath, text, file, diag)) {
    std::fputs(diag.render(text).c_str(), stderr);
    return 1;
  }
  if (listVariants) {
    for (const Variant &x : file.variants)
      std::printf("%s\n", x.name.c_str());
    return 0;
  }
  const Variant *vp = &file.variants[0];
  if (!variantName.empty()) {
    vp = nullptr;
    for (const Variant &x : file.variants)
      if (x.name == variantName)
        vp = &x;
    if (!vp) {
      std::fprintf(stderr, "ref_dump: no variant '%s' in %s\n", variantName.c_str(),
                   specPath.c_str());
      return 1;
    }
  }
  const Variant &v = *vp;

  if (!torchPath.empty()) {
    std::string module = emitTorchReference(v, specPath);
    if (!writeFile(torchPath, module.data(), module.size())) {
      std::fprintf(stderr, "ref_dump: cannot write %s\n", torchPath.c_str());
      return 1;
    }
  }
  if (outDir.empty())
    return 0;

  // Sizes: explicit ones, then role sizes / defaults for the dynamic dims left.
  std::vector<std::pair<std::string, int64_t>> given, roleSizes;
  if (!parsePairs(sizesText, given) || !parsePairs(roleSizesText, roleSizes))
    return usage("bad size list, want name=N,...");
  for (const DimDecl &d : v.dims) {
    if (d.kind != DimDecl::Kind::Dynamic)
      continue;
    bool named = false;
    for (const auto &g : given)
      named = named || g.first == d.name || (!d.extentName.empty() && g.first == d.extentName);
    if (named)
      continue;
    int64_t size = defaultSize(d.role);
    for (const auto &r : roleSizes)
      if (r.first == roleName(d.role))
        size = r.second;
    given.emplace_back(d.name, size);
  }
  DimSizes sizes;
  std::string error;
  if (!resolveDimSizes(v, given, sizes, error)) {
    std::fprintf(stderr, "ref_dump: %s\n", error.c_str());
    return 1;
  }

  // Inputs and params: filled or read, then rounded to their declared dtype.
  std::vector<const TensorDecl *> decls;
  for (const TensorDecl &t : v.inputs)
    decls.push_back(&t);
  for (const TensorDecl &t : v.params)
    decls.push_back(&t);
  if (v.state)  // the initial state, like a param (it is the last decl)
    decls.push_back(&*v.state);
  std::vector<OwnedTensor> tensors;
  for (size_t n = 0; n < decls.size(); ++n) {
    const TensorDecl &t = *decls[n];
    OwnedTensor o = makeTensor(t, sizes);
    bool isInt = t.resolvedDType == DType::I32;
    std::vector<double> values(size_t(o.count));
    if (!inputsDir.empty()) {
      std::string raw, path = inputsDir + "/" + t.name + ".bin";
      size_t want = size_t(o.count) * (isInt ? 4 : 8);
      if (!readFile(path, raw) || raw.size() != want) {
        std::fprintf(stderr, "ref_dump: %s: cannot read %zu bytes\n", path.c_str(), want);
        return 1;
      }
      for (int64_t e = 0; e < o.count; ++e) {
        if (isInt) {
          int32_t x;
          std::memcpy(&x, raw.data() + 4 * e, 4);
          values[size_t(e)] = x;
        } else {
          std::memcpy(&values[size_t(e)], raw.data() + 8 * e, 8);
        }
      }
    } else {
      Rng rng{uint64_t(seed) * 1000003u + n};
      for (double &x : values)
        x = isInt ? double(intLo + int64_t(rng.next() % uint64_t(intHi - intLo + 1)))
                  : 2 * rng.uniform() - 1;
    }
    for (int64_t e = 0; e < o.count; ++e)
      o.view.store(unravel(o.view, e), values[size_t(e)]);
    tensors.push_back(std::move(o));
  }
  std::vector<HostTensor> inputs, params;
  size_t paramEnd = v.inputs.size() + v.params.size();
  for (size_t n = 0; n < paramEnd; ++n)
    (n < v.inputs.size() ? inputs : params).push_back(tensors[n].view);
  const HostTensor *state = v.state ? &tensors.back().view : nullptr;

  std::vector<double> out, lse, recurrentOut, finalState;
  bool softmax = v.norm == Norm::Softmax;
  referenceForward(v, sizes, inputs, params, out, softmax ? &lse : nullptr, state);
  if (v.state)  // the final state comes from the recurrent form
    referenceRecurrent(v, sizes, inputs, params, state, recurrentOut, finalState);

  // Files and index.
  std::vector<std::string> entries;
  for (size_t n = 0; n < decls.size(); ++n) {
    const TensorDecl &t = *decls[n];
    const HostTensor &h = tensors[n].view;
    bool isInt = t.resolvedDType == DType::I32;
    std::vector<double> f;
    std::vector<int32_t> ints;
    for (int64_t e = 0; e < tensors[n].count; ++e) {
      double x = h.load(unravel(h, e));
      if (isInt)
        ints.push_back(int32_t(x));
      else
        f.push_back(x);
    }
    std::string fileName = t.name + ".bin";
    bool ok = isInt ? writeFile(outDir + "/" + fileName, ints.data(), ints.size() * 4)
                    : writeFile(outDir + "/" + fileName, f.data(), f.size() * 8);
    if (!ok) {
      std::fprintf(stderr, "ref_dump: cannot write %s/%s\n", outDir.c_str(), fileName.c_str());
      return 1;
    }
    entries.push_back(tensorEntry(t.name, fileName, isInt ? "int32" : "float64", t.dimNames,
                                  h.sizes, dtypeName(t.resolvedDType)));
  }
  const std::string &b = v.dims[v.batchDim].name, &hq = v.dims[v.qHeadDim].name,
                    &i = v.dims[v.qSeqDim].name, &dv = v.dims[v.valueDim].name;
  std::vector<int64_t> oShape = {sizes[v.batchDim], sizes[v.qHeadDim], sizes[v.qSeqDim],
                                 sizes[v.valueDim]};
  std::string oFile = v.output.name + ".bin";
  if (!writeFile(outDir + "/" + oFile, out.data(), out.size() * 8)) {
    std::fprintf(stderr, "ref_dump: cannot write %s/%s\n", outDir.c_str(), oFile.c_str());
    return 1;
  }
  entries.push_back(tensorEntry(v.output.name, oFile, "float64", {b, hq, i, dv}, oShape,
                                dtypeName(v.output.resolvedDType)));
  // "lse", unless a tensor of the spec already has that name.
  std::string lseName = "lse";
  for (bool taken = true; taken;) {
    taken = lseName == v.output.name;
    for (const TensorDecl *t : decls)
      taken = taken || t->name == lseName;
    if (taken)
      lseName += "_";
  }
  if (softmax) {
    if (!writeFile(outDir + "/" + lseName + ".bin", lse.data(), lse.size() * 8)) {
      std::fprintf(stderr, "ref_dump: cannot write %s/%s.bin\n", outDir.c_str(), lseName.c_str());
      return 1;
    }
    if (v.mix)  // several scores: [score, b, h, i]
      entries.push_back(tensorEntry(lseName, lseName + ".bin", "float64", {"score", b, hq, i},
                                    {int64_t(v.scores.size()), oShape[0], oShape[1], oShape[2]},
                                    ""));
    else
      entries.push_back(tensorEntry(lseName, lseName + ".bin", "float64", {b, hq, i},
                                    {oShape[0], oShape[1], oShape[2]}, ""));
  }

  std::string finalName;
  if (v.state) {  // the final state, canonical [b, h, d, dv]
    finalName = v.state->name + "_final";
    std::vector<int64_t> shape = {sizes[v.batchDim], sizes[v.qHeadDim], sizes[v.headDim],
                                  sizes[v.valueDim]};
    if (!writeFile(outDir + "/" + finalName + ".bin", finalState.data(), finalState.size() * 8)) {
      std::fprintf(stderr, "ref_dump: cannot write %s/%s.bin\n", outDir.c_str(), finalName.c_str());
      return 1;
    }
    entries.push_back(tensorEntry(finalName, finalName + ".bin", "float64",
                                  {b, hq, v.dims[v.headDim].name, dv}, shape, "f32"));
  }

  std::vector<std::string> inputNames, paramNames;
  for (const TensorDecl &t : v.inputs)
    inputNames.push_back(t.name);
  for (const TensorDecl &t : v.params)
    paramNames.push_back(t.name);
  if (v.state)  // read by the reference like a param
    paramNames.push_back(v.state->name);
  std::string json = "{\n";
  json += "  \"variant\": " + jsonString(v.name) + ",\n";
  json += "  \"spec\": " + jsonString(specPath) + ",\n";
  json += "  \"sizes\": {";
  for (size_t d = 0; d < v.dims.size(); ++d)
    json += (d ? ", " : "") + jsonString(v.dims[d].name) + ": " + std::to_string(sizes[d]);
  json += "},\n";
  json += "  \"inputs\": " + jsonNames(inputNames) + ",\n";
  json += "  \"params\": " + jsonNames(paramNames) + ",\n";
  json += "  \"output\": " + jsonString(v.output.name) + ",\n";
  json += "  \"lse\": " + (softmax ? jsonString(lseName) : std::string("null")) + ",\n";
  json += "  \"final_state\": " + (v.state ? jsonString(finalName) : std::string("null")) +
          ",\n";
  json += "  \"tensors\": {\n";
  for (size_t e = 0; e < entries.size(); ++e)
    json += entries[e] + (e + 1 < entries.size() ? ",\n" : "\n");
  json += "  }\n}\n";
  if (!writeFile(outDir + "/index.json", json.data(), json.size())) {
    std::fprintf(stderr, "ref_dump: cannot write %s/index.json\n", outDir.c_str());
    return 1;
  }
  return 0;
}
