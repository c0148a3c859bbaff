// Conversions between double/float and the 16-bit float formats f16 (IEEE binary16) and bf16
// (bfloat16), rounding to nearest, ties to even. NaN stays NaN (quiet, sign kept), infinities
// stay infinities, overflow rounds to infinity. Everything goes through double, which holds f32
// exactly, so f32 -> f16 is rounded once (no double rounding).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace attnc {
namespace half_detail {

inline uint64_t doubleBits(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return bits;
}

/// m >> s, rounded to nearest, ties to even. m < 2^53, so for s >= 64 the result is 0.
inline uint64_t shiftRoundEven(uint64_t m, int s) {
  if (s <= 0)
    return m;
  if (s >= 64)
    return 0;
  uint64_t kept = m >> s;
  uint64_t rest = m & ((uint64_t(1) << s) - 1);
  uint64_t half = uint64_t(1) << (s - 1);
  if (rest > half || (rest == half && (kept & 1)))
    ++kept;
  return kept;
}

/// Encodes x in a binary format with ExpBits exponent bits and MantBits stored mantissa bits.
template <int ExpBits, int MantBits> uint16_t encode(double x) {
  constexpr int bias = (1 << (ExpBits - 1)) - 1;
  constexpr uint32_t maxExp = (1u << ExpBits) - 1;
  uint64_t bits = doubleBits(x);
  uint16_t sign = uint16_t((bits >> 63) << (ExpBits + MantBits));
  int dexp = int((bits >> 52) & 0x7ff);
  uint64_t frac = bits & ((uint64_t(1) << 52) - 1);
  uint16_t infBits = uint16_t(maxExp << MantBits);
  if (dexp == 0x7ff)  // inf or NaN
    return frac ? uint16_t(sign | infBits | (1u << (MantBits - 1))) : uint16_t(sign | infBits);
  if (dexp == 0)  // zero or a double subnormal: far below the smallest target subnormal
    return sign;
  uint64_t mant = frac | (uint64_t(1) << 52);  // value = mant * 2^(dexp - 1075)
  int e = dexp - 1023 + bias;                  // target biased exponent
  if (e >= 1) {
    uint64_t m = shiftRoundEven(mant, 52 - MantBits);
    if (m >> (MantBits + 1)) {  // rounding carried into a new binade
      m >>= 1;
      ++e;
    }
    if (e >= int(maxExp))
      return uint16_t(sign | infBits);
    return uint16_t(sign | (uint32_t(e) << MantBits) | (m & ((1u << MantBits) - 1)));
  }
  // Subnormal target: the mantissa field counts units of 2^(1 - bias - MantBits). A result of
  // 2^MantBits is exactly the encoding of the smallest normal number.
  return uint16_t(sign | shiftRoundEven(mant, 52 - MantBits + (1 - e)));
}

template <int ExpBits, int MantBits> double decode(uint16_t h) {
  constexpr int bias = (1 << (ExpBits - 1)) - 1;
  constexpr uint32_t maxExp = (1u << ExpBits) - 1;
  bool negative = (h >> (ExpBits + MantBits)) & 1;
  uint32_t e = (h >> MantBits) & maxExp;
  uint32_t m = h & ((1u << MantBits) - 1);
  double mag;
  if (e == 0)
    mag = std::ldexp(double(m), 1 - bias - MantBits);
  else if (e == maxExp)
    mag = m ? std::nan("") : HUGE_VAL;
  else
    mag = std::ldexp(double(m | (1u << MantBits)), int(e) - bias - MantBits);
  return negative ? -mag : mag;
}

}  // namespace half_detail

inline uint16_t f16FromDouble(double x) { return half_detail::encode<5, 10>(x); }
inline uint16_t f16FromFloat(float x) { return f16FromDouble(x); }
inline double f16ToDouble(uint16_t h) { return half_detail::decode<5, 10>(h); }
inline float f16ToFloat(uint16_t h) { return float(f16ToDouble(h)); }  // exact

inline uint16_t bf16FromDouble(double x) { return half_detail::encode<8, 7>(x); }
inline uint16_t bf16FromFloat(float x) { return bf16FromDouble(x); }
inline double bf16ToDouble(uint16_t h) { return half_detail::decode<8, 7>(h); }
inline float bf16ToFloat(uint16_t h) { return float(bf16ToDouble(h)); }  // exact

}  // namespace attnc
