"""An object-level affine-body contact prior: a deformable body with 12 degrees of freedom.

:class:`operators.compliant_contact.CompliantContact` bounces a rigid body on penalty
springs, so every shape keeps the same share of its energy through a bounce, while
MPM's jelly keeps a share that depends on its shape and on how it lands (the particles
that reach the wall stop, the rest of the body squashes against them and springs back).
:class:`AffineContact` moves the object as an affine body (ABD-style: centre ``c`` and a
3x3 matrix ``B``, particle ``i`` at ``c + B s_i``): the per-particle penalty contact,
damping and Coulomb friction of the compliant contact act on the particles and reach
``c`` and ``B`` through the body's generalised mass, and an elastic energy pulls the
deformation toward its nearest rotation. That energy is the MPM jelly's own
fixed-corotated one (:class:`operators.mpm.materials.Jelly`: shear and bulk moduli over
density, in box units per frame squared, :func:`material_moduli`), times a fitted factor
``elastic``. A flat landing stops many particles at once and squashes the body little;
a corner or a rim stops a few and stores and returns energy through the deformation.

Stateless per window like the others, though it reads the whole window (``acceleration``
of a simulator window, :func:`affine_prior_rollout`): the deformation is measured from the
latest frame of the window in which no particle touches a contact spring (the shape before
the contact), the centre's velocity at the last frame is the one from which a frame
integrated backwards lands on the frame before (as in the compliant contact), an object
that no spring reaches in the window or the next frame moves rigidly (the exact parabola,
spin kept), and a contact that began before the window (resting, sliding: no undeformed
shape is in view) is the compliant contact's rigid body on the same springs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from operators.compliant_contact import CompliantContact
from operators.contact import check_constants, checked_grid, multi_start_search
from operators.rigid_contact import ObjectContactPrior, best_rotation, rigid_motion, rotation_matrix


def material_moduli(material: str = "jelly", frame_dt: float = 0.01, box: float = 1.0) -> tuple[float, float]:
    """Shear and bulk (Lamé) moduli over density of an MPM material, in box units per frame squared.

    Args:
        material: an elastic MPM material with ``youngs_modulus`` and ``poisson_ratio``.
        frame_dt: seconds per frame.
        box: metres per box unit.

    Returns:
        ``(mu / rho, lambda / rho) * frame_dt**2 / box**2``
    """
    from operators.mpm.materials import _lame, make_material

    m = make_material(material)
    if not hasattr(m, "youngs_modulus"):
        raise ValueError(f"material {material!r} has no elastic moduli (youngs_modulus, poisson_ratio)")
    mu, lam = _lame(m.youngs_modulus, m.poisson_ratio)
    scale = frame_dt ** 2 / (m.density * box ** 2)
    return mu * scale, lam * scale


#: The MPM jelly's moduli at the shape datasets' 10 ms frames in the unit box.
JELLY_SHEAR, JELLY_BULK = material_moduli("jelly")


def rotation_of(F: Tensor) -> Tensor:
    """The rotation of the polar decomposition of ``F`` ``[3, 3]`` (a proper rotation, det +1)."""
    u, _, vh = torch.linalg.svd(F)
    d = torch.sign(torch.det(u @ vh))
    fix = torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), torch.where(d == 0, 1.0, d)]))
    return u @ fix @ vh


def corotated_stress(F: Tensor, shear: float, bulk: float) -> Tensor:
    """First Piola stress over density of the fixed-corotated energy
    ``shear |F - R|^2 + bulk / 2 (det F - 1)^2`` (``R`` the rotation of ``F``), ``[3, 3]``.
    Zero for any rotation."""
    if not bool(torch.isfinite(F).all()):
        return torch.full_like(F, float("nan"))
    rot = rotation_of(F)
    f0, f1, f2 = F[:, 0], F[:, 1], F[:, 2]
    cofactor = torch.stack([torch.linalg.cross(f1, f2), torch.linalg.cross(f2, f0), torch.linalg.cross(f0, f1)], 1)
    return 2 * shear * (F - rot) + bulk * (torch.det(F) - 1) * cofactor  # det F * F^-T, defined when singular


def corotated_energy(F: Tensor, shear: float, bulk: float) -> Tensor:
    """The energy of :func:`corotated_stress` per unit mass (a scalar tensor)."""
    return shear * ((F - rotation_of(F)) ** 2).sum() + 0.5 * bulk * (torch.det(F) - 1) ** 2


def affine_fit(source: Tensor, target: Tensor, ridge: float = 0.0) -> Tensor:
    """``G`` with ``target ≈ source @ G.T`` (both centred ``[N, 3]``), ``[3, 3]``: the best rotation
    plus the least-squares rest, the rest Tikhonov-regularised by ``ridge`` (a flat or thin source
    then keeps the rotation across its thickness), ``[3, 3]``."""
    rot = best_rotation(source, target)
    cov = source.T @ source + ridge * torch.eye(3, dtype=source.dtype)
    return rot + torch.linalg.lstsq(cov, source.T @ (target - source @ rot.T)).solution.T


def particle_spacing(points: Tensor) -> float:
    """Median distance from each of ``points`` ``[N, 3]`` to its nearest neighbour (0 for one point)."""
    if points.shape[0] < 2:
        return 0.0
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(points.detach().cpu().numpy()).query(points.detach().cpu().numpy(), k=2)
    return float(torch.as_tensor(dist[:, 1]).median())


@dataclass
class AffineContact(ObjectContactPrior):
    """Affine body (12 DOF) with the jelly's elasticity, pushed out of the walls per particle.

    Attributes:
        stiffness: each particle's penalty spring, per unit depth and unit mass (per frame squared).
        damping: each particle's contact damping, per unit speed into the wall (per frame).
        friction: Coulomb coefficient of each particle's tangential force.
        offset: how far inside the reported walls the springs start (box units).
        elastic: factor on the material's moduli ``shear`` and ``bulk``.
        elastic_damping: damping rate of the deformation's rate of change (per frame).
        inertia_scale: factor on the generalised mass of ``B`` (its rotation and deformation
            modes; the compliant contact's factor on the moment of inertia).
        substeps: integration sub-steps per frame (velocity Verlet).
        shooting: fixed-point passes that read the velocity at the last frame from the last two.
        carry: fraction of the non-affine part of the last frame's shape (relative to the
            shape before the contact) that is kept (0: the body is an affine image of it).
        shear: shear modulus over density (per frame squared; default the MPM jelly's).
        bulk: Lamé's first parameter over density (per frame squared; default the MPM jelly's).
    """

    stiffness: float = 2.0
    damping: float = 0.0
    friction: float = 0.0
    offset: float = 0.02
    elastic: float = 1.0
    elastic_damping: float = 0.0
    inertia_scale: float = 1.0
    substeps: int = 8
    shooting: int = 3
    carry: float = 0.0
    shear: float = JELLY_SHEAR
    bulk: float = JELLY_BULK

    def __post_init__(self):
        check_constants(self, ("stiffness", "damping", "friction", "offset", "elastic", "elastic_damping", "carry",
                               "shear", "bulk"), "affine contact")
        if not isinstance(self.inertia_scale, (int, float)) or not self.inertia_scale > 0:
            raise ValueError(f"affine contact inertia_scale must be a number > 0, got {self.inertia_scale!r}")
        for name in ("substeps", "shooting"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (1 if name == "substeps" else 0):
                raise ValueError(f"affine contact {name} must be an int >= {1 if name == 'substeps' else 0}, "
                                 f"got {v!r}")

    def as_dict(self) -> dict:
        return {"model": "affine", **asdict(self)}

    # the per-particle spring-damper and Coulomb friction of the compliant contact (same fields)
    _forces = CompliantContact._forces

    def acceleration(self, position_sequence: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Prior acceleration per frame squared from the whole window (``[N, W, 3]`` -> ``[N, 3]``)."""
        last, prev = position_sequence[:, -1], position_sequence[:, -2]
        return self.step_window(position_sequence.transpose(0, 1), external, bounds) - 2 * last + prev

    def step(self, prev: Tensor, last: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Next positions from two frames only (the shape before a contact is then ``prev`` or ``last``)."""
        return self.step_window(torch.stack([prev, last]), external, bounds)

    def reference(self, window: Tensor, lo: Tensor, hi: Tensor) -> Tensor | None:
        """The shape the deformation is measured from, one frame of ``window`` ``[W, N, 3]``: the
        latest frame in which no particle reaches a contact spring and after which one does (the
        shape before the latest contact); the last frame when no frame of the window is in
        contact, or when the contact is over and began before the window; None while a contact
        that began before the window lasts (resting or sliding: no undeformed shape is known)."""
        free = ((window > lo) & (window < hi)).flatten(1).all(1)  # [W]
        if bool(free.all()):
            return window[-1]
        latest = int((~free).nonzero()[-1])
        before = free[:latest].nonzero()
        if before.numel():
            return window[int(before[-1])]
        return window[-1] if bool(free[-1]) else None

    def rigid_body(self) -> CompliantContact:
        """The rigid body on the same springs (:class:`CompliantContact`) that moves the object
        while a contact lasts longer than the window."""
        return CompliantContact(self.stiffness, self.damping, self.friction, self.offset, self.substeps,
                                self.inertia_scale, self.shooting, self.carry)

    def step_window(self, window: Tensor, external: Tensor, bounds: Tensor) -> Tensor:
        """Next positions from the last frames.

        Args:
            window: Tensor,  # [W, N, 3] with W >= 2, the last frame last
            external: Tensor,  # [3] known acceleration per frame squared (gravity)
            bounds: Tensor,  # [3, 2] lower and upper walls

        Returns:
            Tensor,  # [N, 3]
        """
        if window.ndim != 3 or window.shape[0] < 2 or window.shape[-1] != 3:
            raise ValueError(f"the affine contact prior needs 3-D positions of >= 2 frames [W, N, 3], "
                             f"got {tuple(window.shape)}")
        dtype = window.dtype
        win = window.double()
        prev, last = win[-2], win[-1]
        m = rigid_motion(prev, last)
        ext = external.double()
        lo = bounds[:, 0].double() + self.offset
        hi = bounds[:, 1].double() - self.offset
        reach = 2 * (m.velocity.norm() + m.omega.norm() * m.arm.norm(dim=-1).max() + ext.norm())
        rigid = m.centre + m.velocity + ext + m.arm @ rotation_matrix(m.omega).T + self.carry * m.carried
        if bool(((last - lo).min() > reach) & ((hi - last).min() > reach)):  # free flight: exact
            return rigid.to(dtype)
        if bool(((win > lo) & (win < hi)).all() & (rigid > lo).all() & (rigid < hi).all()):
            return rigid.to(dtype)  # no spring acts in the window nor in the next frame: free flight too
        ref = self.reference(win, lo, hi)
        if ref is None:
            return self.rigid_body().step(prev, last, external, bounds).to(dtype)
        rest = ref - ref.mean(0)
        count = rest.shape[0]
        # each particle a cube of side ``spacing`` (the median nearest-neighbour distance): its own
        # second moment joins the body's, so flat or thin bodies keep a finite mass across
        own = count * particle_spacing(rest) ** 2 / 12
        g = affine_fit(rest, m.arm, own)  # the deformation (and rotation) since the shape before the contact
        body = rest @ g.T
        body = body + self.carry * (m.arm - body)  # the particles' arms at the last frame, s_i
        mass = self.inertia_scale * (body.T @ body + own * torch.eye(3, dtype=torch.float64))  # of B
        inv_mass = torch.linalg.inv(mass)
        spread = float(mass.diagonal().mean()) / count  # mean squared arm per axis (times inertia_scale)
        near = ((last - lo).min(-1).values < reach) | ((hi - last).min(-1).values < reach)
        state = (body[near], count, inv_mass, spread, g, self._substeps(count, mass))
        r0 = prev - prev.mean(0)
        h_prev = affine_fit(m.arm, r0, own)  # B one frame before (relative to the last frame)
        eye = torch.eye(3, dtype=torch.float64)
        a, b_acc = self._accelerations(state, m.centre, eye, m.velocity, eye - h_prev, lo, hi, ext)
        v, b_dot = m.velocity + 0.5 * a, (eye - h_prev) + 0.5 * b_acc
        c_prev = m.centre - m.velocity
        for _ in range(self.shooting):  # time-symmetric centre velocity at the last frame (see CompliantContact)
            c_back, _ = self._integrate(state, m.centre, v, b_dot, lo, hi, ext, -1.0)
            v = v + (c_back - c_prev)
        centre, b = self._integrate(state, m.centre, v, b_dot, lo, hi, ext, 1.0)
        f = b @ g
        sv = torch.linalg.svdvals(f) if bool(torch.isfinite(f).all() & torch.isfinite(centre).all()) else None
        if sv is None or not bool((sv > 0.2).all() & (sv < 5.0).all()):
            return rigid.to(dtype)  # guard: an integration that crushed or tore the body moves it rigidly
        return (centre + body @ b.T).to(dtype)

    def _substeps(self, count: int, mass: Tensor) -> int:
        """Sub-steps for a stable step: at least ``substeps``, and 0.5 radian per sub-step at the
        body's fastest mode (elastic: the moduli over the smallest second moment; contact: at most
        4 x ``stiffness``, since the particles' inverse masses ``1/N + s^T M^-1 s`` sum to 4 N)."""
        elastic = self.elastic * (2 * self.shear + self.bulk) * count / float(torch.linalg.eigvalsh(mass)[0])
        omega = (elastic + 4 * self.stiffness) ** 0.5
        return int(min(max(self.substeps, math.ceil(omega / 0.5), math.ceil(4 * self.damping / 0.5)), 256))

    def _accelerations(self, state, centre, b, v, b_dot, lo, hi, ext):
        """Accelerations of ``c`` and ``B`` (``B`` relative to the last frame)."""
        near, count, inv_mass, spread, g, _ = state
        arm = near @ b.T
        f = self._forces(centre + arm, v + near @ b_dot.T, lo, hi)  # [n, 3] per particle, unit mass
        gen = f.T @ near  # generalised contact force on B
        k = self.elastic
        if k > 0:
            gen = gen - count * corotated_stress(b @ g, k * self.shear, k * self.bulk) @ g.T
        if self.elastic_damping > 0:
            gen = gen - count * spread * self.elastic_damping * 0.5 * (b_dot + b_dot.T)
        return f.sum(0) / count + ext, gen @ inv_mass

    def _integrate(self, state, centre, v, b_dot, lo, hi, ext, duration: float):
        """Velocity Verlet of ``(c, B)`` from the last frame over ``duration`` frames (negative: backwards)."""
        n = state[-1]
        h = duration / n
        b = torch.eye(3, dtype=torch.float64)
        a, b_acc = self._accelerations(state, centre, b, v, b_dot, lo, hi, ext)
        for _ in range(n):
            v, b_dot = v + 0.5 * h * a, b_dot + 0.5 * h * b_acc
            centre, b = centre + h * v, b + h * b_dot
            a, b_acc = self._accelerations(state, centre, b, v, b_dot, lo, hi, ext)
            v, b_dot = v + 0.5 * h * a, b_dot + 0.5 * h * b_acc
        return centre, b


@torch.no_grad()
def affine_prior_rollout(initial_positions: Tensor, n_steps: int, external: Tensor, bounds: Tensor,
                         contact: AffineContact) -> Tensor:
    """Roll the affine prior alone out on a window of the ``W`` latest frames (``W`` the frames
    given), positions kept inside the walls after each frame as the learned simulators do.

    Args:
        initial_positions: Tensor,  # [W, N, 3] with W >= 2
        n_steps: frames to predict.
        external: Tensor,  # [3]
        bounds: Tensor,  # [3, 2]
        contact: the object's wall response.

    Returns:
        Tensor,  # [W + n_steps, N, 3]
    """
    if initial_positions.ndim != 3 or initial_positions.shape[0] < 2:
        raise ValueError(f"initial_positions must be [W>=2, N, 3], got {tuple(initial_positions.shape)}")
    w = initial_positions.shape[0]
    frames = list(initial_positions)
    for _ in range(n_steps):
        nxt = contact.step_window(torch.stack(frames[-w:]), external, bounds)
        frames.append(torch.maximum(torch.minimum(nxt, bounds[:, 1]), bounds[:, 0]))
    return torch.stack(frames)


#: Grid searched by :func:`fit_affine_contact` (one field at a time).
DEFAULT_GRID = {"stiffness": (1.0, 2.0, 4.0, 8.0), "damping": (0.0, 0.1, 0.3, 1.0, 3.0),
                "offset": (0.01, 0.02, 0.03), "elastic": (0.5, 1.0, 2.0, 4.0, 8.0),
                "inertia_scale": (1.0, 2.0, 4.0, 8.0), "elastic_damping": (0.0, 0.1, 0.3), "friction": (0.0, 0.25)}

#: Where its coordinate search starts first: the material's own moduli, the compliant contact's
#: stiffness, offset and inertia factor fitted on the varied drops, some contact damping.
DEFAULT_START = {"stiffness": 2.0, "damping": 0.3, "offset": 0.03, "elastic": 1.0, "inertia_scale": 2.0,
                 "elastic_damping": 0.0, "friction": 0.0}

#: Its second start: the compliant contact's constants fitted on the varied drops (no damping) on a
#: body near the rigid limit (the stiffest elasticity of the grid).
RIGID_LIMIT_START = {"stiffness": 2.0, "damping": 0.0, "offset": 0.03, "elastic": 8.0, "inertia_scale": 2.0,
                     "elastic_damping": 0.0, "friction": 0.0}

#: The starts searched by default; the one that ends with the lowest training error wins.
DEFAULT_STARTS = (DEFAULT_START, RIGID_LIMIT_START)


def fit_affine_contact(trajectories: list[Tensor], external, bounds, n_steps: int = 50, grid: dict | None = None,
                       start: dict | None = None, passes: int = 2,
                       starts: list[dict] | tuple[dict, ...] | None = None) -> tuple[AffineContact, float]:
    """Search the constants that make the affine prior roll out closest to the data.

    Same protocol as the other contact fits (each trajectory from its first
    ``INPUT_SEQUENCE_LENGTH`` frames, mean relative RMSE), searched one constant at a time over
    ``grid`` (:func:`operators.contact.coordinate_search_prior`) from each of ``starts``, sharing
    the scores of the combinations already seen, keeping the lowest training error (as
    :func:`operators.compliant_contact.fit_compliant_contact`).

    Args:
        trajectories: positions ``[T, N, 3]`` (e.g. a dataset's training split).
        external: ``[3]`` known acceleration per frame squared.
        bounds: ``[3, 2]`` walls.
        n_steps: predicted frames scored.
        grid: values per field of :class:`AffineContact` (default :data:`DEFAULT_GRID`).
        start: one start instead of ``starts``.
        passes: rounds of each coordinate search.
        starts: start points (default :data:`DEFAULT_STARTS`); a field a start does not name
            begins at :data:`DEFAULT_START`'s value, else at its grid's first, and each value moves
            to the nearest one of its grid; starts that coincide are searched once.

    Returns:
        (best AffineContact, its mean relative RMSE)
    """
    grid = checked_grid(DEFAULT_GRID, grid, AffineContact, "affine contact")
    if start is not None and starts is not None:
        raise ValueError("give start or starts, not both")
    points = [start] if start is not None else list(DEFAULT_STARTS if starts is None else starts)
    names = list(grid)

    def make(*values):
        kw = dict(zip(names, values))
        return AffineContact(**{k: (int(v) if k in ("substeps", "shooting") else float(v)) for k, v in kw.items()})

    return multi_start_search(trajectories, external, bounds, n_steps, grid, [{**DEFAULT_START, **p} for p in points],
                              make, affine_prior_rollout, "the affine contact", passes=passes)
