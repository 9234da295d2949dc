"""Message-passing layers of the CGS encoder, one per file."""

from .cgs_attention_conv import CGSAttentionConv
from .edge_mlp_conv import EdgeMLPConv, mlp

__all__ = ["CGSAttentionConv", "EdgeMLPConv", "mlp"]
