// Projection of 3D Gaussians and SH colours on the CPU, forward and backward.
//
// One pass over the Gaussians (OpenMP over chunks of them), every camera per
// Gaussian: covariance R S S^T R^T from the quaternion and scales, world to
// camera, EWA projection with gsplat's clamped Jacobian, eps2d, conic, optional
// antialiasing compensation, opacity-aware radii and culling, the tile count,
// and the SH colour toward the camera centre. The formulas are those of the
// PyTorch specification (splat/core/projection.py, splat/core/sh.py), in the
// same float32 arithmetic; the backward is written by hand and recomputes the
// forward quantities instead of storing them.
//
// Determinism: each Gaussian's gradients are summed over cameras in camera
// order by one thread; viewmat gradients are summed per fixed chunk of
// Gaussians (in double) and the chunks are added in order, so the result does
// not depend on the number of threads.
#include "project.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace splatops {

namespace {

constexpr float kAlphaThreshold = 1.0f / 255.0f;
constexpr float kRadiusSigmas = 3.33f;
constexpr float kFovClampMargin = 0.3f;
constexpr float kMinDet = 1e-10f;
constexpr float kNormEps = 1e-12f;
constexpr int64_t kChunk = 256;  // Gaussians per chunk of the viewmat reduction

struct Settings {
    int64_t C, N, K;  // K: SH bases stored per Gaussian (0 without SH)
    int W, H, ts, tw, th;
    float eps2d, near_plane, far_plane, radius_clip;
    bool antialiased;
    int sh_degree;  // -1: no SH
    bool coeffs_per_camera;
    float shc[14];  // C0, C1, C2[5], C3[7]
};

struct CameraParams {
    float R[9], t[3];
    float fx, fy, cx, cy;
    float lim_x_lo, lim_x_hi, lim_y_lo, lim_y_hi;
    float campos[3];
};

std::vector<CameraParams> camera_params(const float *viewmats, const float *Ks, const float *campos,
                                        const Settings &s) {
    std::vector<CameraParams> cams(s.C);
    for (int64_t c = 0; c < s.C; ++c) {
        CameraParams &p = cams[c];
        const float *V = viewmats + 16 * c, *K = Ks + 9 * c;
        for (int i = 0; i < 3; ++i) {
            for (int j = 0; j < 3; ++j) p.R[3 * i + j] = V[4 * i + j];
            p.t[i] = V[4 * i + 3];
            p.campos[i] = campos ? campos[3 * c + i] : 0.f;
        }
        p.fx = K[0];
        p.fy = K[4];
        p.cx = K[2];
        p.cy = K[5];
        const float mx = kFovClampMargin * 0.5f * (float)s.W / p.fx;
        const float my = kFovClampMargin * 0.5f * (float)s.H / p.fy;
        p.lim_x_lo = -(p.cx / p.fx + mx);
        p.lim_x_hi = ((float)s.W - p.cx) / p.fx + mx;
        p.lim_y_lo = -(p.cy / p.fy + my);
        p.lim_y_hi = ((float)s.H - p.cy) / p.fy + my;
    }
    return cams;
}

// Per Gaussian, camera-independent: normalised quaternion, rotation, M = R diag(s), Sigma.
struct Local {
    float qn[4], qnorm;
    float R[9], M[9];
    float S[9];  // world covariance, full symmetric 3x3
};

inline void local_frame(const float *q, const float *sc, Local &L) {
    const float n = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    L.qnorm = std::max(n, kNormEps);
    for (int i = 0; i < 4; ++i) L.qn[i] = q[i] / L.qnorm;
    const float w = L.qn[0], x = L.qn[1], y = L.qn[2], z = L.qn[3];
    float *R = L.R;
    R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z);     R[2] = 2 * (x * z + w * y);
    R[3] = 2 * (x * y + w * z);     R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
    R[6] = 2 * (x * z - w * y);     R[7] = 2 * (y * z + w * x);     R[8] = 1 - 2 * (x * x + y * y);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) L.M[3 * i + j] = R[3 * i + j] * sc[j];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            float acc = 0.f;
            for (int k = 0; k < 3; ++k) acc += L.M[3 * i + k] * L.M[3 * j + k];
            L.S[3 * i + j] = acc;
        }
}

