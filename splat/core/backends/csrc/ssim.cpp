// SSIM of channels-last images on the CPU, forward and backward in one kernel.
//
// The definition is splat.metrics.ssim's (skimage's): a separable Gaussian
// window, population statistics, C1 = (0.01 L)^2, C2 = (0.03 L)^2, the mean of
// the SSIM map over the pixels whose window lies inside the image and over
// channels, per image. The five blurred maps (x, y, x^2, y^2, xy) come from one
// horizontal and one vertical pass over rows of W * C floats (no transposes).
//
// The forward also writes, per valid pixel, the derivatives of the SSIM map
// with respect to the three blurred maps that depend on x (mu_x, E[x^2],
// E[xy]); the backward scatters them through the transposed window and
// combines them with x and y:
//   dL/dx = W^T g_mu + 2 x W^T g_xx + y W^T g_xy.
// Sums over the map are accumulated in double, so the loss does not depend on
// the summation order.
#include "ssim.h"

#include <ATen/Parallel.h>

#include <vector>

namespace splatops {

namespace {

// o[i] += w * a[i] for i < n (restrict: the compiler vectorises it).
inline void axpy(float *__restrict o, const float *__restrict a, float w, int64_t n) {
    for (int64_t i = 0; i < n; ++i) o[i] += w * a[i];
}

void check_image(const at::Tensor &t, const char *name) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
    TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.dim() == 4, name, " must be [B, H, W, C]");
}

}  // namespace

std::vector<at::Tensor> ssim_forward(const at::Tensor &x, const at::Tensor &y, const at::Tensor &window, double c1,
                                     double c2, bool with_grad) {
    check_image(x, "img");
    check_image(y, "ref");
    TORCH_CHECK(x.sizes() == y.sizes(), "img and ref must have the same shape");
    TORCH_CHECK(window.scalar_type() == at::kFloat && window.dim() == 1 && window.is_contiguous(),
                "window must be a contiguous float32 vector");
    const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
    const int K = (int)window.size(0);
    TORCH_CHECK(H >= K && W >= K, "images must be at least as large as the window");
    const int64_t Ho = H - K + 1, Wo = W - K + 1, rowo = Wo * C, row = W * C;
    const float *w = window.data_ptr<float>();
    const float fc1 = (float)c1, fc2 = (float)c2;

    auto out = at::empty({B}, at::kFloat);
    auto dmu = with_grad ? at::empty({B, Ho, Wo, C}, at::kFloat) : at::empty({0}, at::kFloat);
    auto dxx = with_grad ? at::empty({B, Ho, Wo, C}, at::kFloat) : at::empty({0}, at::kFloat);
    auto dxy = with_grad ? at::empty({B, Ho, Wo, C}, at::kFloat) : at::empty({0}, at::kFloat);
    float *po = out.data_ptr<float>();

    for (int64_t b = 0; b < B; ++b) {
        const float *xb = x.data_ptr<float>() + b * H * row;
        const float *yb = y.data_ptr<float>() + b * H * row;
        // Horizontal pass: five maps [H, Wo*C].
        std::vector<float> hz(5 * H * rowo);
        float *h0 = hz.data(), *h1 = h0 + H * rowo, *h2 = h1 + H * rowo, *h3 = h2 + H * rowo, *h4 = h3 + H * rowo;
        at::parallel_for(0, H, 8, [&](int64_t r0, int64_t r1) {
            std::vector<float> xx(row), yy(row), xy(row);
            for (int64_t r = r0; r < r1; ++r) {
                const float *xr = xb + r * row, *yr = yb + r * row;
                for (int64_t i = 0; i < row; ++i) {  // no aliasing: xx, yy, xy are this thread's buffers
                    xx[i] = xr[i] * xr[i];
                    yy[i] = yr[i] * yr[i];
                    xy[i] = xr[i] * yr[i];
                }
                const float *in[5] = {xr, yr, xx.data(), yy.data(), xy.data()};
                float *outs[5] = {h0 + r * rowo, h1 + r * rowo, h2 + r * rowo, h3 + r * rowo, h4 + r * rowo};
                for (int m = 0; m < 5; ++m) {
                    std::fill(outs[m], outs[m] + rowo, 0.f);
                    for (int k = 0; k < K; ++k) axpy(outs[m], in[m] + (int64_t)k * C, w[k], rowo);
                }
            }
        });
        // Vertical pass and the SSIM map, row by row; per-row sums in double.
        std::vector<double> row_sum(Ho, 0.0);
        float *gm = with_grad ? dmu.data_ptr<float>() + b * Ho * rowo : nullptr;
        float *gxx = with_grad ? dxx.data_ptr<float>() + b * Ho * rowo : nullptr;
        float *gxy = with_grad ? dxy.data_ptr<float>() + b * Ho * rowo : nullptr;
        at::parallel_for(0, Ho, 8, [&](int64_t r0, int64_t r1) {
            std::vector<float> v(6 * rowo);
            for (int64_t r = r0; r < r1; ++r) {
                std::fill(v.begin(), v.begin() + 5 * rowo, 0.f);
                float *mx = v.data(), *my = mx + rowo, *sxx = my + rowo, *syy = sxx + rowo, *sxy = syy + rowo;
                const float *hs[5] = {h0, h1, h2, h3, h4};
                for (int m = 0; m < 5; ++m)
                    for (int k = 0; k < K; ++k) axpy(v.data() + m * rowo, hs[m] + (r + k) * rowo, w[k], rowo);
                float *__restrict sv = v.data() + 5 * rowo;
                for (int64_t i = 0; i < rowo; ++i) {
                    const float mxy = mx[i] * my[i], mx2 = mx[i] * mx[i], my2 = my[i] * my[i];
                    const float a1 = 2.f * mxy + fc1, a2 = 2.f * (sxy[i] - mxy) + fc2;
                    const float b1 = mx2 + my2 + fc1, b2 = (sxx[i] - mx2) + (syy[i] - my2) + fc2;
                    sv[i] = (a1 * a2) / (b1 * b2);
                }
                if (with_grad) {
                    float *__restrict pm = gm + r * rowo, *__restrict pxx = gxx + r * rowo;
                    float *__restrict pxy = gxy + r * rowo;
                    for (int64_t i = 0; i < rowo; ++i) {
                        // dS/dmu_x, dS/dE[x^2], dS/dE[xy] (cov = E[xy] - mu_x mu_y, var = E[x^2] - mu_x^2)
                        const float mxy = mx[i] * my[i], mx2 = mx[i] * mx[i], my2 = my[i] * my[i];
                        const float a1 = 2.f * mxy + fc1, a2 = 2.f * (sxy[i] - mxy) + fc2;
                        const float b1 = mx2 + my2 + fc1, b2 = (sxx[i] - mx2) + (syy[i] - my2) + fc2;
                        const float den = b1 * b2;
                        pm[i] = (2.f * my[i] * (a2 - a1)) / den - sv[i] * (2.f * mx[i] / b1 - 2.f * mx[i] / b2);
                        pxx[i] = -sv[i] / b2;
                        pxy[i] = 2.f * a1 / den;
                    }
                }
                double acc = 0.0;
                for (int64_t i = 0; i < rowo; ++i) acc += sv[i];
                row_sum[r] = acc;
            }
        });
        double total = 0.0;
        for (int64_t r = 0; r < Ho; ++r) total += row_sum[r];
        po[b] = (float)(total / (double)(Ho * rowo));
    }
    return {out, dmu, dxx, dxy};
}

