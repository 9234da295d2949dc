"""A known wall-contact response under the learned residual.

The learned simulators predict a residual on top of a known prior
acceleration (gravity, ``external_acceleration``). Gravity alone lets a
falling object stop dead on the floor and slide along it forever, while the
MPM ground truth bounces (jelly) or stops by friction (sand): most of a
rollout's error is then that rigid offset, which the networks, trained on
a few thousand windows, do not learn. :class:`WallContact` adds the wall's
response per particle, as the MPM grid does on its wall nodes: the velocity
component into a wall is reversed with a restitution coefficient and the
tangential one slowed by Coulomb friction. Its three constants are fitted per
material on the training split (:func:`fit_wall_contact`) by rolling the
prior alone out, so the network learns only what the prior misses.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from operators.features import INPUT_SEQUENCE_LENGTH

#: Grid searched by :func:`fit_wall_contact` (restitution, friction, offset in box units).
DEFAULT_GRID = {"restitution": (0.0, 0.3, 0.6, 0.8, 1.0), "friction": (0.0, 0.25, 0.5, 1.0),
                "offset": (0.0, 0.01, 0.02)}


def check_constants(contact, names, what: str) -> None:
    """Raise ``ValueError`` unless each named field of ``contact`` is a number >= 0 (restitution <= 1)."""
    for name in names:
        v = getattr(contact, name)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0 or v != v:
            raise ValueError(f"{what} {name} must be a number >= 0, got {v!r}")
    if "restitution" in names and contact.restitution > 1:
        raise ValueError(f"{what} restitution must be in [0, 1], got {contact.restitution}")


def contact_models() -> dict:
    """Wall-contact prior classes by the ``"model"`` name of a config dict."""
    from operators.affine_contact import AffineContact
    from operators.compliant_contact import CompliantContact
    from operators.granular_contact import GranularContact
    from operators.mpm_prior import ReducedMPM
    from operators.rigid_contact import RigidContact

    return {"particle": WallContact, "rigid": RigidContact, "compliant": CompliantContact, "granular": GranularContact,
            "affine": AffineContact, "mpm": ReducedMPM}


def contact_from_dict(config: dict):
    """The wall prior of a model config: ``{"model": NAME, ...}`` with NAME one of
    :func:`contact_models` (per particle when the dict names none)."""
    config = dict(config)
    model = config.pop("model", "particle")
    models = contact_models()
    if model not in models:
        raise ValueError(f"unknown wall contact model {model!r} (expected one of {sorted(models)})")
    fields = set(models[model].__dataclass_fields__)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(f"unknown {model} wall contact settings {unknown} (expected some of {sorted(fields)})")
    return models[model](**config)


def contact_for_point_set(config: dict | None, spacing_factor: float) -> dict | None:
    """The wall prior of a model config for a point set ``spacing_factor`` times sparser than the data.

    A prior with a ``spacing`` field (the granular one) measures its contacts in particle spacings;
    a simulator that steps a subset of the particles (GIOROM's sparse graph keeps a fraction ``f``,
    so ``spacing_factor = (1/f)**(1/d)``) needs the spacing of that subset. Other priors are
    returned unchanged.

    Args:
        config: a ``wall_contact`` dict (as in a model config) or None.
        spacing_factor: the point set's spacing over the data's (> 0).

    Returns:
        the dict with ``spacing`` scaled (the prior's default spacing when the dict omits it), or
        ``config`` itself when the prior has no spacing.

    >>> contact_for_point_set({"model": "granular", "spacing": 0.02}, 2.0)["spacing"]
    0.04
    """
    if isinstance(spacing_factor, bool) or not isinstance(spacing_factor, (int, float)) or not spacing_factor > 0:
        raise ValueError(f"spacing_factor must be a number > 0, got {spacing_factor!r}")
    spacing = prior_spacing(config)
    if spacing is None or spacing_factor == 1:
        return config
    return {**config, "spacing": spacing * float(spacing_factor)}


def prior_spacing(config: dict | None) -> float | None:
    """The particle spacing a ``wall_contact`` dict's prior measures its contacts in (its default when
    the dict omits it), or None for a prior without one."""
    if config is None:
        return None
    fields = getattr(contact_models().get(config.get("model", "particle")), "__dataclass_fields__", {})
    if "spacing" not in fields:
        return None
    return float(config.get("spacing", fields["spacing"].default))


def fit_contact(model: str, trajectories: list[Tensor], external, bounds, n_steps: int = 50,
                grid: dict | None = None, material: str | None = None):
    """Fit the constants of the wall-contact prior ``model`` (a name of :func:`contact_models`) on
    ``trajectories``; returns (contact, its mean relative RMSE). ``material``: the data's MPM
    material, which the reduced MPM prior (``"mpm"``) needs."""
    from operators.affine_contact import fit_affine_contact
    from operators.compliant_contact import fit_compliant_contact
    from operators.granular_contact import fit_granular_contact
    from operators.mpm_prior import fit_reduced_mpm
    from operators.rigid_contact import fit_rigid_contact

    fits = {"particle": fit_wall_contact, "rigid": fit_rigid_contact, "compliant": fit_compliant_contact,
            "granular": fit_granular_contact, "affine": fit_affine_contact, "mpm": fit_reduced_mpm}
    if model not in fits:
        raise ValueError(f"unknown wall contact model {model!r} (expected one of {sorted(fits)})")
    if model == "mpm":
        if material is None:
            raise ValueError("fitting the reduced MPM prior needs the data's material")
        return fit_reduced_mpm(trajectories, external, bounds, n_steps=n_steps, grid=grid, material=material)
    return fits[model](trajectories, external, bounds, n_steps=n_steps, grid=grid)


def contact_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor, contact) -> Tensor:
    """Roll any wall-contact prior alone out (``[W + n_steps, N, d]``) as the learned simulators
    apply it: per particle with the wall clamp (:func:`prior_rollout`), the rigid one through its
    ``step`` (which keeps the object inside the walls), the compliant one with the wall clamp."""
    if contact is None or isinstance(contact, WallContact):
        return prior_rollout(initial_positions, n_steps, external, bounds, contact)
    from operators.compliant_contact import CompliantContact, compliant_prior_rollout
    from operators.rigid_contact import rigid_prior_rollout

    if isinstance(contact, CompliantContact):
        return compliant_prior_rollout(initial_positions, n_steps, external, bounds, contact)
    from operators.affine_contact import AffineContact, affine_prior_rollout

    if isinstance(contact, AffineContact):  # on the window of the frames given, with the wall clamp
        return affine_prior_rollout(initial_positions, n_steps, external, bounds, contact)
    from operators.mpm_prior import ReducedMPM, mpm_prior_rollout

    if isinstance(contact, ReducedMPM):  # a fresh solver from the window
        return mpm_prior_rollout(initial_positions, n_steps, external, bounds, contact)

    return rigid_prior_rollout(initial_positions, n_steps, external, bounds, contact)


@dataclass
class WallContact:
    """Per-particle response of the box walls, applied after the known acceleration.

    Attributes:
        restitution: fraction of the velocity into a wall that is reversed (0: stop, 1: elastic).
        friction: Coulomb coefficient; the tangential speed drops by
            ``friction * (1 + restitution) * |v_n|`` (not below 0) on contact.
        offset: how far inside the reported walls the contact starts (box units);
            MPM's wall layer acts before a particle reaches the reported wall.
    """

    restitution: float = 0.0
    friction: float = 0.0
    offset: float = 0.0

    def __post_init__(self):
        check_constants(self, ("restitution", "friction", "offset"), "wall contact")

    def as_dict(self) -> dict:
        return asdict(self)

    def velocity(self, position: Tensor, velocity: Tensor, bounds: Tensor) -> Tensor:
        """Velocities after the wall response.

        Args:
            position: Tensor,  # [N, d] current positions
            velocity: Tensor,  # [N, d] velocity per frame before the walls (incl. gravity)
            bounds: Tensor,  # [d, 2] lower and upper walls

        Returns:
            Tensor,  # [N, d]
        """
        lo = bounds[:, 0] + self.offset
        hi = bounds[:, 1] - self.offset
        nxt = position + velocity
        into = ((nxt < lo) & (velocity < 0)) | ((nxt > hi) & (velocity > 0))  # [N, d]
        normal = torch.where(into, velocity, torch.zeros_like(velocity))
        tangential = velocity - normal
        if self.friction > 0:
            vn = normal.norm(dim=-1, keepdim=True)
            vt = tangential.norm(dim=-1, keepdim=True)
            scale = (1.0 - self.friction * (1.0 + self.restitution) * vn / vt.clamp_min(1e-12)).clamp_min(0.0)
            tangential = tangential * torch.where(into.any(-1, keepdim=True), scale, torch.ones_like(scale))
        return tangential - self.restitution * normal

    def acceleration(self, position_sequence: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Prior acceleration per frame squared: ``external`` plus the wall response.

        Args:
            position_sequence: Tensor,  # [N, W, d]
            external: Tensor,  # [d] known acceleration per frame squared (gravity)
            bounds: Tensor,  # [d, 2]

        Returns:
            Tensor,  # [N, d]
        """
        last = position_sequence[:, -1]
        prev_vel = last - position_sequence[:, -2]
        return self.velocity(last, prev_vel + external, bounds) - prev_vel


