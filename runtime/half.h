// The 16-bit float formats bf16 and f16: rounding doubles to them, and converting between
// f32 and their bit patterns. Rounding is to nearest, ties to even; values past the largest
// finite one become infinite; f16 subnormals are handled; NaN stays NaN (made quiet, sign and
// leading payload bits kept). One rounding routine serves every format, so the interpreter's
// arithmetic and the bit conversions cannot disagree.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace tigon {

inline uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Rounds x to the nearest value of a binary format with `fracBits` fraction bits and normal
// exponents minExp..maxExp (gradual underflow below 2^minExp). Rounding straight from double
// avoids the double-rounding error of going through f32 first. Uses the current rounding
// mode of std::nearbyint, which is to nearest even unless someone changed it.
inline double roundToFormat(double x, int fracBits, int minExp, int maxExp) {
  if (!std::isfinite(x) || x == 0) return x;
  int e;
  std::frexp(x, &e);  // |x| in [2^(e-1), 2^e)
  int ulpExp = std::max(e - 1, minExp) - fracBits;
  double r = std::ldexp(std::nearbyint(std::ldexp(x, -ulpExp)), ulpExp);
  double maxFinite = std::ldexp(2.0 - std::ldexp(1.0, -fracBits), maxExp);
  return std::fabs(r) > maxFinite ? std::copysign(HUGE_VAL, x) : r;
}

inline double roundToBf16(double x) { return roundToFormat(x, 7, -126, 127); }
inline double roundToF16(double x) { return roundToFormat(x, 10, -14, 15); }

// bf16 is the upper half of an f32.
inline uint16_t floatToBf16Bits(float f) {
  if (std::isnan(f)) return uint16_t((floatBits(f) >> 16) | 0x0040);
  return uint16_t(floatBits(float(roundToBf16(f))) >> 16);
}

inline float bf16BitsToFloat(uint16_t b) { return bitsToFloat(uint32_t(b) << 16); }

inline uint16_t floatToF16Bits(float f) {
  uint32_t u = floatBits(f);
  auto sign = uint16_t((u >> 16) & 0x8000);
  if (std::isnan(f)) return uint16_t(sign | 0x7e00 | ((u >> 13) & 0x3ff));
  double a = std::fabs(roundToF16(f));  // now exactly an f16 value
  if (std::isinf(a)) return uint16_t(sign | 0x7c00);
  if (a < 0x1p-14) return uint16_t(sign | uint16_t(a * 0x1p24));  // subnormal: k * 2^-24
  int e;
  double m = std::frexp(a, &e);  // a = 2m * 2^(e-1), 1 <= 2m < 2
  return uint16_t(sign | ((e + 14) << 10) | uint16_t((2 * m - 1) * 1024));
}

inline float f16BitsToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp == 31) return bitsToFloat(sign | 0x7f800000 | uint32_t(mant) << 13);
  float mag = exp == 0 ? std::ldexp(float(mant), -24) : std::ldexp(float(mant | 0x400), exp - 25);
  return sign ? -mag : mag;
}

}  // namespace tigon
