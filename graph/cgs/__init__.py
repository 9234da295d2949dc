"""Convergent Graph Solvers (Park et al., ICLR 2022).

An encoder turns a graph into a contracting linear map ``H = gamma A H + b``
(row-normalised attention ``A``, ``gamma < 1``); its unique fixed point is
found by iteration or a sparse solve and differentiated by the implicit
function theorem; a decoder reads it out per node or per graph.

>>> from graph.cgs import CGS, CGSConfig, solve_fixed_point
"""

from .baselines import GCN, GCNConfig
from .fixed_point import (BlockSparse, SolveInfo, check_contraction, solve_fixed_point,
                          solve_unrolled)
from .model import CGS, CGSConfig, count_parameters
from .training import TrainConfig, TrainResult, predict, recalibrate_batch_norm, train

__all__ = [
    "BlockSparse", "CGS", "CGSConfig", "GCN", "GCNConfig", "SolveInfo", "TrainConfig",
    "TrainResult", "check_contraction", "count_parameters", "predict", "recalibrate_batch_norm",
    "solve_fixed_point",
    "solve_unrolled", "train",
]
