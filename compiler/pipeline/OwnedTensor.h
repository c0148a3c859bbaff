// Host tensors that own their storage and helpers of the host runs (HostRun.cpp, HostGrad.cpp).
#pragma once

#include "codegen/cpu/CPUExecutor.h"
#include "compiler/frontend/Frontend.h"

#include <cmath>
#include <cstdint>
#include <vector>

namespace attnc::host {

/// A host tensor with its own storage: contiguous in its declared (storage) order. An i4
/// tensor packs its last axis, two values per byte.
struct OwnedTensor {
  std::vector<uint8_t> bytes;
  HostTensor view;
  int64_t values = 1;

  OwnedTensor(DType dtype, std::vector<int64_t> sizes) {
    bytes.assign(size_t(view.layoutContiguous(dtype, std::move(sizes))), 0);
    view.data = bytes.data();
    for (int64_t s : view.sizes)
      values *= s;
  }
  int64_t count() const { return values; }

  /// Visits every element index in storage order.
  template <typename Fn> void forEach(Fn fn) {
    std::vector<int64_t> idx(view.sizes.size(), 0);
    for (int64_t n = 0; n < count(); ++n) {
      fn(idx);
      for (size_t a = idx.size(); a-- > 0;) {
        if (++idx[a] < view.sizes[a])
          break;
        idx[a] = 0;
      }
    }
  }

  /// Descriptor for the kernel: axes permuted from storage order to the canonical order.
  MemRefDescriptor descriptor(const std::vector<int> &perm) const {
    std::vector<int64_t> sizes, strides;
    for (int p : perm) {  // a packed axis (the last) is seen as its bytes
      sizes.push_back(view.unitsAlong(size_t(p)));
      strides.push_back(view.strides[p]);
    }
    return MemRefDescriptor(view.data, sizes, strides);
  }
  MemRefDescriptor descriptor() const {
    std::vector<int> identity(view.sizes.size());
    for (size_t a = 0; a < identity.size(); ++a)
      identity[a] = int(a);
    return descriptor(identity);
  }
};

inline std::vector<int64_t> extentsOf(const TensorDecl &t, const DimSizes &sizes) {
  std::vector<int64_t> out;
  for (int d : t.dims)
    out.push_back(sizes[d]);
  return out;
}

/// Integer params: small ids when indexed by a sequence dim (document ids), else a position in
/// [0, kv_len] (a prefix length, a window).
inline int64_t intParamBound(const Variant &v, const TensorDecl &p, const DimSizes &sizes) {
  for (int d : p.dims)
    if (d == v.qSeqDim || d == v.kvSeqDim)
      return 3;
  return sizes[v.kvSeqDim] + 1;
}

inline double relativeError(const std::vector<double> &got, const std::vector<double> &ref) {
  double num = 0, den = 0;
  for (size_t n = 0; n < ref.size(); ++n) {
    num += (got[n] - ref[n]) * (got[n] - ref[n]);
    den += ref[n] * ref[n];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace attnc::host
