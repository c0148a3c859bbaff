// Kernel cache: "attnc-cache/2\n<checksum>\n<manifest bytes>\n<manifest><ptx>" per key.
#include "compiler/capi/KernelCache.h"

#include "compiler/Manifest.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace attnc {

namespace {
constexpr const char *kMagic = "attnc-cache/2";  // /2: SHA-256 checksums

std::string checksum(const CacheEntry &e) { return hashText(e.manifest + '\0' + e.ptx); }

bool makeDirs(const std::string &path) {
  std::string partial;
  std::stringstream parts(path);
  std::string item;
  if (!path.empty() && path[0] == '/')
    partial = "/";
  while (std::getline(parts, item, '/')) {
    if (item.empty())
      continue;
    partial += item + "/";
    if (mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST)
      return false;
  }
  return true;
}
}  // namespace

std::string KernelCache::defaultDir() {
  if (const char *env = std::getenv("ATTNC_CACHE_DIR"))
    return env;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"))
    return std::string(xdg) + "/attnc";
  if (const char *home = std::getenv("HOME"))
    return std::string(home) + "/.cache/attnc";
  return "";
}

std::string KernelCache::pathFor(const std::string &key) const {
  std::string name = key;
  for (char &ch : name)
    if (ch == ':')
      ch = '-';
  return dir + "/" + name + ".kernel";
}

KernelCache::Lookup KernelCache::load(const std::string &key, CacheEntry &out) const {
  if (!enabled())
    return Lookup::Miss;
  std::ifstream in(pathFor(key), std::ios::binary);
  if (!in)
    return Lookup::Miss;
  std::string magic, sum, lengthText;
  if (!std::getline(in, magic) || magic != kMagic || !std::getline(in, sum) ||
      !std::getline(in, lengthText))
    return Lookup::Corrupt;
  char *end = nullptr;
  unsigned long long length = std::strtoull(lengthText.c_str(), &end, 10);
  if (lengthText.empty() || *end)
    return Lookup::Corrupt;
  std::string rest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (length > rest.size())
    return Lookup::Corrupt;
  CacheEntry entry{rest.substr(0, length), rest.substr(length)};
  if (checksum(entry) != sum || entry.ptx.empty())
    return Lookup::Corrupt;
  out = std::move(entry);
  return Lookup::Hit;
}

bool KernelCache::store(const std::string &key, const CacheEntry &entry, std::string &error) const {
  if (!enabled())
    return true;
  if (!makeDirs(dir)) {
    error = "cannot create the kernel cache directory '" + dir + "'";
    return false;
  }
  std::string target = pathFor(key);
  std::random_device rd;
  std::string temp = target + ".tmp." + std::to_string(getpid()) + "." + std::to_string(rd());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << kMagic << "\n" << checksum(entry) << "\n" << entry.manifest.size() << "\n"
        << entry.manifest << entry.ptx;
    out.flush();
    if (!out) {
      std::remove(temp.c_str());
      error = "cannot write the kernel cache entry '" + temp + "'";
      return false;
    }
  }
  if (std::rename(temp.c_str(), target.c_str()) != 0) {
    std::remove(temp.c_str());
    error = "cannot move the kernel cache entry into place at '" + target + "'";
    return false;
  }
  return true;
}

}  // namespace attnc
