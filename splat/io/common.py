"""Checks shared by the scene loaders: JSON files, image files and their sizes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from splat.io.images import image_size


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a JSON object, raising ``FileNotFoundError``/``ValueError`` that name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def transform_frames(meta: dict[str, Any], source: Path) -> list[dict[str, Any]]:
    """The ``frames`` of a transforms JSON (nerfstudio or Blender), each checked to have
    ``file_path`` and ``transform_matrix``; a ``ValueError`` names the file and the frame."""
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{source}: 'frames' must be a non-empty list")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise ValueError(f"{source}: frame {i} needs 'file_path' and 'transform_matrix'")
    return frames


def as_float(value: Any, what: str, source: Path) -> float:
    """A finite float from JSON, or a ``ValueError`` naming the field and file."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{source}: {what} must be a finite number, got {value!r}")
    return float(value)


def resolve_image(root: Path, rel: Any, source: Path, suffixes: Sequence[str] = ()) -> Path:
    """Resolves an image path relative to ``root``; tries ``suffixes`` when it has none.

    Raises:
        ValueError: ``rel`` is not a string.
        FileNotFoundError: no such image, naming the JSON file that refers to it.
    """
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"{source}: file_path must be a non-empty string, got {rel!r}")
    path = (root / rel).resolve() if not os.path.isabs(rel) else Path(rel)
    if path.is_file():
        return path
    for suffix in suffixes:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{source}: image {rel!r} not found (looked for {path})")


def check_image_sizes(
    paths: Sequence[Path], width: int | None, height: int | None, verify: bool
) -> tuple[int, int]:
    """Checks every image against ``width x height`` (or against each other when ``None``).

    Args:
        paths: image files.
        width, height: size the cameras expect, or ``None`` to take the first image's.
        verify: decode every image fully, to catch truncated or corrupt files.

    Returns:
        The common ``(width, height)``.

    Raises:
        ValueError: an image is corrupt, or its size contradicts the camera or the others.
    """
    expected = None if width is None or height is None else (int(width), int(height))
    first = None
    # A progress bar for large captures only; small scenes load silently.
    for path in tqdm(paths, desc="checking images", unit="img", leave=False, disable=len(paths) < 100):
        size = image_size(path, verify=verify)
        if expected is not None and size != expected:
            raise ValueError(
                f"image {path} is {size[0]}x{size[1]} but its camera expects {expected[0]}x{expected[1]}"
            )
        if first is None:
            first = (path, size)
        elif size != first[1]:
            raise ValueError(
                f"images of mixed sizes are unsupported: {first[0]} is {first[1][0]}x{first[1][1]}, "
                f"{path} is {size[0]}x{size[1]}"
            )
    assert first is not None, "check_image_sizes needs at least one image"
    return first[1]
