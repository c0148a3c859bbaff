// Unit tests of the GPU runtime that need no GPU: manifest parsing and validation, every argument
// check and its exact message, the launch grid, split-KV planning and its heuristic, packed (i4)
// arguments, and the C ABI's error paths.
#include "runtime/ArgCheck.h"
#include "runtime/Manifest.h"
#include "runtime/attnc_runtime.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

using namespace attnc::rt;

namespace {

// GQA + ALiBi as the code generator writes it: q/o stored [b, i, h, d], hk = h / 4, d static.
const char *kManifest = R"({
  "format": "attnc-kernel-manifest/1",
  "compiler": "attnc 0.1.0",
  "variant": "alibi",
  "entry": "alibi",
  "ptx": "alibi.ptx",
  "arch": "sm_80",
  "spec_hash": "sha256:9f0c2d5e11aa4c07d3a1b2e4f5061728394a5b6c7d8e9f001122334455667788",
  "block": [128, 1, 1],
  "grid": [{"ceil_div": ["i", 64]}, {"dim": "h"}, {"dim": "b"}],
  "dynamic_shared_memory": 52224,
  "tile": {"block_q": 64, "block_k": 64, "warps": 4},
  "dims": [
    {"name": "b",  "role": "batch"},
    {"name": "h",  "role": "q_head"},
    {"name": "hk", "role": "kv_head", "derived": {"source": "h", "divisor": 4}},
    {"name": "i",  "role": "q_seq"},
    {"name": "j",  "role": "kv_seq"},
    {"name": "d",  "role": "head_dim", "static": 128},
    {"name": "dv", "role": "value_dim", "static": 128}
  ],
  "args": [
    {"name": "q", "kind": "input", "dtype": "bf16", "dims": ["b", "h", "i", "d"],
     "storage_dims": ["b", "i", "h", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "k", "kind": "input", "dtype": "bf16", "dims": ["b", "hk", "j", "d"],
     "storage_dims": ["b", "j", "hk", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "v", "kind": "input", "dtype": "bf16", "dims": ["b", "hk", "j", "dv"],
     "storage_dims": ["b", "j", "hk", "dv"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "slope", "kind": "param", "dtype": "f32", "dims": ["h"], "storage_dims": ["h"],
     "unit_stride_last": false, "alignment": 4, "row_alignment": 0},
    {"name": "o", "kind": "output", "dtype": "bf16", "dims": ["b", "h", "i", "dv"],
     "storage_dims": ["b", "i", "h", "dv"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "lse", "kind": "lse", "dtype": "f32", "dims": ["b", "h", "i"], "storage_dims": ["b", "h", "i"],
     "unit_stride_last": true, "alignment": 4, "row_alignment": 0}
  ]
})";

/// `text` with its one occurrence of `from` replaced by `to` (a test failure if not exactly one).
std::string replaced(std::string text, const std::string &from, const std::string &to) {
  size_t at = text.find(from);
  if (at == std::string::npos || text.find(from, at + 1) != std::string::npos) {
    ADD_FAILURE() << "'" << from << "' does not occur exactly once";
    return text;
  }
  return text.replace(at, from.size(), to);
}

std::string parseError(const std::string &text) {
  Manifest m;
  std::string error;
  EXPECT_FALSE(parseManifest(text, m, error)) << "parsed: " << text;
  return error;
}

/// A tensor of canonical extents `sizes`, laid out contiguously in storage order `storage`
/// (storage[s] = the canonical axis stored s-th), described in canonical order.
struct Tensor {
  DType dtype;
  std::vector<int64_t> sizes, strides;
  uint64_t data;

  Tensor(DType dtype, std::vector<int64_t> canonicalSizes, std::vector<int> storage, uint64_t data)
      : dtype(dtype), sizes(std::move(canonicalSizes)), strides(sizes.size()), data(data) {
    int64_t stride = 1;
    for (size_t s = storage.size(); s-- > 0;) {
      strides[size_t(storage[s])] = stride;
      stride *= sizes[size_t(storage[s])];
    }
  }
  TensorArg arg() const {
    return {data, int32_t(dtype), int32_t(sizes.size()), sizes.data(), strides.data()};
  }
};

const std::vector<int> kBIHD = {0, 2, 1, 3};  // storage [b, i, h, d] of canonical [b, h, i, d]
const std::vector<int> kBHID = {0, 1, 2, 3};

class ArgCheckTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(parseManifest(kManifest, m, error)) << error;
    tensors = {
        Tensor(DType::BF16, {B, H, I, 128}, kBIHD, 0x100000),     // q
        Tensor(DType::BF16, {B, H / 4, J, 128}, kBIHD, 0x200000), // k
        Tensor(DType::BF16, {B, H / 4, J, 128}, kBIHD, 0x300000), // v
        Tensor(DType::F32, {H}, {0}, 0x400000),                   // slope
        Tensor(DType::BF16, {B, H, I, 128}, kBIHD, 0x500000),     // o
        Tensor(DType::F32, {B, H, I}, {0, 1, 2}, 0x600000),       // lse
    };
  }

  bool check(std::string &error) {
    std::vector<TensorArg> args;
    for (const Tensor &t : tensors)
      args.push_back(t.arg());
    return checkArgs(m, args.data(), args.size(), plan, error);
  }
  std::string error() {
    std::string e;
    EXPECT_FALSE(check(e));
    return e;
  }

  static constexpr int64_t B = 2, H = 8, I = 77, J = 65;
  Manifest m;
  std::vector<Tensor> tensors;
  LaunchPlan plan;
  enum { Q, K, V, Slope, O, Lse };
};

}  // namespace

// --- manifest -------------------------------------------------------------------------------

TEST(Manifest, ParsesEveryField) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(kManifest, m, error)) << error;
  EXPECT_EQ(m.variant, "alibi");
  EXPECT_EQ(m.entry, "alibi");
  EXPECT_EQ(m.ptx, "alibi.ptx");
  EXPECT_EQ(m.specHash, "sha256:9f0c2d5e11aa4c07d3a1b2e4f5061728394a5b6c7d8e9f001122334455667788");
  EXPECT_EQ(m.archMajor, 8);
  EXPECT_EQ(m.archMinor, 0);
  EXPECT_EQ(m.archSuffix, 0);
  EXPECT_EQ(m.block, (std::array<uint32_t, 3>{128, 1, 1}));
  EXPECT_EQ(m.dynamicSharedMemory, 52224u);
  ASSERT_EQ(m.dims.size(), 7u);
  EXPECT_EQ(m.dims[2].derivedSource, 1);
  EXPECT_EQ(m.dims[2].divisor, 4);
  EXPECT_EQ(m.dims[5].staticSize, 128);
  EXPECT_EQ(m.dims[0].staticSize, -1);
  EXPECT_EQ(m.grid[0].dim, m.dimIndex("i"));
  EXPECT_EQ(m.grid[0].divisor, 64);
  EXPECT_EQ(m.grid[1].dim, m.dimIndex("h"));
  EXPECT_EQ(m.grid[1].divisor, 1);
  ASSERT_EQ(m.args.size(), 6u);
  EXPECT_EQ(m.argNames(), "q, k, v, slope, o, lse");
  EXPECT_EQ(m.args[0].dims, (std::vector<int>{0, 1, 3, 5}));
  EXPECT_EQ(m.args[0].storageDims, (std::vector<int>{0, 3, 1, 5}));
  EXPECT_EQ(m.args[3].kind, ArgKind::Param);
  EXPECT_EQ(m.args[3].dtype, DType::F32);
  EXPECT_FALSE(m.args[3].unitStrideLast);
  EXPECT_EQ(m.args[5].kind, ArgKind::Lse);
  EXPECT_TRUE(m.args[4].writes());
  EXPECT_EQ(m.text, kManifest);
}

TEST(Manifest, ArchSuffixes) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(replaced(kManifest, "\"sm_80\"", "\"sm_90a\""), m, error)) << error;
  EXPECT_EQ(m.archMajor, 9);
  EXPECT_EQ(m.archSuffix, 'a');
  ASSERT_TRUE(parseManifest(replaced(kManifest, "\"sm_80\"", "\"sm_100f\""), m, error)) << error;
  EXPECT_EQ(m.archMajor, 10);
  EXPECT_EQ(m.archMinor, 0);
  EXPECT_EQ(m.archSuffix, 'f');
}

TEST(Manifest, HostKernelsHaveNoLaunchGeometryAndTheCUDARuntimeRefusesThem) {
  // The cpu target's manifest (attnc.h): "arch": "host", no block, grid or shared memory.
  std::string host = replaced(kManifest, "\"arch\": \"sm_80\"", "\"arch\": \"host\"");
  host = replaced(host, "\"block\": [128, 1, 1],", "");
  host = replaced(host, "\"dynamic_shared_memory\": 52224,", "");
  host = replaced(host, "\"grid\": [{\"ceil_div\": [\"i\", 64]}, {\"dim\": \"h\"}, {\"dim\": \"b\"}],",
                  "");
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(host, m, error)) << error;
  EXPECT_TRUE(m.host());
  EXPECT_EQ(m.args.size(), 6u);
  attnc_rt_kernel *k = nullptr;
  EXPECT_EQ(attnc_rt_load("// ptx", 6, host.data(), host.size(), &k), -1);
  EXPECT_STREQ(attnc_rt_last_error(),
               "kernel 'alibi' was compiled for the host (\"arch\": \"host\", the CPU back end): "
               "it runs through attnc.h's attnc_launch, not the CUDA runtime");
  EXPECT_EQ(k, nullptr);
}

TEST(Manifest, CorruptJson) {
  std::string e = parseError(std::string(kManifest).substr(0, 200));
  EXPECT_EQ(e.rfind("manifest: invalid JSON: parse error at line", 0), 0u) << e;
  EXPECT_EQ(parseError("[1, 2]"), "manifest: expected a JSON object, got array");
  EXPECT_NE(parseError("").find("invalid JSON"), std::string::npos);
}

TEST(Manifest, MissingFields) {
  EXPECT_EQ(parseError(replaced(kManifest, "\"entry\": \"alibi\",", "")),
            "manifest: missing field 'entry'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"block\": [128, 1, 1],", "")),
            "manifest: missing field 'block'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"dynamic_shared_memory\": 52224,", "")),
            "manifest: missing field 'dynamic_shared_memory'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"role\": \"q_seq\"", "\"rol\": \"q_seq\"")),
            "manifest: missing field 'dims[3].role'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"alignment\": 4, \"row_alignment\": 0},\n    {\"name\": \"o\"",
                                "\"alignment\": 4},\n    {\"name\": \"o\"")),
            "manifest: missing field 'args[3].row_alignment'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"storage_dims\": [\"b\", \"h\", \"i\"],", "")),
            "manifest: missing field 'args[5].storage_dims'");
}

TEST(Manifest, WrongTypes) {
  EXPECT_EQ(parseError(replaced(kManifest, "[128, 1, 1]", "\"128\"")),
            "manifest: field 'block' must be an array, got string");
  EXPECT_EQ(parseError(replaced(kManifest, "\"dtype\": \"f32\", \"dims\": [\"h\"]", "\"dtype\": 4, \"dims\": [\"h\"]")),
            "manifest: field 'args[3].dtype' must be a string, got number");
  EXPECT_EQ(parseError(replaced(kManifest, "\"dtype\": \"f32\", \"dims\": [\"h\"]", "\"dtype\": \"f64\", \"dims\": [\"h\"]")),
            "manifest: field 'args[3].dtype' must be one of f32, f16, bf16, i32, i8, f8e4m3, i4, got 'f64'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"kind\": \"lse\"", "\"kind\": \"scratch\"")),
            "manifest: field 'args[5].kind' must be one of input, param, output, lse, state, got 'scratch'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"unit_stride_last\": false", "\"unit_stride_last\": 0")),
            "manifest: field 'args[3].unit_stride_last' must be true or false, got number");
  EXPECT_EQ(parseError(replaced(kManifest, "52224", "-1")),
            "manifest: field 'dynamic_shared_memory' must be in [0, 4294967295], got -1");
  EXPECT_EQ(parseError(replaced(kManifest, "52224", "1.5")),
            "manifest: field 'dynamic_shared_memory' must be an integer, got number");
  EXPECT_EQ(parseError(replaced(kManifest, "\"head_dim\", \"static\": 128", "\"head_dim\", \"static\": \"128\"")),
            "manifest: field 'dims[5].static' must be an integer, got string");
  EXPECT_EQ(parseError(replaced(kManifest, "\"args\": [", "\"args\": 5, \"unused\": [")),
            "manifest: field 'args' must be an array, got number");
}

