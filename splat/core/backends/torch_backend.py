"""Pure-PyTorch tile compositing: the readable specification of every backend.

The rules are gsplat's (``rasterize_to_pixels``, ``packed=False``):

* A Gaussian touches the pixels of the tiles its radius box overlaps
  (:func:`intersect_tiles`); each tile draws its Gaussians front to back by
  depth, ties broken by Gaussian index.
* A pixel centre is ``(x + 0.5, y + 0.5)``; with ``d = mean - centre``,
  ``sigma = 0.5 * (a dx^2 + c dy^2) + b dx dy`` and
  ``alpha = min(0.999, opacity * exp(-sigma))``. A contribution with
  ``sigma < 0`` or ``alpha < 1/255`` is skipped.
* The pixel stops before the first contribution that would bring its
  transmittance ``T`` to ``<= 1e-4``.
* ``render = sum_i alpha_i T_i c_i + T * background`` and ``alpha = 1 - T``.

Each tile's depth-ordered list is processed in batches of ``batch_size``
Gaussians as dense ``[tiles, pixels, batch]`` tensors; autograd provides the
backward pass. Memory grows with (pixels per tile) x (tile-Gaussian
intersections), so this backend suits small and medium scenes;
``checkpoint=True`` roughly halves it by recomputing each batch in backward.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple, Optional

import torch
import torch.utils.checkpoint
from torch import Tensor

from splat.core.validation import check_positive_int, check_shape, check_tensor

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
DEFAULT_BATCH_SIZE = 32


def is_available() -> bool:
    """The pure-PyTorch backend runs wherever torch does."""
    return True


class TileIntersections(NamedTuple):
    """Tile-Gaussian intersections sorted by (camera, tile), then depth, then index."""

    tiles_per_gauss: Tensor  # [C, N] int32 tiles each Gaussian touches
    tile_ids: Tensor  # [M] int64 camera * tiles_per_image + ty * tile_width + tx
    flatten_ids: Tensor  # [M] int64 camera * N + gaussian


@torch.no_grad()
def tile_bounds(
    means2d: Tensor,  # [C, N, 2]
    radii: Tensor,  # [C, N, 2]
    tile_size: int,
    tile_width: int,
    tile_height: int,
) -> tuple[Tensor, Tensor]:
    """Tile rectangle ``[min, max)`` of each Gaussian's radius box, as gsplat's ``isect_tiles``.

    Returns:
        tile_min: Tensor,  # [C, N, 2] int64 (x, y), inclusive
        tile_max: Tensor,  # [C, N, 2] int64 (x, y), exclusive
    """
    centre = means2d.detach() / tile_size
    half = radii.to(centre.dtype) / tile_size
    limit = torch.tensor([tile_width, tile_height], device=means2d.device)
    tile_min = torch.floor(centre - half).long().clamp(min=0).minimum(limit)
    tile_max = torch.ceil(centre + half).long().clamp(min=0).minimum(limit)
    return tile_min, tile_max


@torch.no_grad()
def intersect_tiles(
    means2d: Tensor,  # [C, N, 2]
    radii: Tensor,  # [C, N, 2]
    depths: Tensor,  # [C, N]
    tile_size: int,
    tile_width: int,
    tile_height: int,
) -> TileIntersections:
    """Lists every (tile, Gaussian) overlap, sorted for front-to-back compositing.

    A Gaussian with any radius ``<= 0`` is culled and touches no tile.
    """
    C, N = depths.shape
    tile_min, tile_max = tile_bounds(means2d, radii, tile_size, tile_width, tile_height)
    extent = (tile_max - tile_min).clamp(min=0)  # [C, N, 2]
    counts = extent.prod(dim=-1) * (radii > 0).all(dim=-1)  # [C, N]
    counts_flat = counts.flatten()
    gauss = torch.repeat_interleave(torch.arange(C * N, device=depths.device), counts_flat)  # [M]
    first = torch.cumsum(counts_flat, 0) - counts_flat
    local = torch.arange(gauss.numel(), device=depths.device) - first[gauss]
    span_x = extent[..., 0].flatten()[gauss]
    tx = tile_min[..., 0].flatten()[gauss] + local % span_x
    ty = tile_min[..., 1].flatten()[gauss] + local // span_x
    tile_ids = (gauss // N) * (tile_width * tile_height) + ty * tile_width + tx
    # Two stable sorts: depth first (index order breaks ties), then tile.
    order = torch.sort(depths.detach().flatten()[gauss], stable=True).indices
    order = order[torch.sort(tile_ids[order], stable=True).indices]
    return TileIntersections(counts.to(torch.int32), tile_ids[order], gauss[order])


def composite(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    colors: Tensor,  # [C, N, D]
    opacities: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N, 2]
    width: int,
    height: int,
    tile_size: int,
    backgrounds: Optional[Tensor] = None,  # [C, D]
    absgrad: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    checkpoint: bool = False,
) -> tuple[Tensor, Tensor]:
    """Alpha-composites projected Gaussians into images (see the module docstring).

    Args:
        means2d: Tensor,  # [C, N, 2] pixel coordinates
        conics: Tensor,  # [C, N, 3] inverse 2D covariance (a, b, c)
        colors: Tensor,  # [C, N, D]
        opacities: Tensor,  # [C, N]
        depths: Tensor,  # [C, N] sort key only (no gradient)
        radii: Tensor,  # [C, N, 2] int32; any radius <= 0 culls the Gaussian
        width: image width in pixels.
        height: image height in pixels.
        tile_size: tile edge in pixels.
        backgrounds: Tensor,  # [C, D] or None (black)
        absgrad: if True, backward also stores ``sum over pixels |dL/dmeans2d|``
            in ``means2d.absgrad`` ([C, N, 2]).
        batch_size: Gaussians per tile processed in one dense step.
        checkpoint: recompute each batch's intermediates during backward
            instead of keeping them (``torch.utils.checkpoint``): much less
            memory for some extra time.

    Returns:
        render_colors: Tensor,  # [C, H, W, D]
        render_alphas: Tensor,  # [C, H, W, 1]

    Raises:
        TypeError, ValueError: mismatched shapes, non-integer radii or sizes.
    """
    check_composite_inputs(means2d, conics, colors, opacities, depths, radii, width, height, tile_size, backgrounds)
    check_positive_int("batch_size", batch_size)
    return composite_unchecked(means2d, conics, colors, opacities, depths, radii, width, height, tile_size,
                               backgrounds, absgrad, batch_size, checkpoint)


def composite_unchecked(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int,
    backgrounds: Optional[Tensor] = None,
    absgrad: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    checkpoint: bool = False,
) -> tuple[Tensor, Tensor]:
    """:func:`composite` without the argument checks, for callers that validated already."""
    C, N, D = colors.shape
    device, dtype = means2d.device, means2d.dtype
    tile_width = math.ceil(width / tile_size)
    tile_height = math.ceil(height / tile_size)
    tiles_per_image = tile_width * tile_height
    P = tile_size * tile_size  # pixels per tile

    isect = intersect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height)
    tile_counts = torch.bincount(isect.tile_ids, minlength=C * tiles_per_image)
    tile_first = torch.cumsum(tile_counts, 0) - tile_counts
    # Non-empty tiles, longest list first: batch b then touches a prefix of them.
    active = torch.nonzero(tile_counts).squeeze(1)
    lengths, by_length = torch.sort(tile_counts[active], descending=True, stable=True)
    active, first = active[by_length], tile_first[active[by_length]]
    A = active.numel()

    # Pixel centres of each active tile, [A, P, 2].
    in_image = active % tiles_per_image
    origin = torch.stack([in_image % tile_width, in_image // tile_width], -1) * tile_size
    offset_y, offset_x = torch.meshgrid(
        torch.arange(tile_size, device=device), torch.arange(tile_size, device=device), indexing="ij"
    )
    offsets = torch.stack([offset_x.flatten(), offset_y.flatten()], -1)  # [P, 2]
    centres = (origin[:, None, :] + offsets[None]).to(dtype) + 0.5

    flat_means = means2d.reshape(C * N, 2)
    flat_conics = conics.reshape(C * N, 3)
    flat_opacities = opacities.reshape(C * N)
    flat_colors = colors.reshape(C * N, D)
    absgrad_sum = _attach_absgrad(means2d) if absgrad else None

    pixel_colors = torch.zeros(A, P, D, device=device, dtype=colors.dtype)
    transmittance = torch.ones(A, P, device=device, dtype=dtype)
    # Transmittance including the contribution that stopped the pixel, so a
    # stopped pixel stays stopped in later batches (no gradient needed).
    probe = torch.ones(A, P, device=device, dtype=dtype)
    max_length = int(lengths[0]) if A else 0
    for start in range(0, max_length, batch_size):
        k = int((lengths > start).sum())  # tiles with Gaussians left
        slot = start + torch.arange(batch_size, device=device)  # [B]
        in_list = slot[None, :] < lengths[:k, None]  # [k, B]
        ids = isect.flatten_ids[torch.where(in_list, first[:k, None] + slot, 0)]  # [k, B]
        # Padding slots get opacity 0, so they fall under the 1/255 threshold.
        batch = (
            flat_means[ids], flat_conics[ids], torch.where(in_list, flat_opacities[ids], 0.0), flat_colors[ids],
            centres[:k], transmittance[:k], probe[:k],
        )  # fmt: skip
        hook = _absgrad_hook(absgrad_sum, ids) if absgrad_sum is not None else None
        step = partial(_composite_batch, absgrad_hook=hook)
        if checkpoint and torch.is_grad_enabled():
            added, new_transmittance, new_probe = torch.utils.checkpoint.checkpoint(step, *batch, use_reentrant=False)
        else:
            added, new_transmittance, new_probe = step(*batch)
        pixel_colors = torch.cat([pixel_colors[:k] + added, pixel_colors[k:]])
        transmittance = torch.cat([new_transmittance, transmittance[k:]])
        probe = torch.cat([new_probe, probe[k:]])

    # Scatter the active tiles into full images, add the background, crop.
    n_tiles = C * tiles_per_image
    tile_colors = torch.zeros(n_tiles, P, D, device=device, dtype=colors.dtype).index_copy(0, active, pixel_colors)
    tile_trans = torch.ones(n_tiles, P, device=device, dtype=dtype).index_copy(0, active, transmittance)
    # Keeps every input in the graph when nothing is drawn, so backward yields
    # zero gradients rather than none.
    anchor = sum(t.flatten()[:0].sum() for t in (means2d, conics, colors, opacities))
    render_colors = _untile(tile_colors, C, tile_height, tile_width, tile_size, height, width) + anchor
    trans_image = _untile(tile_trans[..., None], C, tile_height, tile_width, tile_size, height, width)
    if backgrounds is not None:
        render_colors = render_colors + trans_image * backgrounds[:, None, None, :]
    render_alphas = 1.0 - trans_image + anchor
    return render_colors, render_alphas


def check_composite_inputs(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    tile_size: int,
    backgrounds: Optional[Tensor],
) -> None:
    """Checks the arguments of a backend's ``composite`` (shapes, kinds, sizes)."""
    for name, value in (("means2d", means2d), ("conics", conics), ("colors", colors),
                        ("opacities", opacities), ("depths", depths)):
        check_tensor(name, value)
    if not isinstance(radii, Tensor) or radii.is_floating_point() or radii.is_complex():
        kind = radii.dtype if isinstance(radii, Tensor) else type(radii).__name__
        raise TypeError(f"radii must be an integer tensor, got {kind}")
    check_shape("colors", colors, (None, None, None), "[C, N, D]")
    C, N, D = colors.shape
    check_shape("means2d", means2d, (C, N, 2), f"[C, N, 2] with C={C}, N={N} (from colors)")
    check_shape("conics", conics, (C, N, 3), f"[C, N, 3] with C={C}, N={N} (from colors)")
    check_shape("opacities", opacities, (C, N), f"[C, N] with C={C}, N={N} (from colors)")
    check_shape("depths", depths, (C, N), f"[C, N] with C={C}, N={N} (from colors)")
    check_shape("radii", radii, (C, N, 2), f"[C, N, 2] with C={C}, N={N} (from colors)")
    if backgrounds is not None:
        check_tensor("backgrounds", backgrounds)
        check_shape("backgrounds", backgrounds, (C, D), f"[C, D] with C={C}, D={D} (from colors)")
    for name, value in (("width", width), ("height", height), ("tile_size", tile_size)):
        check_positive_int(name, value)


