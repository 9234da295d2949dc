"""An object-level contact prior: the object moves as a rigid body and bounces as one.

:class:`operators.contact.WallContact` answers each particle's wall contact on
its own, so a bouncing jelly ball is flattened on impact (its lowest particles
stop while the rest still fall) and leaves the floor with the wrong velocity
and spin. :class:`RigidContact` instead reads the object's rigid motion from
the last two frames (centre-of-mass velocity and, by the best rotation between
the frames, the angular velocity), adds gravity, resolves every wall or floor
contact as one impulse on that rigid motion (restitution along the wall normal,
Coulomb friction along it, unit mass per particle) and moves the particles
with the result. Whatever the last two frames hold beyond a rigid motion (the
learned residual's deformation) is carried on unchanged. Its three constants
are fitted per material on the training split (:func:`fit_rigid_contact`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from operators.contact import check_constants, contact_from_dict, grid_search_prior  # noqa: F401 (re-export)

#: Grid searched by :func:`fit_rigid_contact` (restitution, friction, offset in box units, spin).
DEFAULT_GRID = {"restitution": (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "friction": (0.0, 0.25, 0.5, 1.0),
                "offset": (0.0, 0.01, 0.02), "spin": (True, False)}


def best_rotation(source: Tensor, target: Tensor) -> Tensor:
    """Rotation ``R`` minimising ``|target - source @ R.T|`` (both centred), ``[3, 3]``."""
    u, _, vh = torch.linalg.svd(source.T @ target)
    d = torch.sign(torch.det(vh.T @ u.T))
    fix = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), torch.where(d == 0, 1.0, d)]))
    return vh.T @ fix @ u.T


def rotation_vector(rot: Tensor) -> Tensor:
    """Axis times angle (radians) of a rotation matrix, ``[3]``."""
    cos = ((torch.trace(rot) - 1) / 2).clamp(-1.0, 1.0)
    angle = torch.acos(cos)
    axis = torch.stack([rot[2, 1] - rot[1, 2], rot[0, 2] - rot[2, 0], rot[1, 0] - rot[0, 1]])
    s = torch.sin(angle)
    if float(s) < 1e-6:  # small angle (or ~pi, not reached at a frame's spin)
        return axis / 2
    return axis * (angle / (2 * s))


def rotation_matrix(omega: Tensor) -> Tensor:
    """Rodrigues: the rotation of ``omega`` (axis times angle), ``[3, 3]``."""
    angle = omega.norm()
    k = torch.zeros(3, 3, dtype=omega.dtype)
    k[0, 1], k[0, 2], k[1, 0], k[1, 2], k[2, 0], k[2, 1] = -omega[2], omega[1], omega[2], -omega[0], -omega[1], omega[0]
    if float(angle) < 1e-9:
        return torch.eye(3, dtype=omega.dtype) + k
    k = k / angle
    return torch.eye(3, dtype=omega.dtype) + torch.sin(angle) * k + (1 - torch.cos(angle)) * (k @ k)


@dataclass
class RigidMotion:
    """The rigid part of the motion between two frames (float64).

    Attributes:
        centre: ``[3]`` centre of mass in the last frame.
        velocity: ``[3]`` centre-of-mass displacement over the frame.
        omega: ``[3]`` rotation over the frame (axis times angle).
        rotation: ``[3, 3]`` the same rotation as a matrix.
        arm: ``[N, 3]`` particles relative to the centre in the last frame.
        carried: ``[N, 3]`` what a rigid motion does not explain (deformation), per frame.
        inertia: ``[3, 3]`` moment of inertia of the last frame, unit mass per particle.
    """

    centre: Tensor
    velocity: Tensor
    omega: Tensor
    rotation: Tensor
    arm: Tensor
    carried: Tensor
    inertia: Tensor


def rigid_motion(prev: Tensor, last: Tensor) -> RigidMotion:
    """Centre-of-mass velocity, best rotation and the non-rigid rest between ``prev`` and ``last`` ``[N, 3]``."""
    last64, prev64 = last.double(), prev.double()
    c1, c0 = last64.mean(0), prev64.mean(0)
    r, r0 = last64 - c1, prev64 - c0
    step_rot = best_rotation(r0, r)
    inertia = (r * r).sum() * torch.eye(3, dtype=torch.float64) - r.T @ r
    return RigidMotion(c1, c1 - c0, rotation_vector(step_rot), step_rot, r, r - r0 @ step_rot.T, inertia)


class ObjectContactPrior:
    """What every object-level contact prior shares: its acceleration is read from ``step``.

    A subclass defines ``step(prev, last, external, bounds)``: the object's next positions
    from its last two frames.
    """

    def acceleration(self, position_sequence: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Prior acceleration per frame squared (same contract as ``WallContact.acceleration``).

        Args:
            position_sequence: Tensor,  # [N, W, 3]
            external: Tensor,  # [3]
            bounds: Tensor,  # [3, 2]

        Returns:
            Tensor,  # [N, 3]
        """
        last, prev = position_sequence[:, -1], position_sequence[:, -2]
        return self.step(prev, last, external, bounds) - 2 * last + prev


