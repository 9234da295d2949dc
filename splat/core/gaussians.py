"""The Gaussians container: gsplat's parameter names, pre-activation storage.

Parameters live in a :class:`torch.nn.ParameterDict` under gsplat's names, so
gsplat's strategies and exporters can work on ``gaussians.params`` unchanged:

=============  ===========  ==========================================
name           shape        stored as
=============  ===========  ==========================================
``means``      ``[N, 3]``   world positions
``quats``      ``[N, 4]``   unnormalised rotations, ``wxyz``
``scales``     ``[N, 3]``   log of the standard deviations
``opacities``  ``[N]``      logit of the opacities
``sh0``        ``[N, 1, 3]``  degree-0 SH coefficients
``shN``        ``[N, K, 3]``  higher SH coefficients, ``K = (d + 1)^2 - 1``
=============  ===========  ==========================================

Methods may add further per-Gaussian parameters (first dimension ``N``); they
are kept in the same dict, densified and saved with the rest.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from splat.core.sh import SH_C0

REQUIRED_KEYS = ("means", "quats", "scales", "opacities", "sh0", "shN")


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Maps colours in ``[0, 1]`` to degree-0 SH coefficients (``(rgb - 0.5) / C0``)."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_sh`."""
    return sh * SH_C0 + 0.5


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel up to ``degree`` (``(degree + 1)^2``)."""
    return (degree + 1) ** 2


def _as_points(name: str, x, cols: int) -> Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != cols:
        raise ValueError(f"{name} must be [N, {cols}], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf")
    return x.detach().float()


def _check_sh_degree(sh_degree) -> int:
    if isinstance(sh_degree, bool) or not isinstance(sh_degree, int):
        raise TypeError(f"sh_degree must be an int, got {type(sh_degree).__name__}")
    if not 0 <= sh_degree <= 3:
        raise ValueError(f"sh_degree must be in 0..3, got {sh_degree}")
    return sh_degree


def nearest_neighbour_scale(points: Tensor, k: int = 3) -> Tensor:
    """Mean distance of each point to its ``k`` nearest neighbours (scipy cKDTree).

    Args:
        points: ``[N, 3]`` positions.
        k: neighbours to average over (fewer when ``N <= k``).

    Returns:
        ``[N]`` distances, clamped below to avoid zero scales for duplicates.
    """
    n = points.shape[0]
    if n < 2:
        return torch.ones(n)
    k_eff = min(k, n - 1)
    pts = points.detach().cpu().double().numpy()
    dist, _ = cKDTree(pts).query(pts, k=k_eff + 1)
    mean = dist[:, 1:].mean(axis=1)
    floor = max(float(np.median(mean)) * 1e-3, 1e-7)
    return torch.from_numpy(np.maximum(mean, floor)).float()


class Gaussians(torch.nn.Module):
    """A set of 3D Gaussians with spherical-harmonic colours.

    Args:
        params: mapping from gsplat parameter names to tensors (see the module
            docstring); extra per-Gaussian entries are allowed.

    Example:
        >>> import torch
        >>> g = Gaussians.from_points(torch.rand(100, 3), torch.rand(100, 3), sh_degree=1)
        >>> g.num_gaussians, tuple(g.params["shN"].shape)
        (100, (100, 3, 3))
    """

    def __init__(self, params: Mapping[str, Tensor]):
        super().__init__()
        if not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping of name -> Tensor, got {type(params).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in params]
        if missing:
            raise ValueError(f"params is missing required entries {missing}; expected {list(REQUIRED_KEYS)}")
        for key, value in params.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{key} must be a torch.Tensor, got {type(value).__name__}")
            if not value.is_floating_point():
                raise ValueError(f"{key} must be a floating-point tensor, got {value.dtype}")
        self.params = torch.nn.ParameterDict(
            {k: v if isinstance(v, torch.nn.Parameter) else torch.nn.Parameter(v) for k, v in params.items()}
        )
        self.validate()

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_points(
        cls,
        points,  # [N, 3]
        colors=None,  # [N, 3] in [0, 1]
        sh_degree: int = 3,
        init_opacity: float = 0.1,
        init_scale: float = 1.0,
    ) -> "Gaussians":
        """Gaussians centred on points, sized by their neighbours (as 3DGS).

        Args:
            points: ``[N, 3]`` positions.
            colors: ``[N, 3]`` colours in ``[0, 1]`` (grey when None).
            sh_degree: highest SH degree stored (0..3).
            init_opacity: initial opacity in ``(0, 1)``.
            init_scale: multiplier on the nearest-neighbour scale.

        Returns:
            Isotropic, identity-rotation Gaussians whose scale is the mean
            distance to the 3 nearest neighbours.
        """
        points = _as_points("points", points, 3)
        n = points.shape[0]
        if n == 0:
            raise ValueError("points must hold at least one point, got 0")
        if colors is None:
            colors = torch.full((n, 3), 0.5)
        colors = _as_points("colors", colors, 3)
        if colors.shape[0] != n:
            raise ValueError(f"colors must be [{n}, 3] to match points, got {tuple(colors.shape)}")
        if colors.min() < 0 or colors.max() > 1:
            raise ValueError(
                f"colors must lie in [0, 1], got range [{colors.min():.3g}, {colors.max():.3g}]"
            )
        sh_degree = _check_sh_degree(sh_degree)
        if not 0.0 < init_opacity < 1.0:
            raise ValueError(f"init_opacity must be in (0, 1), got {init_opacity}")
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale}")
        dist = nearest_neighbour_scale(points) * init_scale
        quats = torch.zeros(n, 4)
        quats[:, 0] = 1.0
        return cls(
            {
                "means": points.clone(),
                "quats": quats,
                "scales": torch.log(dist)[:, None].repeat(1, 3),
                "opacities": torch.full((n,), math.log(init_opacity / (1 - init_opacity))),
                "sh0": rgb_to_sh(colors)[:, None, :],
                "shN": torch.zeros(n, num_sh_bases(sh_degree) - 1, 3),
            }
        )

    @classmethod
    def random_in_bounds(
        cls,
        n: int,
        bbox_min,  # [3]
        bbox_max,  # [3]
        sh_degree: int = 3,
        init_opacity: float = 0.1,
        seed: int = 0,
    ) -> "Gaussians":
        """``n`` Gaussians uniformly placed in an axis-aligned box with random colours.

        Args:
            n: number of Gaussians (>= 1).
            bbox_min: ``[3]`` lower corner.
            bbox_max: ``[3]`` upper corner (strictly above ``bbox_min``).
            sh_degree: highest SH degree stored (0..3).
            init_opacity: initial opacity in ``(0, 1)``.
            seed: seed of the private generator.
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        lo = torch.as_tensor(bbox_min, dtype=torch.float32).reshape(-1)
        hi = torch.as_tensor(bbox_max, dtype=torch.float32).reshape(-1)
        if lo.shape != (3,) or hi.shape != (3,):
            raise ValueError(f"bbox_min and bbox_max must have 3 entries, got {tuple(lo.shape)} and {tuple(hi.shape)}")
        if not (hi > lo).all():
            raise ValueError(f"bbox_max must exceed bbox_min on every axis, got {hi.tolist()} <= {lo.tolist()}")
        gen = torch.Generator().manual_seed(seed)
        points = lo + (hi - lo) * torch.rand(n, 3, generator=gen)
        colors = torch.rand(n, 3, generator=gen)
        return cls.from_points(points, colors, sh_degree=sh_degree, init_opacity=init_opacity)

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor]) -> "Gaussians":
        """Rebuilds Gaussians of any size from :meth:`state_dict` output."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping, got {type(state_dict).__name__}")
        prefix = "params."
        params = {k[len(prefix):]: v.detach().clone() for k, v in state_dict.items() if k.startswith(prefix)}
        return cls(params)

    # --------------------------------------------------------------- accessors
    @property
    def num_gaussians(self) -> int:
        return int(self.params["means"].shape[0])

    def __len__(self) -> int:
        return self.num_gaussians

    @property
    def device(self) -> torch.device:
        return self.params["means"].device

    @property
    def sh_degree(self) -> int:
        """Highest SH degree the stored coefficients allow."""
        return int(round(math.sqrt(self.params["shN"].shape[1] + 1))) - 1

    @property
    def means(self) -> Tensor:  # [N, 3]
        return self.params["means"]

    @property
    def quats(self) -> Tensor:  # [N, 4] unit wxyz
        return torch.nn.functional.normalize(self.params["quats"], dim=-1)

    @property
    def scales(self) -> Tensor:  # [N, 3] activated (exp)
        return torch.exp(self.params["scales"])

    @property
    def opacities(self) -> Tensor:  # [N] activated (sigmoid)
        return torch.sigmoid(self.params["opacities"])

    @property
    def sh(self) -> Tensor:  # [N, (d + 1)^2, 3]
        return torch.cat([self.params["sh0"], self.params["shN"]], dim=1)

    @property
    def colors(self) -> Tensor:  # [N, 3] the view-independent (degree-0) colour
        return sh_to_rgb(self.params["sh0"][:, 0, :])

    # -------------------------------------------------------------- validation
    def validate(self) -> None:
        """Checks shapes, dtypes and finiteness of every parameter.

        Raises:
            ValueError: naming the parameter, the expected and the actual value.
        """
        p = self.params
        for key in REQUIRED_KEYS:
            if key not in p:
                raise ValueError(f"Gaussians are missing parameter {key!r}")
        n = p["means"].shape[0]
        expected = {
            "means": (n, 3),
            "quats": (n, 4),
            "scales": (n, 3),
            "opacities": (n,),
            "sh0": (n, 1, 3),
        }
        for key, shape in expected.items():
            if tuple(p[key].shape) != shape:
                raise ValueError(f"{key} must have shape {list(shape)}, got {list(p[key].shape)}")
        shn = p["shN"]
        if shn.ndim != 3 or shn.shape[0] != n or shn.shape[2] != 3:
            raise ValueError(f"shN must have shape [{n}, K, 3], got {list(shn.shape)}")
        if shn.shape[1] + 1 not in (1, 4, 9, 16):
            raise ValueError(f"shN must hold K in (0, 3, 8, 15) coefficients (SH degree 0..3), got K={shn.shape[1]}")
        device = p["means"].device
        for key, value in p.items():
            if value.ndim == 0 or value.shape[0] != n:
                raise ValueError(f"{key} must have first dimension N={n}, got {list(value.shape)}")
            if not value.is_floating_point():
                raise ValueError(f"{key} must be a floating-point tensor, got {value.dtype}")
            if value.device != device:
                raise ValueError(f"{key} is on {value.device} but means is on {device}")
            if not torch.isfinite(value).all():
                raise ValueError(f"{key} contains NaN or Inf")
        if n and (p["quats"].detach().norm(dim=-1) == 0).any():
            raise ValueError("quats contains zero-norm rotations")

    # ----------------------------------------------------------------- helpers
    def to(self, *args, **kwargs) -> "Gaussians":  # noqa: D102 - nn.Module.to, returns self
        return super().to(*args, **kwargs)

    def detached(self) -> "Gaussians":
        """A copy with detached, cloned tensors (no optimizer links)."""
        return Gaussians({k: v.detach().clone() for k, v in self.params.items()})

    def extra_repr(self) -> str:
        return f"num_gaussians={self.num_gaussians}, sh_degree={self.sh_degree}"
