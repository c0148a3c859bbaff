// A C++ program that JIT-compiles an attention variant from its spec text with attnc and runs
// it: causal attention with an ALiBi-style per-head slope, written here in ten lines. It checks
// the output against a float64 loop of the same math and prints the largest relative error.
//   attnc_host           the CPU back end (f32 host tensors)
//   attnc_host --cuda    compiles the same variant to PTX (sm_80) and reports its size; launching
//                        it takes device buffers (attnc_runtime.h; tests/gpu show how).
#include <attnc/attnc.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

static const char *kSpec = R"(
variant sloped {
  dims   b, h, i : q_len, j : kv_len, d = 32, dv = d
  input  q[b, h, i, d] : f32, k[b, h, j, d] : f32, v[b, h, j, dv] : f32
  param  slope[h] : f32
  score  s = dot(q, k) * rsqrt(d) - slope[h] * (i - j)
  mask   j <= i
  norm   softmax
  output o[b, h, i, dv] = attend(s, v)
}
)";

int main(int argc, char **argv) {
  bool cuda = argc > 1 && std::strcmp(argv[1], "--cuda") == 0;
  attnc::Options options;
  options.target = cuda ? "cuda" : "cpu";
  options.noCache = true;
  attnc::Kernel kernel(kSpec, "sloped", options);
  if (!kernel.ok()) {
    std::fprintf(stderr, "attnc_host: %s\n", kernel.error().c_str());
    return 1;
  }
  if (cuda) {  // the PTX and manifest a GPU host would load
    std::printf("attnc_host: compiled for CUDA: %zu bytes of PTX\n", kernel.ptx().size());
    return 0;
  }

  const int64_t B = 2, H = 3, I = 37, J = 37, D = 32;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  std::vector<float> q(B * H * I * D), k(B * H * J * D), v(B * H * J * D), o(B * H * I * D),
      lse(B * H * I), slope(H);
  for (auto *t : {&q, &k, &v})
    for (float &x : *t)
      x = normal(rng);
  for (int64_t h = 0; h < H; ++h)
    slope[h] = std::pow(2.0f, -8.0f * float(h + 1) / float(H));

  // Sizes and strides in each argument's canonical dim order (the manifest's `dims`).
  auto tensor = [](std::vector<float> &t, std::vector<int64_t> sizes, std::vector<int64_t> &keep) {
    size_t at = keep.size();
    keep.insert(keep.end(), sizes.begin(), sizes.end());
    int64_t stride = 1;
    std::vector<int64_t> strides(sizes.size());
    for (size_t a = sizes.size(); a-- > 0;) {
      strides[a] = stride;
      stride *= sizes[a];
    }
    keep.insert(keep.end(), strides.begin(), strides.end());
    return std::make_pair(&t, at);
  };
  std::vector<int64_t> dims;  // every argument's sizes then strides; pointers taken once complete
  auto qa = tensor(q, {B, H, I, D}, dims), ka = tensor(k, {B, H, J, D}, dims),
       va = tensor(v, {B, H, J, D}, dims), sa = tensor(slope, {H}, dims),
       oa = tensor(o, {B, H, I, D}, dims), la = tensor(lse, {B, H, I}, dims);
  auto arg = [&](std::pair<std::vector<float> *, size_t> t, int32_t rank) {
    return attnc_tensor{t.first->data(), ATTNC_F32, rank, dims.data() + t.second,
                        dims.data() + t.second + rank};
  };
  // The argument order is the manifest's: inputs, params, outputs, then the row statistics.
  std::vector<attnc_tensor> args = {arg(qa, 4), arg(ka, 4), arg(va, 4), arg(sa, 1), arg(oa, 4),
                                    arg(la, 3)};
  if (!kernel.launch(args)) {
    std::fprintf(stderr, "attnc_host: %s\n", kernel.error().c_str());
    return 1;
  }

  // The same math in float64.
  double worst = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < I; ++i) {
        std::vector<double> s(J, -INFINITY);
        double m = -INFINITY;
        for (int64_t j = 0; j <= i && j < J; ++j) {
          double dot = 0;
          for (int64_t e = 0; e < D; ++e)
            dot += double(q[((b * H + h) * I + i) * D + e]) * k[((b * H + h) * J + j) * D + e];
          s[j] = dot / std::sqrt(double(D)) - double(slope[h]) * double(i - j);
          m = std::max(m, s[j]);
        }
        double l = 0;
        for (int64_t j = 0; j <= i && j < J; ++j)
          l += std::exp(s[j] - m);
        for (int64_t e = 0; e < D; ++e) {
          double want = 0;
          for (int64_t j = 0; j <= i && j < J; ++j)
            want += std::exp(s[j] - m) / l * v[((b * H + h) * J + j) * D + e];
          double got = o[((b * H + h) * I + i) * D + e];
          worst = std::max(worst, std::abs(got - want) / std::max(1.0, std::abs(want)));
        }
      }
  std::printf("attnc_host: sloped causal attention on the CPU back end, max relative error %.2e\n",
              worst);
  return worst <= 1e-5 ? 0 : 1;
}
