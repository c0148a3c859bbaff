// Every spec in specs/ compiled for the CPU back end and run on random inputs against the float64
// reference interpreter: several shapes (ragged, q_len != kv_len, a single key, exact tile
// multiples), several tilings, with and without attn-online-softmax.
#include "codegen/cpu/CPUExecutor.h"
#include "compiler/Compiler.h"
#include "compiler/Manifest.h"
#include "compiler/lowering/ASTToAttn.h"
#include "compiler/pipeline/HostRun.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

using namespace attnc;
namespace fs = std::filesystem;

namespace {

std::string readText(const fs::path &path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> specNames() {
  std::vector<std::string> names;
  for (const auto &entry : fs::directory_iterator(fs::path(ATTNC_SOURCE_DIR) / "specs"))
    if (entry.path().extension() == ".attn")
      names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

struct Tiling {
  const char *name;
  PipelineOptions options;
};

PipelineOptions unpacked() {
  PipelineOptions o;
  o.blockQ = 16;
  o.packGQA = false;
  return o;
}

const Tiling tilings[] = {
    {"online_64x64", {64, 64, true}},
    {"twopass_64x64", {64, 64, false}},
    {"online_16x32", {16, 32, true}},
    {"online_1x7", {1, 7, true}},
    {"online_16x32_unpacked", unpacked()},
};

/// Split-KV counts each shape runs with (the partial results and attn.combine when > 1).
const int64_t splitCounts[] = {1, 3};

/// Shapes over the sequence dims (the other dims take HostRun's defaults).
const char *shapes[] = {"", "i=1,j=1", "i=64,j=64", "i=130,j=65", "i=5,j=300"};

/// Compiles `text` at f32 for the host; fails the test with the diagnostic otherwise.
std::unique_ptr<CPUModule> compileF32(Compiler &compiler, const std::string &path,
                                      const std::string &text, const PipelineOptions &pipeline) {
  CompileOptions options;
  options.pipeline = pipeline;
  options.dtypeOverride = DType::F32;
  Diagnostic diag;
  if (!compiler.loadSpec(path, text, diag) || !compiler.lowerToAttn(options, diag) ||
      !compiler.lowerTo(Stage::LLVM, options, diag)) {
    ADD_FAILURE() << diag.render(text);
    return nullptr;
  }
  auto module = compiler.loadOnCPU(diag);
  if (!module)
    ADD_FAILURE() << diag.render(text);
  return module;
}

/// Renames sequence dims i/j of the shape list to the spec's own names.
std::vector<std::pair<std::string, int64_t>> seqSizes(const Variant &v, const std::string &shape) {
  std::vector<std::pair<std::string, int64_t>> parsed, out;
  std::string error;
  EXPECT_TRUE(parseSizeList(shape, parsed, error)) << error;
  for (auto &[name, size] : parsed) {
    if (name != "i" && name != "j") {  // another dim, by the spec's own name
      out.emplace_back(name, size);
      continue;
    }
    int dim = name == "i" ? v.qSeqDim : v.kvSeqDim;
    if (v.dims[dim].kind == DimDecl::Kind::Alias)  // `j : kv_len = i` follows the query length
      continue;
    if (staticExtent(v, dim) < 0)  // a static sequence dim (a decode step) keeps its extent
      out.emplace_back(v.dims[dim].name, size);
  }
  return out;
}

/// Runs variant `v` of `module` at `shape` with `splits` KV splits (splitKV: the module was
/// compiled with attn-split-kv) and expects the float64 reference's output and lse within 1e-5.
void expectMatchesReference(CPUModule &module, const Variant &v, const std::string &label,
                            const char *shape, bool splitKV, int64_t splits, uint64_t seed = 1,
                            bool sortedIds = false) {
  RunConfig config;
  config.sizes = seqSizes(v, shape);
  config.seed = seed;
  config.sortedIds = sortedIds;
  config.splitKV = splitKV;
  config.splits = splits;
  RunReport r;
  std::string error;
  ASSERT_TRUE(runAndCheck(module, v, config, r, error)) << error;
  SCOPED_TRACE(label + " splits=" + std::to_string(splits) + " " + r.describeSizes(v));
  EXPECT_EQ(r.unwritten, 0);
  EXPECT_LE(r.relError, 1e-5);  // NaN fails too
  EXPECT_LE(r.recurrentRelError, 1e-5);  // recurrences: against the recurrent form too
  EXPECT_LE(r.stateRelError, 1e-5);      // and the final state, with a state
  if (v.norm == Norm::Softmax) {
    EXPECT_TRUE(r.lseInfMatches);
    EXPECT_LE(r.lseRelError, 1e-5);
  }
}

class SpecNumerics : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

/// Whether attn-chunk takes `v` (a recurrence over unpaged, unquantised k and v, chunking on).
bool chunked(const Variant &v, const PipelineOptions &options) {
  bool quantised = isQuantized(v.inputs[v.k].resolvedDType) ||
                   isQuantized(v.inputs[v.v].resolvedDType);
  return options.chunk && v.recurrence && !v.paged && !quantised;
}

TEST_P(SpecNumerics, MatchesFloat64Reference) {
  const auto &[spec, tilingIndex] = GetParam();
  const Tiling &tiling = tilings[tilingIndex];
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / (spec + ".attn");
  Compiler compiler;
  auto module = compileF32(compiler, path.string(), readText(path), tiling.options);
  ASSERT_TRUE(module);
  // Recurrences take attn-chunk's form, which no tiling option changes: one tiling tests it
  // (ChunkNumerics covers chunk sizes), the others would repeat it (Mamba-1: 2 minutes each).
  if (tilingIndex > 0 && chunked(compiler.spec().variants[0], tiling.options))
    GTEST_SKIP() << spec << " runs in the chunked form: tiling options do not apply";
  for (const Variant &v : compiler.spec().variants) {
    for (const char *shape : shapes)
      for (int64_t splits : splitCounts) {
        bool splitKV = tiling.options.splitKV && tiling.options.onlineSoftmax;
        if (splits > 1 && !splitKV)
          continue;
        expectMatchesReference(*module, v, spec + " " + tiling.name, shape, splitKV, splits,
                               std::hash<std::string>()(spec + shape) & 0xffff);
      }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Specs, SpecNumerics,
    ::testing::Combine(::testing::ValuesIn(specNames()),
                       ::testing::Range(0, int(std::size(tilings)))),
    [](const auto &info) {
      return std::get<0>(info.param) + "_" + tilings[std::get<1>(info.param)].name;
    });

/// Compiles tests/python/specs/<file> at f32 under every tiling (split over the keys only with
/// `split`) and calls check(module, variant, tiling name, whether it was split) per variant.
template <typename Check>
void forEachTestSpecVariant(const char *file, bool split, Check check) {
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / file;
  for (const Tiling &tiling : tilings) {
    Compiler compiler;
    PipelineOptions options = tiling.options;
    options.splitKV = options.splitKV && split;
    auto module = compileF32(compiler, path.string(), readText(path), options);
    ASSERT_TRUE(module);
    bool splitKV = options.splitKV && options.onlineSoftmax;
    for (const Variant &v : compiler.spec().variants)
      check(*module, v, v.name + " " + tiling.name, splitKV);
  }
}

/// Output expressions (tests/python/specs/output_maps.attn): a gate on a GQA decode (packed
/// rows under the default tiling, unpacked under the last), scales and biases at the kv head
/// and a computed index, a nonlinear map of a sigmoid attention, the skip form outside a
/// recurrence, per-head rmsnorms (with a gain, and alone); every tiling, ragged shapes, decode
/// shapes split over the keys (1 split: the store maps the rows; several: attn.combine maps
/// the merged rows).
TEST(OutputMapNumerics, MapsMatchReference) {
  forEachTestSpecVariant("output_maps.attn", true, [](CPUModule &module, const Variant &v,
                                                       const std::string &label, bool splitKV) {
    ASSERT_TRUE(v.outputMap || v.rmsEps) << v.name;
    for (const char *shape : {"", "i=1,j=1", "i=130,j=65", "i=4,j=333", "i=1,j=1000"})
      for (int64_t splits : {1, 3, 64})
        if (splits == 1 || splitKV)
          expectMatchesReference(module, v, label, shape, splitKV, splits);
  });
}

/// Several scores (tests/python/specs/several_scores.attn): differential attention with GQA
/// (packed rows under the default tiling), three scores over one query with a sliding window,
/// a mix normalised as a whole; several_scores_shared.attn: a query and a key each read by two
/// scores; every tiling (the two-pass softmax too), ragged shapes. Each
/// score's lse is checked with the output. Not split over the keys (attn-split-kv leaves
/// several online softmaxes alone).
TEST(SeveralScoresNumerics, MixesMatchReference) {
  for (const char *file : {"several_scores.attn", "several_scores_shared.attn"})
    forEachTestSpecVariant(file, false, [](CPUModule &module, const Variant &v,
                                           const std::string &label, bool) {
      ASSERT_GE(v.scores.size(), 2u) << v.name;
      for (const char *shape : shapes)
        expectMatchesReference(module, v, label, shape, false, 1);
    });
}

/// Forget-gate softmax (tests/python/specs/forget_gate.attn): a sigmoid gate with GQA and a
/// sliding-window conjunct, a decay fixed per head under a strict-causal mask (folded into the
/// score), strong log gates read through exp with an output gate; every tiling, ragged shapes,
/// split over the keys (each split's key tiles start their cumulative log decays at their
/// first key).
TEST(ForgetGateNumerics, DecayedSoftmaxMatchesReference) {
  forEachTestSpecVariant("forget_gate.attn", true, [](CPUModule &module, const Variant &v,
                                                      const std::string &label, bool splitKV) {
    ASSERT_TRUE(v.decay && v.norm == Norm::Softmax) << v.name;
    for (const char *shape : shapes)
      for (int64_t splits : splitCounts)
        if (splits == 1 || splitKV)
          expectMatchesReference(module, v, label, shape, splitKV, splits);
  });
}

/// Row norms (tests/python/specs/row_norms.attn): cosine attention with GQA (packed rows under
/// the default tiling), an L2-distance score under a sliding window, a key norm under a sigmoid
/// with an output gate; every tiling, ragged shapes, split over the keys.
TEST(RowNormNumerics, NormsMatchReference) {
  forEachTestSpecVariant("row_norms.attn", true, [](CPUModule &module, const Variant &v,
                                                    const std::string &label, bool splitKV) {
    ASSERT_TRUE(v.rowNormQ || v.rowNormK) << v.name;
    for (const char *shape : shapes)
      for (int64_t splits : splitCounts)
        if (splits == 1 || splitKV)
          expectMatchesReference(module, v, label, shape, splitKV, splits);
  });
}

/// Decoding shapes (a few queries, a long key range) split into many ranges, more splits than key
/// tiles included: split and unsplit runs both match the float64 reference, so they agree.
TEST(SplitKVNumerics, SplitsAgreeWithReference) {
  for (const std::string &spec : specNames()) {
    fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / (spec + ".attn");
    for (const Tiling &tiling : {tilings[0], tilings[4]}) {
      Compiler compiler;
      auto module = compileF32(compiler, path.string(), readText(path), tiling.options);
      ASSERT_TRUE(module);
      for (const Variant &v : compiler.spec().variants)
        for (const char *shape : {"i=1,j=1000", "i=4,j=333"})
          for (int64_t splits : {1, 2, 7, 64})
            expectMatchesReference(*module, v, spec + " " + tiling.name, shape, true, splits);
    }
  }
}

/// The block plan (attn-block-plan) of the param-driven masks: with document ids sorted along
/// the sequence (one document, long ones, short ones, one-token documents; the rows of a
/// batch differ), the key loops visit only the ranges the plan derives, and any key the plan
/// wrongly left out would change the output; random (unsorted) ids give wide ranges. Tilings
/// and splits move the tile edges against the document edges.
TEST(BlockPlanNumerics, SortedAndRandomIdsMatchReference) {
  for (const char *spec : {"document", "prefix_lm", "tree_decode"}) {
    fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / (std::string(spec) + ".attn");
    for (const Tiling &tiling : {tilings[0], tilings[2], tilings[3], tilings[4]}) {
      Compiler compiler;
      auto module = compileF32(compiler, path.string(), readText(path), tiling.options);
      ASSERT_TRUE(module);
      for (const Variant &v : compiler.spec().variants)
        for (const char *shape : {"b=4,i=200,j=200", "b=4,i=1,j=1", "b=8,i=77,j=131", "b=4,i=5,j=300"})
          for (uint64_t seed : {1, 2})
            for (bool sorted : {true, false})
              expectMatchesReference(*module, v, std::string(spec) + " " + tiling.name +
                                                     (sorted ? " sorted" : " random"),
                                     shape, true, seed == 1 ? 1 : 3, seed, sorted);
    }
  }
}

/// An explicit block layout read at computed indices (specs/block_sparse.attn's mask, here with
/// half the blocks off for random layouts): the block plan reads the layout exactly where a
/// query tile lies inside one block row, so a plan that skipped an allowed block, or kept a
/// full range over a masked one, would show against the reference.
TEST(BlockPlanNumerics, BlockLayoutsMatchReference) {
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / "block_sparse.attn";
  std::string text = readText(path);
  text.replace(text.find("layout[b, h, i / 128, j / 128] != 0"), 35,
               "layout[b, h, i / 128, j / 128] * 2 > kv_len");
  for (const Tiling &tiling : {tilings[0], tilings[2], tilings[4]}) {
    Compiler compiler;
    auto module = compileF32(compiler, path.string(), text, tiling.options);
    ASSERT_TRUE(module);
    const Variant &v = compiler.spec().variants[0];
    for (const char *shape : {"b=2,i=300,j=300", "b=2,i=130,j=517", "b=1,i=1,j=1"})
      for (uint64_t seed : {1, 2, 3})
        expectMatchesReference(*module, v, std::string("block_sparse ") + tiling.name, shape,
                               true, seed == 1 ? 1 : 3, seed);
  }
}

/// The unified max (norm softmax(max = M)) only changes how the exponentials are computed: a max
/// below the scores (every tile falls back to the running max), one around them, and one far
/// above them (rows start from their own max) all match the reference, split or not.
TEST(UnifiedMaxNumerics, AnyMaxGivesSoftmax) {
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / "unified_max_decode.attn";
  std::string text = readText(path);
  for (const char *max : {"max = -4", "max = 0.5", "max = 1000"}) {
    std::string variantText = text;
    variantText.replace(variantText.find("max = 6"), 7, max);
    Compiler compiler;
    auto module = compileF32(compiler, path.string(), variantText, PipelineOptions());
    ASSERT_TRUE(module);
    for (const char *shape : {"i=1,j=700", "i=5,j=65"})
      for (int64_t splits : {1, 4})
        expectMatchesReference(*module, compiler.spec().variants[0], max, shape, true, splits);
  }
}

/// The spec at `path` lowered to the tiled level with the default options, printed.
std::string tiledModule(const fs::path &path) {
  Compiler compiler;
  CompileOptions options;
  Diagnostic diag;
  std::string text = readText(path);
  if (!compiler.loadSpec(path.string(), text, diag) || !compiler.lowerToAttn(options, diag) ||
      !compiler.lowerTo(Stage::Tiled, options, diag)) {
    ADD_FAILURE() << diag.render(text);
    return "";
  }
  return compiler.printModule();
}

/// Recurrences (attn-chunk): chunk sizes from 1 to more than the sequence, ragged lengths,
/// q_len != kv_len (where the key dim is not the query dim), and the quadratic form (no
/// attn-chunk): a decay fixed per head folded into the score (RetNet), a per-step one and a key
/// factor (recurrence_chain) as the tile's decay and score regions, an output rmsnorm
/// (transnormer) in the store's epilogue. Every run is also checked
/// against the recurrent float64 form, and with a state (initial in, final out; no quadratic
/// form) its final state too. mamba2_step (q_len = 1) takes the single-step form; a gate (GLA),
/// a skip term (Mamba-2's D x), q/k head groups, norm sum, a projected
/// feature map (Performer) and computed param indices in a decay, a gate and a skip term
/// (recurrence_computed*) have only the chunked form.
TEST(ChunkNumerics, ChunkedAndQuadraticFormsMatchReference) {
  std::vector<std::pair<fs::path, bool>> specs = {
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "linear_elu.attn", true},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "linear_relu.attn", true},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "retnet.attn", true},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "mamba2_ssd.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "retnet_state.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "mamba2_step.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "gla.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_gated_state.attn",
       false},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_chain.attn", true},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_groups.attn",
       false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "s4d.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_scan.attn",
       false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "linear_elu_norm.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "transnormer.attn", true},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_normalised.attn",
       false},
      {fs::path(ATTNC_SOURCE_DIR) / "specs" / "performer.attn", false},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_projected.attn",
       false},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / "recurrence_computed.attn",
       false},
      {fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" /
           "recurrence_computed_gate.attn",
       false}};
  for (const auto &[path, quadratic] : specs) {
    std::vector<PipelineOptions> forms;
    for (int64_t chunk : {1, 5, 64}) {
      PipelineOptions o;
      o.chunkSize = chunk;
      forms.push_back(o);
    }
    if (quadratic) {
      PipelineOptions o;
      o.chunk = false;
      forms.push_back(o);
    }
    // attn-chunk selects every one of them (otherwise the chunked runs test nothing new)
    EXPECT_NE(tiledModule(path).find("attn.chunk_step"), std::string::npos) << path;
    for (const PipelineOptions &o : forms) {
      Compiler compiler;
      auto module = compileF32(compiler, path.string(), readText(path), o);
      ASSERT_TRUE(module) << path;
      std::string label = path.stem().string() +
                          (o.chunk ? " chunk " + std::to_string(o.chunkSize) : " quadratic");
      for (const char *shape : {"i=1,j=1", "i=130,j=130", "i=77,j=40", "i=5,j=300"})
        expectMatchesReference(*module, compiler.spec().variants[0], label, shape, false, 1);
    }
  }
}

