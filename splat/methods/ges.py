"""Generalized Exponential Splatting (Hamdi et al., CVPR 2024) on the 3DGS loop.

What GES adds to :class:`~splat.methods.gs3d.GS3D`:

* **Shape.** Each primitive carries a learnable exponent ``beta`` of the
  generalized exponential ``exp(-|x / a|^beta / 2)`` (raw ``log(beta / 2)`` in
  ``gaussians.params["shape"]``, ``[N]``). The rasterizer only draws
  Gaussians, so, as in the paper's implementation, the GEF is approximated by
  a Gaussian whose scales are modulated by the shape: the moment-matched
  standard deviation ``a * rho(beta)`` (:mod:`splat.methods.ges_shape`;
  ``rho(2) = 1``, unbounded for heavy tails, ``1 / sqrt(3)`` for a box).
* **Shape resets and collapse pruning.** Every ``shape_reset_every`` steps
  during density control the shapes return to ``beta = 2`` (the factor is
  folded into the scales, the image does not change); at every density
  control step primitives whose ``beta`` fell to ``beta_collapse`` are pruned.
* **Frequency-modulated loss.** ``(1 - l_ssim - l_freq) L1 + l_ssim D-SSIM +
  l_freq L1_band``, where ``L1_band`` weights the error by a DoG band-pass
  mask of the ground truth whose band moves from coarse to fine over the fit
  (:mod:`splat.methods.ges_freq`).
* **Density control for fewer primitives.** Clone/split choice, split sizes
  and the oversize pruning act on the rendered (shape-modulated) footprint,
  and the last density-control step of the run prunes every primitive below
  ``final_prune_opa``, leaving the rest of the run to fine-tune the survivors.
  Growth is 3DGS's (with absolute gradients, its ``grow_absgrad2d`` and
  growth budget); ``grow_grad2d`` is the reference implementation's stricter
  3e-4 for plain-gradient growth (``absgrad=False``).

Export is a standard 3DGS PLY with the shape folded into ``scale_*``, so any
viewer draws what the fit rendered (:meth:`GES.export_ply`);
:func:`save_ges_ply` / :func:`load_ges_ply` keep the raw shape as well, for
lossless reloading.

Ablation switches: ``learn_shape=False`` (beta frozen at 2),
``shape_reset_every=0``, ``beta_collapse=0``, ``freq_lambda=0``,
``final_prune_opa=0`` and 3DGS's ``grow_grad2d=2e-4``; with all of them
GES is exactly 3DGS (tested).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from splat.core.gaussians import Gaussians
from splat.io.atomic import write_bytes_atomic
from splat.io.ply import _read_header, load_ply, ply_property_names, save_ply
from splat.methods.base import MethodState, StepContext
from splat.methods.densify import keep_gaussians
from splat.methods.ges_freq import band_sigma, dog_mask, masked_l1
from splat.methods.ges_shape import (
    SHAPE_KEY,
    collapsed,
    effective_scales,
    folded_scales,
    reset_shapes,
    shape_factor,
)
from splat.methods.gs3d import GS3D
from splat.methods.registry import register_method

__all__ = ["GES", "save_ges_ply", "load_ges_ply", "baked_gaussians"]


@register_method("ges")
@dataclass
class GES(GS3D):
    """GES hyper-parameters: 3DGS's plus the shape, its resets and pruning, and the frequency loss.

    Attributes:
        learn_shape: train the shape (False: beta stays 2, plain Gaussians).
        lr_shape: Adam learning rate of the raw shape ``log(beta / 2)``.
        shape_init: initial raw shape of every primitive (0: beta = 2).
        beta_min, beta_max: clamp of beta before the scale mapping.
        beta_collapse: primitives with beta at or below this are pruned at
            density control (0: never).
        shape_reset_every: steps between shape resets during density control (0: never).
        shape_reset_keep_footprint: fold the factor into the scales at a reset
            (the image is unchanged); False drops it.
        freq_lambda: weight of the band-weighted L1 (0: no frequency loss).
        freq_band_coarse: first band's sigma as a fraction of the shorter image side.
        freq_band_fine: last band's sigma in pixels.
        final_prune_opa: the last density-control step of the run also prunes
            primitives below this opacity, leaving the rest of the run to fine-tune
            the survivors (0: no final pruning).
        final_prune_after: the final prune runs only when that last step is at
            or after this one (shorter runs skip it: their opacities have not
            settled, and a threshold prune would remove most primitives).
        grow_grad2d: growth threshold when growth reads plain gradients
            (``absgrad=False``): the reference implementation's 3e-4.
    """

    learn_shape: bool = True
    lr_shape: float = 5e-3
    shape_init: float = 0.0
    beta_min: float = 0.5
    beta_max: float = 16.0
    beta_collapse: float = 0.55
    shape_reset_every: int = 1000
    shape_reset_keep_footprint: bool = True
    freq_lambda: float = 0.3
    freq_band_coarse: float = 0.02
    freq_band_fine: float = 0.5
    final_prune_opa: float = 0.3
    final_prune_after: int = 500
    grow_grad2d: float = 3e-4  # 3DGS: 2e-4 (the reference implementation's GES value)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr_shape >= 0:
            raise ValueError(f"lr_shape must be >= 0, got {self.lr_shape}")
        if not math.isfinite(self.shape_init):
            raise ValueError(f"shape_init must be finite, got {self.shape_init}")
        if not 0 < self.beta_min <= 2.0 <= self.beta_max:
            raise ValueError(f"need 0 < beta_min <= 2 <= beta_max, got {self.beta_min}, {self.beta_max}")
        if not 0 <= self.beta_collapse < 2.0:
            raise ValueError(f"beta_collapse must be in [0, 2), got {self.beta_collapse}")
        if self.shape_reset_every < 0:
            raise ValueError(f"shape_reset_every must be >= 0, got {self.shape_reset_every}")
        if not 0 <= self.freq_lambda <= 1.0 - self.ssim_lambda:
            raise ValueError(f"freq_lambda must be in [0, 1 - ssim_lambda], got {self.freq_lambda}")
        if not 0 < self.freq_band_coarse <= 0.5:
            raise ValueError(f"freq_band_coarse must be in (0, 0.5], got {self.freq_band_coarse}")
        if not 0 <= self.final_prune_opa < 1:
            raise ValueError(f"final_prune_opa must be in [0, 1), got {self.final_prune_opa}")
        if self.final_prune_after < 0:
            raise ValueError(f"final_prune_after must be >= 0, got {self.final_prune_after}")
        if not self.freq_band_fine > 0:
            raise ValueError(f"freq_band_fine must be > 0, got {self.freq_band_fine}")

    @staticmethod
    def ablations() -> dict[str, dict]:
        """One override per mechanism that switches it off (for benchmarks)."""
        return {
            "shape": {"learn_shape": False},
            "shape-reset": {"shape_reset_every": 0},
            "collapse-prune": {"beta_collapse": 0.0},
            "freq-loss": {"freq_lambda": 0.0},
            "final-prune": {"final_prune_opa": 0.0},
            "densify": {"grow_grad2d": 2e-4},  # 3DGS's growth threshold
        }

    # ----------------------------------------------------------------- hooks
    def init(self, scene, gaussians: Gaussians) -> MethodState:
        if SHAPE_KEY not in gaussians.params:
            n, device = gaussians.num_gaussians, gaussians.device
            gaussians.params[SHAPE_KEY] = torch.nn.Parameter(torch.full((n,), float(self.shape_init), device=device))
        state = super().init(scene, gaussians)
        state.data.update({"shape_resets": 0, "collapse_pruned": 0})
        return state

    def trainable(self, gaussians: Gaussians, state: MethodState) -> dict[str, float]:
        lrs = super().trainable(gaussians, state)
        if self.learn_shape:
            lrs[SHAPE_KEY] = self.lr_shape
        return lrs

    def render_inputs(self, ctx: StepContext) -> dict:
        inputs = super().render_inputs(ctx)
        inputs["scales"] = effective_scales(ctx.gaussians, self.beta_min, self.beta_max)
        return inputs

    def band_sigma(self, step: int, total_steps: int, width: int, height: int) -> float:
        """Pixel sigma of the frequency band at ``step`` (coarse to fine)."""
        coarse = max(self.freq_band_coarse * min(width, height), self.freq_band_fine)
        return band_sigma(step, total_steps, coarse, self.freq_band_fine)

    def loss(self, ctx: StepContext) -> Tensor:
        """3DGS's loss with ``freq_lambda`` of its L1 weight moved to the band-weighted L1."""
        base = super().loss(ctx)
        if not self.freq_lambda:
            return base
        l1 = (ctx.render - ctx.gt_images).abs().mean()
        sigma = self.band_sigma(ctx.step, ctx.total_steps, ctx.width, ctx.height)
        band = masked_l1(ctx.render, ctx.gt_images, dog_mask(ctx.gt_images, sigma))
        ctx.info["band_sigma"], ctx.info["freq_loss"] = sigma, float(band.detach())
        return base + self.freq_lambda * (band - l1)

    def step_post_backward(self, ctx: StepContext) -> None:
        super().step_post_backward(ctx)
        stop = self.refine_stop_at(ctx.total_steps) if ctx.total_steps > 0 else self.refine_stop
        if (self.learn_shape and self.shape_reset_every and 0 < ctx.step < stop
                and ctx.step % self.shape_reset_every == 0):
            reset_shapes(ctx.gaussians, ctx.optimizers, self.shape_reset_keep_footprint, self.beta_min,
                         self.beta_max)
            ctx.state.data["shape_resets"] += 1
            ctx.info["shape_reset"] = True

    @torch.no_grad()
    def refine(self, ctx: StepContext) -> dict[str, int]:
        """3DGS density control on the rendered footprint, then collapse pruning."""
        with folded_scales(ctx.gaussians, self.beta_min, self.beta_max):
            stats = super().refine(ctx)
        stats["collapsed"] = self.prune_collapsed(ctx)
        stats["final_pruned"] = self.prune_final(ctx)
        ctx.info.update(stats)
        return stats

    def is_last_refine_step(self, step: int, total_steps: int) -> bool:
        """Whether ``step`` is the run's last density-control step."""
        stop = self.refine_stop_at(total_steps) if total_steps > 0 else self.refine_stop
        return step < stop <= step + self.refine_every

    @torch.no_grad()
    def prune_final(self, ctx: StepContext) -> int:
        """At the last density-control step, removes primitives below ``final_prune_opa``."""
        if (not self.final_prune_opa or ctx.step < self.final_prune_after
                or not self.is_last_refine_step(ctx.step, ctx.total_steps)):
            return 0
        return self._prune(ctx, ctx.gaussians.opacities.detach() < self.final_prune_opa)

    @torch.no_grad()
    def prune_collapsed(self, ctx: StepContext) -> int:
        """Removes primitives whose beta fell to ``beta_collapse``; returns how many."""
        if not self.beta_collapse:
            return 0
        n = self._prune(ctx, collapsed(ctx.gaussians.params[SHAPE_KEY], self.beta_collapse))
        ctx.state.data["collapse_pruned"] += n
        return n

    @staticmethod
    def _prune(ctx: StepContext, gone: Tensor) -> int:
        n = int(gone.sum())
        if n == 0 or n == ctx.gaussians.num_gaussians:
            return 0
        keep_gaussians(ctx.gaussians, ctx.optimizers, ~gone)
        data = ctx.state.data
        data["grad2d"], data["count"] = data["grad2d"][~gone], data["count"][~gone]
        return n

    def export_ply(self, gaussians: Gaussians, path) -> Path:
        """Writes a standard 3DGS PLY whose ``scale_*`` hold the shape-modulated scales."""
        return save_ply(baked_gaussians(gaussians, self.beta_min, self.beta_max), path)


