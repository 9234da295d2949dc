"""Turbo-GS (Lu, Dhiman, Srinath et al., 2024) on the 3DGS loop.

"Turbo-GS: Accelerating 3D Gaussian Fitting for High-Quality Radiance
Fields" fits in about a third of 3DGS's steps by deciding better where and
how fast to grow. Each mechanism lives in :mod:`splat.methods.turbo` and has
a switch here, so that it can be ablated:

* **position and appearance densification** (``appearance_weight``,
  ``appearance_mode``): the per-pixel loss is integrated over each Gaussian's
  footprint with its blending weights (:mod:`~splat.methods.turbo.appearance`,
  two extra zero colour channels give that integral and the footprint's
  weight). ``"add"`` (default) adds to the view-space position gradient that
  integral relative to its mean over the visible Gaussians, in units of
  ``grow_grad2d``; ``"scale"`` weights the position gradient by the mean
  error under the footprint relative to the image's mean error;
* **eligibility by visits** (``min_views``): only Gaussians seen in at least
  that many distinct training views since the last density control may grow;
* **convergence-aware budget** (``budget``): the growth per density control
  is a fraction of the current count, raised while the recent loss curve
  follows a power law and cut when it bends away
  (:mod:`~splat.methods.turbo.budget`); with ``convergence_stop`` growth ends
  when the fitted exponent says the loss has converged;
* **KD-tree densification** (``kd_densify``) of a sparse initial cloud:
  midpoints of short nearest-neighbour pairs (:mod:`~splat.methods.turbo.kdtree`);
* **late gradient accumulation** (``accum_views``): after density control
  ends, one optimizer step per group of views
  (:mod:`~splat.methods.turbo.accumulation`);
* **dilation-based rendering** (``dilation``): images of at least
  ``dilation_min_pixels`` are trained at half resolution on one of four
  interleaved pixel subsets, alternating every step (:mod:`~splat.methods.turbo.dilation`).

The schedule is 3DGS's, shortened: refinement starts earlier and runs more
often, and SH degrees are added sooner, for fits of about a thousand steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from splat.core.gaussians import Gaussians
from splat.methods.base import MethodState, StepContext
from splat.methods.densify import replace_gaussians
from splat.methods.gs3d import GS3D
from splat.methods.registry import register_method
from splat.methods.turbo.appearance import CHANNELS
from splat.methods.turbo import (
    add_error_channel,
    budget_decision,
    relative_error,
    dilated_intrinsics,
    dilation_offset,
    kd_midpoints,
    release_or_hold_gradients,
    splatted_error,
    subsample,
)

__all__ = ["TurboGS"]

EPS2D = 0.3  # the rasterizer's default screen-space blur, full-resolution pixels squared


@register_method("turbo-gs")
@dataclass
class TurboGS(GS3D):
    """Turbo-GS hyper-parameters: 3DGS's with a shorter schedule, plus one switch per mechanism.

    Attributes:
        appearance_weight: weight ``a`` in [0, 1] of the splatted appearance error
            in the densification score (0: the plain position gradient).
        appearance_mode: ``"scale"``: the position gradient times ``1 - a + a r``
            (``r``: mean error under the footprint over the image's mean error);
            ``"add"``: plus ``a * grow_grad2d`` times the footprint-integrated error
            over its mean across the visible Gaussians.
        min_views: distinct training views a Gaussian must be seen in since the
            last density control to grow (0 or 1: no condition).
        budget: convergence-aware growth budget (False: growth limited by ``max_gaussians`` only).
        budget_rate: initial growth per density control, as a fraction of the count.
        budget_rate_min, budget_rate_max: bounds of that fraction.
        budget_up, budget_down: factors on the fraction while the loss follows the
            power law / when it bends away.
        budget_tolerance: relative excess over the power law that counts as bending away.
        budget_window: refinement intervals fitted.
        convergence_stop: stop growth once the loss has converged (needs ``budget``).
        converge_exponent: fitted power-law exponent under which the loss counts as converged.
        kd_densify: add KD-tree midpoints to an initial cloud of fewer than ``kd_sparse_below`` points.
        kd_neighbors: neighbours per point for the midpoints.
        kd_sparse_below: clouds at least this large are left as they are.
        accum_views: views per optimizer step after density control (1: off).
        accum_start_fraction: accumulation starts at this fraction of the run
            (never before density control stops).
        dilation: train large images on interleaved half-resolution pixel subsets.
        dilation_min_pixels: images of at least this many pixels are dilated.
    """

    sh_degree_interval: int = 250
    refine_start: int = 100
    refine_every: int = 50
    refine_stop: int = 2500
    reset_every: int = 1000
    appearance_weight: float = 0.5
    appearance_mode: str = "add"
    min_views: int = 3
    budget: bool = True
    budget_rate: float = 0.25
    budget_rate_min: float = 0.02
    budget_rate_max: float = 1.0
    budget_up: float = 1.5
    budget_down: float = 0.5
    budget_tolerance: float = 0.05
    budget_window: int = 6
    convergence_stop: bool = True
    converge_exponent: float = 0.01
    kd_densify: bool = True
    kd_neighbors: int = 3
    kd_sparse_below: int = 20_000
    accum_views: int = 1
    accum_start_fraction: float = 0.75
    dilation: bool = True
    dilation_min_pixels: int = 300_000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.appearance_mode not in ("scale", "add"):
            raise ValueError(f"appearance_mode must be 'scale' or 'add', got {self.appearance_mode!r}")
        if not 0.0 <= self.appearance_weight <= 1.0:
            raise ValueError(f"appearance_weight must be in [0, 1], got {self.appearance_weight}")
        for name in ("min_views", "kd_sparse_below", "dilation_min_pixels"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("kd_neighbors", "accum_views", "budget_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.budget_rate_min <= self.budget_rate <= self.budget_rate_max:
            raise ValueError(
                "budget rates must satisfy 0 < budget_rate_min <= budget_rate <= budget_rate_max, got "
                f"{self.budget_rate_min}, {self.budget_rate}, {self.budget_rate_max}"
            )
        if not (self.budget_up >= 1.0 and 0 < self.budget_down <= 1.0):
            raise ValueError(f"budget_up must be >= 1 and budget_down in (0, 1], got {self.budget_up}, "
                             f"{self.budget_down}")
        if not 0.0 <= self.accum_start_fraction <= 1.0:
            raise ValueError(f"accum_start_fraction must be in [0, 1], got {self.accum_start_fraction}")

    @staticmethod
    def ablations() -> dict[str, dict]:
        """One override per mechanism that switches it off (for benchmarks)."""
        return {
            "appearance": {"appearance_weight": 0.0},
            "views": {"min_views": 0},
            "budget": {"budget": False},
            "convergence": {"convergence_stop": False},
            "kdtree": {"kd_densify": False},
            "dilation": {"dilation": False},
            "accumulation+": {"accum_views": 4},  # switched on (off by default)
        }

    # ----------------------------------------------------------------- hooks
    def init(self, scene, gaussians: Gaussians) -> MethodState:
        added = self._kd_densify(scene, gaussians) if self.kd_densify else 0
        state = super().init(scene, gaussians)
        n = gaussians.num_gaussians
        state.data.update(
            n_init=n, kd_added=added, rate=self.budget_rate, converged=False, loss_bins=[], loss_sum=0.0,
            loss_n=0, grad_buffer={}, view_index={cid: i for i, cid in enumerate(scene.train_ids)},
            views=torch.zeros(n, len(scene.train_ids), dtype=torch.bool, device=gaussians.device),
        )
        return state

    def dilated(self, ctx: StepContext) -> bool:
        """Whether this (training) step renders a half-resolution pixel subset."""
        return self.dilation and ctx.step >= 0 and ctx.width * ctx.height >= self.dilation_min_pixels

    def render_inputs(self, ctx: StepContext) -> dict:
        """3DGS's inputs; in training, dilated for large images and with the error channel while densifying.

        A dilated step narrows ``ctx`` to what it renders: ``Ks``, ``width``,
        ``height`` and ``gt_images`` become the half-resolution subset's.
        """
        dilated = self.dilated(ctx)
        if dilated:
            offset = dilation_offset(ctx.step)
            ctx.Ks, ctx.width, ctx.height = dilated_intrinsics(ctx.Ks, ctx.width, ctx.height, offset)
            ctx.gt_images = subsample(ctx.gt_images, offset)
            ctx.info["dilation_offset"] = offset
        inputs = super().render_inputs(ctx)
        if dilated:
            inputs["eps2d"] = EPS2D / 4.0  # the same blur in full-resolution pixels
        if self.appearance_weight > 0 and 0 <= ctx.step < self._stop(ctx):
            inputs, ctx.info["error_colors"] = add_error_channel(inputs)
        return inputs

    def composite(self, ctx: StepContext, render: Tensor, alphas: Tensor) -> Tensor:
        """The parent's compositing of the colour channels; the error channel passes through."""
        parent = getattr(super(), "composite", None)
        if parent is None:
            return render
        if "error_colors" not in ctx.info:
            return parent(ctx, render, alphas)
        k = CHANNELS
        return torch.cat([parent(ctx, render[..., :-k], alphas), render[..., -k:]], dim=-1)

    def loss(self, ctx: StepContext) -> Tensor:
        channels = None
        if "error_colors" in ctx.info:
            channels, ctx.render = ctx.render[..., -CHANNELS:], ctx.render[..., :-CHANNELS]
        total = super().loss(ctx)
        error_map = (ctx.render.detach() - ctx.gt_images).abs().mean(dim=-1)  # [C, H, W]
        ctx.info["error_map"] = error_map
        if channels is not None:
            total = total + splatted_error(channels, error_map)
        data = ctx.state.data
        data["loss_sum"] += float(total.detach())
        data["loss_n"] += 1
        return total

    def densify_scores(self, ctx: StepContext, cam: Tensor, gid: Tensor, grads: Tensor) -> Tensor:
        """The position gradient norm combined with the splatted appearance error (``appearance_mode``).

        ``"scale"``: times ``1 - a + a * r``, ``r`` the mean error over the footprint
        relative to the image's mean error; ``"add"``: plus ``a * grow_grad2d * e / mean(e)``,
        ``e`` the error integrated over the footprint, relative to its mean over
        the visible Gaussians (``a = appearance_weight``).
        """
        score = super().densify_scores(ctx, cam, gid, grads)
        z = ctx.info.get("error_colors")
        if z is None or z.grad is None or not gid.numel():
            return score
        a = self.appearance_weight
        if self.appearance_mode == "add":
            err = z.grad[cam, gid, 0].clamp_min(0.0)
            return score + a * self.grow_grad2d * err / err.mean().clamp_min(1e-12)
        rel = relative_error(z.grad[cam, gid], ctx.info["error_map"].mean(dim=(1, 2))[cam])
        return score * ((1.0 - a) + a * rel)

    def _accumulate_gradients(self, ctx: StepContext) -> None:
        super()._accumulate_gradients(ctx)
        data, n = ctx.state.data, ctx.gaussians.num_gaussians
        if data["views"].shape[0] != n:
            data["views"] = torch.zeros(n, data["views"].shape[1], dtype=torch.bool, device=ctx.gaussians.device)
        radii = ctx.meta["radii"]
        visible = (radii > 0).all(dim=-1) if radii.ndim == 3 else radii > 0  # [C, N]
        for c, cid in enumerate(ctx.camera_ids):
            idx = data["view_index"].get(cid)
            if idx is not None:
                data["views"][visible[c], idx] = True

    def step_post_backward(self, ctx: StepContext) -> None:
        super().step_post_backward(ctx)
        if self.accum_views > 1 and ctx.total_steps > 0:
            start = max(self._stop(ctx), int(self.accum_start_fraction * ctx.total_steps))
            if ctx.step >= start:
                last = (ctx.step - start) % self.accum_views == self.accum_views - 1
                release_or_hold_gradients(ctx.optimizers, ctx.state.data["grad_buffer"],
                                          last or ctx.step == ctx.total_steps - 1)

    @torch.no_grad()
    def refine(self, ctx: StepContext) -> dict[str, int]:
        """Closes a loss interval, sets the budget, applies eligibility, then 3DGS's density control."""
        data = ctx.state.data
        if data["loss_n"]:
            data["loss_bins"].append((ctx.step - data["loss_n"] / 2.0, data["loss_sum"] / data["loss_n"]))
        data["loss_sum"], data["loss_n"] = 0.0, 0
        n = ctx.gaussians.num_gaussians
        if self.budget:
            if not data["converged"]:
                d = budget_decision(
                    data["loss_bins"], data["rate"], window=self.budget_window, tolerance=self.budget_tolerance,
                    up=self.budget_up, down=self.budget_down, rate_min=self.budget_rate_min,
                    rate_max=self.budget_rate_max,
                    converge_exponent=self.converge_exponent if self.convergence_stop else 0.0,
                )
                data["rate"], data["converged"] = d.rate, d.converged
                ctx.info.update(budget_deviation=d.deviation, budget_exponent=d.exponent)
            cap = n if data["converged"] else n + int(round(data["rate"] * n))
            data["growth_cap"] = min(cap, self.max_gaussians)
        else:
            data["growth_cap"] = self.max_gaussians
        ctx.info.update(growth_cap=data["growth_cap"], growth_rate=data["rate"], converged=data["converged"])
        if self.min_views > 1 and data["views"].shape[0] == n:
            eligible = data["views"].sum(dim=1) >= self.min_views
            data["grad2d"] = torch.where(eligible, data["grad2d"], torch.zeros_like(data["grad2d"]))
            ctx.info["ineligible"] = int((~eligible).sum())
        stats = super().refine(ctx)
        data["views"] = torch.zeros(ctx.gaussians.num_gaussians, data["views"].shape[1], dtype=torch.bool,
                                    device=ctx.gaussians.device)
        return stats

    def growth_limit(self, ctx: StepContext) -> int:
        return ctx.state.data.get("growth_cap", self.max_gaussians)

    # --------------------------------------------------------------- details
    def _stop(self, ctx: StepContext) -> int:
        return self.refine_stop_at(ctx.total_steps) if ctx.total_steps > 0 else self.refine_stop

    def _kd_densify(self, scene, gaussians: Gaussians) -> int:
        """Adds KD-tree midpoints when the Gaussians are the scene's sparse cloud; returns how many."""
        points = getattr(scene, "points", None)
        colors = getattr(scene, "point_colors", None)
        n = gaussians.num_gaussians
        if points is None or colors is None or not 1 < len(points) < self.kd_sparse_below or len(points) != n:
            return 0
        points = torch.as_tensor(points, dtype=torch.float32)
        colors = torch.as_tensor(colors, dtype=torch.float32)
        if colors.numel() and colors.max() > 1.0:  # 8-bit colours
            colors = colors / 255.0
        mids, mid_colors = kd_midpoints(points, colors, k=self.kd_neighbors)
        if len(mids) == 0:
            return 0
        dense = Gaussians.from_points(torch.cat([points, mids]), torch.cat([colors, mid_colors]).clamp(0, 1),
                                      sh_degree=gaussians.sh_degree).to(gaussians.device)
        replace_gaussians(gaussians, {}, {k: v.detach() for k, v in dense.params.items()})
        return len(mids)