/// Strict-causal recurrences (mask j < i; tests/python/specs/strict_recurrence.attn and
/// specs/rwkv6.attn): a gate per channel with RWKV's bonus, a decay with key factors, a bonus of
/// the position, a state and a skip term, plain strict linear attention with an rmsnorm; chunk
/// sizes from 1 (the single-step form) to more than the sequence, ragged lengths. Each run is
/// checked against the quadratic and the recurrent float64 forms (and the final state).
TEST(ChunkNumerics, StrictRecurrencesMatchReference) {
  fs::path root = fs::path(ATTNC_SOURCE_DIR);
  for (const fs::path &path :
       {root / "tests" / "python" / "specs" / "strict_recurrence.attn",
        root / "specs" / "rwkv6.attn"}) {
    {  // attn-chunk takes every variant as a strict chunk step
      std::string text = tiledModule(path);
      auto count = [&](const std::string &needle) {
        size_t n = 0;
        for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
          ++n;
        return n;
      };
      EXPECT_EQ(count("strict}"), count("func.func")) << path;
    }
    for (int64_t chunk : {1, 5, 16, 64}) {
      Compiler compiler;
      PipelineOptions o;
      o.chunkSize = chunk;
      auto module = compileF32(compiler, path.string(), readText(path), o);
      ASSERT_TRUE(module) << path;
      for (const Variant &v : compiler.spec().variants) {
        ASSERT_TRUE(v.recurrence && v.strict) << v.name;
        std::string label = v.name + " chunk " + std::to_string(chunk);
        for (const char *shape : {"i=1", "i=2", "i=77", "i=130,h=2"})
          expectMatchesReference(*module, v, label, shape, false, 1);
      }
    }
  }
}