# ------------------------------------------------------------------- export
def _check_ges(gaussians) -> None:
    if not isinstance(gaussians, Gaussians):
        raise TypeError(f"gaussians must be splat.core.gaussians.Gaussians, got {type(gaussians).__name__}")
    if SHAPE_KEY not in gaussians.params:
        raise ValueError(f"gaussians have no {SHAPE_KEY!r} parameter; entries: {list(gaussians.params)}")


def baked_gaussians(gaussians: Gaussians, beta_min: float = 0.5, beta_max: float = 16.0) -> Gaussians:
    """Plain Gaussians drawing the same image: the shape factor folded into the log-scales, no shape entry."""
    _check_ges(gaussians)
    with torch.no_grad():
        p = {k: v.detach().clone() for k, v in gaussians.params.items() if k != SHAPE_KEY}
        p["scales"] = p["scales"] + torch.log(
            shape_factor(gaussians.params[SHAPE_KEY].detach(), beta_min, beta_max))[:, None]
    return Gaussians(p)


def save_ges_ply(gaussians: Gaussians, path: str | os.PathLike, beta_min: float = 0.5,
                 beta_max: float = 16.0) -> Path:
    """The export PLY plus one extra ``shape`` vertex property (raw ``log(beta / 2)``), atomically.

    ``scale_*`` hold the modulated scales, so viewers that ignore ``shape``
    draw the footprint the fit rendered; :func:`load_ges_ply` recovers the
    raw scales and shapes.
    """
    _check_ges(gaussians)
    baked = baked_gaussians(gaussians, beta_min, beta_max)
    with torch.no_grad():
        p = {k: v.detach().cpu().float() for k, v in baked.params.items()}
        shape = gaussians.params[SHAPE_KEY].detach().cpu().float()
        n = shape.shape[0]
        rest = p["shN"].transpose(1, 2).reshape(n, -1)
        table = torch.cat(
            [p["means"], torch.zeros(n, 3), p["sh0"].reshape(n, 3), rest, p["opacities"][:, None], p["scales"],
             p["quats"], shape[:, None]],
            dim=1,
        ).numpy().astype("<f4")
    names = ply_property_names(rest.shape[1]) + [SHAPE_KEY]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property float {name}" for name in names] + ["end_header"]
    data = ("\n".join(header) + "\n").encode("ascii") + np.ascontiguousarray(table).tobytes()
    return write_bytes_atomic(path, data)


def load_ges_ply(path: str | os.PathLike, beta_min: float = 0.5, beta_max: float = 16.0) -> Gaussians:
    """Reads a PLY written by :func:`save_ges_ply` back into fit-ready Gaussians.

    Raises:
        ValueError: if the file has no ``shape`` property, or is not a 3DGS PLY.
    """
    path = Path(path)
    g = load_ply(path)  # validates the standard layout
    with open(path, "rb") as f:
        fmt, count, props = _read_header(f, path)
        endian = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(name, endian + t) for name, t in props])
        data = np.frombuffer(f.read(dtype.itemsize * count), dtype=dtype, count=count)
    if SHAPE_KEY not in dtype.names:
        raise ValueError(f"{path.name}: no {SHAPE_KEY!r} vertex property; not a GES PLY")
    shape = torch.from_numpy(data[SHAPE_KEY].astype(np.float32))
    params = {k: v.detach().clone() for k, v in g.params.items()}
    params["scales"] = params["scales"] - torch.log(shape_factor(shape, beta_min, beta_max))[:, None]
    params[SHAPE_KEY] = shape
    return Gaussians(params)