at::Tensor ssim_backward(const at::Tensor &x, const at::Tensor &y, const at::Tensor &window, const at::Tensor &dmu,
                         const at::Tensor &dxx, const at::Tensor &dxy, const at::Tensor &grad_out) {
    check_image(x, "img");
    check_image(y, "ref");
    for (const at::Tensor *t : {&dmu, &dxx, &dxy}) check_image(*t, "ssim partials");
    TORCH_CHECK(grad_out.scalar_type() == at::kFloat && grad_out.numel() == x.size(0), "grad_out must be [B] float32");
    const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
    const int K = (int)window.size(0);
    const int64_t Ho = H - K + 1, Wo = W - K + 1, rowo = Wo * C, row = W * C;
    const float *w = window.data_ptr<float>();
    auto gx = at::empty_like(x);
    const float *go = grad_out.contiguous().data_ptr<float>();
    for (int64_t b = 0; b < B; ++b) {
        const float scale = go[b] / (float)(Ho * rowo);  // d mean / d map
        const float *pm = dmu.data_ptr<float>() + b * Ho * rowo;
        const float *pxx = dxx.data_ptr<float>() + b * Ho * rowo;
        const float *pxy = dxy.data_ptr<float>() + b * Ho * rowo;
        const float *xb = x.data_ptr<float>() + b * H * row, *yb = y.data_ptr<float>() + b * H * row;
        float *gb = gx.data_ptr<float>() + b * H * row;
        at::parallel_for(0, H, 8, [&](int64_t r0, int64_t r1) {
            std::vector<float> t(3 * rowo), u(3 * row);
            for (int64_t r = r0; r < r1; ++r) {
                // Transposed vertical pass: output rows r - k (0 <= r - k < Ho) feed input row r.
                std::fill(t.begin(), t.end(), 0.f);
                float *t0 = t.data(), *t1 = t0 + rowo, *t2 = t1 + rowo;
                for (int k = 0; k < K; ++k) {
                    const int64_t q = r - k;
                    if (q < 0 || q >= Ho) continue;
                    const float wk = w[k] * scale;
                    axpy(t0, pm + q * rowo, wk, rowo);
                    axpy(t1, pxx + q * rowo, wk, rowo);
                    axpy(t2, pxy + q * rowo, wk, rowo);
                }
                // Transposed horizontal pass: output column j feeds input columns j + k.
                std::fill(u.begin(), u.end(), 0.f);
                float *u0 = u.data(), *u1 = u0 + row, *u2 = u1 + row;
                for (int k = 0; k < K; ++k) {
                    const int64_t s = (int64_t)k * C;
                    axpy(u0 + s, t0, w[k], rowo);
                    axpy(u1 + s, t1, w[k], rowo);
                    axpy(u2 + s, t2, w[k], rowo);
                }
                const float *__restrict xr = xb + r * row, *__restrict yr = yb + r * row;
                float *__restrict gr = gb + r * row;
                for (int64_t i = 0; i < row; ++i) gr[i] = u0[i] + 2.f * xr[i] * u1[i] + yr[i] * u2[i];
            }
        });
    }
    return gx;
}

}  // namespace splatops