TEST(Manifest, InvalidValues) {
  EXPECT_EQ(parseError(replaced(kManifest, "kernel-manifest/1", "kernel-manifest/2")),
            "manifest: field 'format' is 'attnc-kernel-manifest/2', but this runtime reads "
            "'attnc-kernel-manifest/1'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"sm_80\"", "\"ampere\"")),
            "manifest: field 'arch' must look like sm_80 or sm_90a, got 'ampere'");
  EXPECT_EQ(parseError(replaced(kManifest, "[128, 1, 1]", "[2048, 1, 1]")),
            "manifest: field 'block[0]' must be in [1, 1024], got 2048");
  EXPECT_EQ(parseError(replaced(kManifest, "[128, 1, 1]", "[128, 16, 1]")),
            "manifest: field 'block' asks for 2048 threads per block, over CUDA's limit of 1024");
  EXPECT_EQ(parseError(replaced(kManifest, "[128, 1, 1]", "[128, 1]")),
            "manifest: field 'block' must have 3 entries (x, y, z), got 2");
  EXPECT_EQ(parseError(replaced(kManifest, "\"alignment\": 4, \"row_alignment\": 0},\n    {\"name\": \"o\"",
                                "\"alignment\": 12, \"row_alignment\": 0},\n    {\"name\": \"o\"")),
            "manifest: field 'args[3].alignment' must be a power of two, got 12");
  EXPECT_EQ(parseError(replaced(kManifest, "\"storage_dims\": [\"b\", \"j\", \"hk\", \"d\"]",
                                "\"storage_dims\": [\"b\", \"j\", \"hk\", \"dv\"]")),
            "manifest: field 'args[1].storage_dims' must be a permutation of args[1].dims");
  EXPECT_EQ(parseError(replaced(kManifest, "\"dims\": [\"h\"]", "\"dims\": [\"x\"]")),
            "manifest: field 'args[3].dims[0]' names unknown dim 'x'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"source\": \"h\"", "\"source\": \"heads\"")),
            "manifest: field 'dims[2].derived.source' names unknown dim 'heads'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"divisor\": 4", "\"divisor\": 0")),
            "manifest: field 'dims[2].derived.divisor' must be in [1, 9223372036854775807], got 0");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"name\": \"dv\", \"role\": \"value_dim\", \"static\": 128}",
                                "{\"name\": \"d\", \"role\": \"value_dim\", \"static\": 128}")),
            "manifest: field 'dims[6].name' repeats dim 'd'");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"name\": \"slope\"", "{\"name\": \"q\"")),
            "manifest: field 'args[3].name' repeats argument 'q'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"entry\": \"alibi\"", "\"entry\": \"ali bi\"")),
            "manifest: field 'entry' must be a PTX symbol name, got 'ali bi'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"args\": [", "\"ignored\": [")),
            "manifest: missing field 'args'");
}

TEST(Manifest, InvalidGrid) {
  EXPECT_EQ(parseError(replaced(kManifest, "{\"dim\": \"h\"}", "{\"dim\": \"heads\"}")),
            "manifest: field 'grid[1]' names unknown dim 'heads'");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"ceil_div\": [\"i\", 64]}", "{\"ceil_div\": [\"i\"]}")),
            "manifest: field 'grid[0].ceil_div' must be [DIM_NAME, DIVISOR]");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"ceil_div\": [\"i\", 64]}", "{\"ceil_div\": [\"i\", 0]}")),
            "manifest: field 'grid[0].ceil_div[1]' must be in [1, 2147483647], got 0");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"dim\": \"b\"}", "{\"product\": [\"b\", \"h\"]}")),
            "manifest: field 'grid[2]' must be {\"dim\": NAME}, {\"ceil_div\": [NAME, N]} or "
            "{\"blocks\": N}");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"dim\": \"b\"}", "7")),
            "manifest: field 'grid[2]' must be an object, got number");
  // A dim that no argument holds, with no static extent or derivation, cannot size the grid.
  std::string extra = replaced(kManifest, "{\"name\": \"b\",  \"role\": \"batch\"},",
                               "{\"name\": \"b\",  \"role\": \"batch\"}, {\"name\": \"n\", \"role\": \"none\"},");
  EXPECT_EQ(parseError(replaced(extra, "{\"dim\": \"b\"}", "{\"dim\": \"n\"}")),
            "manifest: field 'grid[2]' uses dim 'n', which no argument determines");
}

// --- argument checks ------------------------------------------------------------------------

TEST_F(ArgCheckTest, GoodArgumentsGiveThePlan) {
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.dimSizes, (std::vector<int64_t>{B, H, H / 4, I, J, 128, 128}));
  EXPECT_EQ(plan.grid, (std::array<uint32_t, 3>{2, uint32_t(H), uint32_t(B)}));  // ceil(77 / 64)
  EXPECT_EQ(plan.block, (std::array<uint32_t, 3>{128, 1, 1}));
  EXPECT_EQ(plan.sharedMemory, 52224u);
  EXPECT_FALSE(plan.empty);
}

TEST_F(ArgCheckTest, GridFormulas) {
  for (auto [i, blocks] : {std::pair<int64_t, uint32_t>{1, 1}, {64, 1}, {65, 2}, {128, 2}, {129, 3}}) {
    tensors[Q].sizes[2] = tensors[O].sizes[2] = tensors[Lse].sizes[2] = i;
    std::string e;
    ASSERT_TRUE(check(e)) << e;
    EXPECT_EQ(plan.grid[0], blocks) << "i = " << i;
  }
}

TEST_F(ArgCheckTest, ArgumentCount) {
  tensors.pop_back();
  EXPECT_EQ(error(), "expected 6 arguments (q, k, v, slope, o, lse), got 5");
  std::string e;
  EXPECT_FALSE(checkArgs(m, nullptr, 6, plan, e));
  EXPECT_EQ(e, "the argument array is null");
}

TEST_F(ArgCheckTest, DType) {
  tensors[K].dtype = DType::F16;
  EXPECT_EQ(error(), "argument 'k': expected dtype bf16, got f16");
  tensors[K].dtype = DType(9);
  EXPECT_EQ(error(), "argument 'k': expected dtype bf16, got unknown dtype code 9");
}

TEST_F(ArgCheckTest, Rank) {
  tensors[Slope] = Tensor(DType::F32, {1, H}, {0, 1}, 0x400000);
  EXPECT_EQ(error(), "argument 'slope': expected rank 1 [h], got rank 2");
  tensors[Slope] = Tensor(DType::F32, {H}, {0}, 0x400000);
  tensors[Q] = Tensor(DType::BF16, {B, H, I}, {0, 1, 2}, 0x100000);
  EXPECT_EQ(error(), "argument 'q': expected rank 4 [b, h, i, d], got rank 3");
}

TEST_F(ArgCheckTest, NullSizes) {
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  args[V].sizes = nullptr;
  std::string e;
  EXPECT_FALSE(checkArgs(m, args.data(), args.size(), plan, e));
  EXPECT_EQ(e, "argument 'v': sizes and strides must not be null for rank 4");
}

TEST_F(ArgCheckTest, NegativeSize) {
  tensors[V].sizes[2] = -1;
  EXPECT_EQ(error(), "argument 'v' axis 2 (j): size must be >= 0, got -1");
}

TEST_F(ArgCheckTest, StaticDim) {
  tensors[Q].sizes[3] = 64;
  EXPECT_EQ(error(), "argument 'q' axis 3 (d): expected 128 (fixed by the spec), got 64");
}

TEST_F(ArgCheckTest, DerivedDim) {
  tensors[K].sizes[1] = 3;
  EXPECT_EQ(error(), "argument 'k' axis 1 (hk): expected 2 (= h / 4), got 3");
}

TEST_F(ArgCheckTest, DerivedSourceMustBeDivisible) {
  tensors[Q].sizes[1] = 6;
  EXPECT_EQ(error(), "argument 'q' axis 1 (h): expected a multiple of 4 (hk = h / 4), got 6");
}

TEST_F(ArgCheckTest, GQAHeads) {
  // h = 32 query heads over hk = 8 kv heads: the group of 4 holds at any size.
  for (Tensor *t : {&tensors[Q], &tensors[O], &tensors[Lse]})
    t->sizes[1] = 32;
  tensors[Slope].sizes[0] = 32;
  tensors[K].sizes[1] = tensors[V].sizes[1] = 8;
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.dimSizes[size_t(m.dimIndex("hk"))], 8);
  EXPECT_EQ(plan.grid[1], 32u);
  tensors[V].sizes[1] = 6;
  EXPECT_EQ(error(), "argument 'v' axis 1 (hk): expected 8 (= h / 4), got 6");
}

TEST_F(ArgCheckTest, ExtentsAgreeByDimName) {
  tensors[V].sizes[2] = J - 1;
  EXPECT_EQ(error(), "argument 'v' axis 2 (j): expected 65 (as in argument 'k' axis 2), got 64");
  tensors[V].sizes[2] = J;
  tensors[Lse].sizes[0] = B + 1;
  EXPECT_EQ(error(), "argument 'lse' axis 0 (b): expected 2 (as in argument 'q' axis 0), got 3");
  tensors[Lse].sizes[0] = B;
  tensors[Slope].sizes[0] = H * 2;
  EXPECT_EQ(error(), "argument 'slope' axis 0 (h): expected 8 (as in argument 'q' axis 1), got 16");
}

TEST_F(ArgCheckTest, NullPointer) {
  tensors[O].data = 0;
  EXPECT_EQ(error(), "argument 'o': data pointer is null");
}

TEST_F(ArgCheckTest, Alignment) {
  tensors[Q].data += 2;  // a view starting one bf16 element in
  EXPECT_EQ(error(), "argument 'q': data pointer 0x100002 is not aligned to 16 bytes");
  tensors[Q].data -= 2;
  tensors[Slope].data += 4;  // f32 param: 4-byte alignment is enough
  std::string e;
  EXPECT_TRUE(check(e)) << e;
}

TEST_F(ArgCheckTest, LastAxisMustBeContiguous) {
  tensors[K].strides[3] = 2;
  EXPECT_EQ(error(), "argument 'k' axis 3 (d): expected stride 1 (the last axis must be contiguous), got 2");
}

TEST_F(ArgCheckTest, RowAlignment) {
  tensors[Q].strides[1] = 130;  // [b, i, h, d] rows padded to 130 elements = 260 bytes
  EXPECT_EQ(error(), "argument 'q' axis 1 (h): stride 130 is 260 bytes, not a multiple of 16 (row alignment)");
  tensors[Q].strides[1] = 136;  // 272 bytes: fine
  std::string e;
  EXPECT_TRUE(check(e)) << e;
}

TEST_F(ArgCheckTest, NegativeStride) {
  tensors[V].strides[2] = -int64_t(tensors[V].strides[2]);
  EXPECT_EQ(error(), "argument 'v' axis 2 (j): stride must be >= 0, got -256");
}

TEST_F(ArgCheckTest, BroadcastInputsButNotOutputs) {
  tensors[K].strides[0] = 0;  // one k shared by the batch (an expand): fine for an input
  std::string e;
  EXPECT_TRUE(check(e)) << e;
  tensors[O].strides[2] = 0;
  EXPECT_EQ(error(), "argument 'o' axis 2 (i): stride 0 would make 77 output elements share one address");
}

TEST_F(ArgCheckTest, StridesOfUnitAxesAreFree) {
  for (Tensor *t : {&tensors[Q], &tensors[O], &tensors[Lse]}) {
    t->sizes[2] = 1;
    t->strides[2] = 3;  // never multiplied by a non-zero index
  }
  std::string e;
  EXPECT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.grid[0], 1u);
}

TEST_F(ArgCheckTest, StorageOrderIndependence) {
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  LaunchPlan bihd = plan;
  for (int a : {Q, K, V, O})
    tensors[size_t(a)] = Tensor(tensors[size_t(a)].dtype, tensors[size_t(a)].sizes, kBHID, tensors[size_t(a)].data);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.dimSizes, bihd.dimSizes);
  EXPECT_EQ(plan.grid, bihd.grid);
  // Any permutation that keeps the last axis contiguous and rows aligned is accepted.
  tensors[Q] = Tensor(DType::BF16, tensors[Q].sizes, {2, 1, 0, 3}, 0x100000);
  EXPECT_TRUE(check(e)) << e;
}

TEST_F(ArgCheckTest, ZeroSizeMeansNoLaunch) {
  for (Tensor *t : {&tensors[Q], &tensors[O], &tensors[Lse]}) {
    t->sizes[2] = 0;
    t->data = 0;  // torch hands out null pointers for empty tensors
  }
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_TRUE(plan.empty);
  EXPECT_EQ(plan.grid[0], 0u);
}

TEST_F(ArgCheckTest, NoKeysStillLaunches) {
  // kv_len 0: every row has no allowed key, and the kernel must still write o = 0, lse = -inf.
  for (Tensor *t : {&tensors[K], &tensors[V]}) {
    t->sizes[2] = 0;
    t->data = 0;
  }
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_FALSE(plan.empty);
}

TEST_F(ArgCheckTest, GridLimits) {
  for (Tensor *t : {&tensors[Q], &tensors[O], &tensors[Lse]})
    t->sizes[1] = 4 * 65536;
  tensors[Slope].sizes[0] = 4 * 65536;
  tensors[K].sizes[1] = tensors[V].sizes[1] = 65536;
  EXPECT_EQ(error(), "launch grid y = 262144 (h = 262144) exceeds CUDA's limit of 65535");
  for (Tensor *t : {&tensors[Q], &tensors[O], &tensors[Lse]}) {
    t->sizes[1] = H;
    t->sizes[2] = 64 * (int64_t(1) << 31);
  }
  tensors[Slope].sizes[0] = H;
  tensors[K].sizes[1] = tensors[V].sizes[1] = H / 4;
  // an extent past 2^31 - 1 is refused before any grid is computed (the kernels' positions
  // are 32-bit)
  EXPECT_EQ(error(), "argument 'q' axis 2 (i): size 137438953472 exceeds attnc's limit of "
                     "2147483647 per dim");
}

