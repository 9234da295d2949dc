"""A granular contact prior: position-based grains that pile, spread and stop by friction.

The per-particle :class:`operators.contact.WallContact` stops each particle at the
floor on its own, so a sand drop ends as a single layer with the footprint it
landed with, while MPM's sand splashes and spreads to two or three times that
width within ~10 frames of the impact. :class:`GranularContact` adds what the
per-particle rule lacks, the interaction between grains, as position-based
dynamics (Macklin et al. 2014, "Unified particle physics for real-time
applications"): each particle is moved by its last velocity and gravity, then a
few Jacobi iterations project (1) non-penetration constraints between
neighbours closer than the contact distance, with static and kinetic Coulomb
friction on their relative tangential displacement, and (2) the box walls with
their own friction. The velocity is what the projection leaves (``new - last``).

It is stateless per window, like the other priors: the last two frames are the
state. A stateless solver cannot remember each pair's rest distance, and a
filled shape has pairs well inside the contact distance, so a pair is pushed
back only while it is being pressed together, and only to its distance in the
last frame plus the fraction ``recovery`` of what it lacks (0: never closer
than now, 1: all the way to the contact distance); an object in free flight
therefore keeps its shape, and a pile packs no tighter than its grains allow. Neighbours come from a k-d tree
(``scipy.spatial.cKDTree``) and the projection is vectorised in torch.
Constants are fitted on the training split (:func:`fit_granular_contact`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from operators.contact import check_constants, checked_grid, multi_start_search
from operators.rigid_contact import ObjectContactPrior, rigid_prior_rollout

#: Particle spacing of the shape datasets (``operators.splat_physics.shapes.DEFAULT_SPACING``).
DATASET_SPACING = 0.02

#: Grid searched by :func:`fit_granular_contact` (contact distance as a fraction of the spacing,
#: friction between grains and at the walls, wall offset in box units, recovery, Jacobi
#: relaxation, mass scaling along gravity, velocity smoothing).
DEFAULT_GRID = {"distance": (0.6, 0.8, 0.9, 1.0, 1.1, 1.2), "friction": (0.0, 0.1, 0.25, 0.5, 1.0),
                "wall_friction": (0.0, 0.1, 0.25, 0.5), "offset": (0.0, 0.01, 0.02, 0.03),
                "recovery": (0.1, 0.3, 0.6, 1.0), "iterations": (4, 8, 16), "relaxation": (1.0, 1.5, 2.0),
                "stacking": (0.0, 1.0, 3.0), "viscosity": (0.0, 0.1, 0.3, 0.6)}

#: Where :func:`fit_granular_contact`'s coordinate search starts (what a first search over a
#: narrower grid found on the sand drops of four shapes, docs/giorom.md).
DEFAULT_START = {"distance": 1.0, "friction": 0.5, "wall_friction": 0.25, "offset": 0.02, "recovery": 1.0,
                 "iterations": 8, "relaxation": 2.0, "stacking": 0.0, "viscosity": 0.3}


@dataclass
class GranularContact(ObjectContactPrior):
    """Grains as position-based particles: neighbour non-penetration, Coulomb friction, walls.

    The defaults are the constants fitted on the sand drops of four shapes (docs/giorom.md).

    Attributes:
        spacing: particle spacing of the point set (box units; the shape datasets fill at 0.02,
            a sparser point set needs its own).
        distance: contact distance between two grains as a fraction of ``spacing``.
        friction: Coulomb coefficient between grains (static and kinetic): a pair's relative
            tangential displacement over the frame is removed when it is below ``friction``
            times the pair's penetration, else shortened by that much.
        wall_friction: the same rule for a particle pushed back by a wall (penetration: the push).
        offset: how far inside the reported walls the contact starts (box units).
        recovery: fraction of a pair's deficit below the contact distance (measured in the last
            frame) restored in one frame (0: pairs only stop approaching, 1: pushed to the distance).
        iterations: Jacobi iterations per frame.
        relaxation: factor on the averaged Jacobi correction (Macklin et al.'s omega).
        stacking: mass scaling along gravity (Macklin et al.'s stacking): a grain one spacing
            higher than its partner is ``exp(stacking)`` times lighter and takes that much more
            of their correction, so a pile settles in fewer iterations (0: equal shares).
        viscosity: fraction of each particle's velocity relative to its neighbours' (within
            ``viscosity_radius`` spacings, linear weights) taken off after the projection
            (XSPH-like; keeps the mean velocity and a rigid translation).
        viscosity_radius: that neighbourhood, in spacings.
        pressed_only: push a pair back towards the contact distance only while it is being
            pressed together (closer in the prediction than in the last frame), so an object in
            free flight keeps its shape whatever its fill; False: whenever it is too close.
    """

    spacing: float = DATASET_SPACING
    distance: float = 1.0
    friction: float = 0.5
    wall_friction: float = 0.25
    offset: float = 0.03
    recovery: float = 1.0
    iterations: int = 8
    relaxation: float = 2.0
    stacking: float = 0.0
    viscosity: float = 0.3
    viscosity_radius: float = 1.5
    pressed_only: bool = True

    def __post_init__(self):
        check_constants(self, ("distance", "friction", "wall_friction", "offset", "recovery", "relaxation",
                               "stacking", "viscosity", "viscosity_radius"), "granular contact")
        if not isinstance(self.spacing, (int, float)) or isinstance(self.spacing, bool) or not self.spacing > 0:
            raise ValueError(f"granular contact spacing must be a number > 0, got {self.spacing!r}")
        if not isinstance(self.iterations, int) or isinstance(self.iterations, bool) or self.iterations < 1:
            raise ValueError(f"granular contact iterations must be an int >= 1, got {self.iterations!r}")
        if not isinstance(self.pressed_only, bool):
            raise ValueError(f"granular contact pressed_only must be True or False, got {self.pressed_only!r}")
        if self.recovery > 1 or self.viscosity > 1:
            raise ValueError(f"granular contact recovery and viscosity must be in [0, 1], "
                             f"got {self.recovery} and {self.viscosity}")

    def as_dict(self) -> dict:
        return {"model": "granular", **asdict(self)}

    def pairs(self, positions: Tensor, radius: float) -> Tensor:
        """Index pairs ``[P, 2]`` (i < j) of the particles closer than ``radius``."""
        if positions.shape[0] < 2 or radius <= 0:
            return torch.zeros(0, 2, dtype=torch.long)
        tree = cKDTree(positions.detach().cpu().numpy().astype(np.float64))
        return torch.from_numpy(tree.query_pairs(radius, output_type="ndarray").astype(np.int64)).reshape(-1, 2)

    def _walls(self, x: Tensor, last: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """Project ``x`` into the walls with Coulomb friction on the displacement along them."""
        inside = torch.minimum(torch.maximum(x, lo), hi)
        if self.wall_friction > 0:
            push = inside - x  # [N, d] along the inward normals
            hit = push != 0
            touching = hit.any(-1, keepdim=True)
            slip = (inside - last) * (~hit)  # displacement along the walls a particle touches
            stop = self.wall_friction * push.abs().sum(-1, keepdim=True)  # friction times the push
            keep = (1 - stop / slip.norm(dim=-1, keepdim=True).clamp_min(1e-12)).clamp_min(0.0)
            inside = torch.where(touching, inside - slip * (1 - keep), inside)
        return inside

    def step(self, prev: Tensor, last: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Next positions from the last two frames.

        Args:
            prev: Tensor,  # [N, d] positions one frame before ``last``
            last: Tensor,  # [N, d]
            external: Tensor,  # [d] known acceleration per frame squared (gravity)
            bounds: Tensor,  # [d, 2] lower and upper walls

        Returns:
            Tensor,  # [N, d]
        """
        if last.ndim != 2 or prev.shape != last.shape:
            raise ValueError(f"the granular contact prior needs two frames [N, d], got {tuple(prev.shape)} "
                             f"and {tuple(last.shape)}")
        dtype = last.dtype
        last, prev, ext = last.float(), prev.float(), external.float()
        lo = bounds[:, 0].float() + self.offset
        hi = bounds[:, 1].float() - self.offset
        x = last + (last - prev) + ext
        d = self.distance * self.spacing
        h = self.viscosity_radius * self.spacing if self.viscosity > 0 else 0.0
        pairs = self.pairs(x, max(d, h))
        i, j = pairs[:, 0], pairs[:, 1]
        gap = (x[i] - x[j]).norm(dim=-1)
        contact = gap < d
        ci, cj = i[contact], j[contact]
        now = (last[ci] - last[cj]).norm(dim=-1)
        push = now + self.recovery * (d - now)
        if self.pressed_only:  # pushed back only while the pair is being pressed together (or crosses over)
            ahead = ((x[ci] - x[cj]) * (last[ci] - last[cj])).sum(-1)
            pressed = (gap[contact] < now - 1e-4 * self.spacing) | (ahead <= 0)
            push = torch.where(pressed, push, now)
        target = torch.where(now < d, push, torch.full_like(now, d))
        share = torch.full_like(now, 0.5)
        g = ext.norm()
        if self.stacking > 0 and float(g) > 0 and ci.numel():
            # the higher grain of a pair is lighter: it takes the larger share of the correction
            up = (last[ci] - last[cj]) @ (-ext / g) / self.spacing
            share = torch.sigmoid(self.stacking * up)
        for _ in range(self.iterations):
            if ci.numel():
                x = self._project_pairs(x, last, ci, cj, target, share)
            x = self._walls(x, last, lo, hi)
        if h > 0 and i.numel():
            x = self._smooth(x, last, i, j, gap, h)
            x = torch.minimum(torch.maximum(x, lo), hi)
        return x.to(dtype)

    def _project_pairs(self, x: Tensor, last: Tensor, i: Tensor, j: Tensor, target: Tensor,
                       share: Tensor) -> Tensor:
        """One Jacobi pass over the pair constraints, averaged per particle; ``share``: the part of
        each pair's correction that ``i`` takes (``j`` the rest)."""
        delta = x[i] - x[j]
        dist = delta.norm(dim=-1)
        pen = (target - dist).clamp_min(0.0)
        active = pen > 0
        if not bool(active.any()):
            return x
        i, j, delta, dist, pen, share = i[active], j[active], delta[active], dist[active], pen[active], share[active]
        normal = delta / dist.clamp_min(1e-9)[:, None]
        corr = pen[:, None] * normal  # separation to add along +normal
        if self.friction > 0:
            rel = (x[i] - last[i]) - (x[j] - last[j])
            tang = rel - (rel * normal).sum(-1, keepdim=True) * normal
            tn = tang.norm(dim=-1, keepdim=True)
            # static: the whole relative slip is removed; kinetic: shortened by friction * penetration
            take = torch.minimum(torch.ones_like(tn), self.friction * pen[:, None] / tn.clamp_min(1e-12))
            corr = corr - take * tang
        ones = torch.ones_like(pen)
        acc = torch.zeros_like(x).index_add_(0, i, share[:, None] * corr).index_add_(0, j, -(1 - share)[:, None] * corr)
        count = torch.zeros(x.shape[0], dtype=x.dtype).index_add_(0, i, ones).index_add_(0, j, ones)
        return x + self.relaxation * acc / count.clamp_min(1.0)[:, None]

    def _smooth(self, x: Tensor, last: Tensor, i: Tensor, j: Tensor, gap: Tensor, h: float) -> Tensor:
        """Take ``viscosity`` of each velocity's difference from its neighbours' weighted mean off."""
        v = x - last
        w = (1 - gap / h).clamp_min(0.0)[:, None]
        total = torch.zeros(x.shape[0], 1, dtype=x.dtype).index_add_(0, i, w).index_add_(0, j, w)
        diff = torch.zeros_like(x).index_add_(0, i, w * (v[j] - v[i])).index_add_(0, j, w * (v[i] - v[j]))
        return x + self.viscosity * diff / total.clamp_min(1e-12)


def granular_prior_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor,
                           contact: GranularContact) -> Tensor:
    """Roll the granular prior alone out (``[W + n_steps, N, d]``); its step keeps the particles inside
    the (offset) walls, so the wall clamp of the learned simulators changes nothing.

    Args:
        initial_positions: Tensor,  # [W, N, d] with W >= 2
        n_steps: frames to predict.
        external: Tensor,  # [d]
        bounds: Tensor,  # [d, 2]
        contact: the grains' response.
    """
    return rigid_prior_rollout(initial_positions, n_steps, external, bounds, contact, clamp=True)


def fit_granular_contact(trajectories: list[Tensor], external, bounds, n_steps: int = 50,
                         grid: dict | None = None, start: dict | None = None,
                         passes: int = 2) -> tuple[GranularContact, float]:
    """Search the constants that make the granular prior roll out closest to the data.

    Same protocol as :func:`operators.contact.fit_wall_contact` (each trajectory starts from its
    first ``INPUT_SEQUENCE_LENGTH`` frames, the score is the mean relative RMSE), searched one
    constant at a time (:func:`operators.contact.coordinate_search_prior`) from ``start``.

    Args:
        trajectories: positions ``[T, N, 3]`` (e.g. a dataset's training split).
        external: ``[3]`` known acceleration per frame squared.
        bounds: ``[3, 2]`` walls.
        n_steps: predicted frames scored.
        grid: values per field of :class:`GranularContact` (default :data:`DEFAULT_GRID`; a field
            with one value, e.g. ``{"spacing": (0.02,)}``, is fixed).
        start: a value per grid field to begin from (default :data:`DEFAULT_START`; a field it
            does not name begins at its first grid value).
        passes: rounds of the coordinate search.

    Returns:
        (best GranularContact, its mean relative RMSE)
    """
    grid = checked_grid(DEFAULT_GRID, grid, GranularContact, "granular contact")
    names = list(grid)

    def make(*values):
        kinds = {"iterations": int, "pressed_only": bool}
        return GranularContact(**{k: kinds.get(k, float)(v) for k, v in zip(names, values)})

    return multi_start_search(trajectories, external, bounds, n_steps, grid, [{**DEFAULT_START, **(start or {})}],
                              make, granular_prior_rollout, "the granular contact", passes=passes)
