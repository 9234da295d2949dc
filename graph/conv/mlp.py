"""Small multi-layer perceptron shared by the message-passing layers."""

from __future__ import annotations

from torch import nn


def make_mlp(in_channels: int, hidden_channels: int, out_channels: int,
             num_layers: int = 2, layer_norm: bool = True) -> nn.Sequential:
    """ReLU MLP with ``num_layers`` hidden layers, optionally ending in a LayerNorm.

    This is the MLP of "Learning to Simulate Complex Physics with Graph
    Networks" (Sanchez-Gonzalez et al., 2020): hidden ReLU layers, a linear
    output and a LayerNorm on every latent (not on the decoder).

    Args:
        in_channels: input width.
        hidden_channels: width of each hidden layer.
        out_channels: output width.
        num_layers: number of hidden layers (>= 0).
        layer_norm: append ``nn.LayerNorm(out_channels)``.
    """
    if num_layers < 0:
        raise ValueError(f"num_layers must be >= 0, got {num_layers}")
    layers: list[nn.Module] = []
    width = in_channels
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_channels), nn.ReLU()]
        width = hidden_channels
    layers.append(nn.Linear(width, out_channels))
    if layer_norm:
        layers.append(nn.LayerNorm(out_channels))
    return nn.Sequential(*layers)


def reset_mlp(mlp: nn.Sequential) -> None:
    """Re-initialise every layer of an MLP made by :func:`make_mlp`."""
    for m in mlp:
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
