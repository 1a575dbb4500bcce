#include "runtime/disk_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "dsl/frontend.h"
#include "runtime/log.h"

namespace fs = std::filesystem;

namespace tigon {

namespace {

constexpr char kMagic[8] = {'T', 'I', 'G', 'O', 'N', 'C', '0', '1'};
constexpr const char *kSuffix = ".tgc";

void putU64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

bool getU64(const std::string &in, size_t &pos, uint64_t *v) {
  if (pos + 8 > in.size()) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) *v |= uint64_t(uint8_t(in[pos + size_t(i)])) << (8 * i);
  pos += 8;
  return true;
}

bool getBytes(const std::string &in, size_t &pos, std::string *out) {
  uint64_t n;
  if (!getU64(in, pos, &n) || n > in.size() - pos) return false;
  *out = in.substr(pos, size_t(n));
  pos += size_t(n);
  return true;
}

// Creates the directory (and parents) private to the user: 0700.
bool makeDirs(const fs::path &p, std::string *why) {
  std::error_code ec;
  if (fs::is_directory(p, ec)) return true;
  if (p.has_parent_path() && p.parent_path() != p && !makeDirs(p.parent_path(), why)) return false;
  if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) {
    *why = fmt::format("cannot create {}: {}", p.string(), std::strerror(errno));
    return false;
  }
  return true;
}

}  // namespace

std::string DiskCache::defaultDir() {
  if (const char *d = std::getenv("TIGON_CACHE_DIR"); d && *d) return d;
  if (const char *x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "tigon").string();
  const char *home = std::getenv("HOME");
  return (fs::path(home && *home ? home : "/tmp") / ".cache" / "tigon").string();
}

DiskCache::DiskCache(std::string dir) : dir_(std::move(dir)) {
  std::string why;
  struct stat st;
  if (!makeDirs(dir_, &why)) {
    disable(why);
  } else if (stat(dir_.c_str(), &st) != 0) {
    disable(fmt::format("cannot stat {}", dir_));
  } else if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
    // a directory others can write to could hold planted entries: refuse it
    disable(fmt::format("{} is writable by other users (or not owned by you); refusing it", dir_));
  } else if (access(dir_.c_str(), W_OK) != 0) {
    disable(fmt::format("{} is not writable", dir_));
  } else {
    writable_ = true;
  }
}

void DiskCache::disable(const std::string &why) {
  writable_ = false;
  if (!warned_) log::warn("kernel cache disabled, compiling in memory only: {}", why);
  warned_ = true;
}

std::string DiskCache::pathFor(const std::string &key) const {
  return (fs::path(dir_) / (hex64(fnv1a64(key)) + kSuffix)).string();
}

std::string DiskCache::serialize(const std::string &key, const CacheEntry &entry) {
  std::string out(kMagic, sizeof kMagic);
  putU64(out, key.size());
  out += key;
  putU64(out, entry.size());
  for (const auto &[name, bytes] : entry) {
    putU64(out, name.size());
    out += name;
    putU64(out, bytes.size());
    out += bytes;
  }
  putU64(out, fnv1a64(out));
  return out;
}

std::optional<std::pair<std::string, CacheEntry>> DiskCache::parse(const std::string &bytes) {
  if (bytes.size() < sizeof kMagic + 8 || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) return std::nullopt;
  size_t pos = bytes.size() - 8;
  uint64_t sum;
  if (!getU64(bytes, pos, &sum) || sum != fnv1a64(bytes.substr(0, bytes.size() - 8))) return std::nullopt;
  std::string body = bytes.substr(0, bytes.size() - 8);
  pos = sizeof kMagic;
  std::string key;
  uint64_t n;
  if (!getBytes(body, pos, &key) || !getU64(body, pos, &n) || n > body.size()) return std::nullopt;
  CacheEntry entry;
  for (uint64_t i = 0; i < n; ++i) {
    std::string name, data;
    if (!getBytes(body, pos, &name) || !getBytes(body, pos, &data)) return std::nullopt;
    entry[name] = std::move(data);
  }
  if (pos != body.size()) return std::nullopt;
  return std::make_pair(std::move(key), std::move(entry));
}

std::optional<CacheEntry> DiskCache::load(const std::string &key) const {
  std::string path = pathFor(key);
  std::error_code ec;
  if (!fs::exists(path, ec)) return std::nullopt;
  std::string bytes;
  try {
    bytes = readTextFile(path);
  } catch (...) {
    return std::nullopt;
  }
  auto parsed = parse(bytes);
  if (!parsed || parsed->first != key) {
    log::info("cache entry {} is corrupt or belongs to another key; ignoring it", path);
    return std::nullopt;
  }
  return std::move(parsed->second);
}

bool DiskCache::store(const std::string &key, const CacheEntry &entry) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!writable_) return false;
  std::string bytes = serialize(key, entry);
  std::string tmpl = (fs::path(dir_) / ".tmp-XXXXXX").string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0) {
    disable(fmt::format("cannot write in {}: {}", dir_, std::strerror(errno)));
    return false;
  }
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w <= 0) break;
    done += size_t(w);
  }
  bool ok = done == bytes.size() && fsync(fd) == 0;
  ok = close(fd) == 0 && ok;
  // rename is atomic: a reader sees the old entry or the whole new one, never a part
  if (ok) ok = rename(tmpl.c_str(), pathFor(key).c_str()) == 0;
  if (!ok) {
    unlink(tmpl.c_str());
    disable(fmt::format("writing {} failed: {}", pathFor(key), std::strerror(errno)));
  }
  return ok;
}

std::vector<DiskCache::Listing> DiskCache::list() const {
  std::vector<Listing> out;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir_, ec)) {
    if (e.path().extension() != kSuffix) continue;
    Listing l;
    l.file = e.path().filename().string();
    l.bytes = size_t(e.file_size(ec));
    try {
      if (auto parsed = parse(readTextFile(e.path().string()))) l.key = parsed->first;
    } catch (...) {
    }
    out.push_back(l);
  }
  return out;
}

size_t DiskCache::clear() {
  size_t n = 0;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    bool ours = e.path().extension() == kSuffix || name.rfind(".tmp-", 0) == 0;
    if (ours && fs::remove(e.path(), ec)) ++n;
  }
  return n;
}

}  // namespace tigon