@dataclass
class RigidContact(ObjectContactPrior):
    """Rigid-body response of the box walls, applied to the whole object.

    Attributes:
        restitution: fraction of the contact point's velocity into a wall that is reversed.
        friction: Coulomb coefficient of the tangential impulse (at most ``friction`` times
            the normal one, and no more than stops the contact point's slip).
        offset: how far inside the reported walls the contact starts (box units).
        spin: whether a contact's impulse acts at the contact point (changing the spin);
            False applies it at the centre of mass (the spin is kept).
    """

    restitution: float = 0.0
    friction: float = 0.0
    offset: float = 0.0
    spin: bool = True

    def __post_init__(self):
        if not isinstance(self.spin, bool):
            raise ValueError(f"rigid contact spin must be True or False, got {self.spin!r}")
        check_constants(self, ("restitution", "friction", "offset"), "rigid contact")

    def as_dict(self) -> dict:
        return {"model": "rigid", **asdict(self)}

    def _impulse(self, v, omega, r, inv_inertia, mass, normal):
        """Velocity and angular velocity after one contact at lever arm ``r`` (normal into the box)."""
        u = v + torch.linalg.cross(omega, r)
        un = torch.dot(u, normal)
        if float(un) >= 0:
            return v, omega
        k_n = 1 / mass + torch.dot(normal, torch.linalg.cross(inv_inertia @ torch.linalg.cross(r, normal), r))
        jn = -(1 + self.restitution) * un / k_n
        impulse = jn * normal
        ut = u - un * normal
        slip = ut.norm()
        if self.friction > 0 and float(slip) > 1e-12:
            t = ut / slip
            k_t = 1 / mass + torch.dot(t, torch.linalg.cross(inv_inertia @ torch.linalg.cross(r, t), r))
            impulse = impulse - torch.minimum(self.friction * jn, slip / k_t) * t
        return v + impulse / mass, omega + inv_inertia @ torch.linalg.cross(r, impulse)

    def step(self, prev: Tensor, last: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Next positions from the last two frames.

        Args:
            prev: Tensor,  # [N, 3] positions one frame before ``last``
            last: Tensor,  # [N, 3]
            external: Tensor,  # [3] known acceleration per frame squared (gravity)
            bounds: Tensor,  # [3, 2] lower and upper walls

        Returns:
            Tensor,  # [N, 3]
        """
        if last.ndim != 2 or last.shape[-1] != 3:
            raise ValueError(f"the rigid contact prior needs 3-D positions [N, 3], got {tuple(last.shape)}")
        dtype = last.dtype
        m = rigid_motion(prev, last)
        c1, r, carried, inertia = m.centre, m.arm, m.carried, m.inertia
        ext = external.double()
        v_free = m.velocity  # contacts reverse the frame's velocity before gravity: a symmetric bounce
        omega = m.omega
        mass = float(last.shape[0])
        inv_inertia = torch.linalg.inv(inertia + 1e-12 * torch.eye(3, dtype=torch.float64))
        lo = bounds[:, 0].double() + self.offset
        hi = bounds[:, 1].double() - self.offset
        for _ in range(2):  # a second pass settles corner contacts
            nxt = c1 + v_free + ext + r @ rotation_matrix(omega).T
            for k in range(3):
                for side, hit in ((1.0, nxt[:, k] < lo[k]), (-1.0, nxt[:, k] > hi[k])):
                    if bool(hit.any()):
                        normal = torch.zeros(3, dtype=torch.float64)
                        normal[k] = side
                        arm = r[hit].mean(0) if self.spin else torch.zeros(3, dtype=torch.float64)
                        v_free, omega = self._impulse(v_free, omega, arm, inv_inertia, mass, normal)
        new = c1 + v_free + ext + r @ rotation_matrix(omega).T
        # keep the object inside the (offset) walls by moving it, not deforming it
        shift = (lo - new.min(0).values).clamp_min(0) - (new.max(0).values - hi).clamp_min(0)
        return (new + shift + carried).to(dtype)


@torch.no_grad()
def rigid_prior_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor,
                        contact, clamp: bool = False) -> Tensor:
    """Roll an object-level contact prior alone out (``RigidContact`` or ``CompliantContact``:
    anything with ``step(prev, last, external, bounds)``).

    Args:
        initial_positions: Tensor,  # [W, N, 3] with W >= 2
        n_steps: frames to predict.
        external: Tensor,  # [3]
        bounds: Tensor,  # [3, 2]
        contact: the object's wall response.
        clamp: keep the positions inside ``bounds`` after each frame (as a learned
            simulator with ``clamp_to_bounds`` does).

    Returns:
        Tensor,  # [W + n_steps, N, 3]
    """
    if initial_positions.ndim != 3 or initial_positions.shape[0] < 2:
        raise ValueError(f"initial_positions must be [W>=2, N, 3], got {tuple(initial_positions.shape)}")
    frames = list(initial_positions)
    for _ in range(n_steps):
        nxt = contact.step(frames[-2], frames[-1], external, bounds)
        frames.append(torch.maximum(torch.minimum(nxt, bounds[:, 1]), bounds[:, 0]) if clamp else nxt)
    return torch.stack(frames)


def fit_rigid_contact(trajectories: list[Tensor], external, bounds, n_steps: int = 50,
                      grid: dict | None = None) -> tuple[RigidContact, float]:
    """Grid-search the constants that make the rigid prior roll out closest to the data.

    Same protocol as :func:`operators.contact.fit_wall_contact`: each trajectory starts from
    its first ``INPUT_SEQUENCE_LENGTH`` frames, the score is the mean relative RMSE.

    Returns:
        (best RigidContact, its mean relative RMSE)
    """
    grid = {**DEFAULT_GRID, **(grid or {})}
    grid = {k: grid[k] for k in ("restitution", "friction", "offset", "spin")}
    return grid_search_prior(trajectories, external, bounds, n_steps, grid,
                             lambda e, mu, off, spin: RigidContact(float(e), float(mu), float(off), bool(spin)),
                             rigid_prior_rollout, "the rigid contact")
