"""Message-passing layers of the CGS encoder, one per file."""

from .cgs_attention_conv import CGSAttentionConv
from .edge_mlp_conv import EdgeMLPConv, mlp
from .gin_block import GINBlock, gin_mlp

__all__ = ["CGSAttentionConv", "EdgeMLPConv", "GINBlock", "gin_mlp", "mlp"]
