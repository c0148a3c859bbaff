// Unit tests of the GPU runtime that need no GPU: manifest parsing and validation, every argument
// check and its exact message, the launch grid, and the C ABI's error paths.
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
  "spec_hash": "fnv1a64:9f0c2d5e11aa4c07",
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
  EXPECT_EQ(m.specHash, "fnv1a64:9f0c2d5e11aa4c07");
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
            "manifest: field 'args[3].dtype' must be one of f32, f16, bf16, i32, got 'f64'");
  EXPECT_EQ(parseError(replaced(kManifest, "\"kind\": \"lse\"", "\"kind\": \"scratch\"")),
            "manifest: field 'args[5].kind' must be one of input, param, output, lse, got 'scratch'");
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
            "manifest: field 'grid[2]' must be {\"dim\": NAME} or {\"ceil_div\": [NAME, N]}");
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
  EXPECT_EQ(error(), "launch grid x = 2147483648 (ceil(i / 64), i = 137438953472) exceeds CUDA's "
                     "limit of 2147483647");
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
