// Tile-based Gaussian compositing on the CPU: binning, forward and backward.
//
// Semantics are gsplat's (rasterize_to_pixels 3DGS, v1.5.3): a Gaussian touches
// the pixels of the tiles its radii overlap; each pixel blends front to back
// (depth, then Gaussian index), skips alpha < 1/255 and sigma < 0, and stops
// before the contribution that would bring transmittance to <= 1e-4. The
// backward walks each pixel back to front from its last contributor.
//
// Work is parallel over tiles (OpenMP). A tile keeps its pixel state in SIMD
// vectors of LANES consecutive pixels of one row, and loops over its Gaussians
// outermost, touching only the rows and strips that the Gaussian's
// alpha >= 1/255 ellipse reaches. The backward writes one gradient row per
// intersection and reduces them per Gaussian in a fixed order, so results are
// identical bit for bit across runs and thread counts (no float atomics).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/python.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "project.h"
#include "simd.h"
#include "ssim.h"

namespace splatops {

namespace {

constexpr float kAlphaThreshold = 1.0f / 255.0f;
constexpr float kMaxAlpha = 0.999f;
constexpr float kMinTransmittance = 1e-4f;

// Fields of a packed Gaussian record (see pack_gaussians).
enum { kMx = 0, kMy, kA, kB, kC, kOp, kEx, kEy, kCol };

struct Problem {
    const float *means2d;  // [C*N, 2]
    const float *conics;   // [C*N, 3]
    const float *colors;   // [C*N, D]
    const float *opacity;  // [C*N]
    const float *bg;       // [C, D] or nullptr
    const float *rec;      // [C*N, stride] packed records, see pack_gaussians
    int stride;
    const int64_t *offsets;  // [C*T + 1] start of each tile's list in ids
    const int32_t *ids;      // [M] flattened Gaussian index, tile lists front to back
    int64_t C, N;
    int D, W, H, ts, tw, th;
};

struct TileGeom {
    int64_t cam, begin, end;
    int x0, y0, rows, cols, ns, nv;
};

TileGeom tile_geom(const Problem &p, int64_t tile) {
    const int64_t T = (int64_t)p.tw * p.th;
    TileGeom g;
    g.cam = tile / T;
    const int64_t t = tile % T;
    g.x0 = (int)(t % p.tw) * p.ts;
    g.y0 = (int)(t / p.tw) * p.ts;
    g.rows = std::min(p.ts, p.H - g.y0);
    g.cols = std::min(p.ts, p.W - g.x0);
    g.ns = (g.cols + LANES - 1) / LANES;
    g.nv = g.rows * g.ns;
    g.begin = p.offsets[tile];
    g.end = p.offsets[tile + 1];
    return g;
}

// Inclusive pixel rows/strips of the tile that the Gaussian's visible ellipse
// reaches; false when none.
struct Span {
    int r0, r1, s0, s1;
};

inline __attribute__((always_inline)) bool gaussian_span(const Problem &p, const TileGeom &tg, int64_t gid, Span &sp) {
    const float *r = p.rec + gid * p.stride;
    const float ex = r[kEx], ey = r[kEy];
    if (!(ex >= 0.f)) return false;
    const float mx = r[kMx], my = r[kMy];
    // Pixel i has centre i + 0.5; keep i with |centre - mean| <= extent.
    float xl = std::ceil(mx - ex - 0.5f), xh = std::floor(mx + ex - 0.5f);
    float yl = std::ceil(my - ey - 0.5f), yh = std::floor(my + ey - 0.5f);
    xl = std::max(xl, (float)tg.x0);
    xh = std::min(xh, (float)(tg.x0 + tg.cols - 1));
    yl = std::max(yl, (float)tg.y0);
    yh = std::min(yh, (float)(tg.y0 + tg.rows - 1));
    if (!(xl <= xh) || !(yl <= yh)) return false;
    sp.r0 = (int)yl - tg.y0;
    sp.r1 = (int)yh - tg.y0;
    sp.s0 = ((int)xl - tg.x0) / LANES;
    sp.s1 = ((int)xh - tg.x0) / LANES;
    return true;
}

// One cache-line-friendly record per Gaussian, so the tile loops read one
// place instead of five arrays: [mx, my, a, b, c, opacity, ex, ey, colors (D)].
// (ex, ey) are the half extents of the ellipse outside which
// opacity * exp(-sigma) < 1/255, with a small safety margin for the approximate
// exp; non positive-definite conics get an infinite extent (every pixel of the
// tile is evaluated); ex < 0 marks a Gaussian that is never visible.
int record_stride(int D) { return ((kCol + D + 15) / 16) * 16; }

void pack_gaussians(const float *means2d, const float *conics, const float *opacity, const float *colors,
                    int64_t n, int D, float *rec) {
    const float inf = std::numeric_limits<float>::infinity();
    const int stride = record_stride(D);
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
    for (int64_t i = 0; i < n; ++i) {
        float *r = rec + i * stride;
        const float op = opacity[i];
        const double a = conics[3 * i], b = conics[3 * i + 1], c = conics[3 * i + 2];
        float ex = -1.f, ey = -1.f;
        if (op * 255.0f >= 0.9999f) {
            const double thr = std::log(255.0 * (double)op) + 1e-3;
            const double det = a * c - b * b;
            if (a > 0 && c > 0 && det > 0 && std::isfinite(det)) {
                ex = (float)(std::sqrt(2.0 * thr * c / det) * 1.0001 + 1e-3);
                ey = (float)(std::sqrt(2.0 * thr * a / det) * 1.0001 + 1e-3);
            } else {
                ex = ey = inf;
            }
        }
        r[kMx] = means2d[2 * i];
        r[kMy] = means2d[2 * i + 1];
        r[kA] = conics[3 * i];
        r[kB] = conics[3 * i + 1];
        r[kC] = conics[3 * i + 2];
        r[kOp] = op;
        r[kEx] = ex;
        r[kEy] = ey;
        for (int d = 0; d < D; ++d) r[kCol + d] = colors[i * D + d];
        for (int q = kCol + D; q < stride; ++q) r[q] = 0.f;
    }
}

// Tile lists: for each (camera, tile), the Gaussians whose radii rectangle
// covers it, ordered by (depth bits, index) as gsplat's radix sort.
std::pair<at::Tensor, at::Tensor> bin_gaussians(
    const float *means2d, const float *depths, const int32_t *radii, int64_t C, int64_t N,
    int tw, int th, int ts) {
    const int64_t T = (int64_t)tw * th;
    std::vector<int32_t> rect(C * N * 4);
#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
    for (int64_t i = 0; i < C * N; ++i) {
        int32_t *r = &rect[4 * i];
        r[0] = r[1] = r[2] = r[3] = 0;
        const int32_t rx = radii[2 * i], ry = radii[2 * i + 1];
        if (rx <= 0 || ry <= 0) continue;
        const float tmx = means2d[2 * i] / (float)ts, tmy = means2d[2 * i + 1] / (float)ts;
        const float trx = (float)rx / (float)ts, try_ = (float)ry / (float)ts;
        auto clampf = [](float v, int hi) { return (int32_t)std::min(std::max(v, 0.f), (float)hi); };
        r[0] = clampf(std::floor(tmx - trx), tw);
        r[1] = clampf(std::floor(tmy - try_), th);
        r[2] = clampf(std::ceil(tmx + trx), tw);
        r[3] = clampf(std::ceil(tmy + try_), th);
    }
    // Sort each camera's visible Gaussians by (depth bits, index).
    std::vector<std::vector<uint64_t>> order(C);
#pragma omp parallel for schedule(dynamic, 1) num_threads(at::get_num_threads())
    for (int64_t c = 0; c < C; ++c) {
        auto &keys = order[c];
        for (int64_t n = 0; n < N; ++n) {
            const int32_t *r = &rect[4 * (c * N + n)];
            if (r[2] > r[0] && r[3] > r[1]) {
                uint32_t bits;
                std::memcpy(&bits, &depths[c * N + n], 4);
                keys.push_back(((uint64_t)bits << 32) | (uint64_t)n);
            }
        }
        std::sort(keys.begin(), keys.end());
    }
    auto offsets = at::zeros({C * T + 1}, at::kLong);
    int64_t *off = offsets.data_ptr<int64_t>();
    for (int64_t c = 0; c < C; ++c)
        for (uint64_t key : order[c]) {
            const int32_t *r = &rect[4 * (c * N + (int64_t)(key & 0xffffffffu))];
            for (int y = r[1]; y < r[3]; ++y)
                for (int x = r[0]; x < r[2]; ++x) ++off[c * T + (int64_t)y * tw + x + 1];
        }
    for (int64_t t = 0; t < C * T; ++t) off[t + 1] += off[t];
    auto ids = at::empty({off[C * T]}, at::kInt);
    int32_t *id = ids.data_ptr<int32_t>();
    std::vector<int64_t> cursor(off, off + C * T);
    for (int64_t c = 0; c < C; ++c)
        for (uint64_t key : order[c]) {
            const int64_t gid = c * N + (int64_t)(key & 0xffffffffu);
            const int32_t *r = &rect[4 * gid];
            for (int y = r[1]; y < r[3]; ++y)
                for (int x = r[0]; x < r[2]; ++x) id[cursor[c * T + (int64_t)y * tw + x]++] = (int32_t)gid;
        }
    return {offsets, ids};
}

// sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, split into the part that depends on
// the pixel column only (computed once per Gaussian and strip) and the part
// that depends on the row (scalars). Forward and backward share these two
// functions so both see the same sigma and alpha, bit for bit.
struct Columns {
    vf dx, half_a_dx2, b_dx;  // mean_x - pixel_x, 0.5 a dx^2, b dx
};

inline Columns columns(float mx, float a, float b, vf px) {
    Columns k;
    k.dx = mx - px;
    k.half_a_dx2 = 0.5f * a * k.dx * k.dx;
    k.b_dx = b * k.dx;
    return k;
}

inline vf sigma_at(const Columns &k, float dy, float half_c_dy2) { return (k.half_a_dx2 + half_c_dy2) + k.b_dx * dy; }

// Per-Gaussian gradient accumulators: registers for D = 1, 3, 4, the heap otherwise.
template <int DC>
struct Accumulators {
    vf v[DC + 8];
    void reset(int) {
        for (auto &x : v) x = vsplat(0.f);
    }
    vf &operator[](int i) { return v[i]; }
};

template <>
struct Accumulators<0> {
    std::vector<vf> v;
    void reset(int K) { v.assign(K, vsplat(0.f)); }
    vf &operator[](int i) { return v[i]; }
};

struct Scratch {
    std::vector<vf> T, rgb, px, aux, buf, vrc, s0, s1, s2;
    std::vector<Columns> cols;
    std::vector<vi> last, done;
};

template <int DC>
void forward_tile(const Problem &p, int64_t tile, Scratch &s, float *out_rgb, float *out_alpha,
                  int32_t *out_last, int32_t *row_masks) {
    const int D = DC > 0 ? DC : p.D;
    const TileGeom g = tile_geom(p, tile);
    if (g.rows <= 0 || g.cols <= 0) return;
    s.T.assign(g.nv, vsplat(1.f));
    s.rgb.assign((size_t)g.nv * D, vsplat(0.f));
    s.last.assign(g.nv, visplat(-1));
    s.done.assign(g.nv, visplat(0));
    s.px.resize(g.ns);
    s.cols.resize(g.ns);
    for (int st = 0; st < g.ns; ++st) {
        vi outside = {};
        for (int l = 0; l < LANES; ++l) {
            const int x = st * LANES + l;
            s.px[st][l] = (float)(g.x0 + x) + 0.5f;
            outside[l] = x >= g.cols ? -1 : 0;
        }
        for (int r = 0; r < g.rows; ++r) s.done[r * g.ns + st] = outside;
    }
    vf *T = s.T.data(), *rgb = s.rgb.data();
    vi *last = s.last.data(), *done = s.done.data();
    for (int64_t k = g.begin; k < g.end; ++k) {
        if (((k - g.begin) & 15) == 15) {  // every 16 Gaussians: stop once all pixels are saturated
            vi all_done = visplat(-1);
            for (int v = 0; v < g.nv; ++v) all_done &= done[v];
            if (all(all_done)) break;
        }
        if (k + 8 < g.end) __builtin_prefetch(p.rec + (int64_t)p.ids[k + 8] * p.stride);
        const int64_t gid = p.ids[k];
        Span sp;
        if (!gaussian_span(p, g, gid, sp)) continue;
        const float *rec = p.rec + gid * p.stride;
        const float mx = rec[kMx], my = rec[kMy];
        const float a = rec[kA], b = rec[kB], c = rec[kC];
        const float op = rec[kOp];
        const float *col = rec + kCol;
        const vi local = visplat((int32_t)(k - g.begin));
        uint32_t rows_drawn = 0;
        for (int st = sp.s0; st <= sp.s1; ++st) s.cols[st] = columns(mx, a, b, s.px[st]);
        for (int r = sp.r0; r <= sp.r1; ++r) {
            const float dy = my - ((float)(g.y0 + r) + 0.5f);
            const float half_c_dy2 = 0.5f * c * dy * dy;
            for (int st = sp.s0; st <= sp.s1; ++st) {
                const int v = r * g.ns + st;
                if (all(done[v])) continue;
                const vf sigma = sigma_at(s.cols[st], dy, half_c_dy2);
                const vf alpha = vmin(vsplat(kMaxAlpha), op * fast_exp(-sigma));
                vi valid = (sigma >= 0.f) & (alpha >= kAlphaThreshold) & ~done[v];
                if (!any(valid)) continue;
                const vf Tv = T[v];
                const vf next_T = Tv * (1.f - alpha);
                const vi stop = valid & (next_T <= kMinTransmittance);
                done[v] |= stop;
                valid &= ~stop;
                if (any(valid)) rows_drawn |= 1u << (r & 31);
                const vf w = valid ? alpha * Tv : vsplat(0.f);
                for (int d = 0; d < D; ++d) rgb[(size_t)d * g.nv + v] += w * col[d];
                T[v] = valid ? next_T : Tv;
                last[v] = valid ? local : last[v];
            }
        }
        row_masks[k] = (int32_t)rows_drawn;
    }
    const float *bg = p.bg ? p.bg + g.cam * D : nullptr;
    for (int r = 0; r < g.rows; ++r)
        for (int st = 0; st < g.ns; ++st) {
            const int v = r * g.ns + st;
            for (int l = 0; l < LANES && st * LANES + l < g.cols; ++l) {
                const int64_t pix = (g.cam * p.H + g.y0 + r) * (int64_t)p.W + g.x0 + st * LANES + l;
                const float t = T[v][l];
                out_alpha[pix] = 1.f - t;
                out_last[pix] = last[v][l];
                for (int d = 0; d < D; ++d)
                    out_rgb[pix * D + d] = rgb[(size_t)d * g.nv + v][l] + (bg ? t * bg[d] : 0.f);
            }
        }
}

// Gradient row layout per intersection: [v_rgb (D) | v_conic (3) | v_xy (2) | v_opacity | |v_xy| (2)].
template <int DC>
void backward_tile(const Problem &p, int64_t tile, Scratch &s, const float *alphas,
                   const int32_t *last_ids, const float *v_out_rgb, const float *v_out_alpha,
                   const int32_t *row_masks, float *isect_grad, int K, bool absgrad) {
    const int D = DC > 0 ? DC : p.D;
    const TileGeom g = tile_geom(p, tile);
    if (g.rows <= 0 || g.cols <= 0 || g.end == g.begin) return;
    // Per-pixel state: T (running), v_rgb_out (D), buffer (D), T_final * (v_alpha_out - bg . v_rgb_out).
    s.T.assign(g.nv, vsplat(1.f));
    s.aux.assign(g.nv, vsplat(0.f));
    s.vrc.assign((size_t)g.nv * D, vsplat(0.f));
    s.buf.assign((size_t)g.nv * D, vsplat(0.f));
    s.last.assign(g.nv, visplat(-1));
    s.px.resize(g.ns);
    s.cols.resize(g.ns);
    s.s0.resize(g.ns);
    s.s1.resize(g.ns);
    s.s2.resize(g.ns);
    const float *bg = p.bg ? p.bg + g.cam * D : nullptr;
    int32_t max_last = -1;
    for (int st = 0; st < g.ns; ++st)
        for (int l = 0; l < LANES; ++l) s.px[st][l] = (float)(g.x0 + st * LANES + l) + 0.5f;
    for (int r = 0; r < g.rows; ++r)
        for (int st = 0; st < g.ns; ++st) {
            const int v = r * g.ns + st;
            for (int l = 0; l < LANES && st * LANES + l < g.cols; ++l) {
                const int64_t pix = (g.cam * p.H + g.y0 + r) * (int64_t)p.W + g.x0 + st * LANES + l;
                const float tf = 1.f - alphas[pix];
                float bgdot = 0.f;
                for (int d = 0; d < D; ++d) {
                    const float vr = v_out_rgb[pix * D + d];
                    s.vrc[(size_t)d * g.nv + v][l] = vr;
                    if (bg) bgdot += bg[d] * vr;
                }
                s.T[v][l] = tf;
                s.aux[v][l] = tf * (v_out_alpha[pix] - bgdot);
                s.last[v][l] = last_ids[pix];
                max_last = std::max(max_last, last_ids[pix]);
            }
        }
    vf *T = s.T.data(), *aux = s.aux.data(), *vrc = s.vrc.data(), *buf = s.buf.data();
    const vi *last = s.last.data();
    Accumulators<DC> acc;
    for (int32_t j = max_last; j >= 0; --j) {
        const int64_t k = g.begin + j;
        if (j >= 8) __builtin_prefetch(p.rec + (int64_t)p.ids[k - 8] * p.stride);
        // Rows where the forward drew this Gaussian on some pixel; the others
        // contribute nothing to any gradient (exact: same alpha, same tests).
        const uint32_t rows_drawn = p.ts <= 32 ? (uint32_t)row_masks[k] : 0xffffffffu;
        if (!rows_drawn) continue;
        const int64_t gid = p.ids[k];
        Span sp;
        if (!gaussian_span(p, g, gid, sp)) continue;
        const float *rec = p.rec + gid * p.stride;
        const float mx = rec[kMx], my = rec[kMy];
        const float a = rec[kA], b = rec[kB], c = rec[kC];
        const float op = rec[kOp];
        const float *col = rec + kCol;
        const vi local = visplat(j);
        bool touched = false;
        const vf zero = vsplat(0.f);
        for (int r = sp.r0; r <= sp.r1; ++r) {
            if (p.ts <= 32 && !((rows_drawn >> r) & 1u)) continue;
            const float dy = my - ((float)(g.y0 + r) + 0.5f);
            const float half_c_dy2 = 0.5f * c * dy * dy;
            for (int st = sp.s0; st <= sp.s1; ++st) {
                const int v = r * g.ns + st;
                vi valid = local <= last[v];
                if (!any(valid)) continue;
                if (!touched) {
                    touched = true;
                    acc.reset(K);
                    for (int q = sp.s0; q <= sp.s1; ++q) {
                        s.cols[q] = columns(mx, a, b, s.px[q]);
                        s.s0[q] = s.s1[q] = s.s2[q] = zero;
                    }
                }
                const Columns &kc = s.cols[st];
                const vf sigma = sigma_at(kc, dy, half_c_dy2);
                const vf vis = fast_exp(-sigma);
                const vf alpha = vmin(vsplat(kMaxAlpha), op * vis);
                valid &= (sigma >= 0.f) & (alpha >= kAlphaThreshold);
                if (!any(valid)) continue;
                const vf ra = 1.f / (1.f - alpha);
                const vf Tv = valid ? T[v] * ra : T[v];
                T[v] = Tv;
                const vf fac = alpha * Tv;
                vf v_alpha = zero;
                for (int d = 0; d < D; ++d) {
                    const vf vr = vrc[(size_t)d * g.nv + v];
                    vf &bd = buf[(size_t)d * g.nv + v];
                    acc[d] += valid ? fac * vr : zero;
                    v_alpha += (col[d] * Tv - bd * ra) * vr;
                    bd = valid ? bd + col[d] * fac : bd;
                }
                v_alpha += aux[v] * ra;
                const vi unclamped = valid & (op * vis <= kMaxAlpha);
                // dL/dsigma per pixel; the conic and mean gradients are sums of
                // v_sigma times polynomials in (dx, dy), gathered per column below.
                const vf v_sigma = unclamped ? -op * vis * v_alpha : zero;
                acc[D] += unclamped ? vis * v_alpha : zero;
                const vf vs_dy = v_sigma * dy;
                s.s0[st] += v_sigma;
                s.s1[st] += vs_dy;
                s.s2[st] += vs_dy * dy;
                if (absgrad) {
                    acc[D + 1] += vabs(v_sigma * (a * kc.dx + b * dy));
                    acc[D + 2] += vabs(v_sigma * (b * kc.dx + c * dy));
                }
            }
        }
        if (touched) {
            // With S0 = sum_rows v_sigma, S1 = sum_rows v_sigma dy, S2 = sum_rows v_sigma dy^2 per column:
            // dL/da = 0.5 sum dx^2 S0, dL/db = sum dx S1, dL/dc = 0.5 sum S2,
            // dL/dmx = a sum dx S0 + b sum S1, dL/dmy = b sum dx S0 + c sum S1.
            vf dx2_s0 = zero, dx_s0 = zero, dx_s1 = zero, s1 = zero, s2 = zero;
            for (int q = sp.s0; q <= sp.s1; ++q) {
                const vf dx = s.cols[q].dx;
                dx2_s0 += dx * dx * s.s0[q];
                dx_s0 += dx * s.s0[q];
                dx_s1 += dx * s.s1[q];
                s1 += s.s1[q];
                s2 += s.s2[q];
            }
            float *row = isect_grad + k * K;
            for (int d = 0; d < D; ++d) row[d] = hsum(acc[d]);
            const float h_dx_s0 = hsum(dx_s0), h_s1 = hsum(s1);
            row[D + 0] = 0.5f * hsum(dx2_s0);
            row[D + 1] = hsum(dx_s1);
            row[D + 2] = 0.5f * hsum(s2);
            row[D + 3] = a * h_dx_s0 + b * h_s1;
            row[D + 4] = b * h_dx_s0 + c * h_s1;
            row[D + 5] = hsum(acc[D]);
            if (absgrad) {
                row[D + 6] = hsum(acc[D + 1]);
                row[D + 7] = hsum(acc[D + 2]);
            }
        }
    }
}

void check_cpu_float(const at::Tensor &t, const char *name) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
    TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

Problem make_problem(const at::Tensor &means2d, const at::Tensor &conics, const at::Tensor &colors,
                     const at::Tensor &opacities, const c10::optional<at::Tensor> &backgrounds,
                     const at::Tensor &packed, const at::Tensor &offsets, const at::Tensor &ids,
                     int64_t width, int64_t height, int64_t tile_size) {
    check_cpu_float(means2d, "means2d");
    check_cpu_float(conics, "conics");
    check_cpu_float(colors, "colors");
    check_cpu_float(opacities, "opacities");
    Problem p;
    p.C = means2d.size(0);
    p.N = means2d.size(1);
    p.D = (int)colors.size(2);
    p.W = (int)width;
    p.H = (int)height;
    p.ts = (int)tile_size;
    p.tw = (int)((width + tile_size - 1) / tile_size);
    p.th = (int)((height + tile_size - 1) / tile_size);
    p.means2d = means2d.data_ptr<float>();
    p.conics = conics.data_ptr<float>();
    p.colors = colors.data_ptr<float>();
    p.opacity = opacities.data_ptr<float>();
    p.bg = nullptr;
    if (backgrounds.has_value() && backgrounds->defined()) {
        check_cpu_float(*backgrounds, "backgrounds");
        p.bg = backgrounds->data_ptr<float>();
    }
    p.rec = packed.data_ptr<float>();
    p.stride = (int)packed.size(1);
    p.offsets = offsets.data_ptr<int64_t>();
    p.ids = ids.data_ptr<int32_t>();
    return p;
}

template <typename F>
void dispatch_channels(int D, F &&f) {
    switch (D) {
        case 1: f(std::integral_constant<int, 1>()); break;
        case 3: f(std::integral_constant<int, 3>()); break;
        case 4: f(std::integral_constant<int, 4>()); break;
        default: f(std::integral_constant<int, 0>()); break;
    }
}

}  // namespace

// Returns (render_colors [C,H,W,D], render_alphas [C,H,W,1], last_ids [C,H,W],
// tile_offsets [C*T+1], flatten_ids [M], row_masks [M]).
std::vector<at::Tensor> forward(const at::Tensor &means2d, const at::Tensor &conics,
                                const at::Tensor &colors, const at::Tensor &opacities,
                                const at::Tensor &depths, const at::Tensor &radii,
                                const c10::optional<at::Tensor> &backgrounds, int64_t width,
                                int64_t height, int64_t tile_size) {
    check_cpu_float(depths, "depths");
    TORCH_CHECK(radii.scalar_type() == at::kInt && radii.is_contiguous(), "radii must be contiguous int32");
    const int64_t C = means2d.size(0), N = means2d.size(1), D = colors.size(2);
    const int tw = (int)((width + tile_size - 1) / tile_size);
    const int th = (int)((height + tile_size - 1) / tile_size);
    auto bins = bin_gaussians(means2d.data_ptr<float>(), depths.data_ptr<float>(), radii.data_ptr<int32_t>(),
                              C, N, tw, th, (int)tile_size);
    auto packed = at::empty({C * N, record_stride((int)D)}, at::kFloat);
    pack_gaussians(means2d.data_ptr<float>(), conics.data_ptr<float>(), opacities.data_ptr<float>(),
                   colors.data_ptr<float>(), C * N, (int)D, packed.data_ptr<float>());
    const Problem p = make_problem(means2d, conics, colors, opacities, backgrounds, packed, bins.first,
                                   bins.second, width, height, tile_size);
    auto out_rgb = at::empty({C, height, width, D}, at::kFloat);
    auto out_alpha = at::empty({C, height, width, 1}, at::kFloat);
    auto out_last = at::empty({C, height, width}, at::kInt);
    // Per intersection: bit r set when the Gaussian was drawn on some pixel of tile row r.
    auto row_masks = at::zeros({bins.second.size(0)}, at::kInt);
    int32_t *masks = row_masks.data_ptr<int32_t>();
    const int64_t n_tiles = C * tw * th;
    float *rgb = out_rgb.data_ptr<float>(), *alpha = out_alpha.data_ptr<float>();
    int32_t *last = out_last.data_ptr<int32_t>();
    dispatch_channels((int)D, [&](auto dc) {
        constexpr int DC = decltype(dc)::value;
#pragma omp parallel num_threads(at::get_num_threads())
        {
            Scratch s;
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < n_tiles; ++t) forward_tile<DC>(p, t, s, rgb, alpha, last, masks);
        }
    });
    return {out_rgb, out_alpha, out_last, bins.first, bins.second, row_masks};
}

