"""Pressure in random pore networks (Hagen-Poiseuille flow), solved exactly by SciPy.

A network is the Delaunay triangulation of ``n`` random pore centres in a cube
of side ``n^(1/3)`` (unit pore density, so larger networks are genuinely
larger, not finer). Pores get random radii; a throat between pores ``i`` and
``j`` has radius ``r_t = throat_ratio * min(r_i, r_j)`` times a random factor,
length ``L = max(|x_i - x_j| - r_i - r_j, min_length_ratio * |x_i - x_j|)`` and
hydraulic conductance ``g = pi r_t^4 / (8 mu L)``. Pressure is fixed to 1 on
the inlet face (the ``boundary_fraction`` of pores with the smallest x) and 0
on the outlet face (largest x); interior pressures conserve flow,
``sum_j g_ij (p_i - p_j) = 0``, i.e. the reduced Laplacian system
``L_II p_I = -L_IB p_B``, solved by ``scipy.sparse.linalg.spsolve``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from scipy.spatial import Delaunay
from torch_geometric.data import Data

from .sizes import sized_dataset


@dataclass
class PorousConfig:
    """Parameters of a random pore network.

    Attributes:
        radius_range: pore radii, uniform in this range (pore spacing is ~1).
        throat_ratio: throat radius as a fraction of the smaller pore radius.
        throat_jitter: throat radius multiplied by uniform(1 - jitter, 1).
        min_length_ratio: lower bound of throat length as a fraction of the pore distance.
        viscosity: fluid viscosity mu (cancels out of the pressure).
        boundary_fraction: fraction of pores on each of the inlet and outlet faces.
    """

    radius_range: tuple[float, float] = (0.1, 0.35)
    throat_ratio: float = 0.6
    throat_jitter: float = 0.5
    min_length_ratio: float = 0.1
    viscosity: float = 1e-3
    boundary_fraction: float = 0.1


def delaunay_edges(points: np.ndarray) -> np.ndarray:
    """Unique undirected edges ``[M, 2]`` (i < j) of the Delaunay triangulation."""
    tri = Delaunay(points)
    s = tri.simplices
    k = s.shape[1]
    pairs = np.concatenate([s[:, [a, b]] for a in range(k) for b in range(a + 1, k)])
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0)


def solve_pressure(num_nodes: int, edges: np.ndarray, conductance: np.ndarray,
                   inlet: np.ndarray, outlet: np.ndarray) -> np.ndarray:
    """Exact pore pressures ``[N]`` with ``p = 1`` at ``inlet`` and ``p = 0`` at ``outlet``.

    Args:
        num_nodes: N.
        edges: ``[M, 2]`` undirected throats.
        conductance: ``[M]`` positive throat conductances.
        inlet: boolean ``[N]`` mask.
        outlet: boolean ``[N]`` mask.
    """
    if edges.ndim != 2 or edges.shape[1] != 2 or len(edges) == 0:
        raise ValueError(f"edges must be a non-empty [M, 2] array, got shape {edges.shape}")
    if conductance.shape != (len(edges),) or not (conductance > 0).all():
        raise ValueError("conductance must be [M] and positive")
    if not inlet.any() or not outlet.any() or (inlet & outlet).any():
        raise ValueError("inlet and outlet must be non-empty and disjoint")
    i, j = edges[:, 0], edges[:, 1]
    w = sp.coo_matrix((np.r_[conductance, conductance], (np.r_[i, j], np.r_[j, i])),
                      shape=(num_nodes, num_nodes)).tocsr()
    lap = (sp.diags(np.asarray(w.sum(axis=1)).ravel()) - w).tocsr()
    fixed = inlet | outlet
    free = ~fixed
    p = np.zeros(num_nodes)
    p[inlet] = 1.0
    if free.any():
        rhs = -lap[free][:, fixed] @ p[fixed]
        p[free] = np.atleast_1d(spla.spsolve(lap[free][:, free].tocsc(), rhs))
    return p


def make_pore_network(num_pores: int, seed: int, config: PorousConfig | None = None) -> Data:
    """One random pore network with its exact pressure field.

    Returns:
        ``Data`` with ``x: [N, 4]`` (inlet, outlet, interior flags, pore radius),
        ``edge_index: [2, 2M]`` (both directions), ``edge_attr: [2M, 1]``
        (log-conductance standardised within the graph), ``y: [N, 1]`` pressure,
        and raw fields ``pos [N, 3]``, ``conductance [2M]``, ``inlet``/``outlet`` masks.
    """
    if not isinstance(num_pores, (int, np.integer)) or num_pores < 10:
        raise ValueError(f"num_pores must be an int >= 10, got {num_pores!r}")
    c = config or PorousConfig()
    rng = np.random.default_rng(seed)
    side = float(num_pores) ** (1.0 / 3.0)
    pos = rng.uniform(0.0, side, size=(num_pores, 3))
    radius = rng.uniform(*c.radius_range, size=num_pores)
    edges = delaunay_edges(pos)
    i, j = edges[:, 0], edges[:, 1]
    dist = np.linalg.norm(pos[i] - pos[j], axis=1)
    r_t = c.throat_ratio * np.minimum(radius[i], radius[j]) * rng.uniform(
        1.0 - c.throat_jitter, 1.0, size=len(edges))
    length = np.maximum(dist - radius[i] - radius[j], c.min_length_ratio * dist)
    g = np.pi * r_t**4 / (8.0 * c.viscosity * length)
    k = max(1, int(round(c.boundary_fraction * num_pores)))
    order = np.argsort(pos[:, 0])
    inlet = np.zeros(num_pores, bool)
    outlet = np.zeros(num_pores, bool)
    inlet[order[:k]] = True
    outlet[order[-k:]] = True
    p = solve_pressure(num_pores, edges, g, inlet, outlet)

    src, dst = np.r_[i, j], np.r_[j, i]
    g2 = np.r_[g, g]
    logg = np.log(g2)
    std = logg.std() if logg.std() > 0 else 1.0
    x = np.stack([inlet, outlet, ~(inlet | outlet),
                  (radius - np.mean(c.radius_range)) / np.ptp(c.radius_range)], axis=1)
    return Data(
        x=torch.tensor(x, dtype=torch.float32),
        edge_index=torch.tensor(np.stack([src, dst]), dtype=torch.long),
        edge_attr=torch.tensor(((logg - logg.mean()) / std)[:, None], dtype=torch.float32),
        y=torch.tensor(p[:, None], dtype=torch.float32),
        pos=torch.tensor(pos, dtype=torch.float32),
        conductance=torch.tensor(g2, dtype=torch.float64),
        inlet=torch.tensor(inlet),
        outlet=torch.tensor(outlet),
    )


def make_porous_dataset(count: int, size_range: tuple[int, int], seed: int,
                        config: PorousConfig | None = None) -> list[Data]:
    """``count`` networks with pore counts uniform in ``size_range`` (inclusive, >= 10)."""
    return sized_dataset(lambda n, s: make_pore_network(n, s, config), count, size_range, seed,
                         min_size=10)