TEST(ArgCheck, SourceAfterDerivedDimAndScalarParams) {
  // The derived dim comes first in argument order; a rank-0 param has no sizes at all.
  const char *text = R"({"format": "attnc-kernel-manifest/1", "variant": "t", "entry": "t",
    "arch": "sm_80", "block": [32, 1, 1], "dynamic_shared_memory": 0,
    "grid": [{"dim": "h"}, {"dim": "n"}, {"ceil_div": ["hk", 2]}],
    "dims": [{"name": "h", "role": "q_head"}, {"name": "n", "role": "none", "static": 3},
             {"name": "hk", "role": "kv_head", "derived": {"source": "h", "divisor": 2}}],
    "args": [
      {"name": "a", "kind": "param", "dtype": "f32", "dims": ["hk"], "storage_dims": ["hk"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "s", "kind": "param", "dtype": "f32", "dims": [], "storage_dims": [],
       "unit_stride_last": false, "alignment": 4, "row_alignment": 0},
      {"name": "o", "kind": "output", "dtype": "f32", "dims": ["h"], "storage_dims": ["h"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0}]})";
  Manifest m;
  std::string e;
  ASSERT_TRUE(parseManifest(text, m, e)) << e;
  int64_t three = 3, eight = 8, one = 1;
  TensorArg args[3] = {{0x1000, 0, 1, &three, &one}, {0x2000, 0, 0, nullptr, nullptr},
                       {0x3000, 0, 1, &eight, &one}};
  LaunchPlan plan;
  EXPECT_FALSE(checkArgs(m, args, 3, plan, e));
  EXPECT_EQ(e, "argument 'o' axis 0 (h): expected 6 (= hk * 2), got 8");
  int64_t six = 6;
  args[2].sizes = &six;
  ASSERT_TRUE(checkArgs(m, args, 3, plan, e)) << e;
  EXPECT_EQ(plan.grid, (std::array<uint32_t, 3>{6, 3, 2}));  // h, static n, ceil(hk / 2)
}

TEST(ArgCheck, GatheredAxisMustNotBeEmpty) {
  // `"min": 1`: a param axis read at clamped computed indices (table[h, bucket]) cannot be
  // empty, while an empty batch still means no launch.
  const char *text = R"({"format": "attnc-kernel-manifest/1", "variant": "t", "entry": "t",
    "arch": "sm_80", "block": [32, 1, 1], "dynamic_shared_memory": 0,
    "grid": [{"dim": "b"}, {"blocks": 1}, {"blocks": 1}],
    "dims": [{"name": "b", "role": "batch"}, {"name": "r", "role": "none", "min": 1}],
    "args": [
      {"name": "table", "kind": "param", "dtype": "f32", "dims": ["r"], "storage_dims": ["r"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "o", "kind": "output", "dtype": "f32", "dims": ["b"], "storage_dims": ["b"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0}]})";
  Manifest m;
  std::string e;
  ASSERT_TRUE(parseManifest(text, m, e)) << e;
  EXPECT_EQ(m.dims[1].minSize, 1);
  EXPECT_EQ(m.dims[0].minSize, 0);
  int64_t zero = 0, four = 4, one = 1;
  TensorArg args[2] = {{0x1000, 0, 1, &zero, &one}, {0x3000, 0, 1, &four, &one}};
  LaunchPlan plan;
  EXPECT_FALSE(checkArgs(m, args, 2, plan, e));
  EXPECT_EQ(e, "argument 'table' axis 0 (r): size must be >= 1, got 0 (the kernel reads this "
               "axis at computed indices, clamped into it, so it cannot be empty)");
  args[0].sizes = &four;
  args[1].sizes = &zero;
  ASSERT_TRUE(checkArgs(m, args, 2, plan, e)) << e;
  EXPECT_TRUE(plan.empty);
  std::string bad = text;
  bad.replace(bad.find(R"("min": 1)"), 8, R"("min": 2)");
  EXPECT_FALSE(parseManifest(bad, m, e));
  EXPECT_NE(e.find("dims[1].min"), std::string::npos) << e;
}

