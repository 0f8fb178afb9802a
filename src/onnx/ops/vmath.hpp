// Vectorisable float math for hot elementwise loops (plain arithmetic + bit casts, no calls, so
// GCC vectorises loops that use them). Accuracy: exp within ~2 ulp over its float range.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace quiver::onnx::vmath {

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// e^x: x = n ln2 + r, |r| <= ln2/2, e^r by its Taylor series to r^7 (truncation < 6e-9 relative),
// 2^n assembled in the exponent bits. Underflows to 0 below -87.3, saturates to +inf above 88.72.
inline float exp(float x) {
  const float hi = 88.72283f, lo = -87.33654f;
  const bool is_nan = x != x;
  const bool over = x > hi;
  const bool under = x < lo;
  // NaN is replaced before the float -> int conversion below (undefined for NaN); the result is
  // NaN again at the end.
  float xc = is_nan ? 0.0f : (x < lo ? lo : (x > hi ? hi : x));
  const float n = std::nearbyint(xc * 1.44269504088896341f);
  // ln2 split in two so n*ln2 is exact enough for |n| <= 128.
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t e = static_cast<int32_t>(n) + 127;
  // n in [-126, 128]: split the scale so 2^128 does not overflow the exponent field.
  const int32_t e1 = e > 254 ? 254 : (e < 1 ? 1 : e);
  const float scale = bits_to_float(static_cast<uint32_t>(e1) << 23);
  float out = p * scale * (e > 254 ? 2.0f : 1.0f);
  out = under ? 0.0f : out;
  out = over ? INFINITY : out;
  return is_nan ? x : out;
}

}  // namespace quiver::onnx::vmath