// One Gaussian seen by one camera: everything the forward and backward need.
struct View {
    float p[3];       // camera-space mean
    bool in_front;
    float zp;         // z used for the projection (1 when not in front)
    float tx, ty;     // clamped Jacobian positions
    bool clamp_x, clamp_y;
    float rx_clamped, ry_clamped;  // the clamped x/z, y/z
    float Sc[9];      // camera-space covariance
    float J00, J02, J11, J12;
    float A, B, Cc;   // 2D covariance before eps2d
    float Ae, Ce;     // after eps2d
    float det_orig, det_raw, det;
    float ratio, comp;
    float mean2d[2];
    float conic[3];
};

inline void view_of(const float *mu, const Local &L, const CameraParams &cam, const Settings &s, View &v) {
    const float *W = cam.R;
    for (int i = 0; i < 3; ++i) v.p[i] = W[3 * i] * mu[0] + W[3 * i + 1] * mu[1] + W[3 * i + 2] * mu[2] + cam.t[i];
    const float z = v.p[2];
    v.in_front = z >= s.near_plane && z > 0.f;
    v.zp = v.in_front ? z : 1.f;
    // Sc = W S W^T
    float WS[9];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            WS[3 * i + j] = W[3 * i] * L.S[j] + W[3 * i + 1] * L.S[3 + j] + W[3 * i + 2] * L.S[6 + j];
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
            v.Sc[3 * i + j] = WS[3 * i] * W[3 * j] + WS[3 * i + 1] * W[3 * j + 1] + WS[3 * i + 2] * W[3 * j + 2];
    const float zp = v.zp;
    const float ux = v.p[0] / zp, uy = v.p[1] / zp;
    v.rx_clamped = std::min(std::max(ux, cam.lim_x_lo), cam.lim_x_hi);
    v.ry_clamped = std::min(std::max(uy, cam.lim_y_lo), cam.lim_y_hi);
    v.clamp_x = !(ux >= cam.lim_x_lo && ux <= cam.lim_x_hi);
    v.clamp_y = !(uy >= cam.lim_y_lo && uy <= cam.lim_y_hi);
    v.tx = zp * v.rx_clamped;
    v.ty = zp * v.ry_clamped;
    v.J00 = cam.fx / zp;
    v.J02 = -cam.fx * v.tx / (zp * zp);
    v.J11 = cam.fy / zp;
    v.J12 = -cam.fy * v.ty / (zp * zp);
    const float *S = v.Sc;
    v.A = v.J00 * v.J00 * S[0] + 2.f * v.J00 * v.J02 * S[2] + v.J02 * v.J02 * S[8];
    v.B = v.J00 * v.J11 * S[1] + v.J00 * v.J12 * S[2] + v.J02 * v.J11 * S[5] + v.J02 * v.J12 * S[8];
    v.Cc = v.J11 * v.J11 * S[4] + 2.f * v.J11 * v.J12 * S[5] + v.J12 * v.J12 * S[8];
    v.mean2d[0] = cam.fx * v.p[0] / zp + cam.cx;
    v.mean2d[1] = cam.fy * v.p[1] / zp + cam.cy;
    v.det_orig = v.A * v.Cc - v.B * v.B;
    v.Ae = v.A + s.eps2d;
    v.Ce = v.Cc + s.eps2d;
    v.det_raw = v.Ae * v.Ce - v.B * v.B;
    v.det = std::max(v.det_raw, kMinDet);
    v.ratio = v.det_orig / v.det;
    v.comp = v.ratio > 0.f ? std::sqrt(v.ratio) : 0.f;
    v.conic[0] = v.Ce / v.det;
    v.conic[1] = -v.B / v.det;
    v.conic[2] = v.Ae / v.det;
}