TEST(ArgCheck, AliasedDimsShareOneExtent) {
  // `j : kv_len = i` (the manifest's "alias"): k's keys must be as many as q's queries, or a
  // param declared over i and read at j would be read past its end. Aliases chain onto the
  // root (m = hk with hk = h / 2 binds m to h / 2).
  const char *text = R"({"format": "attnc-kernel-manifest/1", "variant": "t", "entry": "t",
    "arch": "sm_80", "block": [32, 1, 1], "dynamic_shared_memory": 0,
    "grid": [{"dim": "i"}, {"blocks": 1}, {"blocks": 1}],
    "dims": [{"name": "j", "role": "kv_seq", "alias": "i"}, {"name": "i", "role": "q_seq"},
             {"name": "m", "role": "none", "alias": "hk"},
             {"name": "hk", "role": "kv_head", "derived": {"source": "h", "divisor": 2}},
             {"name": "h", "role": "q_head"}],
    "args": [
      {"name": "k", "kind": "input", "dtype": "f32", "dims": ["j"], "storage_dims": ["j"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "q", "kind": "input", "dtype": "f32", "dims": ["i"], "storage_dims": ["i"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "w", "kind": "param", "dtype": "f32", "dims": ["m"], "storage_dims": ["m"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "o", "kind": "output", "dtype": "f32", "dims": ["h", "i"], "storage_dims": ["h", "i"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0}]})";
  Manifest m;
  std::string e;
  ASSERT_TRUE(parseManifest(text, m, e)) << e;
  EXPECT_EQ(m.dims[0].derivedSource, 1);
  EXPECT_EQ(m.dims[0].divisor, 1);
  EXPECT_EQ(m.dims[2].derivedSource, 4);  // m -> hk -> h
  EXPECT_EQ(m.dims[2].divisor, 2);
  int64_t five = 5, four = 4, three = 3, one = 1;
  int64_t oSizes[2] = {6, 4}, oStrides[2] = {4, 1};
  TensorArg args[4] = {{0x1000, 0, 1, &five, &one}, {0x2000, 0, 1, &four, &one},
                       {0x3000, 0, 1, &three, &one}, {0x4000, 0, 2, oSizes, oStrides}};
  LaunchPlan plan;
  EXPECT_FALSE(checkArgs(m, args, 4, plan, e));
  EXPECT_EQ(e, "argument 'q' axis 0 (i): expected 5 (= j), got 4");
  args[0].sizes = &four;
  ASSERT_TRUE(checkArgs(m, args, 4, plan, e)) << e;
  oSizes[0] = 8;
  EXPECT_FALSE(checkArgs(m, args, 4, plan, e));
  EXPECT_EQ(e, "argument 'o' axis 0 (h): expected 6 (= m * 2), got 8");
  std::string self = text;
  self.replace(self.find(R"("alias": "i")"), 12, R"("alias": "j")");
  EXPECT_FALSE(parseManifest(self, m, e));
  EXPECT_NE(e.find("must name another dim"), std::string::npos) << e;
}

// --- dtypes and packed (i4) arguments -------------------------------------------------------

TEST(DTypes, NamesAndBytes) {
  const std::pair<DType, const char *> names[] = {
      {DType::F32, "f32"}, {DType::F16, "f16"},       {DType::BF16, "bf16"}, {DType::I32, "i32"},
      {DType::I8, "i8"},   {DType::F8E4M3, "f8e4m3"}, {DType::I4, "i4"}};
  for (auto [t, name] : names)
    EXPECT_STREQ(dtypeName(t), name);
  EXPECT_EQ(dtypeBytes(DType::F32), 4);
  EXPECT_EQ(dtypeBytes(DType::I32), 4);
  EXPECT_EQ(dtypeBytes(DType::BF16), 2);
  EXPECT_EQ(dtypeBytes(DType::I8), 1);
  EXPECT_EQ(dtypeBytes(DType::F8E4M3), 1);
  EXPECT_EQ(dtypeBytes(DType::I4), 1);  // the byte holding two values: strides count bytes
  // The C ABI's numbering is the manifest's.
  EXPECT_EQ(int(ATTNC_I8), int(DType::I8));
  EXPECT_EQ(int(ATTNC_F8E4M3), int(DType::F8E4M3));
  EXPECT_EQ(int(ATTNC_I4), int(DType::I4));
}

namespace {

// Quantised keys and values: k i4 (two values per byte along d), v f8e4m3, their scales i8 and
// f32; d dynamic, so that its extent comes from the arguments.
const char *kQuantManifest = R"({
  "format": "attnc-kernel-manifest/1", "variant": "quant", "entry": "quant", "arch": "sm_80",
  "block": [128, 1, 1], "grid": [{"ceil_div": ["i", 64]}, {"dim": "h"}, {"dim": "b"}],
  "dynamic_shared_memory": 0,
  "dims": [
    {"name": "b", "role": "batch"}, {"name": "h", "role": "q_head"}, {"name": "i", "role": "q_seq"},
    {"name": "j", "role": "kv_seq"}, {"name": "d", "role": "head_dim"}
  ],
  "args": [
    {"name": "q", "kind": "input", "dtype": "bf16", "dims": ["b", "h", "i", "d"],
     "storage_dims": ["b", "i", "h", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "k", "kind": "input", "dtype": "i4", "packed": 2, "dims": ["b", "h", "j", "d"],
     "storage_dims": ["b", "j", "h", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "v", "kind": "input", "dtype": "f8e4m3", "dims": ["b", "h", "j", "d"],
     "storage_dims": ["b", "j", "h", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "k_zero", "kind": "param", "dtype": "i8", "dims": ["h"], "storage_dims": ["h"],
     "unit_stride_last": false, "alignment": 1, "row_alignment": 0},
    {"name": "o", "kind": "output", "dtype": "bf16", "dims": ["b", "h", "i", "d"],
     "storage_dims": ["b", "i", "h", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16}
  ]
})";

class PackedTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(parseManifest(kQuantManifest, m, error)) << error;
    tensors = {
        Tensor(DType::BF16, {B, H, I, D}, kBIHD, 0x100000),       // q
        Tensor(DType::I4, {B, H, J, D / 2}, kBIHD, 0x200000),     // k: 64 bytes per row
        Tensor(DType::F8E4M3, {B, H, J, D}, kBIHD, 0x300000),     // v
        Tensor(DType::I8, {H}, {0}, 0x400001),                    // k_zero: 1-byte aligned
        Tensor(DType::BF16, {B, H, I, D}, kBIHD, 0x500000),       // o
    };
  }
  bool check(std::string &error) {
    std::vector<TensorArg> args;
    for (const Tensor &t : tensors)
      args.push_back(t.arg());
    return checkArgs(m, args.data(), args.size(), plan, error);
  }
  std::string error() {
    std::string e;
    EXPECT_FALSE(check(e));
    return e;
  }

  static constexpr int64_t B = 2, H = 4, I = 3, J = 40, D = 128;
  Manifest m;
  std::vector<Tensor> tensors;
  LaunchPlan plan;
  enum { Q, K, V, KZero, O };
};

}  // namespace

TEST_F(PackedTest, ManifestFields) {
  EXPECT_EQ(m.args[K].dtype, DType::I4);
  EXPECT_EQ(m.args[K].packed, 2);
  EXPECT_EQ(m.args[Q].packed, 1);
  EXPECT_EQ(m.args[V].dtype, DType::F8E4M3);
  EXPECT_EQ(m.args[KZero].dtype, DType::I8);
  EXPECT_EQ(parseError(replaced(kQuantManifest, "\"dtype\": \"i4\", \"packed\": 2,", "\"dtype\": \"i4\",")),
            "manifest: missing field 'args[1].packed'");
  EXPECT_EQ(parseError(replaced(kQuantManifest, "\"packed\": 2", "\"packed\": 4")),
            "manifest: field 'args[1].packed' must be 2 for dtype i4, got 4");
  EXPECT_EQ(parseError(replaced(kQuantManifest, "\"dtype\": \"f8e4m3\",", "\"dtype\": \"f8e4m3\", \"packed\": 2,")),
            "manifest: field 'args[2].packed' must be 1 for dtype f8e4m3, got 2");
  EXPECT_EQ(parseError(replaced(kQuantManifest, "\"dtype\": \"i8\", \"dims\": [\"h\"], \"storage_dims\": [\"h\"]",
                                "\"dtype\": \"i4\", \"packed\": 2, \"dims\": [], \"storage_dims\": []")),
            "manifest: field 'args[3].packed' needs an axis to pack, but the argument has rank 0");
}

TEST_F(PackedTest, PackedAxisCountsBytes) {
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.dimSizes[size_t(m.dimIndex("d"))], D);  // 64 bytes of k hold 128 values
  // Strides are in bytes: a k row of 64 bytes, 16-byte aligned rows.
  EXPECT_EQ(tensors[K].strides, (std::vector<int64_t>{J * H * 64, 64, H * 64, 1}));
  tensors[K].strides[2] = H * 64 + 8;  // rows padded by 8 bytes: not 16-byte aligned
  EXPECT_EQ(error(), "argument 'k' axis 2 (j): stride 264 is 264 bytes, not a multiple of 16 (row alignment)");
}

TEST_F(PackedTest, WrongPackedSize) {
  tensors[K].sizes[3] = D;  // the caller passed values, not bytes
  EXPECT_EQ(error(), "argument 'k' axis 3 (d): expected 64 bytes = 128 (as in argument 'q' axis 3) values "
                     "at 2 i4 values per byte, got 128 bytes");
  tensors[K].sizes[3] = D / 2 - 1;
  EXPECT_EQ(error(), "argument 'k' axis 3 (d): expected 64 bytes = 128 (as in argument 'q' axis 3) values "
                     "at 2 i4 values per byte, got 63 bytes");
  Manifest fixed;
  std::string e;
  ASSERT_TRUE(parseManifest(replaced(kQuantManifest, "\"role\": \"head_dim\"}", "\"role\": \"head_dim\", \"static\": 128}"),
                            fixed, e)) << e;
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  EXPECT_FALSE(checkArgs(fixed, args.data(), args.size(), plan, e));
  EXPECT_EQ(e, "argument 'k' axis 3 (d): expected 64 bytes = 128 (fixed by the spec) values at 2 i4 "
               "values per byte, got 63 bytes");
}

TEST_F(PackedTest, OddExtent) {
  for (Tensor *t : {&tensors[Q], &tensors[V], &tensors[O]})
    *t = Tensor(t->dtype, {B, H, t == &tensors[V] ? J : I, 127}, kBIHD, t->data);
  EXPECT_EQ(error(), "argument 'k' axis 3 (d): holds 2 i4 values per byte, so the extent must be a multiple "
                     "of 2, but it is 127 (as in argument 'q' axis 3)");
}

TEST_F(PackedTest, PackedArgumentBindsTheDim) {
  // With k first, d is bound to 2 * its bytes; a later disagreement names k's bytes.
  std::swap(tensors[Q], tensors[K]);
  Manifest kFirst;
  std::string text = kQuantManifest, e;
  size_t q = text.find("{\"name\": \"q\""), k = text.find("{\"name\": \"k\""), v = text.find("{\"name\": \"v\"");
  std::string qEntry = text.substr(q, k - q), kEntry = text.substr(k, v - k);
  text.replace(q, v - q, kEntry + qEntry);
  ASSERT_TRUE(parseManifest(text, kFirst, e)) << e;
  tensors[K].sizes[3] = 126;  // q (now second) with d = 126
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  EXPECT_FALSE(checkArgs(kFirst, args.data(), args.size(), plan, e));
  EXPECT_EQ(e, "argument 'q' axis 3 (d): expected 128 (as in argument 'k' axis 3, 64 bytes of i4), got 126");
}

// --- split-KV -------------------------------------------------------------------------------

namespace {

// GQA decoding with FlashDecoding-style splits: 4 query heads share a block (rows = i * 4), the
// grid's x axis repeats per split, a combine kernel reduces the splits.
const char *kSplitManifest = R"({
  "format": "attnc-kernel-manifest/1", "variant": "gqa_decode", "entry": "gqa_decode", "arch": "sm_80",
  "block": [128, 1, 1],
  "grid": [{"ceil_div": ["i", 64], "scale": 4, "splits": true}, {"dim": "hk"}, {"dim": "b"}],
  "dynamic_shared_memory": 49152,
  "split_kv": {
    "combine_entry": "gqa_decode_combine",
    "combine_block": [128, 1, 1],
    "combine_grid": [{"dim": "i"}, {"dim": "h"}, {"dim": "b"}],
    "max_splits": 128,
    "splits": 0,
    "block_k": 64,
    "min_tiles_per_split": 2
  },
  "dims": [
    {"name": "b",  "role": "batch"},
    {"name": "h",  "role": "q_head"},
    {"name": "hk", "role": "kv_head", "derived": {"source": "h", "divisor": 4}},
    {"name": "i",  "role": "q_seq"},
    {"name": "j",  "role": "kv_seq"},
    {"name": "d",  "role": "head_dim", "static": 128},
    {"name": "dv", "role": "value_dim", "static": 128}
  ],
  "args": [
    {"name": "q", "kind": "input", "dtype": "bf16", "dims": ["b", "h", "i", "d"],
     "storage_dims": ["b", "i", "h", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "k", "kind": "input", "dtype": "bf16", "dims": ["b", "hk", "j", "d"],
     "storage_dims": ["b", "j", "hk", "d"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "v", "kind": "input", "dtype": "bf16", "dims": ["b", "hk", "j", "dv"],
     "storage_dims": ["b", "j", "hk", "dv"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "o", "kind": "output", "dtype": "bf16", "dims": ["b", "h", "i", "dv"],
     "storage_dims": ["b", "i", "h", "dv"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
    {"name": "lse", "kind": "lse", "dtype": "f32", "dims": ["b", "h", "i"], "storage_dims": ["b", "h", "i"],
     "unit_stride_last": true, "alignment": 4, "row_alignment": 0}
  ]
})";

class SplitTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(parseManifest(kSplitManifest, m, error)) << error;
    setShape(1, 32, 1, 32768);
  }
  void setShape(int64_t b, int64_t h, int64_t i, int64_t j) {
    tensors = {
        Tensor(DType::BF16, {b, h, i, 128}, kBIHD, 0x100000),      // q
        Tensor(DType::BF16, {b, h / 4, j, 128}, kBIHD, 0x200000),  // k
        Tensor(DType::BF16, {b, h / 4, j, 128}, kBIHD, 0x300000),  // v
        Tensor(DType::BF16, {b, h, i, 128}, kBIHD, 0x500000),      // o
        Tensor(DType::F32, {b, h, i}, {0, 1, 2}, 0x600000),        // lse
    };
  }
  bool check(std::string &error) {
    std::vector<TensorArg> args;
    for (const Tensor &t : tensors)
      args.push_back(t.arg());
    return checkArgs(m, args.data(), args.size(), plan, error);
  }

  Manifest m;
  std::vector<Tensor> tensors;
  LaunchPlan plan;
};

}  // namespace

TEST_F(SplitTest, ParsesSplitKV) {
  ASSERT_TRUE(m.splitKV);
  const SplitKV &s = *m.splitKV;
  EXPECT_EQ(s.combineEntry, "gqa_decode_combine");
  EXPECT_EQ(s.combineBlock, (std::array<uint32_t, 3>{128, 1, 1}));
  EXPECT_EQ(s.combineGrid[1].dim, m.dimIndex("h"));
  EXPECT_EQ(s.maxSplits, 128);
  EXPECT_EQ(s.splits, 0);
  EXPECT_EQ(s.blockK, 64);
  EXPECT_EQ(s.minTilesPerSplit, 2);
  EXPECT_EQ(s.batch, m.dimIndex("b"));
  EXPECT_EQ(s.qHead, m.dimIndex("h"));
  EXPECT_EQ(s.qSeq, m.dimIndex("i"));
  EXPECT_EQ(s.valueDim, m.dimIndex("dv"));
  EXPECT_EQ(s.kvSeq, m.dimIndex("j"));
  EXPECT_EQ(s.outputArg, 3);
  EXPECT_EQ(s.lseArg, 4);
  EXPECT_EQ(m.grid[0].scale, 4);
  EXPECT_TRUE(m.grid[0].splits);
  EXPECT_EQ(m.grid[1].scale, 1);
  EXPECT_FALSE(m.grid[1].splits);
  // splits and min_tiles_per_split are optional.
  Manifest defaults;
  std::string e;
  ASSERT_TRUE(parseManifest(replaced(replaced(kSplitManifest, "\"splits\": 0,", ""), ",\n    \"min_tiles_per_split\": 2", ""),
                            defaults, e)) << e;
  EXPECT_EQ(defaults.splitKV->splits, 0);
  EXPECT_EQ(defaults.splitKV->minTilesPerSplit, 1);
  EXPECT_FALSE(defaults.splitKV->combineTakesArguments);
  // A merge that applies an output expression takes the main kernel's arguments.
  Manifest mapped;
  ASSERT_TRUE(parseManifest(replaced(kSplitManifest, "\"min_tiles_per_split\": 2",
                                     "\"min_tiles_per_split\": 2, \"combine_takes_arguments\": true"),
                            mapped, e)) << e;
  EXPECT_TRUE(mapped.splitKV->combineTakesArguments);
  // Without split_kv there is none.
  Manifest plain;
  ASSERT_TRUE(parseManifest(kManifest, plain, e)) << e;
  EXPECT_FALSE(plain.splitKV);
}

/// kManifest with a block plan: its kernel over (query tiles, 1, batch).
std::string planManifest(const std::string &plan = R"("block_plan": {"entry": "alibi_plan",
    "block": [256, 1, 1], "grid": [{"ceil_div": ["i", 64]}, {"blocks": 1}, {"dim": "b"}]},)") {
  return replaced(kManifest, "\"tile\": {", plan + "\n  \"tile\": {");
}

/// Arguments of kManifest's kernel: b 2, h 8 (hk 2), i 77, j 65.
std::vector<Tensor> planTensors() {
  return {Tensor(DType::BF16, {2, 8, 77, 128}, {0, 2, 1, 3}, 0x100000),
          Tensor(DType::BF16, {2, 2, 65, 128}, {0, 2, 1, 3}, 0x200000),
          Tensor(DType::BF16, {2, 2, 65, 128}, {0, 2, 1, 3}, 0x300000),
          Tensor(DType::F32, {8}, {0}, 0x400000),
          Tensor(DType::BF16, {2, 8, 77, 128}, {0, 2, 1, 3}, 0x500000),
          Tensor(DType::F32, {2, 8, 77}, {0, 1, 2}, 0x600000)};
}

TEST(Manifest, BlockPlan) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(planManifest(), m, error)) << error;
  ASSERT_TRUE(m.blockPlan);
  EXPECT_EQ(m.blockPlan->entry, "alibi_plan");
  EXPECT_EQ(m.blockPlan->block, (std::array<uint32_t, 3>{256, 1, 1}));
  EXPECT_EQ(m.blockPlan->grid[1].dim, -1);
  EXPECT_EQ(m.blockPlan->grid[1].blocks, 1);
  EXPECT_EQ(m.blockPlan->grid[2].dim, m.dimIndex("b"));
  EXPECT_EQ(parseError(planManifest(R"("block_plan": {"entry": "alibi", "block": [256, 1, 1],
      "grid": [{"dim": "i"}, {"blocks": 1}, {"dim": "b"}]},)")),
            "manifest: field 'block_plan.entry' must be a PTX symbol name of its own, got 'alibi'");
  EXPECT_EQ(parseError(planManifest(R"("block_plan": {"entry": "p", "block": [256, 1, 1],
      "grid": [{"dim": "i"}, {"blocks": 0}, {"dim": "b"}]},)")),
            "manifest: field 'block_plan.grid[1].blocks' must be in [1, 65535], got 0");
  EXPECT_EQ(parseError(planManifest(R"("block_plan": {"entry": "p", "block": [256, 1, 1]},)")),
            "manifest: missing field 'block_plan.grid'");
  EXPECT_EQ(parseError(planManifest(R"("block_plan": [],)")),
            "manifest: field 'block_plan' must be an object, got array");
}

/// kManifest with TMA descriptors (attn-gpu-tensor-copies): of k and v, boxes of 64 x 64.
std::string mapsManifest(const std::string &maps = R"("tensor_maps": [{"arg": "k", "box": [64, 64]},
    {"arg": "v", "box": [64, 64]}],)") {
  return replaced(kManifest, "\"tile\": {", maps + "\n  \"tile\": {");
}

TEST(Manifest, TensorMaps) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(mapsManifest(), m, error)) << error;
  ASSERT_EQ(m.tensorMaps.size(), 2u);
  EXPECT_EQ(m.tensorMaps[0].arg, 1);
  EXPECT_EQ(m.tensorMaps[1].arg, 2);
  EXPECT_EQ(m.tensorMaps[1].rows, 64);
  EXPECT_EQ(m.tensorMaps[1].columns, 64);
  Manifest plain;
  ASSERT_TRUE(parseManifest(kManifest, plain, error)) << error;
  EXPECT_TRUE(plain.tensorMaps.empty());
  EXPECT_EQ(parseError(mapsManifest(R"("tensor_maps": [{"arg": "kk", "box": [64, 64]}],)")),
            "manifest: field 'tensor_maps[0].arg' names no argument: 'kk' (arguments: q, k, v, "
            "slope, o, lse)");
  EXPECT_EQ(parseError(mapsManifest(R"("tensor_maps": [{"arg": "slope", "box": [64, 64]}],)")),
            "manifest: field 'tensor_maps[0].arg' must name a rank-4 f16/bf16 input with a "
            "contiguous last axis, got 'slope'");
  EXPECT_EQ(parseError(mapsManifest(R"("tensor_maps": [{"arg": "k", "box": [512, 64]}],)")),
            "manifest: field 'tensor_maps[0].box[0]' must be in [1, 256], got 512");
  EXPECT_EQ(parseError(mapsManifest(R"("tensor_maps": [{"arg": "k", "box": [64, 32]}],)")),
            "manifest: field 'tensor_maps[0].box[1]' must be in [64, 64], got 32");
  EXPECT_EQ(parseError(mapsManifest(R"("tensor_maps": [{"arg": "k", "box": [64]}],)")),
            "manifest: field 'tensor_maps[0].box' must be [rows, columns]");
  EXPECT_EQ(parseError(mapsManifest(R"("tensor_maps": {"arg": "k"},)")),
            "manifest: field 'tensor_maps' must be an array, got object");
}

