"""Figures the verbs write: particle animations and graph colour maps (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import imageio.v2 as imageio  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from splat.io.atomic import atomic_path  # noqa: E402


def _canvas_rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def particle_animation(
    panels: Sequence[dict],
    bounds: Sequence[Sequence[float]],
    path: str | Path,
    max_frames: int = 60,
    fps: int = 12,
) -> Path:
    """Writes a GIF with one scatter panel per trajectory, frames in lockstep.

    Args:
        panels: dicts with ``title``, ``positions`` (``[T, N, d]`` array; the first
            two axes are drawn, the second as height), optional ``color`` and ``size``.
        bounds: ``[[lo, hi], ...]`` per axis, for fixed limits.
        path: output ``.gif`` path (written atomically).
        max_frames: frames are subsampled evenly down to this count.
        fps: playback rate.

    Returns:
        The written path.
    """
    path = Path(path)
    T = min(len(p["positions"]) for p in panels)
    frames_idx = np.unique(np.linspace(0, T - 1, min(T, max_frames)).round().astype(int))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2), dpi=80)
    axes = np.atleast_1d(axes)
    frames = []
    for t in frames_idx:
        for ax, panel in zip(axes, panels):
            ax.clear()
            pos = np.asarray(panel["positions"][t])
            ax.scatter(pos[:, 0], pos[:, 1], s=panel.get("size", 2), c=panel.get("color", "#1f77b4"),
                       linewidths=0)
            ax.set_xlim(*bounds[0])
            ax.set_ylim(*bounds[1])
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(panel["title"], fontsize=9)
        fig.tight_layout()
        frames.append(_canvas_rgb(fig))
    plt.close(fig)
    with atomic_path(path, suffix=".gif") as tmp:
        imageio.mimsave(tmp, frames, duration=1000 / fps, loop=0)
    return path


def graph_field_figure(
    positions: np.ndarray,  # [N, 2]
    edges: np.ndarray,  # [2, E]
    fields: Sequence[tuple[str, np.ndarray]],
    path: str | Path,
    cmap: str = "viridis",
) -> Path:
    """Draws a graph with node colours from each field side by side (shared colour scale)."""
    path = Path(path)
    values = np.concatenate([f for _, f in fields])
    vmin, vmax = float(values.min()), float(values.max())
    fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 4.0), dpi=90)
    axes = np.atleast_1d(axes)
    segs = positions[edges.T]  # [E, 2, 2]
    from matplotlib.collections import LineCollection

    for ax, (title, field) in zip(axes, fields):
        ax.add_collection(LineCollection(segs, colors="#bbbbbb", linewidths=0.4, zorder=1))
        sc = ax.scatter(positions[:, 0], positions[:, 1], c=field, cmap=cmap, vmin=vmin, vmax=vmax,
                        s=14, zorder=2, linewidths=0)
        ax.set_title(title, fontsize=10)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=list(axes), shrink=0.8, label="pressure")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