// Real SH bases of bands 0..degree at unit direction d (gsplat's order), and
// optionally their gradients d basis / d d (3 per basis).
inline int sh_bases(int degree, const float *d, const float *k, float *b, float *g) {
    const float x = d[0], y = d[1], z = d[2];
    const float C0 = k[0], C1 = k[1];
    const float *C2 = k + 2, *C3 = k + 7;
    auto set = [&](int i, float v, float gx, float gy, float gz) {
        b[i] = v;
        if (g) {
            g[3 * i] = gx;
            g[3 * i + 1] = gy;
            g[3 * i + 2] = gz;
        }
    };
    set(0, C0, 0.f, 0.f, 0.f);
    if (degree < 1) return 1;
    set(1, -C1 * y, 0.f, -C1, 0.f);
    set(2, C1 * z, 0.f, 0.f, C1);
    set(3, -C1 * x, -C1, 0.f, 0.f);
    if (degree < 2) return 4;
    const float xx = x * x, yy = y * y, zz = z * z;
    set(4, C2[0] * x * y, C2[0] * y, C2[0] * x, 0.f);
    set(5, C2[1] * y * z, 0.f, C2[1] * z, C2[1] * y);
    set(6, C2[2] * (2.f * zz - xx - yy), -2.f * C2[2] * x, -2.f * C2[2] * y, 4.f * C2[2] * z);
    set(7, C2[3] * x * z, C2[3] * z, 0.f, C2[3] * x);
    set(8, C2[4] * (xx - yy), 2.f * C2[4] * x, -2.f * C2[4] * y, 0.f);
    if (degree < 3) return 9;
    set(9, C3[0] * y * (3.f * xx - yy), C3[0] * 6.f * x * y, C3[0] * (3.f * xx - 3.f * yy), 0.f);
    set(10, C3[1] * x * y * z, C3[1] * y * z, C3[1] * x * z, C3[1] * x * y);
    set(11, C3[2] * y * (4.f * zz - xx - yy), C3[2] * -2.f * x * y, C3[2] * (4.f * zz - xx - 3.f * yy),
        C3[2] * 8.f * y * z);
    set(12, C3[3] * z * (2.f * zz - 3.f * xx - 3.f * yy), C3[3] * -6.f * x * z, C3[3] * -6.f * y * z,
        C3[3] * (6.f * zz - 3.f * xx - 3.f * yy));
    set(13, C3[4] * x * (4.f * zz - xx - yy), C3[4] * (4.f * zz - 3.f * xx - yy), C3[4] * -2.f * x * y,
        C3[4] * 8.f * x * z);
    set(14, C3[5] * z * (xx - yy), C3[5] * 2.f * x * z, C3[5] * -2.f * y * z, C3[5] * (xx - yy));
    set(15, C3[6] * x * (xx - 3.f * yy), C3[6] * (3.f * xx - 3.f * yy), C3[6] * -6.f * x * y, 0.f);
    return 16;
}

// Unit view direction from the camera centre to the mean; returns the norm.
inline float view_dir(const float *mu, const CameraParams &cam, float *d) {
    float dir[3];
    for (int i = 0; i < 3; ++i) dir[i] = mu[i] - cam.campos[i];
    const float n = std::max(std::sqrt(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]), kNormEps);
    for (int i = 0; i < 3; ++i) d[i] = dir[i] / n;
    return n;
}

Settings make_settings(const at::Tensor &means, const at::Tensor &viewmats, const c10::optional<at::Tensor> &coeffs,
                       int64_t width, int64_t height, int64_t tile_size, double eps2d, double near_plane,
                       double far_plane, double radius_clip, bool antialiased, int64_t sh_degree,
                       const std::vector<double> &sh_constants) {
    Settings s;
    s.C = viewmats.size(0);
    s.N = means.size(0);
    s.W = (int)width;
    s.H = (int)height;
    s.ts = (int)tile_size;
    s.tw = (int)((width + tile_size - 1) / tile_size);
    s.th = (int)((height + tile_size - 1) / tile_size);
    s.eps2d = (float)eps2d;
    s.near_plane = (float)near_plane;
    s.far_plane = (float)std::min(far_plane, 3.0e38);
    s.radius_clip = (float)radius_clip;
    s.antialiased = antialiased;
    s.sh_degree = (int)sh_degree;
    s.K = 0;
    s.coeffs_per_camera = false;
    if (sh_degree >= 0) {
        TORCH_CHECK(coeffs.has_value() && coeffs->defined(), "SH coefficients are required with sh_degree");
        TORCH_CHECK(sh_constants.size() == 14, "14 SH constants expected");
        s.coeffs_per_camera = coeffs->dim() == 4;
        s.K = coeffs->size(-2);
        TORCH_CHECK(s.K >= (sh_degree + 1) * (sh_degree + 1), "too few SH bases");
        for (int i = 0; i < 14; ++i) s.shc[i] = (float)sh_constants[i];
    }
    return s;
}

void check_f32(const at::Tensor &t, const char *name) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), name,
                " must be a contiguous float32 CPU tensor");
}

}  // namespace