/// The plan's grid and its i32 [b, 1, query tiles, 5] entries in the workspace.
TEST(Manifest, BlockPlanLaunch) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(planManifest(), m, error)) << error;
  std::vector<Tensor> tensors = planTensors();
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  LaunchPlan plan;
  ASSERT_TRUE(checkArgs(m, args.data(), args.size(), plan, error)) << error;
  EXPECT_EQ(plan.planGrid, (std::array<uint32_t, 3>{2, 1, 2}));
  EXPECT_EQ(plan.blockPlan.sizes, (std::vector<int64_t>{2, 1, 2, 5}));
  EXPECT_EQ(plan.blockPlan.strides, (std::vector<int64_t>{10, 10, 5, 1}));
  EXPECT_EQ(plan.blockPlan.offset, 0);
  EXPECT_EQ(plan.workspaceBytes, 80);
}

TEST(Manifest, GridScaleAndSplitsErrors) {
  const std::string axis = "{\"ceil_div\": [\"i\", 64], \"scale\": 4, \"splits\": true}";
  EXPECT_EQ(parseError(replaced(kSplitManifest, axis, "{\"ceil_div\": [\"i\", 64], \"scale\": 0}")),
            "manifest: field 'grid[0].scale' must be in [1, 2147483647], got 0");
  EXPECT_EQ(parseError(replaced(kSplitManifest, axis, "{\"dim\": \"i\", \"scale\": \"4\"}")),
            "manifest: field 'grid[0].scale' must be an integer, got string");
  EXPECT_EQ(parseError(replaced(kSplitManifest, axis, "{\"dim\": \"i\", \"splits\": 1}")),
            "manifest: field 'grid[0].splits' must be true or false, got number");
  EXPECT_EQ(parseError(replaced(kManifest, "{\"dim\": \"b\"}", "{\"dim\": \"b\", \"splits\": true}")),
            "manifest: field 'grid[2].splits' is true, but the manifest has no split_kv");
  // "splits": false is allowed anywhere.
  Manifest m;
  std::string e;
  EXPECT_TRUE(parseManifest(replaced(kManifest, "{\"dim\": \"b\"}", "{\"dim\": \"b\", \"splits\": false}"), m, e)) << e;
}

TEST(Manifest, SplitKVErrors) {
  auto without = [](const std::string &field) { return replaced(kSplitManifest, field, ""); };
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"split_kv\": {", "\"split_kv\": 1, \"x\": {")),
            "manifest: field 'split_kv' must be an object, got number");
  EXPECT_EQ(parseError(without("\"combine_entry\": \"gqa_decode_combine\",")),
            "manifest: missing field 'split_kv.combine_entry'");
  EXPECT_EQ(parseError(without("\"combine_block\": [128, 1, 1],")),
            "manifest: missing field 'split_kv.combine_block'");
  EXPECT_EQ(parseError(without("\"combine_grid\": [{\"dim\": \"i\"}, {\"dim\": \"h\"}, {\"dim\": \"b\"}],")),
            "manifest: missing field 'split_kv.combine_grid'");
  EXPECT_EQ(parseError(without("\"max_splits\": 128,")), "manifest: missing field 'split_kv.max_splits'");
  EXPECT_EQ(parseError(without("\"block_k\": 64,")), "manifest: missing field 'split_kv.block_k'");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"max_splits\": 128", "\"max_splits\": 0")),
            "manifest: field 'split_kv.max_splits' must be in [1, 65535], got 0");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"splits\": 0,", "\"splits\": 200,")),
            "manifest: field 'split_kv.splits' must be in [0, 128], got 200");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"block_k\": 64", "\"block_k\": 0")),
            "manifest: field 'split_kv.block_k' must be in [1, 2147483647], got 0");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"min_tiles_per_split\": 2", "\"min_tiles_per_split\": -1")),
            "manifest: field 'split_kv.min_tiles_per_split' must be in [1, 2147483647], got -1");
  EXPECT_NE(parseError(replaced(kSplitManifest, "\"min_tiles_per_split\": 2",
                                "\"min_tiles_per_split\": 2, \"combine_takes_arguments\": 1"))
                .find("split_kv.combine_takes_arguments"),
            std::string::npos);
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"combine_block\": [128, 1, 1]", "\"combine_block\": [128, 1]")),
            "manifest: field 'split_kv.combine_block' must have 3 entries (x, y, z), got 2");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"combine_block\": [128, 1, 1]", "\"combine_block\": [0, 1, 1]")),
            "manifest: field 'split_kv.combine_block[0]' must be in [1, 1024], got 0");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"combine_block\": [128, 1, 1]", "\"combine_block\": [512, 4, 1]")),
            "manifest: field 'split_kv.combine_block' asks for 2048 threads per block, over CUDA's limit of 1024");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"combine_block\": [128, 1, 1]", "\"combine_block\": \"128\"")),
            "manifest: field 'split_kv.combine_block' must be an array, got string");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"combine_entry\": \"gqa_decode_combine\"", "\"combine_entry\": \"gqa_decode\"")),
            "manifest: field 'split_kv.combine_entry' must differ from entry 'gqa_decode'");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"combine_entry\": \"gqa_decode_combine\"", "\"combine_entry\": \"a-b\"")),
            "manifest: field 'split_kv.combine_entry' must be a PTX symbol name, got 'a-b'");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "[{\"dim\": \"i\"}, {\"dim\": \"h\"}, {\"dim\": \"b\"}]",
                                "[{\"dim\": \"i\"}, {\"dim\": \"x\"}, {\"dim\": \"b\"}]")),
            "manifest: field 'split_kv.combine_grid[1]' names unknown dim 'x'");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"role\": \"q_seq\"", "\"role\": \"query\"")),
            "manifest: field 'split_kv' needs a dim with role 'q_seq' (the workspace is [splits, batch, "
            "q_head, q_seq, value_dim])");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"role\": \"kv_seq\"", "\"role\": \"batch\"")),
            "manifest: field 'split_kv' needs one dim with role 'batch', but 'b' and 'j' have it");
  EXPECT_EQ(parseError(replaced(kSplitManifest, "\"kind\": \"lse\"", "\"kind\": \"output\"")),
            "manifest: field 'split_kv' needs one argument of kind output, got 'o' and 'lse'");
}

TEST_F(SplitTest, GridWithScaleAndSplits) {
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  // checkArgs plans one split: x = ceil(1 * 4 / 64) = 1, y = hk = 8, z = b = 1.
  EXPECT_EQ(plan.splits, 1);
  EXPECT_EQ(plan.baseGrid, (std::array<uint32_t, 3>{1, 8, 1}));
  EXPECT_EQ(plan.grid, plan.baseGrid);
  EXPECT_EQ(plan.combineGrid, (std::array<uint32_t, 3>{1, 32, 1}));
  EXPECT_EQ(plan.combineBlock, (std::array<uint32_t, 3>{128, 1, 1}));
  // Scale: 20 query rows of 4 heads each are 80 rows, two blocks of 64.
  setShape(2, 32, 20, 100);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.baseGrid, (std::array<uint32_t, 3>{2, 8, 2}));
  ASSERT_TRUE(applySplits(m, 2, plan, e)) << e;
  EXPECT_EQ(plan.grid, (std::array<uint32_t, 3>{4, 8, 2}));  // x times the splits
  EXPECT_EQ(plan.baseGrid, (std::array<uint32_t, 3>{2, 8, 2}));
  EXPECT_EQ(plan.combineGrid, (std::array<uint32_t, 3>{20, 32, 2}));
}

TEST_F(SplitTest, Workspace) {
  setShape(2, 8, 3, 1000);
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  ASSERT_TRUE(applySplits(m, 5, plan, e)) << e;
  EXPECT_EQ(plan.splits, 5);
  EXPECT_EQ(plan.oPartial.sizes, (std::vector<int64_t>{5, 2, 8, 3, 128}));
  EXPECT_EQ(plan.oPartial.strides, (std::vector<int64_t>{2 * 8 * 3 * 128, 8 * 3 * 128, 3 * 128, 128, 1}));
  EXPECT_EQ(plan.oPartial.offset, 0);
  EXPECT_EQ(plan.oPartial.bytes, 5 * 2 * 8 * 3 * 128 * 4);
  EXPECT_EQ(plan.lsePartial.sizes, (std::vector<int64_t>{5, 2, 8, 3}));
  EXPECT_EQ(plan.lsePartial.strides, (std::vector<int64_t>{48, 24, 3, 1}));
  EXPECT_EQ(plan.lsePartial.offset, 5 * 2 * 8 * 3 * 128 * 4);  // already a multiple of 256
  EXPECT_EQ(plan.lsePartial.bytes, 5 * 48 * 4);
  EXPECT_EQ(plan.workspaceBytes, plan.lsePartial.offset + plan.lsePartial.bytes);
  // A small o_partial (dv = 8, 384 bytes) leaves lse_partial 256-byte aligned after it.
  Manifest small;
  ASSERT_TRUE(parseManifest(replaced(kSplitManifest, "\"value_dim\", \"static\": 128", "\"value_dim\""), small, e)) << e;
  tensors = {Tensor(DType::BF16, {1, 4, 1, 128}, kBIHD, 0x100000), Tensor(DType::BF16, {1, 1, 10, 128}, kBIHD, 0x200000),
             Tensor(DType::BF16, {1, 1, 10, 8}, kBIHD, 0x300000), Tensor(DType::BF16, {1, 4, 1, 8}, kBIHD, 0x500000),
             Tensor(DType::F32, {1, 4, 1}, {0, 1, 2}, 0x600000)};
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  ASSERT_TRUE(checkArgs(small, args.data(), args.size(), plan, e)) << e;
  ASSERT_TRUE(applySplits(small, 3, plan, e)) << e;
  EXPECT_EQ(plan.oPartial.bytes, 3 * 4 * 8 * 4);
  EXPECT_EQ(plan.lsePartial.offset, 512);
  EXPECT_EQ(plan.workspaceBytes, 512 + 3 * 4 * 4);
}

TEST(SplitHeuristic, FillsTheGPU) {
  // H100: 132 SMs. Decoding b = 1 with hk = 8 (GQA packing: one block per kv head) over 32k keys:
  // 8 blocks, 512 key tiles of 64. About 1.5 blocks per SM: round(1.5 * 132 / 8) = 25 splits of
  // 21 tiles (the sweep's best region was 16-32).
  EXPECT_EQ(splitHeuristic(8, 512, 128, 2, 132), 25);
  // max_splits bounds it.
  EXPECT_EQ(splitHeuristic(8, 512, 16, 2, 132), 16);
  // A full wave does not split: b = 32 x hk = 8, prefill-like grids, >= one block per SM.
  EXPECT_EQ(splitHeuristic(32 * 8, 512, 128, 2, 132), 1);
  EXPECT_EQ(splitHeuristic(132, 512, 128, 2, 132), 1);
  // b = 8 x hk = 8: 64 blocks, 3 splits (the sweep's best was 4 of 4..128).
  EXPECT_EQ(splitHeuristic(64, 128, 128, 2, 132), 3);
  EXPECT_EQ(splitHeuristic(106, 512, 128, 2, 132), 2);
  // Few keys bound it: 4 tiles with at least 2 per split allow 2 splits; 1 tile allows none.
  EXPECT_EQ(splitHeuristic(8, 4, 128, 2, 132), 2);
  EXPECT_EQ(splitHeuristic(8, 1, 128, 2, 132), 1);
  EXPECT_EQ(splitHeuristic(8, 0, 128, 2, 132), 1);
  // 40 tiles, 1 per split allowed: 25 splits leave some splits 2 tiles; 20 give every split 2.
  EXPECT_EQ(splitHeuristic(8, 40, 128, 1, 132), 20);
  // Unknown kv_len: max_splits bounds it alone.
  EXPECT_EQ(splitHeuristic(8, -1, 128, 2, 132), 25);
  EXPECT_EQ(splitHeuristic(8, -1, 16, 2, 132), 16);
  // Degenerate inputs.
  EXPECT_EQ(splitHeuristic(0, 512, 128, 2, 132), 1);
  EXPECT_EQ(splitHeuristic(8, 512, 128, 2, 0), 1);  // one SM: already full
}

