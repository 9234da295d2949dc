"""Photometric check of registered views after a fit: find views whose pose is wrong.

A view registered with a wrong pose (a symmetric object seen from the other
side, a repeated texture matched with its copy) passes every geometric check of
structure-from-motion, because its matches agree with the wrong pose. After the
Gaussians are fitted to all views, though, the scene the other views agree on
does not reproduce it: its training PSNR falls far below that of the others
(a view looking past the scene renders nearly blank). :func:`view_psnrs`
renders every view with its (refined) camera; :func:`photometric_outliers` names
the views far below the median.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["view_psnrs", "photometric_outliers", "uniform_background", "learned_environment"]


def learned_environment(method, state):
    """``(coeffs, degree)`` of the background a fit learned (3DGS-family methods), or None."""
    from splat.methods.gs3d import BACKGROUND_KEY

    if state is None or BACKGROUND_KEY not in getattr(state, "params", {}):
        return None
    return state.params[BACKGROUND_KEY].detach(), int(getattr(method, "background_sh_degree"))


def view_psnrs(gaussians, scene, cameras=None, ids=None, backend: str = "auto",
               environment=None) -> dict[int, float]:
    """PSNR (dB) of each view ``ids`` rendered from ``gaussians`` against its image.

    Args:
        gaussians: fitted :class:`~splat.core.gaussians.Gaussians`.
        scene: the scene (images, background).
        cameras: cameras to render with (default ``scene.cameras``; pass the refined ones).
        ids: view ids (default: the training views).
        backend: rasterization backend.
        environment: ``(coeffs, degree)`` of a learned background
            (:func:`learned_environment`): the render is composited over it
            instead of the scene's background colour.

    Returns:
        view id -> PSNR.
    """
    from splat.core.rasterization import rasterization
    from splat.metrics import psnr

    cams = scene.cameras if cameras is None else cameras
    ids = list(scene.train_ids if ids is None else ids)
    device = gaussians.means.device
    bg = scene.background if getattr(scene, "background", None) is not None else (0.0, 0.0, 0.0)
    background = torch.tensor([bg], dtype=torch.float32, device=device)
    sh_degree = gaussians.sh_degree
    out = {}
    with torch.no_grad():
        for cid in ids:
            image = scene.image(cid).to(device)
            vm, K = cams.viewmats[cid][None].to(device), cams.Ks[cid][None].to(device)
            render, alphas, _ = rasterization(
                gaussians.means, gaussians.quats, gaussians.scales, gaussians.opacities, gaussians.sh,
                vm, K, scene.width, scene.height, sh_degree=sh_degree,
                backgrounds=background if environment is None else torch.zeros_like(background), backend=backend,
            )
            if environment is not None:
                from splat.core.environment import over_environment

                render = over_environment(render, alphas, environment[0].to(device), environment[1], vm, K)
            render = render[0].clamp(0, 1)
            out[cid] = float(psnr(render, image))
    return out


def photometric_outliers(psnrs: dict[int, float], margin_db: float = 6.0,
                         max_fraction: float = 0.34) -> dict[int, float]:
    """Views whose PSNR is more than ``margin_db`` below the median of all views.

    Args:
        psnrs: view id -> PSNR (dB), at least 3 views to judge anything.
        margin_db: how far below the median a view must fall.
        max_fraction: flag nothing when more than this share of views would be
            flagged (then the fit as a whole is poor, not single views).

    Returns:
        view id -> its PSNR deficit below the median (dB), for the flagged views.
    """
    if margin_db <= 0:
        raise ValueError(f"margin_db must be > 0, got {margin_db}")
    values = {k: v for k, v in psnrs.items() if math.isfinite(v)}
    if len(values) < 3:
        return {}
    median = float(np.median(list(values.values())))
    flagged = {k: median - v for k, v in values.items() if median - v > margin_db}
    if len(flagged) > max_fraction * len(values):
        return {}
    return flagged


def uniform_background(image_paths, border: int = 2, tolerance: float = 0.06, share: float = 0.9):
    """The colour of a uniform background shared by all images, or None.

    Product shots and renders often have one plain background colour. The fit
    renders empty space in the scene's background colour (black when unknown),
    so on a white background every view must first be covered with Gaussians;
    knowing the colour avoids that. The colour is the median of the images'
    border pixels, accepted when at least ``share`` of them lie within
    ``tolerance`` (per channel, in ``[0, 1]``) of it.

    Args:
        image_paths: the images (RGB or RGBA files; alpha is dropped).
        border: width of the border strip, pixels.
        tolerance: largest channel difference of a background pixel from the median.
        share: fraction of border pixels that must match.

    Returns:
        ``(r, g, b)`` in ``[0, 1]`` or None.
    """
    from PIL import Image

    strips = []
    for path in image_paths:
        with Image.open(path) as img:
            a = np.asarray(img.convert("RGB"), np.float32) / 255.0
        b = max(1, min(border, min(a.shape[:2]) // 4))
        strips.append(np.concatenate([a[:b].reshape(-1, 3), a[-b:].reshape(-1, 3),
                                      a[:, :b].reshape(-1, 3), a[:, -b:].reshape(-1, 3)]))
    if not strips:
        return None
    pixels = np.concatenate(strips)
    colour = np.median(pixels, axis=0)
    close = np.all(np.abs(pixels - colour) <= tolerance, axis=1)
    if close.mean() < share:
        return None
    return tuple(round(float(c), 4) for c in colour)
