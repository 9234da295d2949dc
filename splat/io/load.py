"""Format detection (``load_scene``) and the bundled example scene."""

from __future__ import annotations

import os
from pathlib import Path

from splat.io.images import is_image_file
from splat.io.scene import Scene

#: Name of the example scene shipped in ``assets/scenes/``.
BUNDLED_SCENE = "globe"


def detect_format(path: str | os.PathLike) -> str:
    """Names the scene format at ``path``: ``"blender"``, ``"nerfstudio"`` or ``"colmap"``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an empty folder, images without poses, or nothing recognisable.
    """
    from splat.io.colmap import find_colmap_model

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"scene path not found: {path}")
    if path.is_file():
        if path.name.startswith("transforms_") and path.suffix == ".json":
            return "blender"
        if path.suffix == ".json":
            return "nerfstudio"
        if path.suffix.lower() == ".zip":
            raise ValueError(f"{path} is an archive; unpack it with splat.io.extract_scene_archive first")
        raise ValueError(f"{path} is not a scene file (expected transforms.json or a scene folder)")
    if (path / "transforms_train.json").is_file():
        return "blender"
    if (path / "transforms.json").is_file():
        return "nerfstudio"
    if find_colmap_model(path) is not None:
        return "colmap"
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise ValueError(f"scene folder {path} is empty")
    images = [p for p in path.rglob("*") if p.is_file() and is_image_file(p)]
    if images:
        raise ValueError(
            f"scene folder {path} holds {len(images)} images but no camera poses; expected COLMAP "
            "sparse/0 (or sparse/) with images/, nerfstudio transforms.json, or Blender transforms_train.json"
        )
    raise ValueError(
        f"no scene recognised in {path}: expected COLMAP sparse/0 (or sparse/) with images/, "
        "nerfstudio transforms.json, or Blender transforms_train.json"
    )


def load_scene(path: str | os.PathLike, **kwargs) -> Scene:
    """Loads a scene in any supported format, detected from the folder's contents.

    Args:
        path: a COLMAP scene folder (``sparse/0`` or ``sparse/`` with ``images/``), a
            nerfstudio ``transforms.json`` (or its folder), or a Blender NeRF-synthetic
            folder (``transforms_train.json``/``transforms_test.json``).
        **kwargs: passed to the format's loader (e.g. ``verify_images=False``).

    Raises:
        FileNotFoundError: missing path or file.
        ValueError: unrecognised or malformed scene.

    >>> scene = load_scene(bundled_scene_path())
    >>> scene.name, len(scene) > 0
    ('globe', True)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    fmt = detect_format(path)
    if fmt == "blender":
        from splat.io.blender import load_blender

        return load_blender(path, **kwargs)
    if fmt == "nerfstudio":
        from splat.io.nerfstudio import load_nerfstudio

        return load_nerfstudio(path, **kwargs)
    from splat.io.colmap import load_colmap

    return load_colmap(path, **kwargs)


def bundled_scene_path() -> Path:
    """Folder of the bundled example scene (``assets/scenes/globe``).

    Raises:
        FileNotFoundError: the assets are not present (e.g. a wheel install without them).
    """
    from splatops_assets import asset_path

    path = asset_path("scenes", BUNDLED_SCENE)
    if not (path / "transforms.json").is_file():
        raise FileNotFoundError(
            f"bundled scene not found at {path}; regenerate it with scripts/make_example_scene.py"
        )
    return path


def load_bundled_scene(**kwargs) -> Scene:
    """Loads the bundled example scene (nerfstudio layout, white background)."""
    return load_scene(bundled_scene_path(), **kwargs)