TEST_F(SplitTest, ChooseSplits) {
  std::string e;
  ASSERT_TRUE(check(e)) << e;  // b 1, h 32 (hk 8), 1 query, 32k keys: 512 tiles
  EXPECT_EQ(chooseSplits(m, plan, 0, 132), 25);
  EXPECT_EQ(chooseSplits(m, plan, 7, 132), 7);      // the runtime override
  EXPECT_EQ(chooseSplits(m, plan, 1000, 132), 128);  // clamped to max_splits
  // b = 32, h = 32: the grid fills the GPU.
  setShape(32, 32, 1, 32768);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(chooseSplits(m, plan, 0, 132), 1);
  // Short keys clamp even the override: 130 keys are 3 tiles.
  setShape(1, 32, 1, 130);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(chooseSplits(m, plan, 0, 132), 1);  // 3 tiles / 2 per split
  EXPECT_EQ(chooseSplits(m, plan, 8, 132), 3);
  setShape(1, 32, 1, 0);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(chooseSplits(m, plan, 8, 132), 1);  // no keys: one split writes o = 0, lse = -inf
  // The manifest's splits win over the override, clamped the same way.
  Manifest fixed;
  ASSERT_TRUE(parseManifest(replaced(kSplitManifest, "\"splits\": 0,", "\"splits\": 16,"), fixed, e)) << e;
  setShape(1, 32, 1, 32768);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(chooseSplits(fixed, plan, 0, 132), 16);
  EXPECT_EQ(chooseSplits(fixed, plan, 4, 132), 16);
  setShape(1, 32, 1, 300);  // 5 tiles
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(chooseSplits(fixed, plan, 0, 132), 5);
  // Without split_kv: always 1.
  Manifest plain;
  ASSERT_TRUE(parseManifest(kManifest, plain, e)) << e;
  EXPECT_EQ(chooseSplits(plain, plan, 8, 132), 1);
}

TEST_F(SplitTest, SplitsStayWithinGridLimits) {
  // Splits on the z axis (limit 65535) with b = 1000: at most 65 splits.
  Manifest z;
  std::string e;
  ASSERT_TRUE(parseManifest(replaced(replaced(kSplitManifest, "\"scale\": 4, \"splits\": true}", "\"scale\": 4}"),
                                     "{\"dim\": \"hk\"}, {\"dim\": \"b\"}]",
                                     "{\"dim\": \"hk\"}, {\"dim\": \"b\", \"splits\": true}]"),
                            z, e)) << e;
  setShape(1000, 4, 1, 32768);
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  ASSERT_TRUE(checkArgs(z, args.data(), args.size(), plan, e)) << e;
  EXPECT_EQ(chooseSplits(z, plan, 100, 132), 65);
  EXPECT_FALSE(applySplits(z, 100, plan, e));
  EXPECT_EQ(e, "launch grid z = 100000 (b * splits, b = 1000, splits = 100) exceeds CUDA's limit of 65535");
}

TEST(SplitKV, PagedVariantRoles) {
  // Paged KV: k and v are a pool of pages (roles kv_page and page_slot, unknown to the runtime
  // but accepted); kv_seq is in no argument, so only max_splits bounds the splits.
  const char *text = R"({"format": "attnc-kernel-manifest/1", "variant": "paged", "entry": "paged",
    "arch": "sm_80", "block": [128, 1, 1], "dynamic_shared_memory": 0,
    "grid": [{"ceil_div": ["i", 64], "scale": 4, "splits": true}, {"dim": "hk"}, {"dim": "b"}],
    "split_kv": {"combine_entry": "paged_combine", "combine_block": [128, 1, 1],
                 "combine_grid": [{"dim": "i"}, {"dim": "h"}, {"dim": "b"}],
                 "max_splits": 16, "block_k": 64},
    "dims": [{"name": "b", "role": "batch"}, {"name": "h", "role": "q_head"},
             {"name": "hk", "role": "kv_head", "derived": {"source": "h", "divisor": 4}},
             {"name": "i", "role": "q_seq"}, {"name": "j", "role": "kv_seq"},
             {"name": "p", "role": "kv_page"}, {"name": "s", "role": "page_slot", "static": 16},
             {"name": "n", "role": "page_index"},
             {"name": "d", "role": "head_dim", "static": 64}, {"name": "dv", "role": "value_dim", "static": 64}],
    "args": [
      {"name": "q", "kind": "input", "dtype": "bf16", "dims": ["b", "h", "i", "d"], "storage_dims": ["b", "i", "h", "d"],
       "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
      {"name": "k", "kind": "input", "dtype": "bf16", "dims": ["p", "hk", "s", "d"], "storage_dims": ["p", "s", "hk", "d"],
       "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
      {"name": "v", "kind": "input", "dtype": "bf16", "dims": ["p", "hk", "s", "dv"], "storage_dims": ["p", "s", "hk", "dv"],
       "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
      {"name": "block_table", "kind": "param", "dtype": "i32", "dims": ["b", "n"], "storage_dims": ["b", "n"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "seq_len", "kind": "param", "dtype": "i32", "dims": ["b"], "storage_dims": ["b"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0},
      {"name": "o", "kind": "output", "dtype": "bf16", "dims": ["b", "h", "i", "dv"], "storage_dims": ["b", "i", "h", "dv"],
       "unit_stride_last": true, "alignment": 16, "row_alignment": 16},
      {"name": "lse", "kind": "lse", "dtype": "f32", "dims": ["b", "h", "i"], "storage_dims": ["b", "h", "i"],
       "unit_stride_last": true, "alignment": 4, "row_alignment": 0}]})";
  Manifest m;
  std::string e;
  ASSERT_TRUE(parseManifest(text, m, e)) << e;
  EXPECT_EQ(m.dims[size_t(m.dimIndex("p"))].role, "kv_page");
  EXPECT_EQ(m.splitKV->kvSeq, m.dimIndex("j"));
  Tensor q(DType::BF16, {2, 8, 1, 64}, kBIHD, 0x10000), k(DType::BF16, {100, 2, 16, 64}, kBIHD, 0x20000),
      v(DType::BF16, {100, 2, 16, 64}, kBIHD, 0x30000), table(DType::I32, {2, 10}, {0, 1}, 0x40000),
      len(DType::I32, {2}, {0}, 0x50000), o(DType::BF16, {2, 8, 1, 64}, kBIHD, 0x60000),
      lse(DType::F32, {2, 8, 1}, {0, 1, 2}, 0x70000);
  std::vector<TensorArg> args;
  for (const Tensor *t : {&q, &k, &v, &table, &len, &o, &lse})
    args.push_back(t->arg());
  LaunchPlan plan;
  ASSERT_TRUE(checkArgs(m, args.data(), args.size(), plan, e)) << e;
  EXPECT_EQ(plan.dimSizes[size_t(m.dimIndex("j"))], -1);
  EXPECT_EQ(plan.baseGrid, (std::array<uint32_t, 3>{1, 2, 2}));
  EXPECT_EQ(chooseSplits(m, plan, 0, 132), 16);   // 4 blocks: as many splits as allowed
  EXPECT_EQ(chooseSplits(m, plan, 40, 132), 16);  // the override, clamped to max_splits
  EXPECT_EQ(chooseSplits(m, plan, 3, 132), 3);
}

// --- C ABI ----------------------------------------------------------------------------------

namespace {

const char *kPtx = ".version 8.0\n.target sm_80\n.address_size 64\n"
                   ".visible .entry alibi(\n.param .u64 p0\n)\n{\nret;\n}\n";

attnc_rt_kernel *loadGood() {
  attnc_rt_kernel *k = nullptr;
  EXPECT_EQ(attnc_rt_load(kPtx, std::strlen(kPtx), kManifest, std::strlen(kManifest), &k), 0)
      << attnc_rt_last_error();
  return k;
}

}  // namespace

TEST(CAPI, LoadErrors) {
  attnc_rt_kernel *k = reinterpret_cast<attnc_rt_kernel *>(0x1);
  EXPECT_EQ(attnc_rt_load(kPtx, std::strlen(kPtx), kManifest, std::strlen(kManifest), nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_load: `out` is null");
  EXPECT_EQ(attnc_rt_load(nullptr, 0, kManifest, std::strlen(kManifest), &k), -1);
  EXPECT_EQ(k, nullptr);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_load: the PTX text is null or empty");
  EXPECT_EQ(attnc_rt_load(kPtx, std::strlen(kPtx), nullptr, 0, &k), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_load: the manifest text is null or empty");
  EXPECT_EQ(attnc_rt_load(kPtx, std::strlen(kPtx), "{}", 2, &k), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "manifest: missing field 'format'");
  const char *other = ".visible .entry alibi_causal(\n)\n{\nret;\n}\n";
  EXPECT_EQ(attnc_rt_load(other, std::strlen(other), kManifest, std::strlen(kManifest), &k), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "kernel 'alibi': the PTX has no '.entry alibi'");
}

TEST(CAPI, LoadKeepsTheManifest) {
  attnc_rt_kernel *k = loadGood();
  ASSERT_NE(k, nullptr);
  EXPECT_STREQ(attnc_rt_last_error(), "");
  EXPECT_STREQ(attnc_rt_manifest(k), kManifest);
  attnc_rt_release(k);
  // Lengths that count the NUL terminator are accepted too.
  ASSERT_EQ(attnc_rt_load(kPtx, std::strlen(kPtx) + 1, kManifest, std::strlen(kManifest), &k), 0)
      << attnc_rt_last_error();
  attnc_rt_release(k);
}

TEST(CAPI, NullHandles) {
  EXPECT_EQ(attnc_rt_launch(nullptr, nullptr, 0, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_launch: the kernel handle is null");
  EXPECT_EQ(attnc_rt_manifest(nullptr), nullptr);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_manifest: the kernel handle is null");
  attnc_rt_release(nullptr);
  EXPECT_STREQ(attnc_rt_last_error(), "");
}

TEST(CAPI, LaunchErrors) {
  attnc_rt_kernel *k = loadGood();
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(attnc_rt_launch(k, nullptr, 6, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "kernel 'alibi': the argument array is null");
  EXPECT_EQ(attnc_rt_launch(k, nullptr, -1, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_launch: nargs is negative (-1)");
  attnc_tensor one[1] = {};
  EXPECT_EQ(attnc_rt_launch(k, one, 1, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "kernel 'alibi': expected 6 arguments (q, k, v, slope, o, lse), got 1");
  attnc_rt_release(k);
}

TEST(CAPI, Splits) {
  EXPECT_EQ(attnc_rt_set_splits(nullptr, 4), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_set_splits: the kernel handle is null");
  EXPECT_EQ(attnc_rt_last_splits(nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_last_splits: the kernel handle is null");
  attnc_rt_kernel *k = loadGood();
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(attnc_rt_set_splits(k, 4), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "kernel 'alibi' has no split_kv");
  EXPECT_EQ(attnc_rt_set_splits(k, 0), -1);
  EXPECT_EQ(attnc_rt_last_splits(k), 0);  // before any launch
  EXPECT_STREQ(attnc_rt_last_error(), "");
  attnc_rt_release(k);

  // A split kernel's PTX must also hold the combine entry.
  const char *mainOnly = ".visible .entry gqa_decode(\n)\n{\nret;\n}\n";
  EXPECT_EQ(attnc_rt_load(mainOnly, std::strlen(mainOnly), kSplitManifest, std::strlen(kSplitManifest), &k), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "kernel 'gqa_decode': the PTX has no '.entry gqa_decode_combine'");
  const char *both = ".visible .entry gqa_decode(\n)\n{\nret;\n}\n"
                     ".visible .entry gqa_decode_combine(\n)\n{\nret;\n}\n";
  ASSERT_EQ(attnc_rt_load(both, std::strlen(both), kSplitManifest, std::strlen(kSplitManifest), &k), 0)
      << attnc_rt_last_error();
  EXPECT_EQ(attnc_rt_set_splits(k, -1), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "kernel 'gqa_decode': splits must be >= 0 (0: the heuristic), got -1");
  EXPECT_EQ(attnc_rt_set_splits(k, 8), 0);
  EXPECT_STREQ(attnc_rt_last_error(), "");
  EXPECT_EQ(attnc_rt_set_splits(k, 0), 0);
  // A launch with no work (q_len 0) launches nothing and leaves last_splits alone.
  Tensor q(DType::BF16, {1, 8, 0, 128}, kBIHD, 0), kk(DType::BF16, {1, 2, 5, 128}, kBIHD, 0x2000),
      v(DType::BF16, {1, 2, 5, 128}, kBIHD, 0x3000), o(DType::BF16, {1, 8, 0, 128}, kBIHD, 0),
      lse(DType::F32, {1, 8, 0}, {0, 1, 2}, 0);
  std::vector<attnc_tensor> args;
  for (const Tensor *t : {&q, &kk, &v, &o, &lse})
    args.push_back({reinterpret_cast<void *>(t->data), int32_t(t->dtype), int32_t(t->sizes.size()),
                    t->sizes.data(), t->strides.data()});
  EXPECT_EQ(attnc_rt_launch(k, args.data(), 5, nullptr), 0) << attnc_rt_last_error();
  EXPECT_EQ(attnc_rt_last_splits(k), 0);
  attnc_rt_release(k);
}

TEST(CAPI, ZeroSizeLaunchesNothing) {
  // i = 0: no work. Succeeds without touching CUDA, so also on machines without a driver.
  attnc_rt_kernel *k = loadGood();
  ASSERT_NE(k, nullptr);
  Tensor q(DType::BF16, {2, 8, 0, 128}, kBIHD, 0), kk(DType::BF16, {2, 2, 5, 128}, kBIHD, 0x2000),
      v(DType::BF16, {2, 2, 5, 128}, kBIHD, 0x3000), slope(DType::F32, {8}, {0}, 0x4000),
      o(DType::BF16, {2, 8, 0, 128}, kBIHD, 0), lse(DType::F32, {2, 8, 0}, {0, 1, 2}, 0);
  std::vector<attnc_tensor> args;
  for (const Tensor *t : {&q, &kk, &v, &slope, &o, &lse})
    args.push_back({reinterpret_cast<void *>(t->data), int32_t(t->dtype), int32_t(t->sizes.size()),
                    t->sizes.data(), t->strides.data()});
  EXPECT_EQ(attnc_rt_launch(k, args.data(), 6, nullptr), 0) << attnc_rt_last_error();
  EXPECT_STREQ(attnc_rt_last_error(), "");
  attnc_rt_release(k);
}

TEST(CAPI, HostMemoryIsRefused) {
  // Without a driver the launch fails on loading it; with one, on the host pointers. Either way
  // an error naming the kernel, not a crash.
  attnc_rt_kernel *k = loadGood();
  ASSERT_NE(k, nullptr);
  alignas(16) static char host[1 << 16];
  uint64_t base = reinterpret_cast<uint64_t>(host);
  Tensor q(DType::BF16, {1, 4, 1, 128}, kBIHD, base), kk(DType::BF16, {1, 1, 1, 128}, kBIHD, base),
      v(DType::BF16, {1, 1, 1, 128}, kBIHD, base), slope(DType::F32, {4}, {0}, base),
      o(DType::BF16, {1, 4, 1, 128}, kBIHD, base), lse(DType::F32, {1, 4, 1}, {0, 1, 2}, base);
  std::vector<attnc_tensor> args;
  for (const Tensor *t : {&q, &kk, &v, &slope, &o, &lse})
    args.push_back({reinterpret_cast<void *>(t->data), int32_t(t->dtype), int32_t(t->sizes.size()),
                    t->sizes.data(), t->strides.data()});
  EXPECT_EQ(attnc_rt_launch(k, args.data(), 6, nullptr), -1);
  std::string e = attnc_rt_last_error();
  EXPECT_EQ(e.rfind("kernel 'alibi': ", 0), 0u) << e;
  bool noDriver = e.find("CUDA driver") != std::string::npos || e.find("cuInit failed") != std::string::npos;
  bool refused = e.find("argument 'q': pointer 0x") != std::string::npos &&
                 e.find("is host memory, not device memory") != std::string::npos;
  EXPECT_TRUE(noDriver || refused) << e;
  attnc_rt_release(k);
}

// --- backward kernels -------------------------------------------------------------------------

namespace {

/// kManifest as a backward: the dK/dV kernel, D's dims, and a zeroed slope gradient.
std::string backwardManifest() {
  std::string text = replaced(kManifest, R"("tile": {)", R"("backward": {
    "dkdv_entry": "alibi_grad_dkdv", "dkdv_block": [128, 1, 1],
    "dkdv_grid": [{"ceil_div": ["j", 64]}, {"dim": "hk"}, {"dim": "b"}],
    "dkdv_dynamic_shared_memory": 69888, "delta_dims": ["b", "h", "i"]},
  "tile": {)");
  return replaced(text, R"("unit_stride_last": true, "alignment": 4, "row_alignment": 0}
  ])", R"("unit_stride_last": true, "alignment": 4, "row_alignment": 0},
    {"name": "dslope", "kind": "output", "dtype": "f32", "dims": ["h"], "storage_dims": ["h"],
     "unit_stride_last": false, "alignment": 4, "row_alignment": 0, "zeroed": true}
  ])");
}

class BackwardTest : public ArgCheckTest {
protected:
  void SetUp() override {
    ArgCheckTest::SetUp();
    std::string e;
    ASSERT_TRUE(parseManifest(backwardManifest(), m, e)) << e;
    tensors.push_back(Tensor(DType::F32, {H}, {0}, 0x700000));  // dslope
  }
};

}  // namespace

TEST_F(BackwardTest, ParsesTheSecondKernelAndTheWorkspace) {
  ASSERT_TRUE(m.backward.has_value());
  EXPECT_EQ(m.backward->dkdvEntry, "alibi_grad_dkdv");
  EXPECT_EQ(m.backward->dkdvSharedMemory, 69888u);
  EXPECT_EQ(m.dims[size_t(m.backward->deltaDims[2])].name, "i");
  EXPECT_TRUE(m.args.back().zeroed);
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.grid, (std::array<uint32_t, 3>{2, H, B}));           // ceil(77 / 64) query tiles
  EXPECT_EQ(plan.dkdvGrid, (std::array<uint32_t, 3>{2, H / 4, B}));   // ceil(65 / 64) key tiles
  EXPECT_EQ(plan.delta.sizes, (std::vector<int64_t>{B, H, I}));
  EXPECT_EQ(plan.workspaceBytes, B * H * I * 4);
}

TEST_F(BackwardTest, NoQueriesStillWritesDkDv) {
  for (int t : {Q, O})
    tensors[size_t(t)].sizes[2] = 0;
  tensors[Lse].sizes[2] = 0;
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_TRUE(plan.mainEmpty);
  EXPECT_FALSE(plan.empty);  // dK and dV are zeros, and written
}

TEST_F(BackwardTest, ZeroedGradientMustBeDense) {
  tensors.back().strides = {2};
  EXPECT_NE(error().find("this gradient must be contiguous"), std::string::npos);
}

TEST_F(BackwardTest, DqByAtomicsPlacesItsAccumulatorAfterD) {
  std::string e;
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])",
                                     R"("delta_dims": ["b", "h", "i"], "dq_entry": "alibi_grad_dq",
                                        "dq_accum_width": 128)"),
                            m, e))
      << e;
  EXPECT_EQ(m.backward->dqEntry, "alibi_grad_dq");
  ASSERT_TRUE(check(e)) << e;
  int64_t deltaBytes = B * H * I * 4;
  EXPECT_EQ(plan.dqAccum.sizes, (std::vector<int64_t>{B, H, I, 128}));
  EXPECT_EQ(plan.dqAccum.strides, (std::vector<int64_t>{H * I * 128, I * 128, 128, 1}));
  EXPECT_EQ(plan.dqAccum.offset, (deltaBytes + 255) / 256 * 256);
  EXPECT_EQ(plan.workspaceBytes, plan.dqAccum.offset + B * H * I * 128 * 4);
}

TEST_F(BackwardTest, OutputExpressionPlacesDyAfterTheOtherWorkspaces) {
  std::string e;
  // dy alone: 16-bit elements after D.
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])",
                                     R"("delta_dims": ["b", "h", "i"], "dy_width": 64)"),
                            m, e))
      << e;
  EXPECT_EQ(m.backward->dyWidth, 64);
  ASSERT_TRUE(check(e)) << e;
  int64_t deltaBytes = B * H * I * 4;
  EXPECT_EQ(plan.dy.sizes, (std::vector<int64_t>{B, H, I, 64}));
  EXPECT_EQ(plan.dy.strides, (std::vector<int64_t>{H * I * 64, I * 64, 64, 1}));
  EXPECT_EQ(plan.dy.offset, (deltaBytes + 255) / 256 * 256);
  EXPECT_EQ(plan.workspaceBytes, plan.dy.offset + B * H * I * 64 * 2);
  // With dQ by atomics: D, dQacc, then dy.
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])",
                                     R"("delta_dims": ["b", "h", "i"], "dq_entry": "alibi_grad_dq",
                                        "dq_accum_width": 128, "dy_width": 64)"),
                            m, e))
      << e;
  ASSERT_TRUE(check(e)) << e;
  int64_t accEnd = plan.dqAccum.offset + B * H * I * 128 * 4;
  EXPECT_EQ(plan.dy.offset, (accEnd + 255) / 256 * 256);
  EXPECT_EQ(plan.dy.sizes, (std::vector<int64_t>{B, H, I, 64}));
  EXPECT_EQ(plan.workspaceBytes, plan.dy.offset + B * H * I * 64 * 2);
}

