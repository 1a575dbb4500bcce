// The disk cache: atomic writes, verified reads, entries bound to their key, concurrent and
// killed writers, unusable directories.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include "dsl/frontend.h"
#include "runtime/disk_cache.h"

namespace fs = std::filesystem;
using namespace tigon;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "tigon-test-XXXXXX").string();
    REQUIRE(mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void overwrite(const std::string &path, const std::string &bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST_CASE("cache: store and load round-trip, keyed by the full key") {
  TempDir tmp;
  DiskCache cache((tmp.path / "c").string());
  REQUIRE(cache.writable());
  CacheEntry e = {{"ptx", "PTX TEXT"}, {"cubin", std::string("\0\x01\x02binary", 9)}};
  CHECK_FALSE(cache.load("k1").has_value());
  REQUIRE(cache.store("k1", e));
  auto got = cache.load("k1");
  REQUIRE(got.has_value());
  CHECK(*got == e);
  CHECK_FALSE(cache.load("k2").has_value());
  // the directory is private to the user
  struct stat st;
  REQUIRE(stat(cache.dir().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
}

TEST_CASE("cache: a flipped byte, a truncated file or a foreign entry is never loaded") {
  TempDir tmp;
  DiskCache cache(tmp.path.string());
  CacheEntry e = {{"ptx", std::string(1000, 'p')}, {"cubin", std::string(5000, 'c')}};
  REQUIRE(cache.store("key", e));
  std::string path = cache.pathFor("key");
  std::string good = readTextFile(path);
  for (size_t pos : {size_t(0), size_t(9), good.size() / 2, good.size() - 1}) {
    std::string bad = good;
    bad[pos] ^= 0x20;
    overwrite(path, bad);
    CHECK_FALSE(cache.load("key").has_value());
  }
  for (size_t len : {size_t(0), size_t(7), good.size() / 3, good.size() - 1}) {
    overwrite(path, good.substr(0, len));
    CHECK_FALSE(cache.load("key").has_value());
  }
  // and a rewrite repairs it
  REQUIRE(cache.store("key", e));
  CHECK(cache.load("key") == e);
}

TEST_CASE("cache: an entry moved to another key's file, or forged for it, is not returned") {
  TempDir tmp;
  DiskCache cache(tmp.path.string());
  // two kernel keys as the JIT makes them (runtime/jit.h), differing only in N
  const std::string a = "tigon 0.1.0 | llvm 19.1 | sm_90 | source 1f2e | rms_norm_fwd | N=4096 ROWS=1 T=bf16 WARPS=4 | align 1111";
  const std::string b = "tigon 0.1.0 | llvm 19.1 | sm_90 | source 1f2e | rms_norm_fwd | N=8192 ROWS=1 T=bf16 WARPS=4 | align 1111";
  const CacheEntry code = {{"ptx", "PTX for N=4096"}, {"cubin", "CUBIN for N=4096"}};
  REQUIRE(cache.store(a, code));
  REQUIRE(cache.pathFor(a) != cache.pathFor(b));
  // the entry holds its full key, not only the hash in its file name
  std::string bytes = readTextFile(cache.pathFor(a));
  CHECK(bytes.find(a) != std::string::npos);
  REQUIRE(DiskCache::parse(bytes).has_value());
  CHECK(DiskCache::parse(bytes)->first == a);

  SUBCASE("copied to B's file") {
    fs::copy_file(cache.pathFor(a), cache.pathFor(b));
    CHECK_FALSE(cache.load(b).has_value());
    CHECK(cache.load(a) == code);
  }
  SUBCASE("renamed to B's file") {
    fs::rename(cache.pathFor(a), cache.pathFor(b));
    CHECK_FALSE(cache.load(b).has_value());
    CHECK_FALSE(cache.load(a).has_value());
  }
  SUBCASE("hand-made: right magic, size and checksum, but A's key in B's file") {
    std::string forged = DiskCache::serialize(a, {{"ptx", "other PTX"}, {"cubin", "other code"}});
    REQUIRE(DiskCache::parse(forged).has_value());  // a well-formed entry
    overwrite(cache.pathFor(b), forged);
    CHECK_FALSE(cache.load(b).has_value());
  }
  // listing says whose entry B's file holds
  for (const auto &l : cache.list())
    if (l.file == fs::path(cache.pathFor(b)).filename().string()) CHECK(l.key == a);
  // B's own entry, once written, is found
  REQUIRE(cache.store(b, {{"cubin", "CUBIN for N=8192"}}));
  CHECK(cache.load(b)->at("cubin") == "CUBIN for N=8192");
}

TEST_CASE("cache: eight processes writing at once leave a valid cache") {
  TempDir tmp;
  std::string dir = (tmp.path / "shared").string();
  std::vector<pid_t> children;
  for (int p = 0; p < 8; ++p) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      DiskCache cache(dir);
      bool ok = cache.writable();
      for (int i = 0; i < 50; ++i) {
        // every process writes the same keys: the last rename wins, all are complete
        std::string key = "kernel-" + std::to_string(i % 10);
        ok = cache.store(key, {{"ptx", std::string(size_t(2000 + i % 10), char('a' + i % 10))}}) && ok;
        auto back = cache.load(key);
        ok = back.has_value() && back->at("ptx").size() == size_t(2000 + i % 10) && ok;
      }
      _exit(ok ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t c : children) {
    int status = 0;
    waitpid(c, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  DiskCache cache(dir);
  auto entries = cache.list();
  CHECK(entries.size() == 10);
  for (const auto &l : entries) CHECK_FALSE(l.key.empty());
  for (int i = 0; i < 10; ++i) {
    auto e = cache.load("kernel-" + std::to_string(i));
    REQUIRE(e.has_value());
    CHECK(e->at("ptx") == std::string(size_t(2000 + i), char('a' + i)));
  }
  for (const auto &f : fs::directory_iterator(dir)) CHECK(f.path().filename().string().rfind(".tmp-", 0) != 0);
}

TEST_CASE("cache: writers killed with SIGKILL mid-write leave only exact entries or misses") {
  TempDir tmp;
  std::string dir = (tmp.path / "killed").string();
  // entries of about 1 MiB, each filled with its own key, so a write takes a while and any
  // entry loaded under the wrong key, or cut short, is told apart from the right one
  constexpr int kKeys = 8;
  std::vector<CacheEntry> entries;
  for (int i = 0; i < kKeys; ++i) {
    std::string key = "kernel-" + std::to_string(i) + ";", cubin;
    while (cubin.size() < (size_t(1) << 20) + size_t(i) * 4099) cubin += key;
    entries.push_back({{"ptx", "ptx of " + key}, {"cubin", cubin}});
  }
  auto key = [](int i) { return "kernel-" + std::to_string(i); };
  auto leftovers = [&] {
    int n = 0;
    for (const auto &f : fs::directory_iterator(dir)) n += f.path().filename().string().rfind(".tmp-", 0) == 0;
    return n;
  };
  REQUIRE(DiskCache(dir).writable());
  std::mt19937 rng(12345);
  std::set<int> complete;  // entries seen whole: an interrupted rewrite must not lose them
  int kills = 0;
  for (int attempt = 0; attempt < 400 && (kills < 20 || leftovers() < 5); ++attempt) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // rewrite every key, round and round, until killed
      DiskCache cache(dir);
      for (int j = attempt;; ++j) cache.store(key(j % kKeys), entries[size_t(j % kKeys)]);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(500, 30000)(rng)));
    REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
    ++kills;
    DiskCache reader(dir);
    for (int i = 0; i < kKeys; ++i) {
      auto got = reader.load(key(i));
      if (got) CHECK(*got == entries[size_t(i)]);
      if (got) complete.insert(i);
      else CHECK_MESSAGE(!complete.count(i), key(i), " was complete and is lost after kill ", kills);
    }
  }
  // some kills landed inside a store: its temporary file is left behind
  int left = leftovers();
  MESSAGE(kills, " kills, ", left, " left temporary files, ", complete.size(), " entries complete");
  CHECK(kills >= 20);
  REQUIRE(left >= 5);
  CHECK_FALSE(complete.empty());
  // a fresh cache over the directory lists only entries, each under its own key, and writes
  DiskCache cache(dir);
  auto listed = cache.list();
  CHECK(listed.size() == complete.size());
  for (const auto &l : listed) {
    CHECK_FALSE(l.key.empty());
    CHECK(l.file == fs::path(cache.pathFor(l.key)).filename().string());
  }
  REQUIRE(cache.store(key(0), entries[0]));
  CHECK(cache.load(key(0)) == entries[0]);
  // clear removes the entries and every leftover
  size_t entriesNow = cache.list().size();
  CHECK(cache.clear() == entriesNow + size_t(left));
  CHECK(fs::is_empty(dir));
}

TEST_CASE("cache: unusable directories degrade to memory only") {
  TempDir tmp;
  SUBCASE("cannot be created (its parent is a file)") {
    std::ofstream(tmp.path / "file") << "x";
    DiskCache cache((tmp.path / "file" / "cache").string());
    CHECK_FALSE(cache.writable());
    CHECK_FALSE(cache.store("k", {{"ptx", "x"}}));
    CHECK_FALSE(cache.load("k").has_value());
  }
  SUBCASE("writable by other users") {
    fs::path shared = tmp.path / "open";
    fs::create_directory(shared);
    fs::permissions(shared, fs::perms::all);
    DiskCache cache(shared.string());
    CHECK_FALSE(cache.writable());
    CHECK_FALSE(cache.store("k", {{"ptx", "x"}}));
    CHECK(fs::is_empty(shared));
  }
  SUBCASE("exists but writes fail (a read-only file system)") {
    DiskCache cache("/sys");
    CHECK_FALSE(cache.store("k", {{"ptx", "x"}}));
    CHECK_FALSE(cache.writable());
  }
}

TEST_CASE("cache: clear removes entries and leftovers of killed writers") {
  TempDir tmp;
  DiskCache cache(tmp.path.string());
  REQUIRE(cache.store("a", {{"x", "1"}}));
  REQUIRE(cache.store("b", {{"x", "2"}}));
  std::ofstream(tmp.path / ".tmp-abcdef") << "partial";
  std::ofstream(tmp.path / "unrelated.txt") << "keep";
  CHECK(cache.clear() == 3);
  CHECK(cache.list().empty());
  CHECK(fs::exists(tmp.path / "unrelated.txt"));
}

TEST_CASE("cache: the default directory follows TIGON_CACHE_DIR, XDG_CACHE_HOME, HOME") {
  const char *saved[3] = {std::getenv("TIGON_CACHE_DIR"), std::getenv("XDG_CACHE_HOME"), std::getenv("HOME")};
  std::string keep[3];
  for (int i = 0; i < 3; ++i) keep[i] = saved[i] ? saved[i] : "";
  setenv("TIGON_CACHE_DIR", "/a/b", 1);
  setenv("XDG_CACHE_HOME", "/x", 1);
  setenv("HOME", "/h", 1);
  CHECK(DiskCache::defaultDir() == "/a/b");
  unsetenv("TIGON_CACHE_DIR");
  CHECK(DiskCache::defaultDir() == "/x/tigon");
  unsetenv("XDG_CACHE_HOME");
  CHECK(DiskCache::defaultDir() == "/h/.cache/tigon");
  const char *names[3] = {"TIGON_CACHE_DIR", "XDG_CACHE_HOME", "HOME"};
  for (int i = 0; i < 3; ++i) {
    if (saved[i]) setenv(names[i], keep[i].c_str(), 1);
    else unsetenv(names[i]);
  }
}
