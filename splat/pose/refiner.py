"""GS-Refiner: render-and-compare pose refinement through the differentiable rasterizer.

The pose is ``T = exp(xi) T0`` with ``xi`` in se(3), written at the object's
centre ``c`` (as seen at ``T0``) so that rotation and translation decouple::

    T = C exp(xi) C^-1 T0 = exp(Ad_C xi) T0,   C = translation by c

``xi = (v, w)`` is optimised by Adam through the rasterizer's ``viewmats``
gradient. Loss over a crop around the object::

    0.3 L1 + 0.7 (1 - SSIM)  [+ depth_weight |depth_render - depth| / diameter]
                             [+ mask_weight |alpha - mask|]

With a mask the observation is composited on a black background by the mask
and the model is rendered on black (the silhouette counts); without one the
render is composited over the observation itself (background pixels cost
nothing where the model is absent).

Stages: the pose learning rates decay (cosine) from their start values to
``final_lr_factor`` of them over ``max_iters``; iterations before
``fine_start`` (none by default) render the crop at half resolution, cheap
but biased: the rasterizer's ``eps2d`` blur fattens small splats twice as
much at half resolution, which pushes the object away from the camera. A per-image affine colour correction
``a * colour + b`` is learnt from ``color_start`` on, and in the late window
(from ``sh_start``) the higher-order SH coefficients of a copy of the model
absorb lighting changes (a degree-0 model gains degree-1 coefficients there).
The model passed in is never modified. The loop stops when the pose update
(``|dw|`` in radians plus ``|dv|`` in diameters) stays under ``tol`` for
``patience`` iterations. Optional point-to-plane ICP (open3d) on a depth
image then corrects the translation.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from splat.core.gaussians import Gaussians
from splat.metrics import ssim
from splat.pose.model import model_diameter, surface_points
from splat.pose.se3 import exp_se3

__all__ = ["RefinerConfig", "RefineResult", "Observation", "refine_pose", "render_model"]


@dataclass
class RefinerConfig:
    """Hyper-parameters of the GS-Refiner.

    Attributes:
        max_iters: iteration cap.
        fine_start: first full-resolution iteration (before it: half resolution; 0: none).
        lr_rot: Adam learning rate of the rotation part (radians).
        lr_trans: Adam learning rate of the translation part (object diameters).
        final_lr_factor: the rates decay (cosine) to this fraction at ``max_iters``.
        l1_weight: weight of the L1 term.
        ssim_weight: weight of ``1 - SSIM``.
        depth_weight: weight of the depth term (when a depth image is given).
        mask_weight: weight of the silhouette term ``|alpha - mask|`` (when a mask is given):
            dark objects composited on black otherwise lose their outline.
        blur_sigma: Gaussian blur (pixels) of render and target at the first
            iteration, decaying linearly to none at ``blur_until`` (a wider basin, no bias:
            both sides are blurred alike).
        blur_until: iteration from which no blur is applied.
        color_start: iteration from which the affine colour correction is learnt.
        lr_color: its learning rate.
        sh_start: first iteration of the late window with SH updates (-1: never).
        lr_sh: learning rate of the higher-order SH coefficients.
        tol: convergence threshold on the pose update per iteration.
        patience: iterations in a row under ``tol`` to stop.
        min_iters: never stop before this many iterations.
        margin: crop margin around the object, as a fraction of its box size.
        icp: run point-to-plane ICP on the depth image afterwards (translation only).
        backend: rasterization backend.
    """

    max_iters: int = 80
    fine_start: int = 0
    lr_rot: float = 0.03
    lr_trans: float = 0.015
    final_lr_factor: float = 0.1
    l1_weight: float = 0.3
    ssim_weight: float = 0.7
    depth_weight: float = 1.0
    mask_weight: float = 0.5
    blur_sigma: float = 3.0
    blur_until: int = 30
    color_start: int = 10
    lr_color: float = 0.02
    sh_start: int = 30
    lr_sh: float = 0.005
    tol: float = 2e-3
    patience: int = 3
    min_iters: int = 20
    margin: float = 0.3
    icp: bool = False
    backend: str = "auto"

    def __post_init__(self) -> None:
        for name in ("max_iters", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr_rot", "lr_trans", "tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass
class Observation:
    """A checked observed image (see :func:`splat.pose.checks.check_observation`).

    Attributes:
        image: Tensor,  # [H, W, 3] float32 in [0, 1]
        K: Tensor,  # [3, 3] float32 intrinsics
        mask: Tensor | None,  # [H, W] bool object pixels
        depth: Tensor | None,  # [H, W] float32 camera z, 0 where unknown
    """

    image: Tensor
    K: Tensor
    mask: Tensor | None = None
    depth: Tensor | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass
class RefineResult:
    """What :func:`refine_pose` returns.

    Attributes:
        object_to_camera: Tensor,  # [4, 4] float64 refined pose (OpenCV)
        initial: Tensor,  # [4, 4] the starting pose
        history: per-iteration records (``iteration``, ``loss``, ``step``, ``resolution``).
        iterations: iterations run.
        converged: whether the convergence test stopped the loop.
        seconds: wall time.
        color: the learnt affine colour correction ``{"gain": [3], "bias": [3]}``.
        icp_shift: translation added by ICP (``None`` without ICP).
    """

    object_to_camera: Tensor
    initial: Tensor
    history: list[dict] = field(default_factory=list)
    iterations: int = 0
    converged: bool = False
    seconds: float = 0.0
    color: dict = field(default_factory=dict)
    icp_shift: list | None = None


def _roi(points: Tensor, T: Tensor, obs: Observation, margin: float) -> tuple[int, int, int, int]:
    """Crop ``(x0, y0, x1, y1)`` around the projected model at ``T`` and the mask, with a margin."""
    from splat.core.camera import project_points

    uv, _ = project_points(points.float(), T[None].float(), obs.K[None].float())
    uv = uv[0]
    lo, hi = uv.min(0).values, uv.max(0).values
    if obs.mask is not None and bool(obs.mask.any()):
        ys, xs = torch.nonzero(obs.mask, as_tuple=True)
        lo = torch.minimum(lo, torch.stack([xs.min(), ys.min()]).float())
        hi = torch.maximum(hi, torch.stack([xs.max() + 1, ys.max() + 1]).float())
    pad = (hi - lo) * margin + 4
    x0, y0 = [max(int(math.floor(v)), 0) for v in (lo - pad).tolist()]
    x1 = min(int(math.ceil(float(hi[0] + pad[0]))), obs.width)
    y1 = min(int(math.ceil(float(hi[1] + pad[1]))), obs.height)
    # SSIM needs at least 11 pixels at half resolution.
    if x1 - x0 < 24:
        x0, x1 = max(0, min(x0, obs.width - 24)), min(obs.width, max(x1, x0 + 24))
    if y1 - y0 < 24:
        y0, y1 = max(0, min(y0, obs.height - 24)), min(obs.height, max(y1, y0 + 24))
    return x0, y0, x1, y1


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of ``[H, W, C]`` (zero padding)."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (taps / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[-1]
    y = x.permute(2, 0, 1)[None]
    y = torch.nn.functional.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    y = torch.nn.functional.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)
    return y[0].permute(1, 2, 0)


def _downsample(x: Tensor, factor: int) -> Tensor:
    """Box-filters ``[H, W, C]`` by ``factor`` (cropping to a multiple)."""
    if factor == 1:
        return x
    h, w = x.shape[0] // factor * factor, x.shape[1] // factor * factor
    return x[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).mean(dim=(1, 3))


def render_model(
    gaussians: Gaussians,
    object_to_camera: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    *,
    shN: Tensor | None = None,  # [N, K, 3] replacement higher-order SH
    with_depth: bool = False,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Renders an object model on black at a pose.

    Returns:
        ``(rgb [H, W, 3] premultiplied, alpha [H, W, 1], depth [H, W, 1] or None)``.
    """
    from splat.core.rasterization import rasterization

    sh0 = gaussians.params["sh0"]
    higher = gaussians.params["shN"] if shN is None else shN
    colors = torch.cat([sh0, higher], dim=1)
    degree = int(round(math.sqrt(colors.shape[1]))) - 1
    out, alpha, _ = rasterization(
        gaussians.means, gaussians.params["quats"], gaussians.scales, gaussians.opacities, colors,
        object_to_camera[None].float(), K[None].float(), width, height, sh_degree=degree,
        backgrounds=torch.zeros(1, 3), render_mode="RGB+ED" if with_depth else "RGB", backend=backend,
    )
    depth = out[0, ..., 3:4] if with_depth else None
    return out[0, ..., :3], alpha[0], depth