TEST_F(BackwardTest, SeveralScoresHoldASlotPerScore) {
  std::string e;
  // Three scores: D [b, 3 h, i] and dy [b, 3 h, i, 64], score n's rows at head n h + head.
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])",
                                     R"("delta_dims": ["b", "h", "i"], "dy_width": 64,
                                        "scores": 3)"),
                            m, e))
      << e;
  EXPECT_EQ(m.backward->scores, 3);
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.delta.sizes, (std::vector<int64_t>{B, 3 * H, I}));
  EXPECT_EQ(plan.delta.strides, (std::vector<int64_t>{3 * H * I, I, 1}));
  int64_t deltaBytes = B * 3 * H * I * 4;
  EXPECT_EQ(plan.dy.sizes, (std::vector<int64_t>{B, 3 * H, I, 64}));
  EXPECT_EQ(plan.dy.offset, (deltaBytes + 255) / 256 * 256);
  EXPECT_EQ(plan.workspaceBytes, plan.dy.offset + B * 3 * H * I * 64 * 2);
  // Several scores without dy, with dQ by atomics, or out of range: refused.
  std::string text = backwardManifest();
  EXPECT_NE(parseError(replaced(text, R"("delta_dims": ["b", "h", "i"])",
                                R"("delta_dims": ["b", "h", "i"], "scores": 2)"))
                .find("several scores need dy_width"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("delta_dims": ["b", "h", "i"])",
                                R"("delta_dims": ["b", "h", "i"], "dq_entry": "alibi_grad_dq",
                                   "dq_accum_width": 128, "dy_width": 64, "scores": 2)"))
                .find("no dq_entry"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("delta_dims": ["b", "h", "i"])",
                                R"("delta_dims": ["b", "h", "i"], "dy_width": 64, "scores": 0)"))
                .find("backward.scores"),
            std::string::npos);
}

