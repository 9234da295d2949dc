"""Fitting a splat model of one object from posed views with masks.

The ``object`` method is 3DGS with alpha supervision: every training view has
an object mask, the ground truth is composited on the render's background by
that mask (so the background is never part of the model) and the loss adds
``alpha_lambda * |alpha - mask|``. Masks come, in this order, from a mask
folder (``mask_dir``: one image per view with the same file stem, non-zero =
object), from the alpha channel of RGBA images, or from a uniform background
colour (the scene's ``background``, or ``background_color``): pixels within
``background_tolerance`` of it are background.

:func:`carve_points` gives a visual-hull initial cloud from the same masks,
and :func:`fit_object_model` runs the whole fit and writes the PLY.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from splat.core.gaussians import Gaussians
from splat.io.images import IMAGE_SUFFIXES, read_image, resize_image
from splat.methods.base import MethodState, StepContext
from splat.methods.gs3d import GS3D
from splat.methods.registry import register_method

__all__ = ["ObjectGS", "view_masks", "carve_points", "fit_object_model"]


def _mask_file(mask_dir: Path, image_path: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        candidate = mask_dir / (image_path.stem + suffix)
        if candidate.is_file():
            return candidate
    raise ValueError(f"mask folder {mask_dir.name} has no mask for image {image_path.name} (same file stem expected)")


def view_masks(scene, mask_dir: str | os.PathLike | None = None,
               background_color: tuple[float, float, float] | None = None,
               background_tolerance: float = 0.04) -> Tensor:
    """Object masks ``[C, H, W]`` (float in ``[0, 1]``) of every view of ``scene``, at its resolution.

    Raises:
        ValueError: no mask source (no mask folder, no alpha channel, no background
            colour), a missing mask file, or a view whose mask is empty.
    """
    masks = []
    colour = background_color if background_color is not None else scene.background
    for i, path in enumerate(scene.image_paths):
        if mask_dir is not None:
            arr = read_image(_mask_file(Path(mask_dir), path))
            m = (arr[..., :3].max(-1) > 0.5).astype(np.float32)
        else:
            arr = read_image(path)
            if arr.shape[-1] == 4:
                m = arr[..., 3]
            elif colour is not None:
                diff = np.abs(arr[..., :3] - np.asarray(colour, np.float32)).max(-1)
                m = (diff > background_tolerance).astype(np.float32)
            else:
                raise ValueError(
                    "the object method needs masks: give a mask folder, RGBA images, or a uniform "
                    f"background colour (image {path.name} is RGB and the scene has no background)"
                )
        m = resize_image(m[..., None].astype(np.float32), scene.width, scene.height)[..., 0]
        if m.max() <= 0.5:
            raise ValueError(f"the mask of image {path.name} is empty")
        masks.append(torch.from_numpy(np.ascontiguousarray(m)))
    return torch.stack(masks)


def carve_points(scene, masks: Tensor, num: int = 6000, seed: int = 0, bound: float | None = None) -> Tensor:
    """Visual hull: random points in a cube kept when every view sees them inside its mask.

    Every training view must see the whole object (as object captures do).

    Args:
        scene: the training scene (its cameras look at the object).
        masks: Tensor,  # [C, H, W] object masks
        num: points to return.
        seed: sampling seed.
        bound: half-size of the cube around the origin (default: half the
            distance of the nearest camera).

    Returns:
        Tensor,  # [num, 3] (fewer only if the hull is tiny)
    """
    from splat.core.camera import project_points

    gen = torch.Generator().manual_seed(seed)
    cams = scene.cameras
    if bound is None:
        bound = float(cams.centers.norm(dim=-1).min()) / 2
    kept = []
    for _ in range(20):
        pts = (torch.rand(num * 8, 3, generator=gen) * 2 - 1) * bound
        uv, z = project_points(pts, cams.viewmats, cams.Ks)  # [C, P, 2], [C, P]
        x, y = uv[..., 0].long(), uv[..., 1].long()
        inside = (x >= 0) & (x < cams.width) & (y >= 0) & (y < cams.height) & (z > 0)
        c = torch.arange(len(cams))[:, None].expand_as(x)
        hit = masks[c, y.clamp(0, cams.height - 1), x.clamp(0, cams.width - 1)] > 0.5
        keep = (hit & inside).all(0)  # the object is in view of every training camera
        kept.append(pts[keep])
        if sum(len(k) for k in kept) >= num:
            break
    pts = torch.cat(kept)[:num]
    if len(pts) == 0:
        raise ValueError("the masks' visual hull is empty: do the masks and the camera poses agree?")
    return pts


@register_method("object")
@dataclass
class ObjectGS(GS3D):
    """3DGS of one object, supervised by masks (see the module docstring).

    Attributes:
        mask_dir: folder of mask images (same file stems as the views), or None.
        background_color: uniform background colour of RGB views (overrides the scene's).
        background_tolerance: max per-channel difference to count as background.
        alpha_lambda: weight of ``|alpha - mask|``.
    """

    mask_dir: str | None = None
    background_color: tuple[float, float, float] | None = None
    background_tolerance: float = 0.04
    alpha_lambda: float = 0.5
    sh_degree: int = 1

    def init(self, scene, gaussians: Gaussians) -> MethodState:
        state = super().init(scene, gaussians)
        masks = view_masks(scene, self.mask_dir, self.background_color, self.background_tolerance)
        state.data["masks"] = (masks * 255).round().to(torch.uint8).to(gaussians.device)
        return state

    def loss(self, ctx: StepContext) -> Tensor:
        mask = ctx.state.data["masks"][ctx.camera_ids].float()[..., None] / 255.0  # [C, H, W, 1]
        bg = ctx.background[:, None, None, :]
        gt = ctx.gt_images * mask + bg * (1 - mask)
        original, ctx.gt_images = ctx.gt_images, gt
        try:
            photometric = super().loss(ctx)
        finally:
            ctx.gt_images = original
        alpha_term = (ctx.alphas - mask).abs().mean()
        ctx.info["alpha_l1"] = float(alpha_term.detach())
        return photometric + self.alpha_lambda * alpha_term


def fit_object_model(scene_path: str | os.PathLike, out_dir: str | os.PathLike, steps: int = 2000,
                     num_points: int = 6000, seed: int = 0, show_progress: bool = False, **overrides):
    """Fits an object model with the ``object`` method from a visual-hull start.

    Args:
        scene_path: a scene folder :func:`splat.io.load_scene` reads (RGBA views, or
            ``mask_dir=`` / ``background_color=`` in ``overrides``).
        out_dir: output folder (``point_cloud.ply``, ``metrics.json``, ...).
        steps: optimisation steps.
        num_points: Gaussians carved from the masks' visual hull to start with.
        seed: seed.
        **overrides: hyper-parameters of the ``object`` method.

    Returns:
        The :class:`~splat.methods.fit.FitResult`.
    """
    from splat.io import load_scene
    from splat.methods.fit import fit

    scene = load_scene(scene_path)
    method = ObjectGS(**{"refine_start": 200, "refine_every": 100, "reset_every": 0,
                         "sh_degree_interval": 500, **overrides})
    masks = view_masks(scene, method.mask_dir, method.background_color, method.background_tolerance)
    points = carve_points(scene, masks, num=num_points, seed=seed)
    start = Gaussians.from_points(points, torch.full_like(points, 0.5), sh_degree=method.sh_degree,
                                  init_opacity=0.5)
    return fit(scene, method=method, steps=steps, out_dir=out_dir, seed=seed, gaussians=start,
               show_progress=show_progress, eval_every=0, checkpoint_every=0, num_threads=1)
