// The on-disk cache: compiled kernels (PTX, cubin, metadata) and tuning decisions, one file
// per key. Writes are atomic (temporary file, then rename); reads verify the magic, the full
// key and a checksum, so a corrupt, truncated or foreign entry is never returned. A missing,
// read-only or unsafe (writable by others) directory degrades to memory-only with one warning.
#pragma once
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "dsl/hash.h"

namespace tigon {

// name -> bytes ("ptx", "cubin", "config", ...)
using CacheEntry = std::map<std::string, std::string>;

class DiskCache {
 public:
  // The directory: $TIGON_CACHE_DIR, else $XDG_CACHE_HOME/tigon, else ~/.cache/tigon.
  static std::string defaultDir();

  explicit DiskCache(std::string dir);

  const std::string &dir() const { return dir_; }
  bool writable() const { return writable_; }

  std::optional<CacheEntry> load(const std::string &key) const;
  // Returns false (after one warning for the whole cache) when the entry could not be written.
  bool store(const std::string &key, const CacheEntry &entry);

  struct Listing {
    std::string file;
    std::string key;  // empty when the file is not a valid entry
    size_t bytes = 0;
  };
  std::vector<Listing> list() const;
  // Removes every entry file; returns how many.
  size_t clear();

  // The file an entry lives in (for tests and `tigon cache list`).
  std::string pathFor(const std::string &key) const;

  static std::string serialize(const std::string &key, const CacheEntry &entry);
  // nullopt when the bytes are not a valid entry for `key` (empty key: any key).
  static std::optional<std::pair<std::string, CacheEntry>> parse(const std::string &bytes);

 private:
  std::string dir_;
  bool writable_ = false;
  bool warned_ = false;
  std::mutex mutex_;
  void disable(const std::string &why);
};

}  // namespace tigon
