"""One call from a splat PLY to simulated, rendered, written frames (what ``splatops simulate
--ply`` and the Simulate tab run)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from operators.splat_physics.simulate import (SplatMotion, centre_rmse, load_preview_checkpoint, prepare_object,
                                              preview_object, render_motion, simulate_object, write_motion_npz)
from operators.splat_physics.shapes import SPLAT_FILL_SPACING

PREVIEWS = ("giorom",)


@dataclass
class SplatRun:
    """Result of :func:`run_splat_physics`.

    Attributes:
        mpm: the MPM motion.
        preview: the GIOROM motion, or None.
        rmse: per frame, RMSE of the preview's Gaussian centres against MPM's,
            as a fraction of the object size (empty without a preview).
        files: written files by role (``splats``, ``video``, ``preview_splats``,
            ``preview_video``, ``summary``), paths inside ``out_dir``.
        summary: what ``summary.json`` holds.
    """

    mpm: SplatMotion
    preview: SplatMotion | None
    rmse: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def _write_video(path: Path, frames: list, fps: int) -> Path:
    from splat.render import _write_video as write

    return write(path, frames, fps)


def run_splat_physics(ply: str | os.PathLike, material: str, out_dir: str | os.PathLike | None, *,
                      frames: int = 100, preview: str | None = None, box=None,
                      spacing: float = SPLAT_FILL_SPACING, max_particles: int = 20000, up: str = "+y",
                      velocity=(0.0, 0.0, 0.0), checkpoint: str | os.PathLike | None = None,
                      preview_step_spacing: float | None = None,
                      video: bool = True, width: int = 256, height: int = 256, fps: int = 25,
                      backend: str = "cpu", progress: bool = False) -> SplatRun:
    """Simulate a splat object (MPM, optionally the GIOROM preview) and write the frames.

    Writes into ``out_dir`` (created; refused if it holds files), all at once at
    the end through a temporary sibling folder, so a failure leaves nothing:
    ``splats.npz`` (see :func:`write_motion_npz`), ``mpm.mp4``, with a preview
    ``preview_splats.npz`` and ``preview.mp4``, and ``summary.json``.

    Raises:
        FileNotFoundError: no such PLY.
        FileExistsError: ``out_dir`` holds files.
        ValueError: unknown material or preview, an empty selection, a fill over
            the particle budget, a checkpoint for another material, model or dimension.
    """
    from operators.features import INPUT_SEQUENCE_LENGTH as W
    from operators.mpm import MATERIALS
    from splat.io.atomic import atomic_dir, write_json_atomic
    from splat.io.ply import load_ply

    ply = Path(ply)
    if material not in MATERIALS:
        raise ValueError(f"unknown material {material!r}; choose one of {sorted(MATERIALS)}")
    if preview is not None and preview not in PREVIEWS:
        raise ValueError(f"preview must be one of {list(PREVIEWS)} or None, got {preview!r}")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < (W if preview else 1):
        raise ValueError(f"frames must be an int >= {W if preview else 1}, got {frames!r}")
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out.name} already exists and is not empty")
    if not ply.is_file():
        raise FileNotFoundError(f"splat model {ply.name} not found")
    if preview is not None:  # a wrong checkpoint fails before any simulation
        load_preview_checkpoint(material, checkpoint)
    gaussians = load_ply(ply)
    obj = prepare_object(gaussians, box, spacing=spacing, max_particles=max_particles, up=up)
    mpm = simulate_object(obj, material, frames, velocity=velocity, progress=progress)
    learned, rmse = None, []
    if preview is not None:
        window = mpm.points[:W]
        learned = preview_object(obj, material, frames, checkpoint=checkpoint, window=window,
                                 step_spacing=preview_step_spacing, progress=progress)
        rmse = centre_rmse(learned, mpm)
    summary = {
        "ply": ply.name, "material": material, "frames": frames + 1, "dt": 0.01,
        "gaussians_total": gaussians.num_gaussians, "gaussians_simulated": int(obj.indices.numel()),
        "particles": int(obj.particles.shape[0]), "spacing": spacing, "mpm": mpm.info,
        "mpm_ms_per_frame": mpm.ms_per_frame, "deform_ms_per_frame": mpm.transfer_ms_per_frame,
    }
    if learned is not None:
        summary.update(preview=preview, preview_info=learned.info,
                       preview_ms_per_frame=learned.ms_per_frame,
                       preview_deform_ms_per_frame=learned.transfer_ms_per_frame,
                       rmse_fraction_per_frame=rmse, rmse_fraction_mean=float(np.mean(rmse[W:])),
                       rmse_fraction_last=rmse[-1])
    result = SplatRun(mpm, learned, rmse, summary=summary)
    if out is None:
        return result
    with atomic_dir(out) as tmp:
        files = {"splats": write_motion_npz(mpm, tmp / "splats.npz", progress)}
        if video:
            files["video"] = _write_video(tmp / "mpm.mp4", render_motion(mpm, None, width, height, backend), fps)
        if learned is not None:
            files["preview_splats"] = write_motion_npz(learned, tmp / "preview_splats.npz", progress)
            if video:
                files["preview_video"] = _write_video(tmp / "preview.mp4",
                                                      render_motion(learned, None, width, height, backend), fps)
        files["summary"] = write_json_atomic(tmp / "summary.json", json.loads(json.dumps(summary)), indent=1)
    result.files = {k: out / Path(v).name for k, v in files.items()}
    return result
