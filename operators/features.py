"""Input features of the learned simulators (GNS conventions).

Positions are in the dataset's units and velocities/accelerations are finite
differences per frame (``dt`` is absorbed), as in "Learning to Simulate
Complex Physics with Graph Networks" (Sanchez-Gonzalez et al., 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

#: Positions per input window: 6 positions give the 5 past velocities.
INPUT_SEQUENCE_LENGTH = 6
#: Particle type whose motion is prescribed (walls, moving obstacles).
KINEMATIC_PARTICLE = 3
#: Size of the particle-type vocabulary (GNS uses 9).
NUM_PARTICLE_TYPES = 9


@dataclass
class Normalization:
    """Velocity and acceleration statistics (per dimension) used to normalise.

    Attributes:
        vel_mean: Tensor,  # [d]
        vel_std: Tensor,  # [d]
        acc_mean: Tensor,  # [d]
        acc_std: Tensor,  # [d]
    """

    vel_mean: Tensor
    vel_std: Tensor
    acc_mean: Tensor
    acc_std: Tensor

    @classmethod
    def from_metadata(cls, metadata: dict, noise_std: float = 0.0,
                      external_acceleration=None) -> "Normalization":
        """Statistics from a GNS ``metadata.json``; the noise variance is added
        to the standard deviations as in GNS so noisy inputs stay well scaled.

        With ``external_acceleration`` (``[d]``, e.g. gravity per frame squared)
        the acceleration statistics describe the residual ``a - external``: mean 0
        and, as scale, its root mean square, so a free-falling particle's target is 0.
        """
        dim = int(metadata["dim"])
        vals = {}
        for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
            if key not in metadata:
                raise ValueError(f"metadata is missing {key!r}")
            v = torch.as_tensor(metadata[key], dtype=torch.float32).reshape(-1)
            if v.numel() == 1:
                v = v.expand(dim).clone()
            if v.shape != (dim,) or not torch.isfinite(v).all():
                raise ValueError(f"metadata[{key!r}] must be {dim} finite numbers, got {metadata[key]!r}")
            vals[key] = v
        if external_acceleration is not None:
            ext = torch.as_tensor(external_acceleration, dtype=torch.float32).reshape(-1)
            if ext.shape != (dim,) or not torch.isfinite(ext).all():
                raise ValueError(f"external_acceleration must be {dim} finite numbers, "
                                 f"got {external_acceleration!r}")
            vals["acc_std"] = torch.sqrt(vals["acc_std"] ** 2 + (vals["acc_mean"] - ext) ** 2)
            vals["acc_mean"] = torch.zeros(dim)
        for key in ("vel_std", "acc_std"):
            vals[key] = torch.sqrt(vals[key] ** 2 + noise_std ** 2).clamp(min=1e-12)
        return cls(**vals)

    def as_dict(self) -> dict[str, list[float]]:
        return {k: getattr(self, k).tolist() for k in ("vel_mean", "vel_std", "acc_mean", "acc_std")}


def velocities(position_sequence: Tensor) -> Tensor:
    """Finite-difference velocities of a window.

    Args:
        position_sequence: Tensor,  # [N, W, d]

    Returns:
        Tensor,  # [N, W-1, d]
    """
    return position_sequence[:, 1:] - position_sequence[:, :-1]


def node_features(position_sequence: Tensor, stats: Normalization, bounds: Tensor,
                  radius: float, wall_horizon: float = 1.0) -> Tensor:
    """Per-particle features without the type embedding.

    Normalised past velocities, and the distances to the lower and upper
    walls divided by ``wall_horizon`` connectivity radii and clipped to ``[-1, 1]``.

    Args:
        position_sequence: Tensor,  # [N, W, d]
        stats: normalisation statistics.
        bounds: Tensor,  # [d, 2] (lower, upper) per dimension
        radius: connectivity radius.
        wall_horizon: wall distance (in radii) where the wall features saturate.

    Returns:
        Tensor,  # [N, (W-1)*d + 2*d]
    """
    n, _, d = position_sequence.shape
    vel = (velocities(position_sequence) - stats.vel_mean) / stats.vel_std
    last = position_sequence[:, -1]
    reach = radius * wall_horizon
    lower = ((last - bounds[:, 0]) / reach).clamp(-1.0, 1.0)
    upper = ((bounds[:, 1] - last) / reach).clamp(-1.0, 1.0)
    return torch.cat([vel.reshape(n, -1), lower, upper], dim=-1)


def edge_features(positions: Tensor, edge_index: Tensor, radius: float) -> Tensor:
    """Relative displacement and distance of each edge, in units of the radius.

    Args:
        positions: Tensor,  # [N, d]
        edge_index: Tensor,  # [2, E] (source, target)
        radius: connectivity radius.

    Returns:
        Tensor,  # [E, d + 1]
    """
    src, dst = edge_index
    rel = (positions[src] - positions[dst]) / radius
    return torch.cat([rel, rel.norm(dim=-1, keepdim=True)], dim=-1)


def random_walk_noise(position_sequence: Tensor, noise_std_last_step: float,
                      generator: torch.Generator | None = None) -> Tensor:
    """Random-walk noise for a window of positions (GNS training noise).

    Velocity noise is a random walk whose last step has standard deviation
    ``noise_std_last_step``; position noise integrates it, with no noise on
    the first position.

    Args:
        position_sequence: Tensor,  # [N, W, d]

    Returns:
        Tensor,  # [N, W, d] noise to add to the positions
    """
    n, w, d = position_sequence.shape
    steps = w - 1
    vel_noise = torch.randn(n, steps, d, generator=generator, dtype=position_sequence.dtype)
    vel_noise = vel_noise.to(position_sequence.device) * (noise_std_last_step / steps ** 0.5)
    vel_noise = vel_noise.cumsum(dim=1)
    pos_noise = vel_noise.cumsum(dim=1)
    return torch.cat([torch.zeros_like(pos_noise[:, :1]), pos_noise], dim=1)