/// The declared bf16 dtypes: inputs rounded to bf16, f32 arithmetic, output rounded to bf16.
TEST(SpecNumericsLowPrecision, Bf16SpecsWithinBf16Tolerance) {
  for (const std::string &spec : specNames()) {
    fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / (spec + ".attn");
    std::string text = readText(path);
    Compiler compiler;
    Diagnostic diag;
    CompileOptions options;
    ASSERT_TRUE(compiler.loadSpec(path.string(), text, diag) &&
                compiler.lowerToAttn(options, diag) && compiler.lowerTo(Stage::LLVM, options, diag))
        << diag.render(text);
    auto module = compiler.loadOnCPU(diag);
    ASSERT_TRUE(module) << diag.render(text);
    for (const Variant &v : compiler.spec().variants) {
      RunReport r;
      std::string error;
      RunConfig config;
      config.splitKV = true;
      ASSERT_TRUE(runAndCheck(*module, v, config, r, error)) << error;
      double tol = v.output.resolvedDType == DType::F32 ? 1e-5 : 1e-2;
      EXPECT_LE(r.relError, tol) << spec;
    }
  }
}

/// The check itself must be able to fail: a causal kernel judged against the full-attention
/// reference of the same shapes is far off.
/// A host entry called with the wrong number of descriptors is refused (it would read past
/// them, or ignore some), and an unknown entry too; the arity is the kernel ABI's.
TEST(HostEntry, WrongArgumentCountIsRefused) {
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / "causal.attn";
  Compiler compiler;
  PipelineOptions options;
  options.splitKV = false;
  auto module = compileF32(compiler, path.string(), readText(path), options);
  ASSERT_TRUE(module);
  const Variant &v = compiler.spec().variants[0];
  EXPECT_EQ(module->arity(v.name), int64_t(kernelArgs(v).size()));
  EXPECT_EQ(module->arity("nope"), -1);
  float x = 0;
  std::vector<MemRefDescriptor> one = {MemRefDescriptor(&x, {1}, {1})};
  llvm::Error err = module->invoke(v.name, one);
  ASSERT_TRUE(bool(err));
  EXPECT_NE(llvm::toString(std::move(err)).find("arguments, got 1"), std::string::npos);
  llvm::Error missing = module->invoke("nope", one);
  ASSERT_TRUE(bool(missing));
  EXPECT_NE(llvm::toString(std::move(missing)).find("no host entry 'nope'"), std::string::npos);
}