@torch.no_grad()
def prior_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor,
                  contact: WallContact | None = None) -> Tensor:
    """Roll the prior alone (gravity, optional wall contact, positions kept in the walls).

    Args:
        initial_positions: Tensor,  # [W, N, d] with W >= 2
        n_steps: frames to predict.
        external: Tensor,  # [d]
        bounds: Tensor,  # [d, 2]
        contact: wall response (None: gravity and the wall clamp only).

    Returns:
        Tensor,  # [W + n_steps, N, d]
    """
    if initial_positions.ndim != 3 or initial_positions.shape[0] < 2:
        raise ValueError(f"initial_positions must be [W>=2, N, d], got {tuple(initial_positions.shape)}")
    frames = list(initial_positions)
    for _ in range(n_steps):
        last, prev = frames[-1], frames[-2]
        vel = last - prev + external
        if contact is not None:
            vel = contact.velocity(last, vel, bounds)
        frames.append(torch.maximum(torch.minimum(last + vel, bounds[:, 1]), bounds[:, 0]))
    return torch.stack(frames)


def relative_rmse(predicted: Tensor, truth: Tensor) -> Tensor:
    """Position RMSE per frame as a fraction of the object's size (its largest extent
    in the first frame), ``[T]`` for ``[T, N, d]`` inputs."""
    size = (truth[0].max(0).values - truth[0].min(0).values).max().clamp_min(1e-12)
    return ((predicted - truth) ** 2).sum(-1).mean(-1).sqrt() / size


