"""Message-passing layers, one per module."""

from graph.conv.interaction_network import InteractionNetwork
from graph.conv.kernel_integral import KernelIntegral
from graph.conv.mlp import make_mlp

__all__ = ["InteractionNetwork", "KernelIntegral", "make_mlp"]
