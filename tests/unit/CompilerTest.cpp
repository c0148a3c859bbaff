// Unit tests of what is not IR: the compile API's error paths, the kernel ABI, the run harness's
// argument parsing and the memref descriptors handed to the host kernels.
#include "codegen/cpu/CPUExecutor.h"
#include "compiler/Compiler.h"
#include "compiler/lowering/ASTToAttn.h"
#include "compiler/pipeline/HostRun.h"

#include <gtest/gtest.h>

#include <cstring>

using namespace attnc;

namespace {

const char *kAlibi = R"(variant alibi {
  dims b, h, hk = h / 2, i, j, d = 16, dv = d
  input q[b, i, h, d] : f32, k[b, j, hk, d] : f32, v[b, j, hk, dv] : f32
  param slope[h] : f32
  score s = dot(q, k) * rsqrt(d) + slope[h] * (j - i)
  mask j <= i
  output o[b, i, h, dv] = attend(s, v)
})";

TEST(KernelABI, ArgumentOrder) {
  SpecFile file;
  Diagnostic diag;
  ASSERT_TRUE(loadSpec("alibi.attn", kAlibi, file, diag)) << diag.render(kAlibi);
  std::vector<std::string> names;
  for (const KernelArg &a : kernelArgs(file.variants[0]))
    names.push_back(a.name);
  EXPECT_EQ(names, (std::vector<std::string>{"q", "k", "v", "slope", "o", "lse"}));
}

TEST(Compiler, LowersToEveryStage) {
  Compiler c;
  Diagnostic diag;
  CompileOptions options;
  ASSERT_TRUE(c.loadSpec("alibi.attn", kAlibi, diag));
  ASSERT_TRUE(c.lowerToAttn(options, diag)) << diag.message;
  EXPECT_NE(c.printModule().find("attn.attention"), std::string::npos);
  ASSERT_TRUE(c.lowerTo(Stage::Tiled, options, diag)) << diag.message;
  EXPECT_NE(c.printModule().find("attn.tile_online_update"), std::string::npos);
  ASSERT_TRUE(c.lowerTo(Stage::LLVM, options, diag)) << diag.message;
  std::string ir;
  ASSERT_TRUE(c.printLLVMIR(ir, diag)) << diag.message;
  EXPECT_NE(ir.find("_mlir_ciface_alibi"), std::string::npos);
}

TEST(Compiler, BadTileSizesAreAnErrorNotACrash) {
  Compiler c;
  Diagnostic diag;
  CompileOptions options;
  options.pipeline.blockQ = -1;  // 0 is "automatic"
  ASSERT_TRUE(c.loadSpec("alibi.attn", kAlibi, diag));
  ASSERT_TRUE(c.lowerToAttn(options, diag));
  EXPECT_FALSE(c.lowerTo(Stage::Tiled, options, diag));
  EXPECT_NE(diag.message.find("block-q and block-k must be in [1, 1024]"), std::string::npos)
      << diag.message;
}

TEST(Compiler, MalformedMLIRIsAnErrorWithLocation) {
  Compiler c;
  Diagnostic diag;
  EXPECT_FALSE(c.loadMLIR("bad.mlir", "func.func @f( {", diag));
  EXPECT_EQ(diag.file, "bad.mlir");
  EXPECT_EQ(diag.loc.line, 1u);
  EXPECT_NE(diag.message.find("cannot parse the MLIR module"), std::string::npos);
}

TEST(Compiler, InvalidAttnOpIsReportedByTheVerifier) {
  // The kv heads (3) times the group (2) must equal the query heads (8).
  const char *text = R"(
func.func @f(%q: memref<1x8x4x16xf32>, %k: memref<1x3x4x16xf32>, %v: memref<1x3x4x16xf32>,
             %o: memref<1x8x4x16xf32>) {
  attn.attention %q, %k, %v -> %o {group = 2 : i64, norm = #attn.norm<none>}
      : memref<1x8x4x16xf32>, memref<1x3x4x16xf32>, memref<1x3x4x16xf32> -> memref<1x8x4x16xf32>
    score {
    ^bb0(%b: index, %h: index, %i: index, %j: index, %dot: f32):
      attn.yield %dot : f32
    }
  return
})";
  Compiler c;
  Diagnostic diag;
  EXPECT_FALSE(c.loadMLIR("bad.mlir", text, diag));
  EXPECT_NE(diag.message.find("query heads (8) must be kv heads (3) times the group (2)"),
            std::string::npos)
      << diag.message;
  EXPECT_EQ(diag.loc.line, 4u);
}

TEST(HostRun, ParsesSizeLists) {
  std::vector<std::pair<std::string, int64_t>> sizes;
  std::string error;
  ASSERT_TRUE(parseSizeList("b=2,i=100", sizes, error));
  EXPECT_EQ(sizes, (std::vector<std::pair<std::string, int64_t>>{{"b", 2}, {"i", 100}}));
  for (const char *bad : {"b", "=3", "b=", "b=x", "b=3x"}) {
    sizes.clear();
    EXPECT_FALSE(parseSizeList(bad, sizes, error)) << bad;
    EXPECT_NE(error.find("expected NAME=INTEGER"), std::string::npos);
  }
}

TEST(HostRun, DefaultSizesAreRaggedAndRespectTheGroup) {
  SpecFile file;
  Diagnostic diag;
  ASSERT_TRUE(loadSpec("alibi.attn", kAlibi, file, diag));
  DimSizes sizes;
  std::string error;
  ASSERT_TRUE(resolveDimSizes(file.variants[0], defaultDimSizes(file.variants[0]), sizes, error))
      << error;
  const Variant &v = file.variants[0];
  EXPECT_EQ(sizes[v.qHeadDim] % v.group, 0);
  EXPECT_NE(sizes[v.qSeqDim] % 64, 0);
  EXPECT_NE(sizes[v.qSeqDim], sizes[v.kvSeqDim]);
  EXPECT_EQ(sizes[v.headDim], 16);  // static in the spec
}

TEST(MemRefDescriptor, CInterfaceLayout) {
  float data[6];
  MemRefDescriptor d(data, {2, 3}, {3, 1});
  auto *words = static_cast<int64_t *>(d.get());
  void *allocated, *aligned;
  std::memcpy(&allocated, &words[0], sizeof(void *));
  std::memcpy(&aligned, &words[1], sizeof(void *));
  EXPECT_EQ(allocated, data);
  EXPECT_EQ(aligned, data);
  EXPECT_EQ(words[2], 0);  // offset
  EXPECT_EQ(words[3], 2);
  EXPECT_EQ(words[4], 3);
  EXPECT_EQ(words[5], 3);
  EXPECT_EQ(words[6], 1);
}

}  // namespace
