"""Small seeded scenes and an independent per-pixel compositor for rasterizer tests."""

from __future__ import annotations

import math

import torch

from splat.core.camera import look_at


def random_scene(n=40, n_cameras=1, width=40, height=32, seed=0, dtype=torch.float32, spread=1.0, scale=0.15):
    """Gaussians around the origin seen by cameras on a circle of radius 4."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * spread
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * scale + 0.02
    opacities = torch.rand(n, generator=g) * 0.8 + 0.1
    colors = torch.rand(n, 3, generator=g)
    viewmats = []
    for c in range(n_cameras):
        angle = 2 * math.pi * c / max(n_cameras, 1) + 0.3
        eye = torch.tensor([4 * math.cos(angle), 4 * math.sin(angle), 1.0])
        viewmats.append(look_at(eye, torch.zeros(3)))
    viewmats = torch.stack(viewmats)
    f = 1.2 * width
    Ks = torch.tensor([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]]).expand(n_cameras, 3, 3)
    out = dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=colors,
               viewmats=viewmats, Ks=Ks.contiguous())
    return {k: v.to(dtype) for k, v in out.items()}, width, height


def reference_composite(means2d, conics, colors, opacities, depths, radii, width, height, tile_size, backgrounds=None):
    """Pixel-by-pixel, Gaussian-by-Gaussian compositing written straight from gsplat's rules."""
    C, N, D = colors.shape
    tile_w, tile_h = math.ceil(width / tile_size), math.ceil(height / tile_size)
    out = torch.zeros(C, height, width, D, dtype=torch.float64)
    alphas = torch.zeros(C, height, width, 1, dtype=torch.float64)
    m, q, op, dep, rad = (t.detach().tolist() for t in (means2d, conics, opacities, depths, radii))
    col = colors.detach().double()
    for c in range(C):
        order = sorted(range(N), key=lambda n: (dep[c][n], n))
        # Tile rectangle [x0, x1) x [y0, y1) of each drawn Gaussian.
        boxes = {}
        for n in order:
            rx, ry = rad[c][n]
            if rx > 0 and ry > 0:
                mx, my = m[c][n]
                boxes[n] = (
                    min(max(math.floor((mx - rx) / tile_size), 0), tile_w),
                    min(max(math.ceil((mx + rx) / tile_size), 0), tile_w),
                    min(max(math.floor((my - ry) / tile_size), 0), tile_h),
                    min(max(math.ceil((my + ry) / tile_size), 0), tile_h),
                )
        for y in range(height):
            for x in range(width):
                tx, ty = x // tile_size, y // tile_size
                T, acc = 1.0, torch.zeros(D, dtype=torch.float64)
                for n in order:
                    if n not in boxes:
                        continue
                    x0, x1, y0, y1 = boxes[n]
                    if not (x0 <= tx < x1 and y0 <= ty < y1):
                        continue
                    dx, dy = m[c][n][0] - (x + 0.5), m[c][n][1] - (y + 0.5)
                    a, b, cc = q[c][n]
                    sigma = 0.5 * (a * dx * dx + cc * dy * dy) + b * dx * dy
                    alpha = min(0.999, op[c][n] * math.exp(-sigma))
                    if sigma < 0 or alpha < 1 / 255:
                        continue
                    if T * (1 - alpha) <= 1e-4:
                        break
                    acc += col[c, n] * (alpha * T)
                    T *= 1 - alpha
                if backgrounds is not None:
                    acc += T * backgrounds[c].double()
                out[c, y, x] = acc
                alphas[c, y, x, 0] = 1 - T
    return out, alphas