TEST_F(BackwardTest, ForgetGatePlacesDsSumsLastAndLaunchesPerHead) {
  std::string e;
  // A forget gate: its workspace [b, 3 h, i] f32 (dS's row and column sums, the cumulative
  // log decays) after D and dy, and the kernel of the log decays' gradients over (heads,
  // batch, 1), one warp.
  const char *decay = R"("delta_dims": ["b", "h", "i"], "dy_width": 64, "decay_slots": 3,
                         "decay_entry": "alibi_grad_decay", "decay_block": [32, 1, 1],
                         "decay_grid": [{"dim": "h"}, {"dim": "b"}, {"blocks": 1}])";
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])", decay),
                            m, e))
      << e;
  EXPECT_EQ(m.backward->decayEntry, "alibi_grad_decay");
  EXPECT_EQ(m.backward->decayBlock, (std::array<uint32_t, 3>{32, 1, 1}));
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.decayGrid, (std::array<uint32_t, 3>{H, B, 1}));
  int64_t dyEnd = plan.dy.offset + B * H * I * 64 * 2;
  EXPECT_EQ(plan.sums.sizes, (std::vector<int64_t>{B, 3 * H, I}));
  EXPECT_EQ(plan.sums.strides, (std::vector<int64_t>{3 * H * I, I, 1}));
  EXPECT_EQ(plan.sums.offset, (dyEnd + 255) / 256 * 256);
  EXPECT_EQ(plan.workspaceBytes, plan.sums.offset + B * 3 * H * I * 4);
  // Without dy: right after D.
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])",
                                     replaced(decay, R"("dy_width": 64,)", "")),
                            m, e))
      << e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_EQ(plan.sums.offset, (B * H * I * 4 + 255) / 256 * 256);
  // A decay that reads no param: the workspace (the log decays), no last kernel.
  ASSERT_TRUE(parseManifest(replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])",
                                     R"("delta_dims": ["b", "h", "i"], "decay_slots": 3)"),
                            m, e))
      << e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_TRUE(m.backward->decayEntry.empty());
  EXPECT_EQ(plan.sums.sizes, (std::vector<int64_t>{B, 3 * H, I}));
  // Refused: a name taken by another kernel, dQ by atomics, several scores, a bad grid.
  std::string text = replaced(backwardManifest(), R"("delta_dims": ["b", "h", "i"])", decay);
  EXPECT_NE(parseError(replaced(text, R"("decay_entry": "alibi_grad_decay")",
                                R"("decay_entry": "alibi_grad_dkdv")"))
                .find("backward.decay_entry"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("dy_width": 64,)",
                                R"("dy_width": 64, "dq_entry": "alibi_grad_dq",
                                   "dq_accum_width": 128,)"))
                .find("no dq_entry"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("dy_width": 64,)", R"("dy_width": 64, "scores": 2,)"))
                .find("takes one score"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"({"dim": "h"}, {"dim": "b"}, {"blocks": 1})",
                                R"({"dim": "nope"}, {"dim": "b"}, {"blocks": 1})"))
                .find("backward.decay_grid"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("decay_block": [32, 1, 1],)", ""))
                .find("decay_block"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("decay_slots": 3,)", ""))
                .find("needs decay_slots"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("decay_slots": 3,)", R"("decay_slots": 0,)"))
                .find("backward.decay_slots"),
            std::string::npos);
}

TEST(Manifest, BackwardErrors) {
  std::string text = backwardManifest();
  EXPECT_NE(parseError(replaced(text, R"("dkdv_entry": "alibi_grad_dkdv")", R"("dkdv_entry": "alibi")"))
                .find("must be a PTX symbol name other than entry"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("delta_dims": ["b", "h", "i"])", R"("delta_dims": ["b", "h"])"))
                .find("must name the 3 dims of D"),
            std::string::npos);
  std::string atomic = replaced(text, R"("delta_dims": ["b", "h", "i"])",
                                R"("delta_dims": ["b", "h", "i"], "dq_entry": "alibi_grad_dq",
                                   "dq_accum_width": 128)");
  EXPECT_NE(parseError(replaced(atomic, R"("dq_entry": "alibi_grad_dq")",
                                R"("dq_entry": "alibi_grad_dkdv")"))
                .find("must be a PTX symbol name other than entry and dkdv_entry"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(atomic, R"("dq_accum_width": 128)", R"("dq_accum_width": 0)"))
                .find("dq_accum_width"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(atomic, R"(, "dq_entry": "alibi_grad_dq")", ""))
                .find("dq_entry"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("delta_dims": ["b", "h", "i"])",
                                R"("delta_dims": ["b", "h", "i"], "dy_width": 0)"))
                .find("backward.dy_width"),
            std::string::npos);
  EXPECT_NE(parseError(replaced(text, R"("row_alignment": 0, "zeroed": true)",
                                R"("row_alignment": 0, "zeroed": 1)"))
                .find("zeroed"),
            std::string::npos);
  std::string onBf16 = replaced(kManifest, R"("storage_dims": ["b", "i", "h", "dv"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16})",
                                R"("storage_dims": ["b", "i", "h", "dv"], "unit_stride_last": true, "alignment": 16, "row_alignment": 16, "zeroed": true})");
  EXPECT_NE(parseError(onBf16).find("is only for f32 outputs"), std::string::npos);
}

// Block plans through the C ABI: shapes and the checks that need no GPU.
TEST(CAPI, BlockPlanShapeAndErrors) {
  int64_t sizes[4] = {};
  attnc_tensor plan = {};
  EXPECT_EQ(attnc_rt_plan_shape(nullptr, nullptr, 0, sizes), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_plan_shape: the kernel handle is null");
  EXPECT_EQ(attnc_rt_compute_plan(nullptr, nullptr, 0, &plan, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_compute_plan: the kernel handle is null");

  attnc_rt_kernel *k = loadGood();  // no block_plan in its manifest
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(attnc_rt_plan_shape(k, nullptr, 6, sizes), -1);
  EXPECT_STREQ(attnc_rt_last_error(),
               "kernel 'alibi': has no block plan (its mask reads no params, or attnc was told "
               "--no-block-plan)");
  EXPECT_EQ(attnc_rt_launch_with_plan(k, nullptr, 6, nullptr, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(), "attnc_rt_launch_with_plan: `plan` is null");
  attnc_rt_release(k);

  std::string manifest = planManifest();
  const char *ptx = ".version 8.0\n.target sm_80\n.address_size 64\n"
                    ".visible .entry alibi(\n)\n{\nret;\n}\n"
                    ".visible .entry alibi_plan(\n)\n{\nret;\n}\n";
  ASSERT_EQ(attnc_rt_load(ptx, std::strlen(ptx), manifest.data(), manifest.size(), &k), 0)
      << attnc_rt_last_error();
  std::vector<Tensor> tensors = planTensors();
  std::vector<attnc_tensor> args;
  for (const Tensor &t : tensors)
    args.push_back({reinterpret_cast<void *>(t.data), int32_t(t.dtype), int32_t(t.sizes.size()),
                    t.sizes.data(), t.strides.data()});
  ASSERT_EQ(attnc_rt_plan_shape(k, args.data(), 6, sizes), 0) << attnc_rt_last_error();
  EXPECT_EQ(std::vector<int64_t>(sizes, sizes + 4), (std::vector<int64_t>{2, 1, 2, 5}));
  // A plan of another shape or dtype is refused before anything runs.
  int64_t wrong[4] = {2, 1, 3, 5}, strides[4] = {15, 15, 5, 1};
  plan = {reinterpret_cast<void *>(0x700000), int32_t(DType::I32), 4, wrong, strides};
  EXPECT_EQ(attnc_rt_launch_with_plan(k, args.data(), 6, &plan, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(),
               "kernel 'alibi': launchWithPlan: the block plan must be a contiguous i32 tensor "
               "of shape [2, 1, 2, 5] (planShape for these arguments), got [2, 1, 3, 5]");
  int64_t right[4] = {2, 1, 2, 5}, rightStrides[4] = {10, 10, 5, 1};
  plan = {reinterpret_cast<void *>(0x700000), int32_t(DType::F32), 4, right, rightStrides};
  EXPECT_EQ(attnc_rt_compute_plan(k, args.data(), 6, &plan, nullptr), -1);
  EXPECT_STREQ(attnc_rt_last_error(),
               "kernel 'alibi': computePlan: the block plan must be a contiguous i32 tensor of "
               "shape [2, 1, 2, 5] (planShape for these arguments), got [2, 1, 2, 5] of dtype "
               "code 0");
  attnc_rt_release(k);
}

namespace {

// attnc_rt_combine's checks (ring attention's merge): canonical [S, b, h, i, dv] partial
// results of the kernel's dv, an output of its dtype, no overlap, at least two results.
class CombineArgsTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(parseManifest(kManifest, m, error)) << error;
    tensors = {Tensor(DType::F32, {3, 2, 8, 77, 128}, {0, 1, 2, 3, 4}, 0x10000000),
               Tensor(DType::F32, {3, 2, 8, 77}, {0, 1, 2, 3}, 0x20000000),
               Tensor(DType::BF16, {2, 8, 77, 128}, kBIHD, 0x30000000),
               Tensor(DType::F32, {2, 8, 77}, {0, 1, 2}, 0x40000000)};
  }
  bool check(std::string &error) {
    std::vector<TensorArg> args;
    for (const Tensor &t : tensors)
      args.push_back(t.arg());
    return checkCombineArgs(m, args.data(), args.size(), grid, empty, error);
  }
  std::string error() {
    std::string e;
    EXPECT_FALSE(check(e));
    return e;
  }
  Manifest m;
  std::vector<Tensor> tensors;
  std::array<uint32_t, 3> grid{};
  bool empty = false;
};

TEST_F(CombineArgsTest, AcceptsPartialResultsAndLaunchesOneBlockPerRow) {
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_FALSE(empty);
  EXPECT_EQ(grid, (std::array<uint32_t, 3>{77, 8, 2}));
}

TEST_F(CombineArgsTest, RefusesWhatItCannotMerge) {
  tensors[0].sizes[0] = tensors[1].sizes[0] = 1;
  EXPECT_EQ(error(), "combine merges at least 2 partial results, got S = 1");
  SetUp();
  tensors[1].sizes[0] = 2;
  EXPECT_EQ(error(), "combine argument 'part_lse': 2 partial results, but part_out holds 3");
  SetUp();
  tensors[2].sizes[2] = 76;
  EXPECT_EQ(error(), "combine argument 'out': axis i is 76, but part_out's is 77");
  SetUp();
  tensors[0].sizes[4] = tensors[2].sizes[3] = 64;
  EXPECT_EQ(error(), "combine argument 'part_out': dv is 64, but kernel 'alibi' has dv = 128");
  SetUp();
  tensors[2].dtype = DType::F32;
  EXPECT_NE(error().find("combine argument 'out': expected bf16 of rank 4"), std::string::npos);
  SetUp();
  tensors[3].data = tensors[1].data + 64;  // lse inside part_lse
  EXPECT_EQ(error(), "combine argument 'lse' overlaps 'part_lse': the merge would write the "
                     "partial results it reads");
  SetUp();
  tensors[0].data = 0;
  EXPECT_EQ(error(), "combine argument 'part_out' is a null pointer");
  SetUp();
  tensors[0].strides[1] = -1;
  EXPECT_NE(error().find("strides non-negative"), std::string::npos);
  SetUp();
  std::string e;
  EXPECT_FALSE(checkCombineArgs(m, nullptr, 4, grid, empty, e));
  EXPECT_EQ(e, "combine takes 4 arguments (part_out, part_lse, out, lse), got 0");
}

TEST_F(CombineArgsTest, EmptyRowsLaunchNothingAndNonSoftmaxKernelsHaveNoMerge) {
  tensors[0].sizes[3] = tensors[1].sizes[3] = tensors[2].sizes[2] = tensors[3].sizes[2] = 0;
  std::string e;
  ASSERT_TRUE(check(e)) << e;
  EXPECT_TRUE(empty);
  Manifest sigmoid;
  ASSERT_TRUE(parseManifest(replaced(replaced(kManifest, R"("kind": "lse")", R"("kind": "output")"),
                                     R"("name": "lse")", R"("name": "p")"),
                            sigmoid, e))
      << e;
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  EXPECT_FALSE(checkCombineArgs(sigmoid, args.data(), 4, grid, empty, e));
  EXPECT_EQ(e, "combine merges softmax results by their log-sum-exp; kernel 'alibi' has no lse");
}

}  // namespace

namespace {

// A split_kv manifest's combine grid (16 rows per block, as the lowering records it) sizes the
// combine of caller-held partial results too.
TEST_F(CombineArgsTest, LaunchFollowsTheManifestsCombineGrid) {
  Manifest split;
  std::string e;
  ASSERT_TRUE(parseManifest(replaced(kSplitManifest, R"([{"dim": "i"}, {"dim": "h"}, {"dim": "b"}])",
                                     R"([{"ceil_div": ["i", 16]}, {"dim": "h"}, {"dim": "b"}])"),
                            split, e))
      << e;
  std::vector<TensorArg> args;
  for (const Tensor &t : tensors)
    args.push_back(t.arg());
  ASSERT_TRUE(checkCombineArgs(split, args.data(), args.size(), grid, empty, e)) << e;
  EXPECT_EQ(grid, (std::array<uint32_t, 3>{5, 8, 2}));  // ceil(77 / 16) row blocks
}

}  // namespace

namespace {

/// kManifest for sm_90a with `cluster` (thread-block clusters along grid axes).
std::string clusterManifest(const std::string &cluster) {
  return replaced(replaced(kManifest, "\"arch\": \"sm_80\"", "\"arch\": \"sm_90a\""),
                  "\"tile\": {", "\"cluster\": " + cluster + ",\n  \"tile\": {");
}

TEST(Manifest, Cluster) {
  Manifest m;
  std::string error;
  ASSERT_TRUE(parseManifest(clusterManifest("[4, 1, 1]"), m, error)) << error;
  EXPECT_EQ(m.cluster, (std::array<uint32_t, 3>{4, 1, 1}));
  Manifest plain;
  ASSERT_TRUE(parseManifest(kManifest, plain, error)) << error;
  EXPECT_EQ(plain.cluster, (std::array<uint32_t, 3>{1, 1, 1}));
  EXPECT_EQ(parseError(replaced(clusterManifest("[4, 1, 1]"), "sm_90a", "sm_80")),
            "manifest: field 'cluster' needs an sm_90 or newer arch (thread-block clusters), "
            "got 'sm_80'");
  EXPECT_EQ(parseError(clusterManifest("[4, 4, 1]")),
            "manifest: field 'cluster' holds at most 8 blocks (the portable cluster size), got 16");
  EXPECT_EQ(parseError(clusterManifest("[16, 1, 1]")),
            "manifest: field 'cluster[0]' must be in [1, 8], got 16");
  EXPECT_EQ(parseError(clusterManifest("[4, 1]")),
            "manifest: field 'cluster' must be [x, y, z], blocks per cluster");
}

/// A grid that is not whole clusters (the PTX's .reqnctapercluster) is refused before launch.
TEST_F(ArgCheckTest, GridOfWholeClusters) {
  std::string e;
  ASSERT_TRUE(parseManifest(clusterManifest("[2, 1, 1]"), m, e)) << e;
  EXPECT_TRUE(check(e)) << e;  // ceil(77 / 64) = 2 query tiles: one cluster
  ASSERT_TRUE(parseManifest(clusterManifest("[1, 1, 2]"), m, e)) << e;
  EXPECT_TRUE(check(e)) << e;  // b = 2
  ASSERT_TRUE(parseManifest(clusterManifest("[1, 3, 1]"), m, e)) << e;
  EXPECT_EQ(error(), "launch grid axis 1 has 8 blocks, not a multiple of the kernel's 3 blocks "
                     "per cluster (the manifest's 'cluster' does not match its grid: recompile "
                     "the kernel)");
}

}  // namespace
