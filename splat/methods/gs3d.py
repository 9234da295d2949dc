"""The baseline 3D Gaussian Splatting method (Kerbl et al., SIGGRAPH 2023).

Loss ``(1 - l) L1 + l (1 - SSIM)``, one Adam per parameter with the paper's
learning rates (positions scaled by the scene extent and decayed
exponentially), an SH degree added every ``sh_degree_interval`` steps, and
adaptive density control: Gaussians whose mean view-space gradient exceeds
``grow_grad2d`` are cloned when small or split into two sampled children
(scales / 1.6) when large; transparent and oversized ones are pruned; every
``reset_every`` steps opacities are clamped low so that floaters can die.

The defaults are tuned for short fits on a CPU (a few thousand steps on
images of about 320 px): refinement starts and stops earlier than in the
paper and growth stops at ``max_gaussians``. Three additions, each with a
switch for ablations: growth on absolute per-pixel gradients (``absgrad``),
an error-tied growth budget (``growth_rate``) and a learned environment
background for scenes without a known one (``learn_background``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from splat.core.environment import over_environment
from splat.core.gaussians import Gaussians
from splat.methods.background import BACKGROUND_KEY, init_environment
from splat.methods.base import Method, MethodState, StepContext
from splat.methods.densify import clone_gaussians, keep_gaussians, reset_opacities, split_gaussians
from splat.methods.registry import register_method
from splat.metrics import ssim


def is_reset_step(step: int, reset_every: int, refine_stop: int) -> bool:
    """Whether opacities are reset after ``step`` (every ``reset_every`` steps, never at 0).

    >>> [s for s in range(0, 10) if is_reset_step(s, 3, 100)]
    [3, 6, 9]
    """
    return reset_every > 0 and step > 0 and step % reset_every == 0 and step < refine_stop


def is_refine_step(step: int, start: int, stop: int, every: int) -> bool:
    """Whether density control runs after ``step``."""
    return start < step < stop and step % every == 0


def _training_ssim(render: Tensor, gt: Tensor) -> Tensor:
    """SSIM for the loss: the compiled kernel for float32 CPU images (same value and
    gradient, a third of the time), else :func:`splat.metrics.ssim`."""
    if (render.device.type == "cpu" and render.dtype == torch.float32 and gt.dtype == torch.float32
            and not gt.requires_grad and min(render.shape[-3], render.shape[-2]) >= 11):
        from splat.core.backends import cpu

        if cpu.is_available():
            return cpu.ssim(render, gt)
    return ssim(render, gt)




@register_method("3dgs")
@dataclass
class GS3D(Method):
    """3DGS hyper-parameters (defaults sized for CPU fits).

    Attributes:
        sh_degree: highest SH degree.
        sh_degree_interval: steps between SH degree increments.
        ssim_lambda: weight of ``1 - SSIM`` in the loss.
        lr_means: initial position learning rate (times the scene extent).
        lr_means_final: final position learning rate (times the scene extent).
        lr_scales, lr_quats, lr_opacities, lr_sh0, lr_shN: Adam learning rates.
        refine_start: first step after which density control may run.
        refine_stop: no density control from this step on.
        refine_stop_fraction: density control also stops at this fraction of the
            run's steps, and opacity resets stop half a reset period earlier, so
            short and long runs both end with time to converge (1.0: off).
        refine_every: steps between density-control passes.
        reset_every: steps between opacity resets (0 disables them).
        grow_grad2d: mean NDC gradient norm above which a Gaussian grows.
        absgrad: grow on the norm of the per-pixel absolute gradients of the 2-D
            mean (AbsGS; opposite pixel gradients no longer cancel), with the
            threshold ``grow_absgrad2d`` instead of ``grow_grad2d``. None (default):
            on, unless a subclass overrides :meth:`densify_scores` (its score is
            calibrated on the plain gradient).
        grow_absgrad2d: growth threshold on that score (NDC units).
        grow_scale3d: largest scale (fraction of the extent) still cloned, not split.
        prune_opa: opacities below this are pruned (resets go to twice this).
        prune_scale3d: after the first reset, scales above this fraction of the extent are pruned
            (with ``prune_scale_by_distance``, of the larger of the extent and the
            Gaussian's distance to the nearest training camera); 0 (default): no
            scale pruning (3DGS uses 0.1; measured on the suite in docs/fitting.md,
            Ablation 3).
        prune_scale_by_distance: scale the size limit of ``prune_scale3d`` with the
            distance to the nearest training camera, so that what is pruned is what
            looks large from every view; content far beyond the cameras' spread (a
            ground plane or landscape to the horizon of a forward-facing capture) is
            kept (False: the extent alone, as 3DGS).
        max_gaussians: growth stops at this many Gaussians (largest gradients first).
        growth_rate: error-tied growth budget (0: off, growth limited by
            ``max_gaussians`` only): a density-control pass adds at most
            ``growth_rate * N * (L / L0) ** 2`` Gaussians, where ``L`` is the mean
            training L1 since the previous pass and ``L0`` that of the first pass,
            so growth slows as the error the Gaussians are grown for disappears.
            The budget never holds growth below ``growth_free_per_pixel`` Gaussians
            per pixel of a training image.
        growth_free_per_pixel: Gaussians per image pixel under which growth is
            limited by ``max_gaussians`` only (0: the budget always applies).
        learn_background: ``"auto"`` (a learned environment when the scene has no
            known background), ``"on"`` or ``"off"``: the Gaussians are rendered over
            ``max(SH(ray) . c + 0.5, 0)`` with learned coefficients ``c`` (see
            :mod:`splat.methods.background`) instead of the fixed background.
        background_sh_degree: SH degree of the learned background (0: one colour).
        lr_background: Adam learning rate of its coefficients.
    """

    sh_degree: int = 3
    sh_degree_interval: int = 500
    ssim_lambda: float = 0.2
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    refine_start: int = 250
    refine_stop: int = 5000
    refine_stop_fraction: float = 0.75
    refine_every: int = 100
    reset_every: int = 1000
    grow_grad2d: float = 2e-4
    absgrad: bool | None = None
    grow_absgrad2d: float = 8e-4
    grow_scale3d: float = 0.01
    prune_opa: float = 0.005
    prune_scale3d: float = 0.0
    prune_scale_by_distance: bool = True
    max_gaussians: int = 60_000
    growth_rate: float = 0.5
    growth_free_per_pixel: float = 0.25
    learn_background: str = "auto"
    background_sh_degree: int = 2
    lr_background: float = 1e-2

    def __post_init__(self) -> None:
        if not 0 <= self.sh_degree <= 3:
            raise ValueError(f"sh_degree must be in 0..3, got {self.sh_degree}")
        if not 0.0 <= self.ssim_lambda <= 1.0:
            raise ValueError(f"ssim_lambda must be in [0, 1], got {self.ssim_lambda}")
        if not 0.0 < self.refine_stop_fraction <= 1.0:
            raise ValueError(f"refine_stop_fraction must be in (0, 1], got {self.refine_stop_fraction}")
        if self.learn_background not in ("auto", "on", "off"):
            raise ValueError(f"learn_background must be 'auto', 'on' or 'off', got {self.learn_background!r}")
        if not 0 <= self.background_sh_degree <= 3:
            raise ValueError(f"background_sh_degree must be in 0..3, got {self.background_sh_degree}")
        for name in ("growth_rate", "growth_free_per_pixel", "prune_scale3d"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("sh_degree_interval", "refine_every", "max_gaussians"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    # ----------------------------------------------------------------- hooks
    def init(self, scene, gaussians: Gaussians) -> MethodState:
        n, device = gaussians.num_gaussians, gaussians.device
        state = MethodState(data={"grad2d": torch.zeros(n, device=device), "count": torch.zeros(n, device=device),
                                  "n_reset": 0})
        if self.learns_background(scene):
            state.params[BACKGROUND_KEY] = torch.nn.Parameter(init_environment(self.background_sh_degree).to(device))
        return state

    def uses_absgrad(self) -> bool:
        """Whether growth reads absolute gradients (``absgrad``; None: unless ``densify_scores`` is overridden)."""
        if self.absgrad is None:
            return type(self).densify_scores is GS3D.densify_scores
        return bool(self.absgrad)

    def learns_background(self, scene) -> bool:
        """Whether this fit learns its background (``learn_background``; "auto": the scene has none)."""
        if self.learn_background == "auto":
            return getattr(scene, "background", None) is None
        return self.learn_background == "on"

    def trainable(self, gaussians: Gaussians, state: MethodState) -> dict[str, float]:
        extra = {BACKGROUND_KEY: self.lr_background} if BACKGROUND_KEY in state.params else {}
        return extra | {
            "means": self.lr_means,  # scaled by the extent in step_post_backward
            "scales": self.lr_scales,
            "quats": self.lr_quats,
            "opacities": self.lr_opacities,
            "sh0": self.lr_sh0,
            "shN": self.lr_shN,
        }

    def active_sh_degree(self, step: int) -> int:
        return min(step // self.sh_degree_interval, self.sh_degree)

    def render_inputs(self, ctx: StepContext) -> dict:
        """The base inputs, with only the active SH coefficients as colours.

        ``sh0`` and the first ``(d + 1)**2 - 1`` rows of ``shN`` (``d`` the active
        degree): the rasterizer reads no more, and the backward then neither
        writes nor splits gradients for the inactive ones (they stay zero, as
        before; ``shN`` keeps taking part even at degree 0, so Adam's step
        counts are unchanged).
        """
        g = ctx.gaussians
        k = (ctx.sh_degree + 1) ** 2 if ctx.sh_degree is not None else None
        if k is not None and "sh0" in g.params and "shN" in g.params and k < 1 + g.params["shN"].shape[1]:
            inputs = dict(
                means=g.means, quats=g.params["quats"], scales=g.scales, opacities=g.opacities,
                colors=torch.cat([g.params["sh0"], g.params["shN"][:, : k - 1]], dim=1),
                viewmats=ctx.viewmats, Ks=ctx.Ks, width=ctx.width, height=ctx.height,
                sh_degree=ctx.sh_degree, backgrounds=ctx.background,
            )  # fmt: skip
        else:
            inputs = super().render_inputs(ctx)
        if BACKGROUND_KEY in ctx.state.params:  # rendered over black, composited in `composite`
            inputs["backgrounds"] = torch.zeros_like(ctx.background)
        if self.uses_absgrad() and ctx.step >= 0:
            inputs["absgrad"] = True
        return inputs

    def composite(self, ctx: StepContext, render: Tensor, alphas: Tensor) -> Tensor:
        coeffs = ctx.state.params[BACKGROUND_KEY] if BACKGROUND_KEY in ctx.state.params else None
        if coeffs is None:
            return render
        return over_environment(render, alphas, coeffs, self.background_sh_degree, ctx.viewmats, ctx.Ks)

    def loss(self, ctx: StepContext) -> Tensor:
        l1 = (ctx.render - ctx.gt_images).abs().mean()
        ctx.info["l1"] = float(l1.detach())
        if self.ssim_lambda == 0:
            return l1
        d_ssim = 1.0 - _training_ssim(ctx.render, ctx.gt_images).mean()
        return (1.0 - self.ssim_lambda) * l1 + self.ssim_lambda * d_ssim

    def step_pre_backward(self, ctx: StepContext) -> None:
        means2d = ctx.meta.get("means2d")
        if means2d is not None and means2d.requires_grad:
            means2d.retain_grad()

    def refine_stop_at(self, total_steps: int) -> int:
        """The step density control stops at in a run of ``total_steps``."""
        return min(self.refine_stop, int(round(self.refine_stop_fraction * total_steps)))

    def step_post_backward(self, ctx: StepContext) -> None:
        self._decay_position_lr(ctx)
        stop = self.refine_stop_at(ctx.total_steps) if ctx.total_steps > 0 else self.refine_stop
        if ctx.step < stop:
            self._accumulate_gradients(ctx)
            if "l1" in ctx.info:  # the error the growth budget is tied to
                data = ctx.state.data
                data["l1_sum"] = data.get("l1_sum", 0.0) + ctx.info["l1"]
                data["l1_count"] = data.get("l1_count", 0) + 1
        if is_refine_step(ctx.step, self.refine_start, stop, self.refine_every):
            self.refine(ctx)
        if is_reset_step(ctx.step, self.reset_every, stop - self.reset_every // 2 + 1):
            reset_opacities(ctx.gaussians, ctx.optimizers, self.prune_opa * 2.0)
            ctx.state.data["n_reset"] += 1
            ctx.info["reset"] = True

    # --------------------------------------------------------------- details
    def position_lr(self, step: int, total_steps: int, extent: float) -> float:
        """Log-linear decay from ``lr_means`` to ``lr_means_final``, times the extent."""
        t = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
        log_lr = (1 - t) * math.log(self.lr_means) + t * math.log(self.lr_means_final)
        return math.exp(log_lr) * extent

    def _decay_position_lr(self, ctx: StepContext) -> None:
        opt = ctx.optimizers.get("means")
        if opt is not None:
            for group in opt.param_groups:
                group["lr"] = self.position_lr(ctx.step, ctx.total_steps, ctx.extent)

    def densify_scores(self, ctx: StepContext, cam: Tensor, gid: Tensor, grads: Tensor) -> Tensor:
        """Densification score of each visible (camera, Gaussian) pair this step.

        The one place subclasses change what makes a Gaussian grow; the
        accumulation over steps stays in :meth:`_accumulate_gradients`.

        Args:
            ctx: the step context (after backward).
            cam: Tensor,  # [M] camera index of each visible pair
            gid: Tensor,  # [M] Gaussian index of each visible pair
            grads: Tensor,  # [M, 2] view-space gradient of the 2-D mean, NDC units

        Returns:
            Tensor,  # [M] the score; 3DGS uses the gradient norm
        """
        return grads.norm(dim=-1)

    def _accumulate_gradients(self, ctx: StepContext) -> None:
        means2d = ctx.meta.get("means2d")
        if means2d is None or means2d.grad is None:
            return
        data = ctx.state.data
        n, device = ctx.gaussians.num_gaussians, ctx.gaussians.device
        if data["grad2d"].shape[0] != n:  # Gaussians changed outside density control
            data["grad2d"], data["count"] = torch.zeros(n, device=device), torch.zeros(n, device=device)
        source = getattr(means2d, "absgrad", None) if self.uses_absgrad() else None
        grads = (means2d.grad if source is None else source).detach().clone()  # [C, N, 2] in pixels
        c = grads.shape[0]
        grads[..., 0] *= ctx.width / 2.0 * c  # to NDC units, as the reference code
        grads[..., 1] *= ctx.height / 2.0 * c
        radii = ctx.meta["radii"]
        visible = (radii > 0).all(dim=-1) if radii.ndim == 3 else radii > 0
        cam, gid = torch.where(visible)
        score = self.densify_scores(ctx, cam, gid, grads[cam, gid])
        data["grad2d"].index_add_(0, gid, score)
        data["count"].index_add_(0, gid, torch.ones(gid.shape[0], device=device))

    def growth_limit(self, ctx: StepContext) -> int:
        """Most Gaussians that growth may reach at this density-control step.

        ``max_gaussians``, and with ``growth_rate > 0`` at most
        ``growth_rate * N * (L / L0) ** 2`` more than now, but never fewer than
        ``growth_free_per_pixel * width * height`` (see the class docstring).
        """
        n = ctx.gaussians.num_gaussians
        data = ctx.state.data
        if self.growth_rate <= 0 or not data.get("l1_count"):
            return self.max_gaussians
        recent = data["l1_sum"] / data["l1_count"]
        first = data.setdefault("l1_first", recent)
        ratio = min(recent / first, 1.0) if first > 0 else 1.0
        free = int(self.growth_free_per_pixel * ctx.width * ctx.height)
        return min(self.max_gaussians, max(n + int(self.growth_rate * n * ratio**2), free))

    def scale_prune_limit(self, ctx: StepContext) -> Tensor | float:
        """Largest scale each Gaussian may keep after the first reset (``[N]``, or one number).

        ``prune_scale3d * extent``; with ``prune_scale_by_distance`` each
        Gaussian's limit is ``prune_scale3d * max(extent, d)``, ``d`` its distance
        to the nearest training camera centre: a bound on its angular size
        instead of its world size.
        """
        limit = self.prune_scale3d * ctx.extent
        cameras = getattr(ctx.scene, "cameras", None)
        if not self.prune_scale_by_distance or cameras is None:
            return limit
        g = ctx.gaussians
        centers = cameras.centers[list(ctx.scene.train_ids)].to(g.device, g.means.dtype)  # [C, 3]
        nearest = torch.cdist(g.means.detach(), centers).min(dim=-1).values  # [N]
        return self.prune_scale3d * nearest.clamp_min(ctx.extent)

    @torch.no_grad()
    def refine(self, ctx: StepContext) -> dict[str, int]:
        """One density-control pass: clone, split, prune; resets the statistics."""
        g, opts, data = ctx.gaussians, ctx.optimizers, ctx.state.data
        grads = data["grad2d"] / data["count"].clamp_min(1)
        max_scale = g.scales.max(dim=-1).values
        is_small = max_scale <= self.grow_scale3d * ctx.extent
        grow = grads > (self.grow_absgrad2d if self.uses_absgrad() else self.grow_grad2d)
        budget = max(self.growth_limit(ctx) - g.num_gaussians, 0)
        if int(grow.sum()) > budget:  # keep the largest gradients within the growth budget
            keep = torch.zeros_like(grow)
            if budget:
                keep[torch.topk(torch.where(grow, grads, -1.0), budget).indices] = True
            grow = keep
        is_clone, is_split = grow & is_small, grow & ~is_small
        device = g.device
        n_clone = clone_gaussians(g, opts, is_clone.to(device))
        is_split = torch.cat([is_split.to(device), torch.zeros(n_clone, dtype=torch.bool, device=device)])
        n_split = split_gaussians(g, opts, is_split)
        prune = g.opacities.detach() < self.prune_opa
        if data["n_reset"] > 0 and self.prune_scale3d > 0:
            prune |= g.scales.detach().max(dim=-1).values > self.scale_prune_limit(ctx)
        if bool(prune.all()):  # never prune everything
            prune[torch.argmax(g.opacities.detach())] = False
        n_prune = int(prune.sum())
        if n_prune:
            keep_gaussians(g, opts, ~prune)
        n = g.num_gaussians
        data["grad2d"], data["count"] = torch.zeros(n, device=device), torch.zeros(n, device=device)
        data["l1_sum"], data["l1_count"] = 0.0, 0
        stats = {"cloned": n_clone, "split": n_split, "pruned": n_prune}
        ctx.info.update(stats)
        return stats
