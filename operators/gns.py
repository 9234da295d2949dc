"""Graph Network-based Simulator: encode, process, decode."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from graph.conv import InteractionNetwork, make_mlp
from operators.prior_options import PriorOptions


@dataclass
class GNSConfig(PriorOptions):
    """Hyper-parameters of :class:`GNS` (the paper uses latent 128, 10 steps).

    Attributes:
        latent: width of node and edge latents.
        mp_steps: message-passing (processor) steps.
        mlp_layers: hidden layers per MLP.

    The walls, contact prior and residual options (``clamp_to_bounds``, ``wall_horizon``,
    ``wall_contact``, ``residual``, ``contact_gate``, ``residual_scale``) are those of
    :class:`operators.prior_options.PriorOptions`.
    """

    latent: int = 128
    mp_steps: int = 10
    mlp_layers: int = 2


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
