"""The bundled assets, installed as the package ``splatops_assets``.

The folder lives at the top of the repository as ``assets/`` and is mapped to
the importable name ``splatops_assets`` (see ``setup.py``), so the same lookup
works in an editable install and from an installed wheel:

    scenes/globe/        the example scene (nerfstudio layout)
    checkpoints/         learned-simulator and CGS checkpoints
    graphs/<name>/       small real graphs, each with SOURCE.md and LICENSE.txt

>>> from splatops_assets import asset_path
>>> asset_path("scenes", "globe", "transforms.json").name
'transforms.json'
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["asset_path", "assets_root"]


def assets_root() -> Path:
    """Folder holding the bundled assets (inside the installed package)."""
    return Path(str(files(__name__)))


def asset_path(*parts: str) -> Path:
    """Path of a bundled asset, e.g. ``asset_path("checkpoints", "cgs_porous.pt")``.

    The path may not exist; callers that need the file check it and say which
    script regenerates it.
    """
    for part in parts:
        if not isinstance(part, str):
            raise TypeError(f"asset path parts must be str, got {type(part).__name__}")
    return assets_root().joinpath(*parts)
