// Fused SSIM of channels-last images on the CPU (see ssim.cpp).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace splatops {

// Returns (ssim [B], d_mu [B,Ho,Wo,C], d_xx, d_xy) for img, ref [B,H,W,C] float32; the three
// partial maps are empty unless with_grad.
std::vector<at::Tensor> ssim_forward(const at::Tensor &x, const at::Tensor &y, const at::Tensor &window, double c1,
                                     double c2, bool with_grad);

// Gradient [B,H,W,C] of sum_b grad_out[b] * ssim[b] with respect to img.
at::Tensor ssim_backward(const at::Tensor &x, const at::Tensor &y, const at::Tensor &window, const at::Tensor &dmu,
                         const at::Tensor &dxx, const at::Tensor &dxy, const at::Tensor &grad_out);

}  // namespace splatops