def _frozen_copy(gaussians: Gaussians) -> Gaussians:
    g = gaussians.detached()
    for p in g.params.values():
        p.requires_grad_(False)
    return g


def refine_pose(
    gaussians: Gaussians,
    obs: Observation,
    init: Tensor,  # [4, 4]
    config: RefinerConfig | None = None,
    *,
    points: Tensor | None = None,  # [P, 3] surface points (default: the opaque means)
    diameter: float | None = None,
) -> RefineResult:
    """Refines ``init`` (object-to-camera, OpenCV) so the model's render matches ``obs``.

    Args:
        gaussians: the object model (left untouched: a detached copy is used).
        obs: the observation (checked by the caller).
        init: Tensor,  # [4, 4] initial pose
        config: hyper-parameters (defaults when None).
        points: surface points for the crop, diameter and ICP.
        diameter: object diameter (computed from ``points`` when None).

    Returns:
        A :class:`RefineResult`.
    """
    config = config or RefinerConfig()
    t_start = time.perf_counter()
    model = _frozen_copy(gaussians)
    points = surface_points(model) if points is None else points
    diameter = model_diameter(points) if diameter is None else float(diameter)
    T0 = init.detach().double().clone()
    centre = T0[:3, :3] @ points.double().mean(0) + T0[:3, 3]  # object centre in the camera frame
    C, C_inv = torch.eye(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64)
    C[:3, 3], C_inv[:3, 3] = centre, -centre

    x0, y0, x1, y1 = _roi(points, T0, obs, config.margin)
    K_roi = obs.K.double().clone()
    K_roi[0, 2] -= x0
    K_roi[1, 2] -= y0
    image = obs.image[y0:y1, x0:x1]
    mask = None if obs.mask is None else obs.mask[y0:y1, x0:x1, None].float()
    target = image * mask if mask is not None else image
    depth_obs = None if obs.depth is None else obs.depth[y0:y1, x0:x1, None]

    v = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # translation, in diameters
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)  # rotation, radians
    gain = torch.ones(3, requires_grad=True)
    bias = torch.zeros(3, requires_grad=True)
    shN = model.params["shN"].detach().clone()
    if shN.shape[1] == 0 and config.sh_start >= 0:
        shN = torch.zeros(model.num_gaussians, 3, 3)  # degree 1 for the lighting window
    shN.requires_grad_(True)
    pose_opt = torch.optim.Adam([{"params": [v], "lr": config.lr_trans}, {"params": [w], "lr": config.lr_rot}])
    color_opt = torch.optim.Adam([gain, bias], lr=config.lr_color)
    sh_opt = torch.optim.Adam([shN], lr=config.lr_sh)
    base_lrs = [config.lr_trans, config.lr_rot]

    def pose_of(v_, w_) -> Tensor:
        xi = torch.cat([v_ * diameter, w_])
        return C @ exp_se3(xi) @ C_inv @ T0

    history, quiet, converged = [], 0, False
    it = 0
    for it in range(config.max_iters):
        factor = 2 if it < config.fine_start else 1
        progress = max(it - config.fine_start, 0) / max(config.max_iters - config.fine_start, 1)
        scale = config.final_lr_factor + (1 - config.final_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        for group, lr in zip(pose_opt.param_groups, base_lrs):
            group["lr"] = lr * scale
        K_it = K_roi.clone()
        K_it[:2] /= factor
        w_px, h_px = (x1 - x0) // factor, (y1 - y0) // factor
        T = pose_of(v, w)
        use_sh = config.sh_start >= 0 and it >= config.sh_start
        rgb, alpha, depth = render_model(model, T, K_it, w_px, h_px, shN=shN if use_sh else None,
                                         with_depth=depth_obs is not None, backend=config.backend)
        rgb = rgb * gain + bias * alpha
        tgt = _downsample(target, factor)[:h_px, :w_px]
        if mask is None:
            tgt_img = tgt
            rgb = rgb + (1 - alpha) * tgt  # the model drawn over the observation
        else:
            tgt_img = tgt
        sigma = config.blur_sigma * max(0.0, 1.0 - it / max(config.blur_until, 1))
        if sigma > 0.3:
            rgb, tgt_img = _blur(rgb, sigma), _blur(tgt_img, sigma)
        l1 = (rgb - tgt_img).abs().mean()
        loss = config.l1_weight * l1 + config.ssim_weight * (1 - ssim(rgb, tgt_img))
        if mask is not None and config.mask_weight > 0:
            m = _downsample(mask, factor)[:h_px, :w_px]
            a = alpha
            if sigma > 0.3:
                a, m = _blur(a, sigma), _blur(m, sigma)
            loss = loss + config.mask_weight * (a - m).abs().mean()
        if depth_obs is not None:
            d_obs = _downsample(depth_obs, factor)[:h_px, :w_px]
            valid = (d_obs > 0) & (alpha > 0.5)
            if bool(valid.any()):
                loss = loss + config.depth_weight * ((depth - d_obs).abs()[valid].mean() / diameter)
        pose_opt.zero_grad(set_to_none=True)
        color_opt.zero_grad(set_to_none=True)
        sh_opt.zero_grad(set_to_none=True)
        loss.backward()
        before = (v.detach().clone(), w.detach().clone())
        pose_opt.step()
        if it >= config.color_start:
            color_opt.step()
            with torch.no_grad():
                gain.clamp_(0.2, 5.0)
                bias.clamp_(-0.5, 0.5)
        if use_sh:
            sh_opt.step()
        step = float((w.detach() - before[1]).norm() + (v.detach() - before[0]).norm())
        history.append({"iteration": it, "loss": float(loss.detach()), "step": step,
                        "resolution": 1.0 / factor})
        quiet = quiet + 1 if (step < config.tol and it >= config.fine_start) else 0
        if quiet >= config.patience and it + 1 >= config.min_iters:
            converged = True
            break

    with torch.no_grad():
        T_final = pose_of(v, w).detach()
    icp_shift = None
    if config.icp and obs.depth is not None:
        T_final, icp_shift = icp_translation(points, T_final, obs, diameter)
    return RefineResult(
        object_to_camera=T_final, initial=T0, history=history, iterations=it + 1, converged=converged,
        seconds=time.perf_counter() - t_start,
        color={"gain": gain.detach().tolist(), "bias": bias.detach().tolist()}, icp_shift=icp_shift,
    )


def backproject(depth: Tensor, K: Tensor, mask: Tensor | None = None) -> Tensor:
    """Camera-frame points ``[P, 3]`` of the pixels with depth > 0 (and in ``mask``), pixel centres at ``i + 0.5``."""
    valid = depth > 0
    if mask is not None:
        valid &= mask
    ys, xs = torch.nonzero(valid, as_tuple=True)
    z = depth[ys, xs].double()
    x = (xs.double() + 0.5 - float(K[0, 2])) / float(K[0, 0]) * z
    y = (ys.double() + 0.5 - float(K[1, 2])) / float(K[1, 1]) * z
    return torch.stack([x, y, z], dim=-1)


def icp_translation(points: Tensor, T: Tensor, obs: Observation, diameter: float) -> tuple[Tensor, list]:
    """Point-to-plane ICP (open3d) of the model points onto the observed depth; keeps only the translation.

    The model's surface points, posed by ``T``, are aligned to the back-projected
    depth (within the mask when there is one); the shift the ICP moves the
    object centre by is added to ``T``'s translation. The rotation is kept from
    the photometric refinement. Returns ``(T, shift)``.
    """
    import open3d as o3d

    target = backproject(obs.depth, obs.K, obs.mask)
    if target.shape[0] < 30:
        return T, [0.0, 0.0, 0.0]
    source = points.double() @ T[:3, :3].T + T[:3, 3]
    src, tgt = o3d.geometry.PointCloud(), o3d.geometry.PointCloud()
    src.points = o3d.utility.Vector3dVector(source.numpy())
    tgt.points = o3d.utility.Vector3dVector(target.numpy())
    tgt.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=0.05 * diameter, max_nn=30))
    tgt.orient_normals_towards_camera_location(np.zeros(3))
    result = o3d.pipelines.registration.registration_icp(
        src, tgt, 0.05 * diameter, np.eye(4),
        o3d.pipelines.registration.TransformationEstimationPointToPlane(),
        o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=30),
    )
    M = torch.from_numpy(np.array(result.transformation)).double()
    centre = source.mean(0)
    shift = M[:3, :3] @ centre + M[:3, 3] - centre
    out = T.clone()
    out[:3, 3] += shift
    return out, shift.tolist()


def config_dict(config: RefinerConfig) -> dict:
    """The configuration as a plain dict (for the pose file)."""
    return asdict(config)
