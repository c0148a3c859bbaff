// The JIT API without a GPU: compile through attnc_compile, the kernel cache (hit, miss,
// corrupt entry rebuilt), the backward, and its errors; the cpu target compiles and runs here
// (CUDA launches: tests/gpu).
#include "compiler/capi/KernelCache.h"
#include "compiler/capi/attnc.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
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

TEST(JIT, CppOptionsReachTheCompiler) {
  // Ring blocks through the C++ wrapper: position offsets add q_offset / k_offset, the output
  // becomes f32 (partial results); a backward's PTX and manifest come with Options::backward.
  attnc::Options o;
  o.noCache = true;
  o.positionOffsets = true;
  o.outDtype = "f32";
  attnc::Kernel k(kSpec, "", o);
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_NE(k.manifest().find("\"q_offset\""), std::string::npos);
  EXPECT_NE(k.manifest().find("\"k_offset\""), std::string::npos);
  EXPECT_NE(k.manifest().find("\"dtype\": \"f32\""), std::string::npos);
  EXPECT_EQ(k.gradPtx(), "");
  attnc::Options g;
  g.noCache = true;
  g.backward = true;
  attnc::Kernel trained(kSpec, "", g);
  ASSERT_TRUE(trained.ok()) << trained.error();
  EXPECT_NE(trained.gradPtx().find(".entry causal_grad_dkdv"), std::string::npos);
  EXPECT_FALSE(trained.gradManifest().empty());
  attnc::Kernel none;
  EXPECT_FALSE(none.combine({}));
}

TEST(JIT, CorruptEntriesAreRebuilt) {
  std::string dir = tempDir();
  attnc::KernelCache cache(dir);
  attnc::CacheEntry entry{"{\"m\": 1}", "// ptx"};
  std::string error;
  ASSERT_TRUE(cache.store("sha256:0000000000000000000000000000000000000000000000000000000000000001", entry, error)) << error;
  attnc::CacheEntry back;
  ASSERT_EQ(cache.load("sha256:0000000000000000000000000000000000000000000000000000000000000001", back), attnc::KernelCache::Lookup::Hit);
  EXPECT_EQ(back.manifest, entry.manifest);
  EXPECT_EQ(back.ptx, entry.ptx);
  // Flip one byte of the PTX: the checksum no longer matches.
  std::string path = cache.pathFor("sha256:0000000000000000000000000000000000000000000000000000000000000001");
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(-2, std::ios::end);
  f.put('X');
  f.close();
  EXPECT_EQ(cache.load("sha256:0000000000000000000000000000000000000000000000000000000000000001", back), attnc::KernelCache::Lookup::Corrupt);
  // Truncated and foreign files are corrupt too; missing ones are misses.
  std::ofstream(path, std::ios::trunc) << "attnc-cache/1\n";
  EXPECT_EQ(cache.load("sha256:0000000000000000000000000000000000000000000000000000000000000001", back), attnc::KernelCache::Lookup::Corrupt);
  std::ofstream(path, std::ios::trunc) << "GIF89a";
  EXPECT_EQ(cache.load("sha256:0000000000000000000000000000000000000000000000000000000000000001", back), attnc::KernelCache::Lookup::Corrupt);
  EXPECT_EQ(cache.load("sha256:0000000000000000000000000000000000000000000000000000000000000002", back), attnc::KernelCache::Lookup::Miss);

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
  std::string key = name.substr(0, name.size() - 7);  // "sha256-<hex>.kernel"
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

TEST(JIT, TheBackwardIsCompiledAndCachedBesideTheForward) {
  attnc::Options options;
  options.cacheDir = tempDir();
  options.backward = true;
  attnc::Kernel cold(kSpec, "causal", options);
  ASSERT_TRUE(cold.ok()) << cold.error();
  EXPECT_FALSE(cold.fromCache());
  EXPECT_NE(cold.gradManifest().find("\"entry\": \"causal_grad\""), std::string::npos);
  EXPECT_NE(cold.gradManifest().find("\"dkdv_entry\": \"causal_grad_dkdv\""),
            std::string::npos);
  attnc::Kernel warm(kSpec, "causal", options);
  ASSERT_TRUE(warm.ok()) << warm.error();
  EXPECT_TRUE(warm.fromCache());
  EXPECT_EQ(warm.gradManifest(), cold.gradManifest());
  EXPECT_EQ(warm.manifest(), cold.manifest());
  options.backward = false;  // the forward entry a backward compile stored serves alone
  attnc::Kernel forward(kSpec, "causal", options);
  ASSERT_TRUE(forward.ok()) << forward.error();
  EXPECT_TRUE(forward.fromCache());
  EXPECT_EQ(forward.gradManifest(), "");
  EXPECT_FALSE(forward.launchGrad({}));
  EXPECT_EQ(forward.error(), "attnc_launch_grad: kernel 'causal' was compiled without its "
                             "backward (set attnc_options.backward = 1)");
}

/// ALiBi with a causal mask, dynamic head dim: the cpu target's test variant.
const char *kAlibi = R"(variant alibi {
  dims b, h, i, j, d, dv = d
  input q[b, i, h, d] : bf16, k[b, j, h, d] : bf16, v[b, j, h, dv] : bf16
  param slope[h] : f32
  score s = dot(q, k) * rsqrt(d) + slope[h] * (j - i)
  mask j <= i
  output o[b, i, h, dv] = attend(s, v)
})";

