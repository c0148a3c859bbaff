// The JIT API without a GPU: compile through attnc_compile, the kernel cache (hit, miss,
// corrupt entry rebuilt), and its errors. Launching needs a GPU (tests/gpu).
#include "compiler/capi/KernelCache.h"
#include "compiler/capi/attnc.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

const char *kSpec = R"(variant causal {
  dims b, h, i, j, d = 64, dv = d
  input q[b, h, i, d] : bf16, k[b, h, j, d] : bf16, v[b, h, j, dv] : bf16
  score s = dot(q, k) * rsqrt(d)
  mask j <= i
  output o[b, h, i, dv] = attend(s, v)
})";

std::string tempDir() {
  char tmpl[] = "/tmp/attnc-cache-XXXXXX";
  return mkdtemp(tmpl);
}

TEST(JIT, CompilesThenServesFromTheCache) {
  attnc::Options options;
  options.cacheDir = tempDir();
  attnc::Kernel cold(kSpec, "", options);
  ASSERT_TRUE(cold.ok()) << cold.error();
  EXPECT_FALSE(cold.fromCache());
  EXPECT_NE(cold.ptx().find(".entry causal"), std::string::npos);
  EXPECT_NE(cold.manifest().find("\"entry\": \"causal\""), std::string::npos);
  attnc::Kernel warm(kSpec, "causal", options);
  ASSERT_TRUE(warm.ok()) << warm.error();
  EXPECT_FALSE(warm.fromCache());  // a different key: the variant was named this time
  attnc::Kernel again(kSpec, "causal", options);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_TRUE(again.fromCache());
  EXPECT_EQ(again.ptx(), warm.ptx());
  EXPECT_EQ(again.manifest(), warm.manifest());
}

TEST(JIT, OptionsAreInTheKey) {
  attnc::Options a, b;
  a.cacheDir = b.cacheDir = tempDir();
  b.blockQ = 32;
  attnc::Kernel first(kSpec, "", a);
  attnc::Kernel second(kSpec, "", b);
  ASSERT_TRUE(first.ok() && second.ok()) << first.error() << second.error();
  EXPECT_FALSE(second.fromCache());
  EXPECT_NE(second.manifest().find("\"block_q\": 32"), std::string::npos);
}

TEST(JIT, CorruptEntriesAreRebuilt) {
  std::string dir = tempDir();
  attnc::KernelCache cache(dir);
  attnc::CacheEntry entry{"{\"m\": 1}", "// ptx"};
  std::string error;
  ASSERT_TRUE(cache.store("fnv1a64:0000000000000001", entry, error)) << error;
  attnc::CacheEntry back;
  ASSERT_EQ(cache.load("fnv1a64:0000000000000001", back), attnc::KernelCache::Lookup::Hit);
  EXPECT_EQ(back.manifest, entry.manifest);
  EXPECT_EQ(back.ptx, entry.ptx);
  // Flip one byte of the PTX: the checksum no longer matches.
  std::string path = cache.pathFor("fnv1a64:0000000000000001");
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-2, std::ios::end);
  f.put('X');
  f.close();
  EXPECT_EQ(cache.load("fnv1a64:0000000000000001", back), attnc::KernelCache::Lookup::Corrupt);
  // Truncated and foreign files are corrupt too; missing ones are misses.
  std::ofstream(path, std::ios::trunc) << "attnc-cache/1\n";
  EXPECT_EQ(cache.load("fnv1a64:0000000000000001", back), attnc::KernelCache::Lookup::Corrupt);
  std::ofstream(path, std::ios::trunc) << "GIF89a";
  EXPECT_EQ(cache.load("fnv1a64:0000000000000001", back), attnc::KernelCache::Lookup::Corrupt);
  EXPECT_EQ(cache.load("fnv1a64:0000000000000002", back), attnc::KernelCache::Lookup::Miss);

  // Through the API: corrupt every entry of a kernel, the next compile rebuilds it.
  attnc::Options options;
  options.cacheDir = dir;
  attnc::Kernel first(kSpec, "", options);
  ASSERT_TRUE(first.ok()) << first.error();
  std::string firstPtx = first.ptx();
  std::string cmd = "for f in " + dir + "/*.kernel; do printf garbage > \"$f\"; done";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  attnc::Kernel rebuilt(kSpec, "", options);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error();
  EXPECT_FALSE(rebuilt.fromCache());
  EXPECT_EQ(rebuilt.ptx(), firstPtx);
  attnc::Kernel served(kSpec, "", options);
  EXPECT_TRUE(served.fromCache());
}

