// Portable SIMD helpers on GCC/Clang vector extensions.
//
// One vector holds LANES consecutive pixels of a tile row: 16 with AVX-512,
// 8 otherwise (AVX2 runs it as one register, SSE as two). The compiler maps the
// element-wise operators below to the widest instructions `-march` allows.
#pragma once

#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace splatops {

#if defined(__AVX512F__)
constexpr int LANES = 16;
#else
constexpr int LANES = 8;
#endif

typedef float vf __attribute__((vector_size(LANES * 4)));
typedef int32_t vi __attribute__((vector_size(LANES * 4)));

static inline vf vsplat(float s) {
    vf v = {};
    return v + s;
}

static inline vi visplat(int32_t s) {
    vi v = {};
    return v + s;
}

static inline vf vmin(vf a, vf b) { return a < b ? a : b; }

static inline vf vmax(vf a, vf b) { return a > b ? a : b; }

static inline vf vabs(vf a) { return a < 0.f ? -a : a; }

static inline float hsum(vf v) {
    // Fixed pairwise order, so sums are reproducible bit for bit.
    float s = 0.f;
    for (int l = 0; l < LANES; ++l) s += v[l];
    return s;
}

// Sign-bit mask of a comparison result (lanes are 0 or -1), one bit per lane.
static inline uint32_t lane_mask(vi m) {
#if defined(__AVX512F__)
    return (uint32_t)_mm512_cmplt_epi32_mask((__m512i)m, _mm512_setzero_si512());
#elif defined(__AVX2__)
    return (uint32_t)_mm256_movemask_ps((__m256)m);
#else
    uint32_t bits = 0;
    for (int l = 0; l < LANES; ++l) bits |= (m[l] < 0 ? 1u : 0u) << l;
    return bits;
#endif
}

static inline bool any(vi m) { return lane_mask(m) != 0; }

static inline bool all(vi m) { return lane_mask(m) == (uint32_t)((1ull << LANES) - 1); }

// exp(x) for a vector, Cephes-style: x = n*ln2 + r with |r| <= ln2/2 (ln2 split
// in two constants so r is exact), exp(r) by a degree-6 polynomial, then 2^n is
// put in the exponent bits. Inputs are clamped to [-87, 88] so 2^n stays a
// normal float. Accuracy: relative error below 1e-7 (about 1 ulp) over
// [-87, 88]; tests/core/test_cpu_backend.py checks it against std::exp.
static inline vf fast_exp(vf x) {
    x = vmax(vmin(x, vsplat(88.0f)), vsplat(-87.0f));
    const vf magic = vsplat(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
    vf t = x * 1.44269504088896341f + magic;
    vf n = t - magic;
    vf r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    vf p = vsplat(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    vf y = p * (r * r) + r + 1.0f;
    vi ni = __builtin_convertvector(n, vi);
    vi bits = (ni + 127) << 23;
    return y * (vf)bits;
}

}  // namespace splatops
