"""Learned Lagrangian simulator: the physics around a learned network.

As DeepMind's ``LearnedSimulator`` in learning_to_simulate: the simulator
owns normalisation, feature and graph building and semi-implicit Euler
integration; the network only maps a graph to normalised accelerations.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from graph.build import radius_graph
from operators.affine import project_affine
from operators.contact import WallContact, contact_from_dict, contact_models
from operators.features import (INPUT_SEQUENCE_LENGTH, NUM_PARTICLE_TYPES, Normalization,
                                edge_features, node_features)


def check_positions(name: str, positions: Tensor, dim: int, ndim: int) -> None:
    """Raise a clear error for a malformed position tensor."""
    if not isinstance(positions, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(positions).__name__}")
    if positions.ndim != ndim or positions.shape[-1] != dim:
        want = "[N, W, d]" if ndim == 3 else "[N, d]"
        raise ValueError(f"{name} must be {want} with d={dim}, got shape {tuple(positions.shape)}")
    if positions.shape[0] == 0:
        raise ValueError(f"{name} has 0 particles; need at least 1")
    if not torch.isfinite(positions).all():
        raise ValueError(f"{name} contains NaN or Inf")


class LearnedSimulator(nn.Module):
    """Normalisation, features, graph and integration around a network.

    Args:
        network: maps ``(x [N, F], edge_index [2, E], edge_attr [E, d+1],
            pos [N, d], batch [N] | None)`` to normalised accelerations ``[N, d]``.
        dim: spatial dimension (2 or 3).
        radius: connectivity radius of the particle graph.
        bounds: ``[d, 2]`` lower and upper wall per dimension.
        stats: velocity/acceleration statistics.
        type_embedding_dim: width of the particle-type embedding.
        max_num_neighbors: cap on incoming edges per particle.
        external_acceleration: ``[d]`` known acceleration per frame squared in data
            units (gravity, ``-g dt^2`` along up), or None. When given, the network
            predicts only the residual (contact and internal forces) on top of it,
            ``stats`` normalise that residual, and the decoder's output layer starts
            at zero so an untrained model falls freely.
        clamp_to_bounds: keep predicted positions inside ``bounds`` (the walls a
            solver such as MPM never lets particles cross).
        wall_horizon: distance to the walls, in radii, at which the wall features
            saturate (GNS: 1). Fast objects and solvers whose walls act over a layer
            of grid cells need a longer horizon to see the wall before the impact.
        wall_contact: known wall response (restitution, friction) added to the
            prior under the learned residual, or None (see :mod:`operators.contact`);
            ``{"model": "rigid", ...}`` or a ``RigidContact`` answers contacts on the
            whole object's rigid motion instead (:mod:`operators.rigid_contact`), and
            ``{"model": "compliant", ...}`` or a ``CompliantContact`` with spring-dampers
            on it (:mod:`operators.compliant_contact`); these two treat each batch
            entry (``batch``), or the whole window without one, as one object.
        residual: ``"free"`` (one acceleration per particle, as GNS) or ``"affine"``
            (the network's output projected onto each object's affine field,
            :func:`operators.affine.project_affine`; one object per batch entry).
        contact_gate: if set (box units), the residual of an object is scaled by
            ``max(0, 1 - d / contact_gate)`` with ``d`` its particles' least distance
            to a wall: free flight is then exactly the prior, and the network only
            corrects contacts (one object per batch entry).
        residual_scale: factor on the learned residual (1: as trained; 0: the prior
            alone). Chosen on a validation split when the residual hurts rollouts.
    """

    def __init__(self, network: nn.Module, dim: int, radius: float, bounds, stats: Normalization,
                 type_embedding_dim: int = 16, max_num_neighbors: int | None = 32,
                 external_acceleration=None, clamp_to_bounds: bool = False,
                 wall_horizon: float = 1.0, wall_contact: WallContact | dict | None = None,
                 residual: str = "free", contact_gate: float | None = None,
                 residual_scale: float = 1.0):
        super().__init__()
        if not residual_scale >= 0:
            raise ValueError(f"residual_scale must be >= 0, got {residual_scale!r}")
        self.residual_scale = float(residual_scale)
        if contact_gate is not None and not contact_gate > 0:
            raise ValueError(f"contact_gate must be positive or None, got {contact_gate!r}")
        self.contact_gate = None if contact_gate is None else float(contact_gate)
        if residual not in ("free", "affine"):
            raise ValueError(f"residual must be 'free' or 'affine', got {residual!r}")
        self.residual = residual
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        if radius <= 0:
            raise ValueError(f"radius must be positive, got {radius}")
        bounds = torch.as_tensor(bounds, dtype=torch.float32)
        if bounds.shape != (dim, 2):
            raise ValueError(f"bounds must be [{dim}, 2], got {tuple(bounds.shape)}")
        self.network = network
        self.dim = dim
        self.radius = float(radius)
        self.max_num_neighbors = max_num_neighbors
        self.register_buffer("bounds", bounds)
        for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
            self.register_buffer(key, getattr(stats, key).float().clone())
        ext = torch.zeros(dim) if external_acceleration is None else torch.as_tensor(
            external_acceleration, dtype=torch.float32).reshape(-1)
        if ext.shape != (dim,) or not torch.isfinite(ext).all():
            raise ValueError(f"external_acceleration must be {dim} finite numbers, got {external_acceleration!r}")
        self.register_buffer("external_acceleration", ext, persistent=False)
        self.clamp_to_bounds = bool(clamp_to_bounds)
        if not wall_horizon > 0:
            raise ValueError(f"wall_horizon must be positive, got {wall_horizon}")
        self.wall_horizon = float(wall_horizon)
        if isinstance(wall_contact, dict):
            wall_contact = contact_from_dict(wall_contact)
        if wall_contact is not None and not isinstance(wall_contact, tuple(contact_models().values())):
            raise TypeError("wall_contact must be a WallContact, a RigidContact, a CompliantContact, a dict "
                            f"or None, got {type(wall_contact).__name__}")
        self.wall_contact = wall_contact
        self.type_embedding = nn.Embedding(NUM_PARTICLE_TYPES, type_embedding_dim)
        if external_acceleration is not None:
            _zero_output_layer(network)

    @staticmethod
    def num_node_features(dim: int, type_embedding_dim: int = 16) -> int:
        """Width of the node features the network receives."""
        return (INPUT_SEQUENCE_LENGTH - 1) * dim + 2 * dim + type_embedding_dim

    @property
    def stats(self) -> Normalization:
        return Normalization(self.vel_mean, self.vel_std, self.acc_mean, self.acc_std)

    def graph_inputs(self, position_sequence: Tensor, particle_type: Tensor,
                     batch: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Node features, edges and edge features of the current state.

        Args:
            position_sequence: Tensor,  # [N, W, d]
            particle_type: Tensor,  # [N] int
            batch: Tensor | None,  # [N] example index

        Returns:
            (x [N, F], edge_index [2, E], edge_attr [E, d+1])
        """
        last = position_sequence[:, -1]
        edge_index = radius_graph(last, self.radius, batch=batch,
                                  max_num_neighbors=self.max_num_neighbors)
        x = torch.cat([node_features(position_sequence, self.stats, self.bounds, self.radius,
                                     self.wall_horizon),
                       self.type_embedding(particle_type.long())], dim=-1)
        return x, edge_index, edge_features(last, edge_index, self.radius)

    def forward(self, position_sequence: Tensor, particle_type: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """Normalised acceleration of every particle.

        Args:
            position_sequence: Tensor,  # [N, W, d]
            particle_type: Tensor,  # [N]

        Returns:
            Tensor,  # [N, d]
        """
        check_positions("position_sequence", position_sequence, self.dim, 3)
        if particle_type.shape != position_sequence.shape[:1]:
            raise ValueError(f"particle_type must be [{position_sequence.shape[0]}], "
                             f"got {tuple(particle_type.shape)}")
        x, edge_index, edge_attr = self.graph_inputs(position_sequence, particle_type, batch)
        out = self.network(x, edge_index, edge_attr, position_sequence[:, -1], batch)
        if self.residual == "affine":
            out = project_affine(out, position_sequence[:, -1], batch)
        if self.contact_gate is not None:
            out = out * self.contact_weight(position_sequence[:, -1], batch)[:, None]
        return out if self.residual_scale == 1.0 else out * self.residual_scale

    def contact_weight(self, position: Tensor, batch: Tensor | None = None) -> Tensor:
        """``[N]`` weight of the residual: 1 for objects touching a wall, falling to 0 at
        ``contact_gate`` from the walls; all particles of an object share its largest one."""
        dist = torch.minimum(position - self.bounds[:, 0], self.bounds[:, 1] - position).min(-1).values
        near = (1.0 - dist / self.contact_gate).clamp(0.0, 1.0)
        if batch is None:
            return near.max().expand_as(near)
        n_obj = int(batch.max()) + 1
        per_obj = near.new_zeros(n_obj).scatter_reduce(0, batch, near, reduce="amax", include_self=True)
        return per_obj[batch]

    def integrate(self, normalized_acceleration: Tensor | None, position_sequence: Tensor,
                  batch: Tensor | None = None) -> Tensor:
        """Semi-implicit Euler step from a normalised acceleration.

        Args:
            normalized_acceleration: Tensor | None,  # [N, d]; None: the prior alone
            position_sequence: Tensor,  # [N, W, d]
            batch: Tensor | None,  # [N] example index (objects of an object-level prior)

        Returns:
            Tensor,  # [N, d] next positions
        """
        acc = self.prior_acceleration(position_sequence, batch)
        if normalized_acceleration is not None:
            acc = acc + normalized_acceleration * self.acc_std + self.acc_mean
        last = position_sequence[:, -1]
        velocity = last - position_sequence[:, -2] + acc
        return last + velocity

    def normalized_acceleration(self, next_position: Tensor, position_sequence: Tensor,
                                batch: Tensor | None = None) -> Tensor:
        """Inverse of :meth:`integrate`: the normalised acceleration that
        leads from ``position_sequence`` to ``next_position``."""
        prev_vel = position_sequence[:, -1] - position_sequence[:, -2]
        next_vel = next_position - position_sequence[:, -1]
        prior = self.prior_acceleration(position_sequence, batch)
        return (next_vel - prev_vel - prior - self.acc_mean) / self.acc_std

    def prior_acceleration(self, position_sequence: Tensor, batch: Tensor | None = None) -> Tensor:
        """Known acceleration ``[N, d]`` under the learned residual: the external one
        (gravity), plus the wall response when ``wall_contact`` is set (an object-level
        response per batch entry)."""
        if self.wall_contact is None:
            return self.external_acceleration.expand_as(position_sequence[:, -1])
        contact, ext = self.wall_contact, self.external_acceleration
        if batch is None or isinstance(contact, WallContact):
            return contact.acceleration(position_sequence, ext, self.bounds)
        acc = torch.empty_like(position_sequence[:, -1])
        for b in torch.unique(batch):
            sel = batch == b
            acc[sel] = contact.acceleration(position_sequence[sel], ext, self.bounds)
        return acc

    def predict_positions(self, position_sequence: Tensor, particle_type: Tensor,
                          batch: Tensor | None = None) -> Tensor:
        """Next positions ``[N, d]`` from a window ``[N, W, d]`` (inside the walls with
        ``clamp_to_bounds``). At ``residual_scale`` 0 the network is not evaluated: the prior alone."""
        learned = None if self.residual_scale == 0 else self(position_sequence, particle_type, batch)
        nxt = self.integrate(learned, position_sequence, batch)
        if self.clamp_to_bounds:
            nxt = torch.maximum(torch.minimum(nxt, self.bounds[:, 1]), self.bounds[:, 0])
        return nxt

    def training_targets(self, next_position: Tensor, position_sequence: Tensor,
                         noise: Tensor, particle_type: Tensor,
                         batch: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Predicted and target normalised accelerations on a noisy window.

        The target is corrected so that the noise on the last input position
        is not learnt as acceleration: the next position is shifted by the
        same noise (GNS).

        Args:
            next_position: Tensor,  # [N, d]
            position_sequence: Tensor,  # [N, W, d]
            noise: Tensor,  # [N, W, d]

        Returns:
            (predicted [N, d], target [N, d])
        """
        noisy = position_sequence + noise
        predicted = self(noisy, particle_type, batch)
        target = self.normalized_acceleration(next_position + noise[:, -1], noisy, batch)
        return predicted, target


def _zero_output_layer(network: nn.Module) -> None:
    """Zero the last linear layer of ``network.decoder`` (a residual that starts at 0)."""
    decoder = getattr(network, "decoder", None)
    layers = [m for m in decoder.modules() if isinstance(m, nn.Linear)] if decoder is not None else []
    if layers:
        with torch.no_grad():
            layers[-1].weight.zero_()
            layers[-1].bias.zero_()
