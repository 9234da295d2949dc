// Projection and SH colours of 3D Gaussians on the CPU (see project.cpp).
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace splatops {

// Returns (radii [C,N,2] int32, means2d [C,N,2], depths [C,N], conics [C,N,3],
// view_opacities [C,N], colors [C,N,3] (empty without SH), tiles_per_gauss [C,N] int32).
std::vector<at::Tensor> project_forward(const at::Tensor &means, const at::Tensor &quats, const at::Tensor &scales,
                                        const at::Tensor &opacities, const at::Tensor &viewmats, const at::Tensor &Ks,
                                        const c10::optional<at::Tensor> &coeffs,
                                        const c10::optional<at::Tensor> &campos, int64_t width, int64_t height,
                                        int64_t tile_size, double eps2d, double near_plane, double far_plane,
                                        double radius_clip, bool antialiased, int64_t sh_degree,
                                        const std::vector<double> &sh_constants);

// Returns (v_means [N,3], v_quats [N,4], v_scales [N,3], v_opacities [N], v_coeffs (like coeffs,
// empty without SH), v_viewmats [C,4,4], v_campos [C,3] (empty without SH), v_Ks [C,3,3]).
std::vector<at::Tensor> project_backward(const at::Tensor &means, const at::Tensor &quats, const at::Tensor &scales,
                                         const at::Tensor &opacities, const at::Tensor &viewmats, const at::Tensor &Ks,
                                         const c10::optional<at::Tensor> &coeffs,
                                         const c10::optional<at::Tensor> &campos, int64_t width, int64_t height,
                                         double eps2d, double near_plane, bool antialiased, int64_t sh_degree,
                                         const std::vector<double> &sh_constants, const at::Tensor &v_means2d,
                                         const at::Tensor &v_depths, const at::Tensor &v_conics,
                                         const at::Tensor &v_view_opac, const c10::optional<at::Tensor> &v_colors);

}  // namespace splatops
