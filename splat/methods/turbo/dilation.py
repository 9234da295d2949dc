"""Dilation-based rendering: render one of four interleaved pixel subsets at half resolution.

Full-resolution pixel ``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)``.
The subset with offset ``(ox, oy)`` holds the pixels ``u = 2 j + ox``,
``v = 2 i + oy``. A half-resolution camera with focal lengths halved and the
principal point moved to ``c / 2 - o / 2 + 0.25`` puts the centre of its
pixel ``(j, i)`` exactly on the centre of full pixel ``(2 j + ox, 2 i + oy)``,
so rasterizing it (with the screen-space blur ``eps2d`` divided by four, the
same blur in full-resolution pixels) samples the full-resolution image on
that subset at a quarter of the cost. Consecutive steps walk through the
offsets ``(0, 0), (1, 1), (1, 0), (0, 1)``: two steps cover both colours of
a chessboard, four every pixel.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["OFFSETS", "dilation_offset", "dilated_intrinsics", "subsample"]

OFFSETS = ((0, 0), (1, 1), (1, 0), (0, 1))


def dilation_offset(step: int) -> tuple[int, int]:
    """The ``(ox, oy)`` subset rendered at ``step``.

    >>> [dilation_offset(s) for s in range(5)]
    [(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)]
    """
    return OFFSETS[step % len(OFFSETS)]


def dilated_intrinsics(
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    offset: tuple[int, int],
) -> tuple[Tensor, int, int]:
    """Intrinsics and size of the half-resolution camera that samples the ``offset`` subset.

    Returns:
        ``(Ks [C, 3, 3], width, height)``; the size is that of ``subsample(image, offset)``.
    """
    ox, oy = offset
    k = Ks.clone()
    k[:, 0, 0] = Ks[:, 0, 0] / 2.0
    k[:, 1, 1] = Ks[:, 1, 1] / 2.0
    k[:, 0, 1] = Ks[:, 0, 1] / 2.0
    k[:, 0, 2] = Ks[:, 0, 2] / 2.0 - ox / 2.0 + 0.25
    k[:, 1, 2] = Ks[:, 1, 2] / 2.0 - oy / 2.0 + 0.25
    return k, (width - ox + 1) // 2, (height - oy + 1) // 2


def subsample(images: Tensor, offset: tuple[int, int]) -> Tensor:
    """The ``offset`` subset of ``images`` (``[C, H, W, X]`` -> ``[C, H', W', X]``)."""
    ox, oy = offset
    return images[:, oy::2, ox::2]