def _composite_batch(
    means: Tensor,  # [k, B, 2]
    conics: Tensor,  # [k, B, 3]
    opacities: Tensor,  # [k, B], 0 on padding slots
    colors: Tensor,  # [k, B, D]
    centres: Tensor,  # [k, P, 2] pixel centres
    transmittance: Tensor,  # [k, P] in front of this batch
    probe: Tensor,  # [k, P] transmittance including stopping contributions
    absgrad_hook=None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Composites the next ``B`` depth-ordered Gaussians of ``k`` tiles.

    Returns:
        added: Tensor,  # [k, P, D] colour contributed by this batch
        transmittance: Tensor,  # [k, P] after this batch
        probe: Tensor,  # [k, P] after this batch, stops included (no gradient)
    """
    k, P = centres.shape[:2]
    if absgrad_hook is not None:  # per-pixel copies of the means, to see per-pixel gradients
        means = means[:, None].expand(k, P, -1, 2)
        means.register_hook(absgrad_hook)
    else:
        means = means[:, None]  # [k, 1, B, 2]
    dx = means[..., 0] - centres[..., 0, None]  # [k, P, B]
    dy = means[..., 1] - centres[..., 1, None]
    a, b, c = conics[:, None].unbind(-1)  # [k, 1, B]
    sigma = dx * (0.5 * a * dx + b * dy) + 0.5 * c * dy * dy
    alpha = torch.clamp_max(opacities[:, None] * torch.exp(-sigma.clamp(min=0.0)), MAX_ALPHA)
    alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_THRESHOLD), alpha, 0.0)

    # Transmittance after each contribution, and in front of it (exclusive).
    keep = 1.0 - alpha
    after = torch.cumprod(keep, -1)
    before = after / keep
    with torch.no_grad():  # stop before T would drop to <= 1e-4
        running = probe[..., None] * after
        stopped = running <= MIN_TRANSMITTANCE
    # Zeroing alpha from the stop on leaves `before` right where it matters.
    weights = transmittance[..., None] * before * torch.where(stopped, 0.0, alpha)  # [k, P, B]
    added = torch.einsum("kpb,kbd->kpd", weights, colors)
    # sum_i T_i alpha_i telescopes to T_first - T_last.
    return added, transmittance - weights.sum(-1), running[..., -1]


def _untile(
    tiles: Tensor,  # [C * tile_height * tile_width, P, D]
    C: int,
    tile_height: int,
    tile_width: int,
    tile_size: int,
    height: int,
    width: int,
) -> Tensor:
    """Reassembles per-tile pixels into ``[C, height, width, D]`` images."""
    D = tiles.shape[-1]
    grid = tiles.reshape(C, tile_height, tile_width, tile_size, tile_size, D)
    image = grid.permute(0, 1, 3, 2, 4, 5).reshape(C, tile_height * tile_size, tile_width * tile_size, D)
    return image[:, :height, :width]


def _attach_absgrad(means2d: Tensor) -> Optional[Tensor]:
    """Creates ``means2d.absgrad`` (zeros, filled during backward); None without grad."""
    if not means2d.requires_grad:
        return None
    means2d.absgrad = torch.zeros_like(means2d.detach())
    return means2d.absgrad.view(-1, 2)


def _absgrad_hook(absgrad_sum: Tensor, ids: Tensor):
    """Hook adding per-pixel ``|dL/dmean|`` of one batch into ``absgrad_sum``."""

    def hook(grad: Tensor) -> None:  # grad: [k, P, B, 2]
        absgrad_sum.index_add_(0, ids.flatten(), grad.abs().sum(dim=1).reshape(-1, 2))

    return hook