// Returns (v_means2d [C,N,2], v_conics [C,N,3], v_colors [C,N,D], v_opacities [C,N],
// v_means2d_abs [C,N,2] or an empty tensor).
std::vector<at::Tensor> backward(const at::Tensor &means2d, const at::Tensor &conics,
                                 const at::Tensor &colors, const at::Tensor &opacities,
                                 const c10::optional<at::Tensor> &backgrounds, int64_t width,
                                 int64_t height, int64_t tile_size, const at::Tensor &tile_offsets,
                                 const at::Tensor &flatten_ids, const at::Tensor &row_masks,
                                 const at::Tensor &render_alphas,
                                 const at::Tensor &last_ids, const at::Tensor &v_render_colors,
                                 const at::Tensor &v_render_alphas, bool absgrad) {
    check_cpu_float(render_alphas, "render_alphas");
    check_cpu_float(v_render_colors, "v_render_colors");
    check_cpu_float(v_render_alphas, "v_render_alphas");
    const int64_t C = means2d.size(0), N = means2d.size(1), D = colors.size(2);
    auto packed = at::empty({C * N, record_stride((int)D)}, at::kFloat);
    pack_gaussians(means2d.data_ptr<float>(), conics.data_ptr<float>(), opacities.data_ptr<float>(),
                   colors.data_ptr<float>(), C * N, (int)D, packed.data_ptr<float>());
    const Problem p = make_problem(means2d, conics, colors, opacities, backgrounds, packed, tile_offsets,
                                   flatten_ids, width, height, tile_size);
    const int K = (int)D + 6 + (absgrad ? 2 : 0);
    const int64_t M = flatten_ids.size(0);
    auto isect_grad = at::zeros({M, K}, at::kFloat);
    float *ig = isect_grad.data_ptr<float>();
    const int64_t n_tiles = C * p.tw * p.th;
    const float *alphas = render_alphas.data_ptr<float>();
    const int32_t *lids = last_ids.data_ptr<int32_t>();
    TORCH_CHECK(row_masks.scalar_type() == at::kInt && row_masks.numel() == flatten_ids.numel(), "row_masks mismatch");
    const int32_t *rmask = row_masks.data_ptr<int32_t>();
    const float *vrgb = v_render_colors.data_ptr<float>(), *va = v_render_alphas.data_ptr<float>();
    dispatch_channels((int)D, [&](auto dc) {
        constexpr int DC = decltype(dc)::value;
#pragma omp parallel num_threads(at::get_num_threads())
        {
            Scratch s;
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < n_tiles; ++t)
                backward_tile<DC>(p, t, s, alphas, lids, vrgb, va, rmask, ig, K, absgrad);
        }
    });
    // Fixed-order reduction of intersection rows into per-Gaussian gradients.
    auto v_means2d = at::zeros({C, N, 2}, at::kFloat);
    auto v_conics = at::zeros({C, N, 3}, at::kFloat);
    auto v_colors = at::zeros({C, N, D}, at::kFloat);
    auto v_opac = at::zeros({C, N}, at::kFloat);
    auto v_abs = absgrad ? at::zeros({C, N, 2}, at::kFloat) : at::empty({0}, at::kFloat);
    float *vm = v_means2d.data_ptr<float>(), *vcn = v_conics.data_ptr<float>();
    float *vc = v_colors.data_ptr<float>(), *vo = v_opac.data_ptr<float>();
    float *vab = absgrad ? v_abs.data_ptr<float>() : nullptr;
    const int32_t *ids = flatten_ids.data_ptr<int32_t>();
    for (int64_t k = 0; k < M; ++k) {
        const float *row = ig + k * K;
        const int64_t gid = ids[k];
        for (int d = 0; d < D; ++d) vc[gid * D + d] += row[d];
        for (int q = 0; q < 3; ++q) vcn[gid * 3 + q] += row[D + q];
        vm[gid * 2] += row[D + 3];
        vm[gid * 2 + 1] += row[D + 4];
        vo[gid] += row[D + 5];
        if (absgrad) {
            vab[gid * 2] += row[D + 6];
            vab[gid * 2 + 1] += row[D + 7];
        }
    }
    return {v_means2d, v_conics, v_colors, v_opac, v_abs};
}