TEST(SpecNumericsSensitivity, DetectsAWrongKernel) {
  const char *causal = R"(variant x {
    dims b, h, i, j, d, dv
    input q[b, h, i, d], k[b, h, j, d], v[b, h, j, dv]
    score s = dot(q, k) * rsqrt(d)
    mask j <= i
    output o[b, h, i, dv] = attend(s, v)
  })";
  std::string full = causal;
  full.replace(full.find("mask j <= i"), 11, "");
  Compiler kernel, reference;
  auto module = compileF32(kernel, "causal.attn", causal, {});
  ASSERT_TRUE(module);
  SpecFile fullSpec;
  Diagnostic diag;
  ASSERT_TRUE(loadSpec("full.attn", full, fullSpec, diag)) << diag.render(full);
  RunReport r;
  std::string error;
  RunConfig config;
  config.splitKV = true;
  ASSERT_TRUE(runAndCheck(*module, fullSpec.variants[0], config, r, error)) << error;
  EXPECT_GT(r.relError, 1e-2);
}

}  // namespace

namespace {

/// Trainable specs: every spec attn-grad takes (the others must say why not).
class GradNumerics : public ::testing::TestWithParam<std::string> {};

/// Runs the CPU backward of variant `v` of `module` at small ragged shapes and expects every
/// gradient within 1e-5 of the float64 reference's central differences.
void expectGradsMatch(CPUModule &module, const Variant &v, const std::string &label) {
  for (const char *shape : {"i=6,j=9", "i=1,j=1"}) {
    RunConfig config;
    config.sizes = seqSizes(v, shape);
    config.sizes.emplace_back(v.dims[v.batchDim].name, 1);  // one batch keeps differences cheap
    GradReport r;
    std::string error;
    ASSERT_TRUE(gradCheck(module, v, config, r, error)) << error;
    std::string sizes;
    for (size_t d = 0; d < v.dims.size(); ++d)
      sizes += (d ? "," : "") + v.dims[d].name + "=" + std::to_string(r.sizes[d]);
    SCOPED_TRACE(label + " " + sizes);
    EXPECT_EQ(r.unwritten, 0);
    std::cerr << label << " " << sizes << ": dq " << r.dq << " dk " << r.dk << " dv " << r.dv;
    for (const auto &[name, err] : r.dparams)
      std::cerr << " d" << name << " " << err;
    std::cerr << "\n";
    EXPECT_LE(r.dq, 1e-5);
    EXPECT_LE(r.dk, 1e-5);
    EXPECT_LE(r.dv, 1e-5);
    // One key under an rmsnorm of a mix (differential attention): every row y_n is v_0, the
    // mix a multiple of it, and the rmsnorm cancels the multiple up to its eps -- a mix
    // param's gradient (lambda) is then ~eps / mean(m^2) = 1e-5 of its terms, a cancellation
    // an f32 kernel reaches to ~1e-4 (tests/python/test_autograd.py judges it against a
    // float32 reference's error instead).
    bool cancelling = std::string(shape) == "i=1,j=1" && v.mix && v.rmsEps;
    for (const auto &[name, err] : r.dparams)
      EXPECT_LE(err, cancelling ? 1e-3 : 1e-5) << "d" << name;
  }
}

/// f32 forward and backward for the CPU, unsplit (the gradient check runs one pass).
CompileOptions backwardOptions() {
  CompileOptions options;
  options.pipeline.splitKV = false;
  options.pipeline.backward = true;
  options.dtypeOverride = DType::F32;
  return options;
}

TEST_P(GradNumerics, MatchesFloat64CentralDifferences) {
  const std::string spec = GetParam();
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "specs" / (spec + ".attn");
  std::string text = readText(path);
  Compiler compiler;
  CompileOptions options = backwardOptions();
  Diagnostic diag;
  ASSERT_TRUE(compiler.loadSpec(path.string(), text, diag) && compiler.lowerToAttn(options, diag))
      << diag.render(text);
  const Variant &v = compiler.spec().variants[0];
  if (!compiler.lowerTo(Stage::LLVM, options, diag)) {
    // Decoding and recurrence variants have no backward: the error says which and why.
    std::string message = diag.render(text);
    EXPECT_NE(message.find("attn-grad: no backward for '" + v.name + "'"), std::string::npos)
        << message;
    GTEST_SKIP() << "no backward: " << message;
  }
  auto module = compiler.loadOnCPU(diag);
  ASSERT_TRUE(module) << diag.render(text);
  expectGradsMatch(*module, v, spec);
}

/// The CPU backward of every variant of tests/python/specs/<file> against central differences.
void expectTestSpecGradsMatch(const char *file) {
  fs::path path = fs::path(ATTNC_SOURCE_DIR) / "tests" / "python" / "specs" / file;
  Compiler compiler;
  auto module = compileF32(compiler, path.string(), readText(path), backwardOptions().pipeline);
  ASSERT_TRUE(module);
  for (const Variant &v : compiler.spec().variants)
    expectGradsMatch(*module, v, v.name);
}

/// The backward through output expressions (tests/python/specs/output_maps.attn): gates,
/// scales, biases and a computed index at the kv head, a nonlinear map of a sigmoid attention,
/// per-head rmsnorms with and without a gain; the maps' params get gradients too.
TEST(GradNumerics, OutputMapsMatchCentralDifferences) {
  expectTestSpecGradsMatch("output_maps.attn");
}

/// The backward of forget gates (tests/python/specs/forget_gate.attn): a sigmoid gate with GQA
/// and a window, a per-head decay under a strict-causal mask, strong log gates read through exp
/// with an output gate; the gates' params get their gradients from the column and row sums of
/// dS (attention_grad's decay_grad).
TEST(GradNumerics, ForgetGatesMatchCentralDifferences) {
  expectTestSpecGradsMatch("forget_gate.attn");
}

/// The backward of several scores (tests/python/specs/several_scores.attn): differential
/// attention with GQA, a per-head lambda, a per-head rmsnorm and its gain; three scores sharing
/// one query (its gradient sums theirs) mixed by max and a param at the query position; a mix
/// normalised without a map.
TEST(GradNumerics, SeveralScoresMatchCentralDifferences) {
  expectTestSpecGradsMatch("several_scores.attn");
}

/// An f32 output of plain attention (tests/python/specs/f32_output.attn): on CUDA its backward
/// takes the recomputed rows' path; here the plain one.
TEST(GradNumerics, F32OutputMatchesCentralDifferences) {
  expectTestSpecGradsMatch("f32_output.attn");
}

/// Three scores whose query and one key are each read by two of them
/// (tests/python/specs/several_scores_shared.attn): dq and dka sum two scores' contributions.
TEST(GradNumerics, SharedScoreInputsMatchCentralDifferences) {
  expectTestSpecGradsMatch("several_scores_shared.attn");
}

/// The backward of row norms (tests/python/specs/row_norms.attn): cosine attention with GQA and a
/// temperature param, an L2 distance under a window, a key norm under sigmoid with an output
/// gate; dq and dk gain 2 d(s)/d(dot(q, q)) q and 2 d(s)/d(dot(k, k)) k.
TEST(GradNumerics, RowNormsMatchCentralDifferences) {
  expectTestSpecGradsMatch("row_norms.attn");
}

INSTANTIATE_TEST_SUITE_P(Specs, GradNumerics, ::testing::ValuesIn(specNames()),
                         [](const auto &info) { return info.param; });

}  // namespace