/// A host tensor in [b, s, h, x] storage, described to attnc in canonical [b, h, s, x] order.
struct HostTensor {
  std::vector<float> data;
  std::vector<int64_t> sizes, strides;
  HostTensor(int64_t b, int64_t s, int64_t h, int64_t x, std::mt19937 &rng)
      : data(size_t(b * s * h * x)), sizes{b, h, s, x}, strides{s * h * x, x, h * x, 1} {
    std::uniform_real_distribution<float> u(-1, 1);
    for (float &f : data)
      f = u(rng);
  }
  HostTensor(std::vector<int64_t> shape) : sizes(shape), strides(shape.size()) {
    int64_t n = 1;
    for (size_t a = shape.size(); a-- > 0;)
      strides[a] = n, n *= shape[a];
    data.assign(size_t(n), NAN);
  }
  float at(int64_t b, int64_t h, int64_t s, int64_t x) const {
    return data[size_t(b * strides[0] + h * strides[1] + s * strides[2] + x * strides[3])];
  }
  attnc_tensor arg(int32_t dtype = ATTNC_F32) {
    return {data.data(), dtype, int32_t(sizes.size()), sizes.data(), strides.data()};
  }
};

TEST(JIT, TheCPUTargetRunsForwardAndBackwardOnTheHost) {
  attnc::Options options;
  options.target = "cpu";
  options.backward = true;
  attnc::Kernel k(kAlibi, "", options);
  ASSERT_TRUE(k.ok()) << k.error();
  EXPECT_EQ(k.ptx(), "");
  EXPECT_NE(k.manifest().find("\"arch\": \"host\""), std::string::npos);
  const int64_t B = 2, S = 7, H = 3, D = 5;
  std::mt19937 rng(7);
  HostTensor q(B, S, H, D, rng), kk(B, S, H, D, rng), v(B, S, H, D, rng), dout(B, S, H, D, rng);
  HostTensor slope({H}), o({B, H, S, D}), lse({B, H, S});
  o.strides = q.strides;  // o in the spec's [b, i, h, dv] storage too
  for (int64_t h = 0; h < H; ++h)
    slope.data[size_t(h)] = -0.25f * float(h + 1);
  ASSERT_TRUE(k.launch({q.arg(), kk.arg(), v.arg(), slope.arg(), o.arg(), lse.arg()})) << k.error();
  HostTensor dq({B, H, S, D}), dk({B, H, S, D}), dv({B, H, S, D}), dslope({H});
  for (HostTensor *t : {&dq, &dk, &dv})
    t->strides = q.strides;
  ASSERT_TRUE(k.launchGrad({q.arg(), kk.arg(), v.arg(), slope.arg(), o.arg(), lse.arg(),
                            dout.arg(), dq.arg(), dk.arg(), dv.arg(), dslope.arg()}))
      << k.error();
  // In double: P = softmax(s) over j <= i; o = P v, lse; dv = P^T dout; dslope = sum over
  // (b, i, j) of dS (j - i) with dS = P (dP - D), dP = dout v^T, D = rowsum(dout o).
  double errO = 0, errLse = 0, errDv = 0, errSlope = 0;
  std::vector<double> dvRef(size_t(B * H * S * D), 0.0), slopeRef(size_t(H), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < S; ++i) {
        std::vector<double> s(size_t(i + 1)), dP(size_t(i + 1));
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0;
          for (int64_t x = 0; x < D; ++x)
            dot += double(q.at(b, h, i, x)) * kk.at(b, h, j, x);
          s[size_t(j)] = dot / std::sqrt(double(D)) + slope.data[size_t(h)] * double(j - i);
          m = std::max(m, s[size_t(j)]);
        }
        for (double &x : s)
          sum += (x = std::exp(x - m));
        double D_ = 0;
        for (int64_t x = 0; x < D; ++x) {
          double out = 0;
          for (int64_t j = 0; j <= i; ++j)
            out += s[size_t(j)] / sum * v.at(b, h, j, x);
          errO = std::max(errO, std::abs(out - o.at(b, h, i, x)));
          D_ += out * dout.at(b, h, i, x);
        }
        errLse = std::max(errLse, std::abs(m + std::log(sum) - lse.data[size_t((b * H + h) * S + i)]));
        for (int64_t j = 0; j <= i; ++j) {
          double p = s[size_t(j)] / sum, dp = 0;
          for (int64_t x = 0; x < D; ++x) {
            dvRef[size_t(((b * H + h) * S + j) * D + x)] += p * dout.at(b, h, i, x);
            dp += double(dout.at(b, h, i, x)) * v.at(b, h, j, x);
          }
          slopeRef[size_t(h)] += p * (dp - D_) * double(j - i);
        }
      }
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t j = 0; j < S; ++j)
        for (int64_t x = 0; x < D; ++x)
          errDv = std::max(errDv, std::abs(dvRef[size_t(((b * H + h) * S + j) * D + x)] -
                                           dv.at(b, h, j, x)));
  for (int64_t h = 0; h < H; ++h)
    errSlope = std::max(errSlope, std::abs(slopeRef[size_t(h)] - dslope.data[size_t(h)]));
  EXPECT_LT(errO, 1e-5);
  EXPECT_LT(errLse, 1e-5);
  EXPECT_LT(errDv, 1e-5);
  EXPECT_LT(errSlope, 1e-4);
  for (const HostTensor *t : {&dq, &dk})
    for (float f : t->data)
      ASSERT_TRUE(std::isfinite(f));

  // The arguments are checked as the CUDA runtime checks them.
  EXPECT_FALSE(k.launch({q.arg(ATTNC_BF16), kk.arg(), v.arg(), slope.arg(), o.arg(), lse.arg()}));
  EXPECT_NE(k.error().find("argument 'q'"), std::string::npos) << k.error();
  EXPECT_FALSE(k.launch({q.arg(), kk.arg()}));
  EXPECT_NE(k.error().find("expected 6 arguments"), std::string::npos) << k.error();
  attnc_tensor nullQ = q.arg();
  nullQ.data = nullptr;
  EXPECT_FALSE(k.launch({nullQ, kk.arg(), v.arg(), slope.arg(), o.arg(), lse.arg()}));
  EXPECT_NE(k.error().find("null"), std::string::npos) << k.error();
}

TEST(JIT, TheCPUTargetSaysWhatItDoesNotRun) {
  attnc::Options options;
  options.target = "gpu";
  attnc::Kernel unknown(kSpec, "", options);
  EXPECT_EQ(unknown.error(), "attnc_compile: unknown target 'gpu'; use cuda or cpu");
  options.target = "cpu";
  std::string paged = R"(variant pd {
  dims b, i, j, h, d = 64, dv = d, n
  input q[b, i, h, d] : bf16, k[b, j, h, d] : bf16, v[b, j, h, dv] : bf16
  param block_table[b, n] : i32
  paged k, v by block_table size 16
  score s = dot(q, k) * rsqrt(d)
  output o[b, i, h, dv] = attend(s, v)
})";
  attnc::Kernel pagedKernel(paged, "", options);
  EXPECT_FALSE(pagedKernel.ok());
  EXPECT_NE(pagedKernel.error().find("the cpu target runs dense K/V only"), std::string::npos)
      << pagedKernel.error();
}

}  // namespace
