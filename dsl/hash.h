// 64-bit FNV-1a: names cache entries, checks their contents, and identifies a source text.
#pragma once
#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace tigon {

inline uint64_t fnv1a64(const std::string &bytes, uint64_t seed = 14695981039346656037ull) {
  uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

inline std::string hex64(uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace tigon