std::vector<at::Tensor> project_forward(const at::Tensor &means, const at::Tensor &quats, const at::Tensor &scales,
                                        const at::Tensor &opacities, const at::Tensor &viewmats, const at::Tensor &Ks,
                                        const c10::optional<at::Tensor> &coeffs,
                                        const c10::optional<at::Tensor> &campos, int64_t width, int64_t height,
                                        int64_t tile_size, double eps2d, double near_plane, double far_plane,
                                        double radius_clip, bool antialiased, int64_t sh_degree,
                                        const std::vector<double> &sh_constants) {
    for (auto *t : {&means, &quats, &scales, &opacities, &viewmats, &Ks}) check_f32(*t, "projection input");
    const Settings s = make_settings(means, viewmats, coeffs, width, height, tile_size, eps2d, near_plane, far_plane,
                                     radius_clip, antialiased, sh_degree, sh_constants);
    const bool sh = s.sh_degree >= 0;
    if (sh) {
        check_f32(*coeffs, "coeffs");
        check_f32(*campos, "campos");
    }
    const int64_t C = s.C, N = s.N;
    auto radii = at::empty({C, N, 2}, at::kInt);
    auto means2d = at::empty({C, N, 2}, at::kFloat);
    auto depths = at::empty({C, N}, at::kFloat);
    auto conics = at::empty({C, N, 3}, at::kFloat);
    auto view_opac = at::empty({C, N}, at::kFloat);
    auto colors = sh ? at::empty({C, N, 3}, at::kFloat) : at::empty({0}, at::kFloat);
    auto tiles = at::empty({C, N}, at::kInt);
    const auto cams = camera_params(viewmats.data_ptr<float>(), Ks.data_ptr<float>(),
                                    sh ? campos->data_ptr<float>() : nullptr, s);
    const float *mu_p = means.data_ptr<float>(), *q_p = quats.data_ptr<float>();
    const float *s_p = scales.data_ptr<float>(), *o_p = opacities.data_ptr<float>();
    const float *co_p = sh ? coeffs->data_ptr<float>() : nullptr;
    int32_t *radii_p = radii.data_ptr<int32_t>(), *tiles_p = tiles.data_ptr<int32_t>();
    float *m2_p = means2d.data_ptr<float>(), *dep_p = depths.data_ptr<float>();
    float *con_p = conics.data_ptr<float>(), *vo_p = view_opac.data_ptr<float>();
    float *col_p = sh ? colors.data_ptr<float>() : nullptr;

#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
    for (int64_t n = 0; n < N; ++n) {
        Local L;
        local_frame(q_p + 4 * n, s_p + 3 * n, L);
        const float *mu = mu_p + 3 * n;
        const float op = o_p[n];
        for (int64_t c = 0; c < C; ++c) {
            const int64_t i = c * N + n;
            View v;
            view_of(mu, L, cams[c], s, v);
            const float vop = s.antialiased ? op * v.comp : op;
            m2_p[2 * i] = v.mean2d[0];
            m2_p[2 * i + 1] = v.mean2d[1];
            dep_p[i] = v.p[2];
            con_p[3 * i] = v.conic[0];
            con_p[3 * i + 1] = v.conic[1];
            con_p[3 * i + 2] = v.conic[2];
            vo_p[i] = vop;
            // Radii and culling (as project_gaussians with opacities given).
            const float z = v.p[2];
            bool visible = v.det_raw > 0.f && z >= s.near_plane && z <= s.far_plane && vop >= kAlphaThreshold;
            const float reach = std::sqrt(2.0f * std::log(std::max(vop, kAlphaThreshold) / kAlphaThreshold));
            const float extend = std::min(kRadiusSigmas, reach);
            const float rx = std::ceil(extend * std::sqrt(std::max(v.Ae, 0.f)));
            const float ry = std::ceil(extend * std::sqrt(std::max(v.Ce, 0.f)));
            visible = visible && (rx > s.radius_clip || ry > s.radius_clip);
            const float mx = v.mean2d[0], my = v.mean2d[1];
            visible = visible && (mx + rx > 0.f) && (mx - rx < (float)s.W) && (my + ry > 0.f) && (my - ry < (float)s.H);
            const int32_t irx = visible ? (int32_t)rx : 0, iry = visible ? (int32_t)ry : 0;
            radii_p[2 * i] = irx;
            radii_p[2 * i + 1] = iry;
            // Tiles touched, as torch_backend.tile_bounds / bin_gaussians.
            int32_t nt = 0;
            if (irx > 0 && iry > 0) {
                const float ts = (float)s.ts;
                const float cxt = mx / ts, cyt = my / ts, hx = (float)irx / ts, hy = (float)iry / ts;
                auto clampi = [](float f, int hi) { return (int64_t)std::min(std::max(f, 0.f), (float)hi); };
                const int64_t x0 = clampi(std::floor(cxt - hx), s.tw), x1 = clampi(std::ceil(cxt + hx), s.tw);
                const int64_t y0 = clampi(std::floor(cyt - hy), s.th), y1 = clampi(std::ceil(cyt + hy), s.th);
                nt = (int32_t)(std::max<int64_t>(x1 - x0, 0) * std::max<int64_t>(y1 - y0, 0));
            }
            tiles_p[i] = nt;
            if (sh) {
                float d[3], b[16];
                view_dir(mu, cams[c], d);
                const int B = sh_bases(s.sh_degree, d, s.shc, b, nullptr);
                const float *co = co_p + (s.coeffs_per_camera ? i : n) * s.K * 3;
                for (int ch = 0; ch < 3; ++ch) {
                    float acc = 0.f;
                    for (int k = 0; k < B; ++k) acc += b[k] * co[3 * k + ch];
                    col_p[3 * i + ch] = std::max(acc + 0.5f, 0.f);
                }
            }
        }
    }
    return {radii, means2d, depths, conics, view_opac, colors, tiles};
}

