"""An object-level compliant contact prior: a rigid body on penalty springs.

:class:`operators.rigid_contact.RigidContact` turns a falling object around in
one impulse at its undeformed contact height, while MPM's jelly squashes for
several frames (its centre of mass keeps falling after its lowest particles
stop) and leaves the floor spinning. :class:`CompliantContact` lets the contact
last: the object's rigid motion is read from the last two frames (as in
:mod:`operators.rigid_contact`), then integrated over ``substeps`` sub-steps per
frame, and every particle that is ``offset`` or less from a wall (or beyond it)
pushes the body with a spring-damper along the wall normal (stiffness times
depth, damping times the particle's speed into the wall, never pulling) and a
Coulomb friction force along the wall. Forces and their torques (lever arm from
the centre of mass) are summed over the particles, unit mass per particle, so
the penetration plays the part of the squash (the wall clamp of a rollout
flattens what passes the reported walls, :func:`compliant_prior_rollout`) and
off-centre contacts give the spin. The state is the last two frames, so the
prior is stateless per window like the others: near a wall the velocity at the
last frame is the one from which a frame integrated backwards lands on the one
before (a time-symmetric reading, so an undamped bounce keeps its energy). Its
constants are fitted per material on the training split (:func:`fit_compliant_contact`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from operators.contact import check_constants, checked_grid, grid_search_prior, multi_start_search
from operators.rigid_contact import ObjectContactPrior, rigid_motion, rigid_prior_rollout, rotation_matrix, rotation_vector

#: Grid searched by :func:`fit_compliant_contact` (stiffness and damping per particle and frame
#: squared / frame, friction, offset in box units, factor on the moment of inertia, carried deformation).
DEFAULT_GRID = {"stiffness": (1.0, 2.0, 4.0, 8.0), "damping": (0.0, 0.05, 0.15, 0.5),
                "friction": (0.0, 0.25, 0.5), "offset": (0.01, 0.02, 0.03), "inertia_scale": (1.0, 2.0, 4.0),
                "carry": (0.0, 0.5, 1.0)}


@dataclass
class CompliantContact(ObjectContactPrior):
    """Rigid body pushed out of the walls by per-particle spring-dampers.

    Attributes:
        stiffness: normal acceleration of the body per unit depth of each particle in
            contact, times the particle count (unit mass per particle; per frame squared).
        damping: normal acceleration per unit speed into the wall of each particle in
            contact, times the particle count (per frame).
        friction: Coulomb coefficient of each particle's tangential force (against its slip).
        offset: how far inside the reported walls the springs start (box units).
        substeps: integration sub-steps per frame (velocity Verlet).
        inertia_scale: factor on the particles' moment of inertia (a deformable body
            turns less readily than its rigid fit).
        shooting: fixed-point passes that read the velocity at the last frame from the
            last two near a wall (0: the mid-frame velocity plus half a frame of acceleration).
        carry: fraction of the last frame's non-rigid motion (a learned residual's deformation,
            or a wall clamp's) carried on to the next frame (1: all of it, 0: the shape is kept).
    """

    stiffness: float = 10.0
    damping: float = 1.0
    friction: float = 0.0
    offset: float = 0.0
    substeps: int = 5
    inertia_scale: float = 1.0
    shooting: int = 3
    carry: float = 1.0

    def __post_init__(self):
        check_constants(self, ("stiffness", "damping", "friction", "offset", "carry"), "compliant contact")
        if not isinstance(self.substeps, int) or isinstance(self.substeps, bool) or self.substeps < 1:
            raise ValueError(f"compliant contact substeps must be an int >= 1, got {self.substeps!r}")
        if not isinstance(self.shooting, int) or isinstance(self.shooting, bool) or self.shooting < 0:
            raise ValueError(f"compliant contact shooting must be an int >= 0, got {self.shooting!r}")
        if not isinstance(self.inertia_scale, (int, float)) or not self.inertia_scale > 0:
            raise ValueError(f"compliant contact inertia_scale must be a number > 0, got {self.inertia_scale!r}")

    def as_dict(self) -> dict:
        return {"model": "compliant", **asdict(self)}

    def _forces(self, x: Tensor, u: Tensor, lo: Tensor, hi: Tensor) -> Tensor:
        """Contact force per particle ``[N, 3]`` (unit mass) at positions ``x`` and velocities ``u``."""
        zero = torch.zeros_like(x)
        d_lo, d_hi = lo - x, x - hi  # depths below the lower and beyond the upper walls
        f_lo = torch.where(d_lo > 0, (self.stiffness * d_lo - self.damping * u).clamp_min(0.0), zero)
        f_hi = torch.where(d_hi > 0, (self.stiffness * d_hi + self.damping * u).clamp_min(0.0), zero)
        force = f_lo - f_hi  # along the inward normals
        if self.friction > 0:
            fn = f_lo + f_hi  # [N, 3] normal force per wall axis
            slip = u[:, None, :] * (1 - torch.eye(3, dtype=u.dtype))  # [N, axis, 3] velocity along each wall
            speed = slip.norm(dim=-1)
            # Coulomb, capped so that one sub-step does not reverse a particle's slip
            scale = torch.minimum(self.friction * fn, speed * self.substeps) / speed.clamp_min(1e-12)
            force = force - (slip * scale[..., None]).sum(1)
        return force

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
            raise ValueError(f"the compliant contact prior needs 3-D positions [N, 3], got {tuple(last.shape)}")
        m = rigid_motion(prev, last)
        ext = external.double()
        lo = bounds[:, 0].double() + self.offset
        hi = bounds[:, 1].double() - self.offset
        eye = torch.eye(3, dtype=torch.float64)
        # farther from every wall than the object can travel in a frame either way: free flight, exact
        reach = 2 * (m.velocity.norm() + m.omega.norm() * m.arm.norm(dim=-1).max() + ext.norm())
        x = m.centre + m.arm
        if bool(((x - lo).min() > reach) & ((hi - x).min() > reach)):
            return (m.centre + m.velocity + ext + m.arm @ rotation_matrix(m.omega).T
                    + self.carry * m.carried).to(last.dtype)
        inertia = self.inertia_scale * m.inertia
        body = (m.arm[((x - lo).min(-1).values < reach) | ((hi - x).min(-1).values < reach)], m.arm.shape[0])
        # the frame's velocity is that of its middle; the velocity at ``last`` is the one from which a
        # frame integrated backwards lands on ``prev`` (shooting, a few fixed-point passes): a
        # time-symmetric reading of the two frames, so an undamped contact neither gains nor loses energy
        a, alpha = self._accelerations(body, lo, hi, ext, inertia, m.centre, eye, m.velocity, m.omega)
        v, omega = m.velocity + 0.5 * a, m.omega + 0.5 * alpha
        prev_centre = m.centre - m.velocity
        for _ in range(self.shooting):
            c_back, rot_back, _, _ = self._integrate(body, m.centre, lo, hi, ext, inertia, v, omega, -1.0)
            v = v + (c_back - prev_centre)
            omega = omega + rotation_vector(rot_back @ m.rotation)
        centre, rot, _, _ = self._integrate(body, m.centre, lo, hi, ext, inertia, v, omega, 1.0)
        return (centre + m.arm @ rot.T + self.carry * m.carried).to(last.dtype)

    def _accelerations(self, body, lo, hi, ext, inertia, centre, rot, v, omega):
        """Linear and angular acceleration of the body in the pose ``(centre, rot)`` (rot relative to ``last``);
        ``body``: the arms of the particles that may touch a wall and the particle count."""
        arm, count = body
        arm = arm @ rot.T
        u = v + torch.linalg.cross(omega.expand_as(arm), arm)
        f = self._forces(centre + arm, u, lo, hi)
        if not bool(f.any()):
            return ext, torch.zeros_like(omega)
        torque = torch.linalg.cross(arm, f).sum(0)
        inv = torch.linalg.inv(rot @ inertia @ rot.T + 1e-12 * torch.eye(3, dtype=torch.float64))
        return f.sum(0) / count + ext, inv @ torque

    def _integrate(self, body, centre, lo, hi, ext, inertia, v, omega, duration: float):
        """Velocity Verlet from the pose of ``last`` (``centre``) over ``duration`` frames (negative: backwards)."""
        h = duration / self.substeps
        rot = torch.eye(3, dtype=torch.float64)
        a, alpha = self._accelerations(body, lo, hi, ext, inertia, centre, rot, v, omega)
        for _ in range(self.substeps):
            v, omega = v + 0.5 * h * a, omega + 0.5 * h * alpha
            centre = centre + h * v
            rot = rotation_matrix(h * omega) @ rot
            a, alpha = self._accelerations(body, lo, hi, ext, inertia, centre, rot, v, omega)
            v, omega = v + 0.5 * h * a, omega + 0.5 * h * alpha
        return centre, rot, v, omega


def compliant_prior_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor,
                            contact: CompliantContact) -> Tensor:
    """Roll the compliant prior alone out, positions kept inside the walls after each frame
    (as a learned simulator with ``clamp_to_bounds`` does; the clamp flattens what the
    springs let through, and with ``carry < 1`` that squash is kept rather than carried on).

    Args:
        initial_positions: Tensor,  # [W, N, 3] with W >= 2
        n_steps: frames to predict.
        external: Tensor,  # [3]
        bounds: Tensor,  # [3, 2]
        contact: the object's wall response.

    Returns:
        Tensor,  # [W + n_steps, N, 3]
    """
    return rigid_prior_rollout(initial_positions, n_steps, external, bounds, contact, clamp=True)


#: Where :func:`fit_compliant_contact`'s coordinate search starts first.
DEFAULT_START = {"stiffness": 2.0, "damping": 0.15, "friction": 0.25, "offset": 0.02, "inertia_scale": 1.0,
                 "carry": 1.0}

#: Its second start: the constants fitted on the jelly drops of four shapes (docs/giorom.md, (b3)).
SHAPE_DROPS_START = {"stiffness": 4.0, "damping": 0.0, "friction": 0.0, "offset": 0.03, "inertia_scale": 2.0,
                     "carry": 0.0}

#: The starts searched by default; the one that ends with the lowest training error wins.
DEFAULT_STARTS = (DEFAULT_START, SHAPE_DROPS_START)


def fit_compliant_contact(trajectories: list[Tensor], external, bounds, n_steps: int = 50,
                          grid: dict | None = None, search: str = "coordinate",
                          start: dict | None = None,
                          starts: list[dict] | tuple[dict, ...] | None = None) -> tuple[CompliantContact, float]:
    """Search the constants that make the compliant prior roll out closest to the data.

    Same protocol as :func:`operators.contact.fit_wall_contact`: each trajectory starts from
    its first ``INPUT_SEQUENCE_LENGTH`` frames and is rolled out with the wall clamp of the
    learned simulators (:func:`compliant_prior_rollout`), the score is the mean relative RMSE. The
    prior costs more than the others (sub-steps near the walls), so by default the grid is
    searched one constant at a time (:func:`operators.contact.coordinate_search_prior`, two
    rounds from a start) rather than over all its combinations (``search="grid"``). That search
    finds a local best, so it runs from each of ``starts`` (sharing the scores of the
    combinations already seen) and keeps the result with the lowest training error.

    Args:
        trajectories: positions ``[T, N, 3]`` (e.g. a dataset's training split).
        external: ``[3]`` known acceleration per frame squared.
        bounds: ``[3, 2]`` walls.
        n_steps: predicted frames scored.
        grid: values per field of :class:`CompliantContact` (default :data:`DEFAULT_GRID`;
            ``substeps`` keeps its default unless given).
        search: ``"coordinate"`` (coordinate descent over the grid) or ``"grid"`` (every combination).
        start: one start point (a value per grid field) instead of ``starts``.
        starts: start points of the coordinate search (default :data:`DEFAULT_STARTS`); each
            value is moved to the nearest value of its field's grid, a field a start does not
            name begins at its first grid value, and starts that coincide are searched once.

    Returns:
        (best CompliantContact, its mean relative RMSE)
    """
    grid = checked_grid(DEFAULT_GRID, grid, CompliantContact, "compliant contact")
    names = list(grid)

    def make(*values):
        kw = dict(zip(names, values))
        return CompliantContact(**{k: (int(v) if k in ("substeps", "shooting") else float(v)) for k, v in kw.items()})

    what = "the compliant contact"
    if search == "grid":
        return grid_search_prior(trajectories, external, bounds, n_steps, grid, make, compliant_prior_rollout, what)
    if search != "coordinate":
        raise ValueError(f"search must be 'coordinate' or 'grid', got {search!r}")
    if start is not None and starts is not None:
        raise ValueError("give start or starts, not both")
    points = [start] if start is not None else list(DEFAULT_STARTS if starts is None else starts)
    return multi_start_search(trajectories, external, bounds, n_steps, grid, points, make, compliant_prior_rollout,
                              what)
