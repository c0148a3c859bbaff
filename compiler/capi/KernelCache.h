// On-disk cache of compiled kernels (PTX + manifest). Entries are written atomically (temp file
// + rename, so concurrent compiles of the same key are safe) and carry a checksum: a truncated or
// corrupt entry reads as Corrupt and is rebuilt by the caller.
#pragma once

#include <string>

namespace attnc {

struct CacheEntry {
  std::string manifest;
  std::string ptx;
};

class KernelCache {
public:
  /// `dir` empty: the cache is disabled (every lookup misses, stores do nothing).
  explicit KernelCache(std::string dir) : dir(std::move(dir)) {}
  /// $ATTNC_CACHE_DIR, else $XDG_CACHE_HOME/attnc, else ~/.cache/attnc.
  static std::string defaultDir();

  enum class Lookup { Hit, Miss, Corrupt };
  Lookup load(const std::string &key, CacheEntry &out) const;
  bool store(const std::string &key, const CacheEntry &entry, std::string &error) const;
  std::string pathFor(const std::string &key) const;
  bool enabled() const { return !dir.empty(); }

private:
  std::string dir;
};

}  // namespace attnc
