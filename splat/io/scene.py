"""The ``Scene`` type: posed cameras, their images and optional initial points."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from splat.core.camera import Camera
from splat.io.images import composite, read_image, resize_image

#: Every ``TEST_EVERY``-th view (index 0, 8, 16, ...) is held out by default, as in 3DGS.
TEST_EVERY = 8


def default_split(num_views: int, every: int = TEST_EVERY) -> tuple[list[int], list[int]]:
    """Train/test ids: every ``every``-th view (from index 0) is a test view.

    >>> default_split(10)
    ([1, 2, 3, 4, 5, 6, 7, 9], [0, 8])
    """
    if not isinstance(num_views, int) or num_views < 0:
        raise ValueError(f"num_views must be a non-negative int, got {num_views!r}")
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"every must be a positive int, got {every!r}")
    test = [i for i in range(num_views) if i % every == 0]
    train = [i for i in range(num_views) if i % every != 0]
    return train, test


def _check_ids(ids, n: int, what: str) -> list[int]:
    if isinstance(ids, Tensor):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"{what} must be a sequence of ints, got {type(ids).__name__}")
    out = []
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{what} must contain ints, got {type(i).__name__}")
        if not 0 <= int(i) < n:
            raise ValueError(f"{what} contains {int(i)}, outside [0, {n}) views")
        out.append(int(i))
    return out


@dataclass
class Scene:
    """Posed pinhole views of one scene, with lazily loaded images.

    Attributes:
        name: scene name.
        root: folder the scene was loaded from.
        cameras: ``C`` cameras (world-to-camera OpenCV ``viewmats [C, 4, 4]``, ``Ks [C, 3, 3]``).
        image_paths: ``C`` image files, one per camera.
        train_ids: views to fit (default: every view whose index % 8 != 0).
        test_ids: held-out views (default: every 8th view, index % 8 == 0).
        points: ``[P, 3]`` float32 initial points (SfM or provided), or ``None``.
        point_colors: ``[P, 3]`` float32 colours in ``[0, 1]``, or ``None``.
        background: known constant RGB background in ``[0, 1]``; RGBA images are
            composited on it (on black when ``None``).

    >>> from splat.io import make_synthetic_scene
    >>> scene = make_synthetic_scene(num_views=8, size=16)
    >>> scene.images([0, 1]).shape
    torch.Size([2, 16, 16, 3])
    """

    name: str
    root: Path
    cameras: Camera
    image_paths: list[Path]
    train_ids: list[int] | None = None
    test_ids: list[int] | None = None
    points: Tensor | None = None  # [P, 3]
    point_colors: Tensor | None = None  # [P, 3]
    background: tuple[float, float, float] | None = None
    # Downscale factor relative to the image files, and decoded images by view id.
    _factor: int = field(default=1, repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)
    _file_size: tuple[int, int] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a str, got {type(self.name).__name__}")
        if not isinstance(self.root, (str, Path)):
            raise TypeError(f"root must be a path, got {type(self.root).__name__}")
        self.root = Path(self.root)
        if not isinstance(self.cameras, Camera):
            raise TypeError(f"cameras must be a splat.core.camera.Camera, got {type(self.cameras).__name__}")
        if isinstance(self.image_paths, (str, Path)) or not isinstance(self.image_paths, Sequence):
            raise TypeError(f"image_paths must be a list of paths, got {type(self.image_paths).__name__}")
        self.image_paths = [Path(p) for p in self.image_paths]
        n = len(self.cameras)
        if len(self.image_paths) != n:
            raise ValueError(f"image_paths has {len(self.image_paths)} entries but there are {n} cameras")
        if n == 0:
            raise ValueError("a scene needs at least one camera, got 0")
        train, test = default_split(n)
        self.train_ids = train if self.train_ids is None else _check_ids(self.train_ids, n, "train_ids")
        self.test_ids = test if self.test_ids is None else _check_ids(self.test_ids, n, "test_ids")
        if self.points is not None:
            self.points = torch.as_tensor(self.points, dtype=torch.float32)
            if self.points.ndim != 2 or self.points.shape[1] != 3:
                raise ValueError(f"points must be [P, 3], got {tuple(self.points.shape)}")
        if self.point_colors is not None:
            if self.points is None:
                raise ValueError("point_colors given without points")
            self.point_colors = torch.as_tensor(self.point_colors, dtype=torch.float32)
            if self.point_colors.shape != self.points.shape:
                raise ValueError(
                    f"point_colors must be [P, 3] with P={self.points.shape[0]}, "
                    f"got {tuple(self.point_colors.shape)}"
                )
        if self.background is not None:
            bg = tuple(float(v) for v in self.background)
            if len(bg) != 3 or not all(0.0 <= v <= 1.0 for v in bg):
                raise ValueError(f"background must be 3 floats in [0, 1], got {self.background!r}")
            self.background = bg
        if self._file_size is None:
            self._file_size = (int(self.cameras.width), int(self.cameras.height))

    def __len__(self) -> int:
        return len(self.cameras)

    def __repr__(self) -> str:
        points = 0 if self.points is None else self.points.shape[0]
        return (
            f"Scene(name={self.name!r}, views={len(self)}, size={self.width}x{self.height}, "
            f"train={len(self.train_ids)}, test={len(self.test_ids)}, points={points}, "
            f"background={self.background}, root='{self.root}')"
        )

    @property
    def width(self) -> int:
        return int(self.cameras.width)

    @property
    def height(self) -> int:
        return int(self.cameras.height)

    def image(self, index: int) -> Tensor:
        """``[H, W, 3]`` float32 image of view ``index`` (loaded once, then cached)."""
        (index,) = _check_ids([index], len(self), "index")
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        path = self.image_paths[index]
        arr = read_image(path)
        fw, fh = self._file_size
        if arr.shape[1] != fw or arr.shape[0] != fh:
            raise ValueError(
                f"image {path} is {arr.shape[1]}x{arr.shape[0]} but its camera expects {fw}x{fh}"
            )
        arr = resize_image(arr, self.width, self.height)
        out = torch.from_numpy(np.ascontiguousarray(composite(arr, self.background)))
        self._cache[index] = out
        return out

    def images(self, ids: Sequence[int] | None = None) -> Tensor:
        """Images of views ``ids`` (all views when ``None``).

        Returns:
            ``[len(ids), H, W, 3]`` float32 in ``[0, 1]``; RGBA files are composited
            on :attr:`background`.
        """
        ids = list(range(len(self))) if ids is None else _check_ids(ids, len(self), "ids")
        if not ids:
            return torch.zeros(0, self.height, self.width, 3)
        # numpy's single-threaded copy: torch.stack's thread pool stalls on a busy machine.
        return torch.from_numpy(np.stack([self.image(i).numpy() for i in ids]))

    def subset(self, ids: Sequence[int]) -> "Scene":
        """A scene of views ``ids`` only (in that order); train/test membership is kept."""
        ids = _check_ids(ids, len(self), "ids")
        if not ids:
            raise ValueError("ids must select at least one view, got none")
        train, test = set(self.train_ids), set(self.test_ids)
        return replace(
            self,
            cameras=self.cameras[ids],
            image_paths=[self.image_paths[i] for i in ids],
            train_ids=[j for j, i in enumerate(ids) if i in train],
            test_ids=[j for j, i in enumerate(ids) if i in test],
            _cache={j: self._cache[i] for j, i in enumerate(ids) if i in self._cache},
        )

    def downscaled(self, factor: int) -> "Scene":
        """The same scene at ``1/factor`` resolution (images area-averaged, ``Ks`` scaled).

        The new size is ``(W // factor, H // factor)`` of the image files; intrinsics
        scale by the exact ratio of the sizes (pixel centres at ``i + 0.5``).
        """
        if isinstance(factor, bool) or not isinstance(factor, int):
            raise TypeError(f"factor must be an int, got {type(factor).__name__}")
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        total = self._factor * factor
        fw, fh = self._file_size
        w, h = fw // total, fh // total
        if w < 1 or h < 1:
            raise ValueError(f"factor {factor} shrinks {fw}x{fh} images below one pixel")
        if factor == 1:
            return self
        Ks = self.cameras.Ks.clone()
        Ks[:, 0, :] *= w / self.width
        Ks[:, 1, :] *= h / self.height
        cameras = Camera(self.cameras.viewmats.clone(), Ks, w, h)
        return replace(self, cameras=cameras, _factor=total, _cache={})

    @property
    def extent(self) -> float:
        """Scene radius: 1.1 x the largest distance of a camera centre to their mean (as 3DGS).

        Falls back to the radius of :attr:`points` (or 1.0) when all centres coincide.
        """
        centers = self.cameras.centers.double()
        radius = float((centers - centers.mean(0)).norm(dim=-1).max()) * 1.1
        if radius > 1e-8:
            return radius
        if self.points is not None and len(self.points):
            pts = self.points.double()
            r = float((pts - pts.mean(0)).norm(dim=-1).max())
            if r > 1e-8 and math.isfinite(r):
                return r
        return 1.0