std::vector<at::Tensor> project_backward(const at::Tensor &means, const at::Tensor &quats, const at::Tensor &scales,
                                         const at::Tensor &opacities, const at::Tensor &viewmats, const at::Tensor &Ks,
                                         const c10::optional<at::Tensor> &coeffs,
                                         const c10::optional<at::Tensor> &campos, int64_t width, int64_t height,
                                         double eps2d, double near_plane, bool antialiased, int64_t sh_degree,
                                         const std::vector<double> &sh_constants, const at::Tensor &v_means2d,
                                         const at::Tensor &v_depths, const at::Tensor &v_conics,
                                         const at::Tensor &v_view_opac, const c10::optional<at::Tensor> &v_colors) {
    for (auto *t : {&v_means2d, &v_depths, &v_conics, &v_view_opac}) check_f32(*t, "projection gradient");
    const Settings s = make_settings(means, viewmats, coeffs, width, height, 16, eps2d, near_plane, 1e10, 0.0,
                                     antialiased, sh_degree, sh_constants);
    const bool sh = s.sh_degree >= 0;
    const bool has_vcol = sh && v_colors.has_value() && v_colors->defined() && v_colors->numel() > 0;
    if (has_vcol) check_f32(*v_colors, "v_colors");
    const int64_t C = s.C, N = s.N;
    auto v_means = at::zeros({N, 3}, at::kFloat);
    auto v_quats = at::zeros({N, 4}, at::kFloat);
    auto v_scales = at::zeros({N, 3}, at::kFloat);
    auto v_opac = at::zeros({N}, at::kFloat);
    auto v_coeffs = sh ? at::zeros_like(*coeffs) : at::empty({0}, at::kFloat);
    const auto cams = camera_params(viewmats.data_ptr<float>(), Ks.data_ptr<float>(),
                                    sh ? campos->data_ptr<float>() : nullptr, s);
    const int64_t n_chunks = (N + kChunk - 1) / kChunk;
    // Per chunk and camera: d/dW (9), d/dt (3), d/dcampos (3), d/d(fx, fy, cx, cy) (4).
    constexpr int kCamGrad = 19;
    std::vector<double> partial((size_t)std::max<int64_t>(n_chunks, 1) * C * kCamGrad, 0.0);
    const float *mu_p = means.data_ptr<float>(), *q_p = quats.data_ptr<float>();
    const float *s_p = scales.data_ptr<float>(), *o_p = opacities.data_ptr<float>();
    const float *co_p = sh ? coeffs->data_ptr<float>() : nullptr;
    const float *vm2 = v_means2d.data_ptr<float>(), *vdep = v_depths.data_ptr<float>();
    const float *vcon = v_conics.data_ptr<float>(), *vvo = v_view_opac.data_ptr<float>();
    const float *vcol = has_vcol ? v_colors->data_ptr<float>() : nullptr;
    float *gmu = v_means.data_ptr<float>(), *gq = v_quats.data_ptr<float>();
    float *gs = v_scales.data_ptr<float>(), *go = v_opac.data_ptr<float>();
    float *gco = sh ? v_coeffs.data_ptr<float>() : nullptr;

#pragma omp parallel for schedule(static) num_threads(at::get_num_threads())
    for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
        double *cam_acc = &partial[(size_t)chunk * C * kCamGrad];
        const int64_t n_end = std::min(N, (chunk + 1) * kChunk);
        for (int64_t n = chunk * kChunk; n < n_end; ++n) {
            const float *mu = mu_p + 3 * n;
            float v_mu[3] = {0.f, 0.f, 0.f};
            float v_S[9] = {0.f};  // d/dSigma (world covariance)
            bool any_cov = false;
            Local L;
            bool have_local = false;
            for (int64_t c = 0; c < C; ++c) {
                const int64_t i = c * N + n;
                const float g_m0 = vm2[2 * i], g_m1 = vm2[2 * i + 1], g_dep = vdep[i];
                const float g_ca = vcon[3 * i], g_cb = vcon[3 * i + 1], g_cc = vcon[3 * i + 2], g_vo = vvo[i];
                const float *gcol = vcol ? vcol + 3 * i : nullptr;
                const bool geo = g_m0 != 0.f || g_m1 != 0.f || g_dep != 0.f || g_ca != 0.f || g_cb != 0.f ||
                                 g_cc != 0.f || g_vo != 0.f;
                const bool col = gcol && (gcol[0] != 0.f || gcol[1] != 0.f || gcol[2] != 0.f);
                if (!geo && !col) continue;
                const CameraParams &cam = cams[c];
                double *acc = cam_acc + c * kCamGrad;
                if (col) {
                    float d[3], b[16], g[48];
                    const float dn = view_dir(mu, cam, d);
                    const int B = sh_bases(s.sh_degree, d, s.shc, b, g);
                    const int64_t base = (s.coeffs_per_camera ? i : n) * s.K * 3;
                    const float *co = co_p + base;
                    float *gc = gco + base;
                    float g_raw[3];
                    for (int ch = 0; ch < 3; ++ch) {
                        float raw = 0.f;
                        for (int k = 0; k < B; ++k) raw += b[k] * co[3 * k + ch];
                        g_raw[ch] = raw + 0.5f >= 0.f ? gcol[ch] : 0.f;
                    }
                    float v_d[3] = {0.f, 0.f, 0.f};
                    for (int k = 0; k < B; ++k) {
                        float dot = 0.f;
                        for (int ch = 0; ch < 3; ++ch) {
                            gc[3 * k + ch] += b[k] * g_raw[ch];
                            dot += co[3 * k + ch] * g_raw[ch];
                        }
                        for (int a = 0; a < 3; ++a) v_d[a] += g[3 * k + a] * dot;
                    }
                    const float dd = d[0] * v_d[0] + d[1] * v_d[1] + d[2] * v_d[2];
                    for (int a = 0; a < 3; ++a) {
                        const float v_dir = (v_d[a] - d[a] * dd) / dn;
                        v_mu[a] += v_dir;
                        acc[12 + a] -= v_dir;
                    }
                }
                if (!geo) continue;
                if (!have_local) {
                    local_frame(q_p + 4 * n, s_p + 3 * n, L);
                    have_local = true;
                }
                View v;
                view_of(mu, L, cam, s, v);
                const float op = o_p[n];
                // View opacity = opacity * compensation.
                float v_comp = 0.f;
                if (s.antialiased) {
                    go[n] += g_vo * v.comp;
                    v_comp = g_vo * op;
                } else {
                    go[n] += g_vo;
                }
                // Conic = (Ce, -B, Ae) / det.
                float gAe = g_cc / v.det, gCe = g_ca / v.det, gB = -g_cb / v.det;
                float g_det = -(g_ca * v.conic[0] + g_cb * v.conic[1] + g_cc * v.conic[2]) / v.det;
                float g_det_orig = 0.f;
                if (s.antialiased && v.ratio > 0.f) {
                    const float g_ratio = v_comp * 0.5f / v.comp;
                    g_det_orig = g_ratio / v.det;
                    g_det -= g_ratio * v.ratio / v.det;
                }
                if (v.det_raw >= kMinDet) {
                    gAe += g_det * v.Ce;
                    gCe += g_det * v.Ae;
                    gB -= 2.f * v.B * g_det;
                }
                const float gA = gAe + g_det_orig * v.Cc;
                const float gC = gCe + g_det_orig * v.A;
                gB -= 2.f * v.B * g_det_orig;
                // cov2d = J Sc J^T with J rows J0 = (J00, 0, J02), J1 = (0, J11, J12).
                const float J0[3] = {v.J00, 0.f, v.J02}, J1[3] = {0.f, v.J11, v.J12};
                float v_Sc[9];
                for (int a = 0; a < 3; ++a)
                    for (int b2 = 0; b2 < 3; ++b2)
                        v_Sc[3 * a + b2] = gA * J0[a] * J0[b2] + 0.5f * gB * (J0[a] * J1[b2] + J1[a] * J0[b2]) +
                                           gC * J1[a] * J1[b2];
                float u0[3], u1[3];
                for (int a = 0; a < 3; ++a) {
                    u0[a] = v.J00 * v.Sc[a] + v.J02 * v.Sc[6 + a];
                    u1[a] = v.J11 * v.Sc[3 + a] + v.J12 * v.Sc[6 + a];
                }
                const float gJ00 = 2.f * gA * u0[0] + gB * u1[0];
                const float gJ02 = 2.f * gA * u0[2] + gB * u1[2];
                const float gJ11 = gB * u0[1] + 2.f * gC * u1[1];
                const float gJ12 = gB * u0[2] + 2.f * gC * u1[2];
                const float zp = v.zp, zp2 = zp * zp, zp3 = zp2 * zp;
                float g_zp = -gJ00 * cam.fx / zp2 + gJ02 * 2.f * cam.fx * v.tx / zp3 - gJ11 * cam.fy / zp2 +
                             gJ12 * 2.f * cam.fy * v.ty / zp3;
                const float g_tx = -gJ02 * cam.fx / zp2, g_ty = -gJ12 * cam.fy / zp2;
                float g_p[3] = {0.f, 0.f, 0.f};
                // Intrinsics: J and means2d depend on fx, fy, cx, cy, and so do clamped limits
                // (both limits are (const - c) / f, so d lim/dc = -1/f and d lim/df = -lim/f).
                double g_f[2] = {(double)gJ00 / zp - (double)gJ02 * v.tx / zp2 + (double)g_m0 * v.p[0] / zp,
                                 (double)gJ11 / zp - (double)gJ12 * v.ty / zp2 + (double)g_m1 * v.p[1] / zp};
                double g_c[2] = {g_m0, g_m1};
                if (v.clamp_x) {
                    g_zp += g_tx * v.rx_clamped;
                    const double g_lim = (double)g_tx * zp;
                    g_c[0] -= g_lim / cam.fx;
                    g_f[0] -= g_lim * v.rx_clamped / cam.fx;
                } else {
                    g_p[0] += g_tx;
                }
                if (v.clamp_y) {
                    g_zp += g_ty * v.ry_clamped;
                    const double g_lim = (double)g_ty * zp;
                    g_c[1] -= g_lim / cam.fy;
                    g_f[1] -= g_lim * v.ry_clamped / cam.fy;
                } else {
                    g_p[1] += g_ty;
                }
                acc[15] += g_f[0];
                acc[16] += g_f[1];
                acc[17] += g_c[0];
                acc[18] += g_c[1];
                // means2d = (fx x / zp + cx, fy y / zp + cy).
                g_p[0] += g_m0 * cam.fx / zp;
                g_p[1] += g_m1 * cam.fy / zp;
                g_zp -= (g_m0 * cam.fx * v.p[0] + g_m1 * cam.fy * v.p[1]) / zp2;
                g_p[2] = (v.in_front ? g_zp : 0.f) + g_dep;
                // Sc = W S W^T: d/dS = W^T v_Sc W, d/dW = 2 v_Sc W S.
                const float *W = cam.R;
                float T1[9];  // v_Sc W
                for (int a = 0; a < 3; ++a)
                    for (int b2 = 0; b2 < 3; ++b2)
                        T1[3 * a + b2] = v_Sc[3 * a] * W[b2] + v_Sc[3 * a + 1] * W[3 + b2] + v_Sc[3 * a + 2] * W[6 + b2];
                for (int a = 0; a < 3; ++a)
                    for (int b2 = 0; b2 < 3; ++b2) {
                        v_S[3 * a + b2] += W[a] * T1[b2] + W[3 + a] * T1[3 + b2] + W[6 + a] * T1[6 + b2];
                        const double gW = 2.0 * (T1[3 * a] * L.S[b2] + T1[3 * a + 1] * L.S[3 + b2] +
                                                 T1[3 * a + 2] * L.S[6 + b2]);
                        acc[3 * a + b2] += gW + (double)g_p[a] * mu[b2];
                    }
                any_cov = true;
                // p = W mu + t.
                for (int a = 0; a < 3; ++a) {
                    v_mu[a] += W[a] * g_p[0] + W[3 + a] * g_p[1] + W[6 + a] * g_p[2];
                    acc[9 + a] += g_p[a];
                }
            }
            for (int a = 0; a < 3; ++a) gmu[3 * n + a] = v_mu[a];
            if (!any_cov) continue;
            // Sigma = M M^T: d/dM = 2 v_S M (v_S symmetric), M = R diag(s).
            float v_R[9];
            float *g_sc = gs + 3 * n;
            const float *sc = s_p + 3 * n;
            for (int a = 0; a < 3; ++a)
                for (int b2 = 0; b2 < 3; ++b2) {
                    const float v_M = (v_S[3 * a] + v_S[a]) * L.M[b2] + (v_S[3 * a + 1] + v_S[3 + a]) * L.M[3 + b2] +
                                      (v_S[3 * a + 2] + v_S[6 + a]) * L.M[6 + b2];
                    v_R[3 * a + b2] = v_M * sc[b2];
                    g_sc[b2] += v_M * L.R[3 * a + b2];
                }
            const float w = L.qn[0], x = L.qn[1], y = L.qn[2], z = L.qn[3];
            const float *G = v_R;
            float v_qn[4];
            v_qn[0] = 2.f * (-z * G[1] + y * G[2] + z * G[3] - x * G[5] - y * G[6] + x * G[7]);
            v_qn[1] = 2.f * (y * G[1] + z * G[2] + y * G[3] - 2.f * x * G[4] - w * G[5] + z * G[6] + w * G[7] -
                             2.f * x * G[8]);
            v_qn[2] = 2.f * (-2.f * y * G[0] + x * G[1] + w * G[2] + x * G[3] + z * G[5] - w * G[6] + z * G[7] -
                             2.f * y * G[8]);
            v_qn[3] = 2.f * (-2.f * z * G[0] - w * G[1] + x * G[2] + w * G[3] - 2.f * z * G[4] + y * G[5] + x * G[6] +
                             y * G[7]);
            const float dot = L.qn[0] * v_qn[0] + L.qn[1] * v_qn[1] + L.qn[2] * v_qn[2] + L.qn[3] * v_qn[3];
            for (int a = 0; a < 4; ++a) gq[4 * n + a] = (v_qn[a] - L.qn[a] * dot) / L.qnorm;
        }
    }
    // Fixed-order reduction of the per-chunk camera gradients.
    auto v_viewmats = at::zeros({C, 4, 4}, at::kFloat);
    auto v_campos = sh ? at::zeros({C, 3}, at::kFloat) : at::empty({0}, at::kFloat);
    auto v_Ks = at::zeros({C, 3, 3}, at::kFloat);
    float *gk = v_Ks.data_ptr<float>();
    float *gv = v_viewmats.data_ptr<float>();
    float *gcp = sh ? v_campos.data_ptr<float>() : nullptr;
    for (int64_t c = 0; c < C; ++c) {
        double tot[kCamGrad] = {0.0};
        for (int64_t chunk = 0; chunk < n_chunks; ++chunk) {
            const double *acc = &partial[((size_t)chunk * C + c) * kCamGrad];
            for (int k = 0; k < kCamGrad; ++k) tot[k] += acc[k];
        }
        for (int a = 0; a < 3; ++a) {
            for (int b2 = 0; b2 < 3; ++b2) gv[16 * c + 4 * a + b2] = (float)tot[3 * a + b2];
            gv[16 * c + 4 * a + 3] = (float)tot[9 + a];
            if (gcp) gcp[3 * c + a] = (float)tot[12 + a];
        }
        gk[9 * c + 0] = (float)tot[15];
        gk[9 * c + 4] = (float)tot[16];
        gk[9 * c + 2] = (float)tot[17];
        gk[9 * c + 5] = (float)tot[18];
    }
    return {v_means, v_quats, v_scales, v_opac, v_coeffs, v_viewmats, v_campos, v_Ks};
}

}  // namespace splatops