TEST(JIT, AnotherSpecsEntryIsNotServed) {
  // An entry with an intact checksum but another spec's kernel (a misplaced or stale file) is
  // rebuilt, not served: the manifest's spec hash is compared with the request's.
  std::string dir = tempDir();
  attnc::Options options;
  options.cacheDir = dir;
  std::string other = std::string(kSpec);
  other.replace(other.find("variant causal"), 14, "variant causal_other");
  attnc::Kernel mine(kSpec, "", options);
  ASSERT_TRUE(mine.ok()) << mine.error();
  std::string list = dir + "/list";
  ASSERT_EQ(std::system(("ls " + dir + "/*.kernel > " + list).c_str()), 0);
  std::string mineFile;
  std::getline(std::ifstream(list) >> std::ws, mineFile);
  attnc::Kernel theirs(other, "", options);
  ASSERT_TRUE(theirs.ok()) << theirs.error();
  // Every entry of the directory becomes a copy of the first spec's (checksums intact).
  std::string cmd = "for f in " + dir + "/*.kernel; do [ \"$f\" = \"" + mineFile +
                    "\" ] || cp \"" + mineFile + "\" \"$f\"; done";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  attnc::Kernel again(other, "", options);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_FALSE(again.fromCache());
  EXPECT_NE(again.manifest().find("\"variant\": \"causal_other\""), std::string::npos);
  attnc::Kernel served(other, "", options);
  EXPECT_TRUE(served.fromCache());
  EXPECT_EQ(served.manifest(), again.manifest());
}

TEST(JIT, EntriesTheRuntimeRejectsAreRebuilt) {
  // An entry for the right spec and key whose manifest the runtime rejects (another build's,
  // say) is rebuilt and replaced, not an error forever.
  std::string dir = tempDir();
  attnc::Options options;
  options.cacheDir = dir;
  attnc::Kernel first(kSpec, "", options);
  ASSERT_TRUE(first.ok()) << first.error();
  std::string list = dir + "/list";
  ASSERT_EQ(std::system(("ls " + dir + "/*.kernel > " + list).c_str()), 0);
  std::string file;
  std::getline(std::ifstream(list) >> std::ws, file);
  std::string name = file.substr(file.rfind('/') + 1);
  std::string key = name.substr(0, name.size() - 7);  // "fnv1a64-<hex>.kernel"
  key[key.find('-')] = ':';
  attnc::KernelCache cache(dir);
  attnc::CacheEntry entry;
  ASSERT_EQ(cache.load(key, entry), attnc::KernelCache::Lookup::Hit);
  std::string error;
  size_t format = entry.manifest.find("attnc-kernel-manifest/1");
  ASSERT_NE(format, std::string::npos);
  entry.manifest.replace(format, 23, "attnc-kernel-manifest/9");  // a format it does not read
  ASSERT_TRUE(cache.store(key, entry, error)) << error;
  attnc::Kernel again(kSpec, "", options);
  ASSERT_TRUE(again.ok()) << again.error();
  EXPECT_FALSE(again.fromCache());
  EXPECT_EQ(again.manifest(), first.manifest());
  attnc::Kernel served(kSpec, "", options);
  EXPECT_TRUE(served.fromCache());
}

TEST(JIT, AnUnwritableCacheOnlyCostsTheCaching) {
  // A file where the cache directory should be: the compile works, uncached.
  std::string dir = tempDir() + "/not-a-directory";
  std::ofstream(dir) << "x";
  attnc::Options options;
  options.cacheDir = dir;
  attnc::Kernel first(kSpec, "", options);
  ASSERT_TRUE(first.ok()) << first.error();
  EXPECT_FALSE(first.fromCache());
  attnc::Kernel second(kSpec, "", options);
  ASSERT_TRUE(second.ok()) << second.error();
  EXPECT_FALSE(second.fromCache());
}

TEST(JIT, ErrorsAreMessagesNotCrashes) {
  attnc::Options options;
  options.noCache = true;
  attnc::Kernel bad("variant x { dims b\n score s = dot(q, k) }", "", options);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("<spec>:"), std::string::npos) << bad.error();
  attnc::Kernel missing(kSpec, "nope", options);
  EXPECT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "no variant 'nope' in the spec; it has 'causal'");
  attnc::Options chip = options;
  chip.chip = "sm_70";
  attnc::Kernel old(kSpec, "", chip);
  EXPECT_EQ(old.error(), "attnc_compile: unknown chip 'sm_70'; use sm_80 or sm_90a");
  EXPECT_EQ(attnc_compile(nullptr, 0, nullptr, nullptr, nullptr), -1);
  EXPECT_STREQ(attnc_last_error(), "attnc_compile: 'out' is null");
  attnc_kernel *k = nullptr;
  EXPECT_EQ(attnc_compile(nullptr, 0, nullptr, nullptr, &k), -1);
  EXPECT_EQ(k, nullptr);
  EXPECT_EQ(attnc_launch(nullptr, nullptr, 0, nullptr), -1);
  attnc_release(nullptr);
}

}  // namespace