def fit_wall_contact(trajectories: list[Tensor], external, bounds, n_steps: int = 50,
                     grid: dict | None = None) -> tuple[WallContact, float]:
    """Grid-search the wall constants that make the prior roll out closest to the data.

    Every trajectory starts from its first ``INPUT_SEQUENCE_LENGTH`` frames; the
    score is the mean over trajectories and frames of :func:`relative_rmse`.

    Args:
        trajectories: positions ``[T, N, d]`` (e.g. a dataset's training split).
        external: ``[d]`` known acceleration per frame squared.
        bounds: ``[d, 2]`` walls.
        n_steps: predicted frames scored (capped by the shortest trajectory).
        grid: ``{"restitution": [...], "friction": [...], "offset": [...]}``
            (default :data:`DEFAULT_GRID`).

    Returns:
        (best WallContact, its mean relative RMSE)
    """
    grid = {**DEFAULT_GRID, **(grid or {})}
    grid = {k: grid[k] for k in ("restitution", "friction", "offset")}
    return grid_search_prior(trajectories, external, bounds, n_steps, grid,
                             lambda e, mu, off: WallContact(float(e), float(mu), float(off)), prior_rollout,
                             "the wall contact")


def grid_search_prior(trajectories: list[Tensor], external, bounds, n_steps: int, grid: dict, make, rollout_fn,
                      what: str, cache: dict | None = None):
    """Grid search shared by the contact priors: the constants whose prior rollout is closest to the data.

    Args:
        trajectories: positions ``[T, N, d]``; each starts from its first ``INPUT_SEQUENCE_LENGTH`` frames.
        external: ``[d]`` known acceleration per frame squared.
        bounds: ``[d, 2]`` walls.
        n_steps: predicted frames scored (capped by the shortest trajectory).
        grid: ordered ``{name: values}``; every combination is passed to ``make``.
        make: builds a contact model from one combination of grid values.
        rollout_fn: ``rollout_fn(start [W, N, d], n, external, bounds, contact) -> [W + n, N, d]``.
        what: the prior's name in error messages.
        cache: scores by combination of grid values, read and filled (repeated searches
            over overlapping grids score each combination once).

    Returns:
        (best contact model, its mean relative RMSE over trajectories and frames)
    """
    if not trajectories:
        raise ValueError(f"fitting {what} needs at least one trajectory")
    w = INPUT_SEQUENCE_LENGTH
    shortest = min(int(t.shape[0]) for t in trajectories) - w
    if shortest < 1:
        raise ValueError(f"trajectories need more than {w} frames to fit {what}")
    n = min(n_steps, shortest)
    ext = torch.as_tensor(external, dtype=torch.float32)
    bnd = torch.as_tensor(bounds, dtype=torch.float32)
    best, best_err = None, float("inf")
    cache = {} if cache is None else cache
    for values in itertools.product(*grid.values()):
        contact = make(*values)
        if values not in cache:
            cache[values] = sum(float(relative_rmse(rollout_fn(t[:w].float(), n, ext, bnd, contact)[w:],
                                                    t[w:w + n].float()).mean())
                                for t in trajectories) / len(trajectories)
        err = cache[values]
        if err < best_err:
            best, best_err = contact, err
    return best, best_err


