"""A small, recognisable Gaussian scene for trying the rasterizer: three spheres and a rainbow ring."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import Tensor

from splat.core.camera import intrinsics_matrix, look_at


def demo_gaussians(n: int = 3000, seed: int = 0) -> dict[str, Tensor]:
    """Red, green and blue spheres standing on a rainbow ring, as activated Gaussians.

    Args:
        n: total number of Gaussians (at least 8).
        seed: random seed for the sample positions and orientations.

    Returns:
        dict with ``means`` [n, 3], ``quats`` [n, 4], ``scales`` [n, 3],
        ``opacities`` [n] and ``colors`` [n, 3], ready for ``rasterization``.

    Raises:
        TypeError: ``n`` or ``seed`` is not an int.
        ValueError: ``n < 8``.
    """
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if n < 8:
        raise ValueError(f"n must be >= 8, got {n}")
    g = torch.Generator().manual_seed(seed)
    n_ring = n // 4
    n_sphere = [(n - n_ring) // 3] * 3
    n_sphere[0] += n - n_ring - sum(n_sphere)
    means, colors, scales = [], [], []
    centres = torch.tensor([[-0.9, 0.0, 0.45], [0.0, 0.0, 0.45], [0.9, 0.0, 0.45]])
    palette = torch.tensor([[0.9, 0.15, 0.1], [0.15, 0.8, 0.2], [0.15, 0.3, 0.95]])
    for centre, colour, count in zip(centres, palette, n_sphere):
        dirs = torch.nn.functional.normalize(torch.randn(count, 3, generator=g), dim=-1)
        means.append(centre + 0.4 * dirs)
        # Lighter towards +z, as if lit from above.
        shade = 0.75 + 0.25 * dirs[:, 2:3]
        colors.append((colour * shade).clamp(0, 1))
        scales.append(torch.full((count, 3), 0.045))
    angle = torch.rand(n_ring, generator=g) * 2 * math.pi
    radius = 1.6 + 0.08 * torch.randn(n_ring, generator=g)
    means.append(torch.stack([radius * torch.cos(angle), radius * torch.sin(angle), 0.02 * torch.randn(n_ring, generator=g)], -1))
    hue = angle / (2 * math.pi)
    colors.append(_hue_to_rgb(hue))
    scales.append(torch.tensor([0.06, 0.06, 0.015]).expand(n_ring, 3))
    return {
        "means": torch.cat(means),
        "quats": torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=-1),
        "scales": torch.cat(scales) * (0.8 + 0.4 * torch.rand(n, 1, generator=g)),
        "opacities": 0.75 + 0.2 * torch.rand(n, generator=g),
        "colors": torch.cat(colors),
    }


def _hue_to_rgb(hue: Tensor) -> Tensor:
    """Fully saturated colours for hues in [0, 1): ``[n] -> [n, 3]``."""
    k = (hue[:, None] * 6 + torch.tensor([5.0, 3.0, 1.0])) % 6
    return 1 - torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def demo_camera(width: int, height: int) -> tuple[Tensor, Tensor]:
    """A camera looking down at the demo from the front: ``viewmats [1, 4, 4]``, ``Ks [1, 3, 3]``."""
    view = look_at(torch.tensor([0.0, -4.2, 2.4]), torch.tensor([0.0, 0.0, 0.2]))
    f = 0.9 * max(width, height)
    return view[None], intrinsics_matrix(f, f, width / 2, height / 2)[None]


def render_demo_png(path: str | os.PathLike, width: int = 320, height: int = 240, backend: str = "auto") -> Path:
    """Renders the demo scene on a white background and writes it as a PNG, atomically.

    Args:
        path: output file (``.png``); its folder must exist.
        width: image width in pixels.
        height: image height in pixels.
        backend: rasterizer backend ("auto", "torch", "cpu" or "gsplat").

    Returns:
        The written path.

    Raises:
        ValueError: bad size or backend, or ``path`` does not end in ``.png``.
        FileNotFoundError: the output folder does not exist.
    """
    import imageio.v3 as iio

    from splat.core.rasterization import rasterization

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {str(path.parent)!r}")
    viewmats, Ks = demo_camera(width, height)
    with torch.no_grad():
        image, _, _ = rasterization(
            **demo_gaussians(), viewmats=viewmats, Ks=Ks, width=width, height=height,
            backgrounds=torch.ones(1, 3), backend=backend,
        )
    pixels = (image[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    from splat.io.atomic import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        iio.imwrite(tmp, pixels)
    return path