// Element-wise fast_exp, exposed so its accuracy can be tested.
at::Tensor fast_exp_tensor(const at::Tensor &x) {
    check_cpu_float(x, "x");
    auto out = at::empty_like(x);
    const float *in = x.data_ptr<float>();
    float *o = out.data_ptr<float>();
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; i += LANES) {
        vf v = vsplat(0.f);
        for (int l = 0; l < LANES && i + l < n; ++l) v[l] = in[i + l];
        const vf e = fast_exp(v);
        for (int l = 0; l < LANES && i + l < n; ++l) o[i + l] = e[l];
    }
    return out;
}

int64_t simd_lanes() { return LANES; }

}  // namespace splatops

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("forward", &splatops::forward, "Bin and composite Gaussians (forward)");
    m.def("backward", &splatops::backward, "Gradients of compositing (backward)");
    m.def("project_forward", &splatops::project_forward, "Project Gaussians and evaluate SH colours (forward)");
    m.def("project_backward", &splatops::project_backward, "Gradients of projection and SH colours (backward)");
    m.def("ssim_forward", &splatops::ssim_forward, "SSIM per image and its partial maps (forward)");
    m.def("ssim_backward", &splatops::ssim_backward, "Gradient of SSIM with respect to the image (backward)");
    m.def("fast_exp", &splatops::fast_exp_tensor, "Vectorised approximate exp");
    m.def("simd_lanes", &splatops::simd_lanes, "Pixels per SIMD vector");
}
