"""InstantSplat (Fan et al., 2024): Gaussians and camera poses fitted jointly.

InstantSplat starts from a coarse but dense geometry estimate for all views at
once (a point cloud and a pose per view), places one Gaussian on every point
(scales from nearest-neighbour distances) and then optimises the Gaussians
*and* the cameras for about a thousand steps through the rasterizer. Here the
coarse estimate comes from :mod:`splat.posefree` (or any posed scene), and the
joint optimisation runs on the one fit loop:

* every view owns a pose correction ``xi = (rho, phi)`` in se(3), zero at the
  start, stored in ``state.params["pose_delta"]`` (``[C, 6]``); the rendered
  world-to-camera matrix is ``exp(xi) @ viewmat`` (the exact SE(3) exponential
  of :mod:`splat.pose.se3`,
  the correction expressed in the camera frame, ``rho`` in units of the scene
  extent so that one learning rate suits every scale);
* the views share one focal-length correction ``f`` (``state.params["focal_delta"]``,
  ``[1]``): ``fx, fy <- fx e^f, fy e^f``;
* both reach the loss through the rasterizer's ``viewmats`` and ``Ks``
  gradients (the projection is differentiable PyTorch); the pose learning rate
  decays log-linearly over the fit; a quadratic regulariser pulls the
  corrections toward the initial poses;
* density control runs only when the initial cloud is sparse (fewer than
  ``dense_min_points`` points); on a dense cloud the Gaussians only move;
* evaluation as in the paper: before the final held-out PSNR/SSIM, each test
  view's pose is optimised with the Gaussians frozen (:func:`refine_view_pose`).

>>> from splat.methods import get_method
>>> get_method("instantsplat").name
'instantsplat'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.core.camera import Camera
from splat.core.gaussians import Gaussians
from splat.methods.base import MethodState, StepContext
from splat.methods.gs3d import GS3D
from splat.methods.registry import register_method
from splat.pose.se3 import exp_se3
from splat.metrics import ssim

__all__ = [
    "InstantSplat", "apply_pose_delta", "scale_focal", "refine_view_pose", "corrected_cameras",
    "POSE_KEY", "FOCAL_KEY",
]

POSE_KEY = "pose_delta"
FOCAL_KEY = "focal_delta"


def apply_pose_delta(viewmats: Tensor, delta: Tensor, translation_scale: float = 1.0) -> Tensor:
    """World-to-camera matrices corrected by camera-frame twists: ``exp(xi) @ viewmats``.

    ``exp`` is the exact SE(3) exponential (:func:`splat.pose.se3.exp_se3`).

    Args:
        viewmats: Tensor,  # [C, 4, 4] world-to-camera (OpenCV)
        delta: Tensor,  # [C, 6] twists; ``rho`` is multiplied by ``translation_scale``
        translation_scale: length of one unit of ``rho`` (the scene extent).

    Returns:
        Tensor,  # [C, 4, 4]
    """
    if viewmats.ndim != 3 or viewmats.shape[-2:] != (4, 4):
        raise ValueError(f"viewmats must be [C, 4, 4], got {tuple(viewmats.shape)}")
    if delta.shape != (viewmats.shape[0], 6):
        raise ValueError(f"delta must be [{viewmats.shape[0]}, 6] to match viewmats, got {tuple(delta.shape)}")
    scale = torch.tensor([translation_scale] * 3 + [1.0] * 3, dtype=delta.dtype, device=delta.device)
    return exp_se3(delta * scale).to(viewmats.dtype) @ viewmats


def scale_focal(Ks: Tensor, log_factor: Tensor) -> Tensor:
    """Intrinsics with both focal lengths multiplied by ``exp(log_factor)`` (principal point kept).

    Args:
        Ks: Tensor,  # [C, 3, 3]
        log_factor: Tensor,  # [1] or scalar

    Returns:
        Tensor,  # [C, 3, 3]
    """
    factor = torch.exp(log_factor.reshape(()))
    row_scale = torch.stack([factor, factor, torch.ones_like(factor)])  # [3]
    mask = torch.zeros(3, 3, dtype=Ks.dtype, device=Ks.device)
    mask[0, 0] = mask[1, 1] = 1.0
    return Ks * (1.0 + mask * (row_scale[:, None].to(Ks.dtype) - 1.0))


def _render(gaussians: Gaussians, viewmats, Ks, width, height, sh_degree, background, backend) -> Tensor:
    from splat.core.rasterization import rasterization

    return rasterization(
        gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.sh, viewmats, Ks,
        width, height, sh_degree=sh_degree, backgrounds=background, backend=backend,
    )[0]


def refine_view_pose(
    gaussians: Gaussians,
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    image: Tensor,  # [H, W, 3]
    *,
    steps: int = 100,
    lr: float = 3e-3,
    translation_scale: float = 1.0,
    init_delta: Tensor | None = None,  # [6]
    sh_degree: int | None = None,
    background: Tensor | None = None,  # [1, 3]
    backend: str = "auto",
    ssim_lambda: float = 0.2,
) -> tuple[Tensor, Tensor]:
    """Optimises one view's pose against its image with the Gaussians frozen.

    This is the test-time pose alignment of pose-free methods: a held-out view
    has only an approximate pose in the frame of the fitted Gaussians, so its
    twist ``xi`` (see :func:`apply_pose_delta`) is fitted by Adam on
    ``(1 - l) L1 + l (1 - SSIM)`` with a learning rate decaying tenfold.

    Args:
        gaussians: the fitted Gaussians (not modified).
        viewmat: initial world-to-camera matrix.
        K: intrinsics of the view.
        image: the view's ground-truth image in ``[0, 1]``.
        steps: Adam steps (0 returns the initial pose).
        lr: initial learning rate of the twist.
        translation_scale: length of one unit of ``rho`` (the scene extent).
        init_delta: starting twist (default zeros).
        sh_degree: SH degree to render (default: all stored).
        background: ``[1, 3]`` background colour (default black).
        backend: rasterization backend.
        ssim_lambda: weight of the D-SSIM term.

    Returns:
        ``(delta [6], viewmat [4, 4])``: the fitted twist and the corrected pose.
    """
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be Gaussians, got {type(gaussians).__name__}")
    if viewmat.shape != (4, 4) or K.shape != (3, 3):
        raise ValueError(f"viewmat must be [4, 4] and K [3, 3], got {tuple(viewmat.shape)} and {tuple(K.shape)}")
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be [H, W, 3], got {tuple(image.shape)}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    height, width = image.shape[:2]
    device = gaussians.device
    viewmat, K, image = viewmat.to(device), K.to(device), image.to(device)
    frozen = gaussians.detached()
    for p in frozen.params.values():
        p.requires_grad_(False)
    sh_degree = frozen.sh_degree if sh_degree is None else sh_degree
    background = torch.zeros(1, 3, device=device) if background is None else background.to(device)
    delta = torch.zeros(6, device=device) if init_delta is None else init_delta.detach().clone().float().reshape(6)
    delta = torch.nn.Parameter(delta)
    opt = torch.optim.Adam([delta], lr=lr, eps=1e-15)
    target = image[None]
    best, best_loss = delta.detach().clone(), math.inf
    with torch.enable_grad():
        for step in range(steps + 1):
            vm = apply_pose_delta(viewmat[None], delta[None], translation_scale)
            render = _render(frozen, vm, K[None], width, height, sh_degree, background, backend)
            loss = (1.0 - ssim_lambda) * (render - target).abs().mean()
            if ssim_lambda > 0:
                loss = loss + ssim_lambda * (1.0 - ssim(render, target).mean())
            if float(loss.detach()) < best_loss:  # the loss of the current delta: keep the best seen
                best_loss, best = float(loss.detach()), delta.detach().clone()
            if step == steps:
                break
            for group in opt.param_groups:
                group["lr"] = lr * 0.1 ** (step / max(steps - 1, 1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return best, apply_pose_delta(viewmat[None], best[None], translation_scale)[0].detach()


@register_method("instantsplat")
@dataclass
class InstantSplat(GS3D):
    """InstantSplat hyper-parameters: 3DGS's plus the camera corrections (defaults for ~1000 steps).

    Attributes:
        lr_pose: initial Adam learning rate of the per-view twists (radians, extent units).
        lr_pose_final: learning rate of the twists at the last step (log-linear decay).
        lr_focal: Adam learning rate of the shared log-focal correction (0 freezes the focal).
        pose_reg: weight of ``|xi|^2`` (per rendered view) and ``f^2`` pulling toward the initial cameras.
        optimize_poses: train the per-view pose corrections.
        pose_warmup: steps before the cameras and the focal length start moving (the Gaussians
            settle first: on a barely fitted scene the camera gradients are noise).
        dense_min_points: an initial cloud with at least this many points is dense: no density control.
        test_pose_steps: test-time pose optimisation steps per held-out view before evaluation (0: off).
        test_pose_lr: initial learning rate of that optimisation.
    """

    sh_degree: int = 1
    sh_degree_interval: int = 250
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_pose: float = 1e-3
    lr_pose_final: float = 1e-5
    lr_focal: float = 1e-4
    pose_reg: float = 1e-2
    optimize_poses: bool = True
    pose_warmup: int = 100
    refine_start: int = 100
    refine_stop: int = 800
    refine_every: int = 100
    reset_every: int = 0
    dense_min_points: int = 20_000
    test_pose_steps: int = 100
    test_pose_lr: float = 3e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lr_pose", "lr_pose_final", "lr_focal", "pose_reg", "test_pose_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr_pose_final > self.lr_pose:
            raise ValueError(f"lr_pose_final ({self.lr_pose_final}) must not exceed lr_pose ({self.lr_pose})")
        if self.test_pose_steps < 0 or self.pose_warmup < 0 or self.dense_min_points < 0:
            raise ValueError("test_pose_steps, pose_warmup and dense_min_points must be >= 0")

    # ----------------------------------------------------------------- hooks
    def init(self, scene, gaussians: Gaussians) -> MethodState:
        state = super().init(scene, gaussians)
        n_views = len(scene.cameras) if scene is not None else 1
        # added beside what the 3DGS state holds (a learned background when the scene has none)
        state.params[POSE_KEY] = torch.nn.Parameter(torch.zeros(n_views, 6, device=gaussians.device))
        state.params[FOCAL_KEY] = torch.nn.Parameter(torch.zeros(1, device=gaussians.device))
        state.data["densify"] = gaussians.num_gaussians < self.dense_min_points
        state.data["initial_points"] = gaussians.num_gaussians
        return state

    def trainable(self, gaussians: Gaussians, state: MethodState) -> dict[str, float]:
        lrs = super().trainable(gaussians, state)
        if self.optimize_poses and self.lr_pose > 0:
            lrs[POSE_KEY] = self.lr_pose
        if self.lr_focal > 0:
            lrs[FOCAL_KEY] = self.lr_focal
        return lrs

    def render_inputs(self, ctx: StepContext) -> dict:
        inputs = super().render_inputs(ctx)
        params = ctx.state.params
        if POSE_KEY in params:
            delta = params[POSE_KEY][ctx.camera_ids]
            warming = 0 <= ctx.step < self.pose_warmup
            inputs["viewmats"] = apply_pose_delta(ctx.viewmats, delta.detach() if warming else delta, ctx.extent)
        if FOCAL_KEY in params:
            focal = params[FOCAL_KEY]
            inputs["Ks"] = scale_focal(ctx.Ks, focal.detach() if 0 <= ctx.step < self.pose_warmup else focal)
        return inputs

    def loss(self, ctx: StepContext) -> Tensor:
        loss = super().loss(ctx)
        params = ctx.state.params
        if self.pose_reg > 0 and POSE_KEY in params:
            reg = params[POSE_KEY][ctx.camera_ids].pow(2).sum(-1).mean() + params[FOCAL_KEY].pow(2).sum()
            ctx.info["pose_reg"] = float(reg.detach())
            loss = loss + self.pose_reg * reg
        return loss

    def step_post_backward(self, ctx: StepContext) -> None:
        self._decay_position_lr(ctx)
        opt = ctx.optimizers.get(POSE_KEY)
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = self.pose_lr(ctx.step, ctx.total_steps)
        if not ctx.state.data.get("densify", True):
            return  # a dense initial cloud: the Gaussians only move
        if ctx.step < self.refine_stop:
            self._accumulate_gradients(ctx)
        if ctx.step >= self.refine_start and ctx.step < self.refine_stop and ctx.step % self.refine_every == 0 \
                and ctx.step > 0:
            self.refine(ctx)

    def prepare_evaluation(self, scene, gaussians, state, ids, images, sh_degree, backend) -> None:
        """Test-time pose alignment: fits the twist of every held-out view in ``ids``, Gaussians frozen."""
        if self.test_pose_steps == 0 or POSE_KEY not in state.params:
            return
        train = set(scene.train_ids)
        bg = scene.background if getattr(scene, "background", None) is not None else (0.0, 0.0, 0.0)
        background = torch.tensor([bg], dtype=torch.float32, device=gaussians.device)
        Ks = scale_focal(scene.cameras.Ks.to(gaussians.device), state.params[FOCAL_KEY].detach())
        for i, cid in enumerate(ids):
            if cid in train:
                continue
            delta, _ = refine_view_pose(
                gaussians, scene.cameras.viewmats[cid], Ks[cid], images[i], steps=self.test_pose_steps,
                lr=self.test_pose_lr, translation_scale=float(scene.extent),
                init_delta=state.params[POSE_KEY][cid], sh_degree=sh_degree, background=background,
                backend=backend, ssim_lambda=self.ssim_lambda,
            )
            with torch.no_grad():
                state.params[POSE_KEY][cid] = delta

    # --------------------------------------------------------------- details
    def pose_lr(self, step: int, total_steps: int) -> float:
        """Log-linear decay of the twists' learning rate from ``lr_pose`` to ``lr_pose_final``."""
        if self.lr_pose == 0:
            return 0.0
        t = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
        final = max(self.lr_pose_final, 1e-12)
        return math.exp((1 - t) * math.log(self.lr_pose) + t * math.log(final))


def corrected_cameras(scene, state: MethodState) -> Camera:
    """The scene's cameras with an InstantSplat state's pose and focal corrections applied.

    Args:
        scene: the scene the state was fitted on (its extent scales the twists).
        state: :attr:`FitResult.state` of an ``instantsplat`` fit.

    Returns:
        A :class:`Camera` with refined ``viewmats [C, 4, 4]`` and ``Ks [C, 3, 3]``.
    """
    if state is None or POSE_KEY not in state.params or FOCAL_KEY not in state.params:
        raise ValueError(f"state must hold {POSE_KEY!r} and {FOCAL_KEY!r} (an instantsplat fit's state)")
    cams = scene.cameras
    delta = state.params[POSE_KEY].detach()
    if delta.shape[0] != len(cams):
        raise ValueError(f"state holds {delta.shape[0]} pose corrections but the scene has {len(cams)} views")
    with torch.no_grad():
        viewmats = apply_pose_delta(cams.viewmats, delta, float(scene.extent))
        Ks = scale_focal(cams.Ks, state.params[FOCAL_KEY].detach())
    return Camera(viewmats, Ks, cams.width, cams.height)
