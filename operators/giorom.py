"""GIOROM: a reduced-order neural operator on a sparse particle graph.

After "Reduced-Order Neural Operators: Learning Lagrangian Dynamics on
Highly Sparse Graphs" (Viswanath et al.). The time-stepper runs on a sparse
subset of the particles (a few percent up to a third); a discretisation-
agnostic query then evaluates the deformation at any dense set of points
from the sparse state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from graph.build import fps, knn, radius
from graph.conv import InteractionNetwork, KernelIntegral, make_mlp
from operators.contact import contact_for_point_set
from operators.deformation import GradientPlan, deformation_gradients, gradient_plan
from operators.fno import FNO, grid_spacing, regular_grid
from operators.prior_options import PriorOptions


@dataclass
class GIOROMConfig(PriorOptions):
    """Hyper-parameters of :class:`GIOROMNet` and :class:`DenseQuery`.

    Attributes:
        latent: width of node, edge and grid latents.
        mp_before: message-passing steps before the grid.
        mp_after: message-passing steps after the grid.
        grid_size: latent grid nodes per axis.
        modes: Fourier modes per axis.
        fno_layers: Fourier layers.
        grid_radius: point-to-grid radius in grid cells.
        mlp_layers: hidden layers per MLP.
        sparse_fraction: fraction of particles the time-stepper sees.
        sampler: ``"fps"`` (farthest-point) or ``"random"``.
        radius_factor: sparse-graph radius relative to the dense one
            (``None``: scale by ``(1/sparse_fraction)**(1/d)``).
        query_k: sparse neighbours per dense query point.
        query_hidden: hidden width of the query kernel.
        query_affine: the dense query carries each sparse neighbour's locally affine
            motion to the query point (its displacement plus its deformation gradient
            applied to the offset) instead of its displacement alone (3-D only).

    The walls, contact prior and residual options (``clamp_to_bounds``, ``wall_horizon``,
    ``wall_contact``, ``residual``, ``contact_gate``, ``residual_scale``) are those of
    :class:`operators.prior_options.PriorOptions`.
    """

    latent: int = 64
    mp_before: int = 2
    mp_after: int = 2
    grid_size: int = 16
    modes: int = 6
    fno_layers: int = 2
    grid_radius: float = 1.5
    mlp_layers: int = 2
    sparse_fraction: float = 0.1
    sampler: str = "fps"
    radius_factor: float | None = None
    query_k: int = 8
    query_hidden: int = 32
    query_affine: bool = False

    def __post_init__(self):
        if not isinstance(self.query_affine, bool):
            raise ValueError(f"query_affine must be True or False, got {self.query_affine!r}")
        if not 0.0 < self.sparse_fraction <= 1.0:
            raise ValueError(f"sparse_fraction must be in (0, 1], got {self.sparse_fraction}")
        if self.sampler not in ("fps", "random"):
            raise ValueError(f"sampler must be 'fps' or 'random', got {self.sampler!r}")
        if self.grid_size < 2 or self.modes < 1 or self.latent < 1:
            raise ValueError(f"grid_size >= 2, modes >= 1 and latent >= 1 are required, got "
                             f"{self.grid_size}, {self.modes}, {self.latent}")

    def sparse_spacing_factor(self, dim: int) -> float:
        """Particle spacing of the sparse graph over the dense one: ``(1/sparse_fraction)**(1/d)``
        (each sparse node stands for ``1/sparse_fraction`` particles' volume)."""
        return (1.0 / self.sparse_fraction) ** (1.0 / dim)

    def sparse_radius(self, dense_radius: float, dim: int) -> float:
        """Connectivity radius of the sparse graph."""
        factor = self.radius_factor or self.sparse_spacing_factor(dim)
        return dense_radius * factor

    def sparse_simulator_kwargs(self, dim: int) -> dict:
        """:meth:`simulator_kwargs` for the time-stepper on the sparse graph: a prior that
        measures contacts in particle spacings (the granular one) gets the sparse spacing
        (:func:`operators.contact.contact_for_point_set`)."""
        kwargs = self.simulator_kwargs()
        kwargs["wall_contact"] = contact_for_point_set(kwargs["wall_contact"], self.sparse_spacing_factor(dim))
        return kwargs


def sample_sparse(positions: Tensor, fraction: float, sampler: str = "fps",
                  generator: torch.Generator | None = None, random_start: bool = True) -> Tensor:
    """Indices of a sparse subset of the particles.

    Args:
        positions: Tensor,  # [N, d]
        fraction: fraction to keep, in ``(0, 1]``.
        sampler: ``"fps"`` or ``"random"``.

    Returns:
        Tensor,  # [M] sorted indices, M = ceil(fraction * N)
    """
    if positions.ndim != 2 or positions.shape[0] == 0:
        raise ValueError(f"positions must be [N, d] with N >= 1, got {tuple(positions.shape)}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = positions.shape[0]
    if sampler == "fps":
        idx = fps(positions, ratio=fraction, random_start=random_start, generator=generator)
    elif sampler == "random":
        m = max(1, int(-(-fraction * n // 1)))
        idx = torch.randperm(n, generator=generator)[:m].to(positions.device)
    else:
        raise ValueError(f"sampler must be 'fps' or 'random', got {sampler!r}")
    return idx.sort().values


class GIOROMNet(nn.Module):
    """Time-stepper: graph -> normalised accelerations through a latent grid.

    Encoder MLPs, ``mp_before`` interaction networks, a kernel integral from
    the points onto a regular latent grid, a Fourier neural operator on the
    grid, a kernel integral back onto the points (added to the node latents),
    ``mp_after`` interaction networks, and a decoder MLP.

    Args:
        node_in: node feature width.
        edge_in: edge feature width.
        dim: 2 or 3.
        bounds: ``[d, 2]`` domain covered by the grid.
        config: hyper-parameters.
    """

    def __init__(self, node_in: int, edge_in: int, dim: int, bounds, config: GIOROMConfig | None = None):
        super().__init__()
        cfg = config or GIOROMConfig()
        self.config, self.dim = cfg, dim
        bounds = torch.as_tensor(bounds, dtype=torch.float32)
        self.register_buffer("grid", regular_grid(bounds, cfg.grid_size))
        self.cell = grid_spacing(bounds, cfg.grid_size)
        lat = cfg.latent
        self.node_encoder = make_mlp(node_in, lat, lat, cfg.mlp_layers)
        self.edge_encoder = make_mlp(edge_in, lat, lat, cfg.mlp_layers)
        self.before = nn.ModuleList(InteractionNetwork(lat, num_layers=cfg.mlp_layers)
                                    for _ in range(cfg.mp_before))
        self.to_grid = KernelIntegral(lat, lat, dim, hidden_channels=lat // 2, scale=self.cell)
        self.fno = FNO(lat, cfg.modes, dim, cfg.fno_layers)
        self.from_grid = KernelIntegral(lat, lat, dim, hidden_channels=lat // 2, scale=self.cell,
                                        root_weight=True)
        self.after = nn.ModuleList(InteractionNetwork(lat, num_layers=cfg.mlp_layers)
                                   for _ in range(cfg.mp_after))
        self.decoder = make_mlp(lat, lat, dim, cfg.mlp_layers, layer_norm=False)

    def _grid_graph(self, pos: Tensor, batch: Tensor | None, n_graphs: int):
        g = self.grid.shape[0]
        grid_pos = self.grid.repeat(n_graphs, 1)
        grid_batch = torch.arange(n_graphs, device=pos.device).repeat_interleave(g)
        pb = batch if batch is not None else torch.zeros(pos.shape[0], dtype=torch.long, device=pos.device)
        # points -> grid: points within grid_radius cells of each grid node
        pairs = radius(pos, grid_pos, self.config.grid_radius * self.cell, pb, grid_batch)
        to_grid = torch.stack([pairs[1], pairs[0]])
        # grid -> points: the 2**d nearest grid nodes of each point
        pairs = knn(grid_pos, pos, 2 ** self.dim, grid_batch, pb)
        from_grid = torch.stack([pairs[1], pairs[0]])
        return grid_pos, to_grid, from_grid

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor, pos: Tensor,
                batch: Tensor | None = None) -> Tensor:
        """Args:
            x: Tensor,  # [M, node_in] sparse-node features
            edge_index: Tensor,  # [2, E] sparse graph
            edge_attr: Tensor,  # [E, edge_in]
            pos: Tensor,  # [M, d] current positions
            batch: Tensor | None,  # [M] example index

        Returns:
            Tensor,  # [M, d] normalised accelerations
        """
        n_graphs = int(batch.max()) + 1 if batch is not None and batch.numel() else 1
        h, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        for layer in self.before:
            h, e = layer(h, edge_index, e)
        grid_pos, to_grid, from_grid = self._grid_graph(pos, batch, n_graphs)
        v = self.to_grid(h, (pos, grid_pos), to_grid)
        size = self.config.grid_size
        v = v.reshape((n_graphs,) + (size,) * self.dim + (-1,)).movedim(-1, 1)
        v = self.fno(v).movedim(1, -1).reshape(n_graphs * size ** self.dim, -1)
        h = h + self.from_grid(v, (grid_pos, pos), from_grid, x_dst=h)
        for layer in self.after:
            h, e = layer(h, edge_index, e)
        return self.decoder(h)


@dataclass
class QueryPlan:
    """Precomputed neighbours and kernel weights of a dense query.

    Attributes:
        edge_index: Tensor,  # [2, E] (sparse index, query index)
        weights: Tensor,  # [E, d]
        n_sparse: number of sparse points.
        n_query: number of query points.
        gradients: GradientPlan | None: the sparse points' deformation-gradient plan, affine query
        offsets: Tensor | None,  # [E, d] query minus sparse reference position, affine query
    """

    edge_index: Tensor
    weights: Tensor
    n_sparse: int
    n_query: int
    gradients: GradientPlan | None = None
    offsets: Tensor | None = None


class DenseQuery(nn.Module):
    r"""Discretisation-agnostic evaluation of a sparse deformation.

    The displacement of a query point :math:`\mathbf{y}` (given in the
    reference configuration) is a kernel integral over its ``k`` nearest
    sparse points in the reference configuration:

    .. math:: \mathbf{u}(\mathbf{y}) = \sum_j a_j(\mathbf{y}) \odot \mathbf{V}\mathbf{u}_j,
        \qquad \mathbf{x}(\mathbf{y}) = \mathbf{y} + \mathbf{u}(\mathbf{y})

    with softmax-normalised kernel weights :math:`a_j` (a learned
    interpolation; a constant displacement is reproduced exactly while
    :math:`\mathbf{V}` is the identity, its initial value). The weights depend
    only on the reference positions, so :meth:`plan` runs once per point set
    and every frame costs one gather-scale-scatter (:meth:`apply`).

    With ``affine``, each sparse neighbour contributes its locally affine motion
    at the query point, :math:`\mathbf{u}_j + (\mathbf{F}_j - \mathbf{I})(\mathbf{y} - \mathbf{X}_j)`,
    with :math:`\mathbf{F}_j` the least-squares deformation gradient of the sparse
    motion around point :math:`j`; a rotation or a stretch of the sparse points is
    then carried exactly to query points between or beyond them.

    Args:
        dim: 2 or 3.
        k: sparse neighbours per query point.
        hidden: hidden width of the kernel MLP.
        scale: length scale of the kernel (about the sparse spacing).
        affine: carry the sparse points' locally affine motion (3-D only).
    """

    def __init__(self, dim: int, k: int = 8, hidden: int = 32, scale: float = 1.0, affine: bool = False):
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if affine and dim != 3:
            raise ValueError(f"an affine dense query needs 3-D points, got dim {dim}")
        self.dim, self.k, self.affine = dim, k, affine
        self.kernel = KernelIntegral(dim, dim, dim, hidden_channels=hidden, normalize="softmax",
                                     scale=scale, bias=False)
        with torch.no_grad():
            self.kernel.value.weight.copy_(torch.eye(dim))

    def plan(self, sparse_reference: Tensor, query_reference: Tensor) -> QueryPlan:
        """Neighbours and weights from the sparse to the query points.

        Args:
            sparse_reference: Tensor,  # [M, d]
            query_reference: Tensor,  # [Q, d]
        """
        for name, p in (("sparse_reference", sparse_reference), ("query_reference", query_reference)):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
            if p.ndim != 2 or p.shape[1] != self.dim or p.shape[0] == 0:
                raise ValueError(f"{name} must be [N, {self.dim}] with N >= 1, got {tuple(p.shape)}")
            if not torch.isfinite(p).all():
                raise ValueError(f"{name} contains NaN or Inf")
        pairs = knn(sparse_reference, query_reference, self.k)
        edge_index = torch.stack([pairs[1], pairs[0]])
        weights = self.kernel.kernel_weights(sparse_reference, query_reference, edge_index)
        plan = QueryPlan(edge_index, weights, sparse_reference.shape[0], query_reference.shape[0])
        if self.affine:
            plan.gradients = gradient_plan(sparse_reference)
            plan.offsets = query_reference[edge_index[1]] - sparse_reference[edge_index[0]]
        return plan

    def apply(self, plan: QueryPlan, sparse_displacement: Tensor) -> Tensor:
        """Query displacements ``[Q, d]`` from sparse displacements ``[M, d]``."""
        if sparse_displacement.shape != (plan.n_sparse, self.dim):
            raise ValueError(f"sparse_displacement must be [{plan.n_sparse}, {self.dim}], "
                             f"got {tuple(sparse_displacement.shape)}")
        if self.affine:
            return self._apply_affine(plan, sparse_displacement)
        dummy = (sparse_displacement.new_empty(plan.n_sparse, self.dim),
                 sparse_displacement.new_empty(plan.n_query, self.dim))
        return self.kernel(sparse_displacement, dummy, plan.edge_index, weights=plan.weights)

    def _apply_affine(self, plan: QueryPlan, sparse_displacement: Tensor) -> Tensor:
        if plan.offsets is None:
            raise ValueError("an affine dense query needs a plan made by an affine query")
        src, dst = plan.edge_index
        # the least-squares gradient of the displacement field: F - I, since F(X + u) = I + grad u
        strain = deformation_gradients(plan.gradients, sparse_displacement).to(sparse_displacement.dtype)
        values = sparse_displacement[src] + (strain[src] @ plan.offsets[..., None]).squeeze(-1)  # [E, d]
        out = sparse_displacement.new_zeros(plan.n_query, self.dim)
        return out.index_add_(0, dst, plan.weights * self.kernel.value(values))

    def forward(self, sparse_reference: Tensor, sparse_positions: Tensor,
                query_reference: Tensor) -> Tensor:
        """Dense positions ``[Q, d]`` from the sparse positions ``[M, d]``."""
        plan = self.plan(sparse_reference, query_reference)
        return query_reference + self.apply(plan, sparse_positions - sparse_reference)
