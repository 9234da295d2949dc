"""The options of the known prior under a learned simulator's residual, shared by the model configs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PriorOptions:
    """Walls, contact prior and residual options of :class:`operators.simulator.LearnedSimulator`.

    Both :class:`operators.gns.GNSConfig` and :class:`operators.giorom.GIOROMConfig` carry these
    fields (a checkpoint's ``model_config`` dict stores them flat beside the network's).

    Attributes:
        clamp_to_bounds: keep rollout positions inside the walls.
        wall_horizon: wall distance, in radii, where the wall features saturate.
        wall_contact: known wall response under the learned residual, as a dict: the fields of
            :class:`operators.contact.WallContact` (per particle), or ``{"model": "rigid", ...}``
            (:class:`operators.rigid_contact.RigidContact`) or ``{"model": "compliant", ...}``
            (:class:`operators.compliant_contact.CompliantContact`) for an object-level one;
            None: gravity alone.
        residual: ``"free"`` per-particle residual or ``"affine"`` (projected onto
            each object's affine field, :func:`operators.affine.project_affine`).
        contact_gate: wall distance (box units) beyond which an object's residual
            fades to zero (None: the residual acts everywhere).
        residual_scale: factor on the learned residual at rollout (0: the prior alone).
    """

    clamp_to_bounds: bool = False
    wall_horizon: float = 1.0
    wall_contact: dict | None = None
    residual: str = "free"
    contact_gate: float | None = None
    residual_scale: float = 1.0

    def simulator_kwargs(self) -> dict:
        """These options as keyword arguments of :class:`operators.simulator.LearnedSimulator`."""
        return {"clamp_to_bounds": self.clamp_to_bounds, "wall_horizon": self.wall_horizon,
                "wall_contact": self.wall_contact, "residual": self.residual,
                "contact_gate": self.contact_gate, "residual_scale": self.residual_scale}
