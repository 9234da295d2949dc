"""Graph Network-based Simulator: encode, process, decode."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from graph.conv import InteractionNetwork, make_mlp


@dataclass
class GNSConfig:
    """Hyper-parameters of :class:`GNS` (the paper uses latent 128, 10 steps).

    Attributes:
        latent: width of node and edge latents.
        mp_steps: message-passing (processor) steps.
        mlp_layers: hidden layers per MLP.
        clamp_to_bounds: keep rollout positions inside the walls.
        wall_horizon: wall distance, in radii, where the wall features saturate.
        wall_contact: known wall response under the learned residual
            (:class:`operators.contact.WallContact` fields), or None.
        residual: ``"free"`` per-particle residual or ``"affine"`` (projected onto
            each object's affine field, :func:`operators.affine.project_affine`).
        contact_gate: wall distance (box units) beyond which an object's residual
            fades to zero (None: the residual acts everywhere).
        residual_scale: factor on the learned residual at rollout (0: the prior alone).
    """

    latent: int = 128
    mp_steps: int = 10
    mlp_layers: int = 2
    clamp_to_bounds: bool = False
    wall_horizon: float = 1.0
    wall_contact: dict | None = None
    residual: str = "free"
    contact_gate: float | None = None
    residual_scale: float = 1.0


class GNS(nn.Module):
    """Encode-process-decode network of "Learning to Simulate Complex Physics
    with Graph Networks" (Sanchez-Gonzalez et al., 2020).

    Node and edge features are encoded by MLPs, processed by ``mp_steps``
    interaction networks with residuals (unshared weights) and decoded to a
    normalised acceleration.

    Args:
        node_in: node feature width.
        edge_in: edge feature width.
        dim: output dimension (2 or 3).
        config: hyper-parameters.
    """

    def __init__(self, node_in: int, edge_in: int, dim: int, config: GNSConfig | None = None):
        super().__init__()
        cfg = config or GNSConfig()
        if cfg.latent < 1 or cfg.mp_steps < 1:
            raise ValueError(f"latent and mp_steps must be >= 1, got {cfg.latent}, {cfg.mp_steps}")
        self.config = cfg
        self.node_encoder = make_mlp(node_in, cfg.latent, cfg.latent, cfg.mlp_layers)
        self.edge_encoder = make_mlp(edge_in, cfg.latent, cfg.latent, cfg.mlp_layers)
        self.processor = nn.ModuleList(
            InteractionNetwork(cfg.latent, num_layers=cfg.mlp_layers) for _ in range(cfg.mp_steps))
        self.decoder = make_mlp(cfg.latent, cfg.latent, dim, cfg.mlp_layers, layer_norm=False)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, pos: Tensor | None = None,
                batch: Tensor | None = None) -> Tensor:
        """Args:
            x: Tensor,  # [N, node_in]
            edge_index: Tensor,  # [2, E]
            edge_attr: Tensor,  # [E, edge_in]
            pos, batch: unused (the simulator's common interface).

        Returns:
            Tensor,  # [N, dim] normalised accelerations
        """
        h, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        for layer in self.processor:
            h, e = layer(h, edge_index, e)
        return self.decoder(h)