def coordinate_search_prior(trajectories: list[Tensor], external, bounds, n_steps: int, grid: dict, start: dict,
                            make, rollout_fn, what: str, passes: int = 2, cache: dict | None = None):
    """Coordinate descent over a grid: from ``start``, each field in turn is searched over its
    grid values with the others fixed (:func:`grid_search_prior`), for ``passes`` rounds.

    Scores ``passes * sum(len(values))`` combinations at most instead of their product; it finds
    the grid's best when the fields act independently, a local best otherwise.

    Args:
        grid: ordered ``{name: values}``, named as the fields of the models ``make`` builds.
        start: a value per grid field to begin from.
        passes: rounds over all fields (it stops early when a round changes nothing).
        cache: scores by combination, read and filled (share it across searches from several starts).
        (the others as in :func:`grid_search_prior`)

    Returns:
        (best contact model, its mean relative RMSE)
    """
    missing = set(grid) - set(start)
    if missing:
        raise ValueError(f"coordinate search of {what} needs a start value for {sorted(missing)}")
    current = {k: start[k] for k in grid}
    cache, best = ({} if cache is None else cache), None
    for _ in range(passes):
        before = dict(current)
        for name in grid:
            line = {k: (grid[k] if k == name else (current[k],)) for k in grid}
            best = grid_search_prior(trajectories, external, bounds, n_steps, line, make, rollout_fn, what, cache)
            current = {k: getattr(best[0], k) for k in grid}  # the model's fields are named as the grid
        if current == before:
            break
    return best


def checked_grid(defaults: dict, grid: dict | None, model_cls, name: str) -> dict:
    """``defaults`` updated by ``grid``, every key a field of ``model_cls`` (``name`` in the error)."""
    grid = {**defaults, **(grid or {})}
    unknown = set(grid) - set(model_cls.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown {name} grid keys {sorted(unknown)}")
    return grid


def multi_start_search(trajectories: list[Tensor], external, bounds, n_steps: int, grid: dict, starts: list[dict],
                       make, rollout_fn, what: str, passes: int = 2):
    """:func:`coordinate_search_prior` from each start, keeping the lowest training error.

    Each start moves to the nearest grid values (a field it does not name begins at its grid's
    first value); starts that coincide are searched once, and the scores are shared between them.

    Returns:
        (best contact model, its mean relative RMSE)
    """
    if not starts:
        raise ValueError(f"the coordinate search of {what} needs at least one start")
    firsts = []
    for point in starts:
        first = {k: (min(v, key=lambda g: abs(float(g) - float(point[k]))) if k in point else v[0])
                 for k, v in grid.items()}
        if first not in firsts:
            firsts.append(first)
    cache, best = {}, None
    for first in firsts:
        found = coordinate_search_prior(trajectories, external, bounds, n_steps, grid, first, make, rollout_fn, what,
                                        passes=passes, cache=cache)
        if best is None or found[1] < best[1]:
            best = found
    return best
