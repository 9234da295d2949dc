"""Fixed points of input-dependent contracting linear maps on graphs.

The map is ``T(H) = W H + b`` per head, where ``W`` is a sparse ``[N, N]``
matrix given by one weight per edge and head (``W[dst, src] = weight[e]``) and
``||W||_inf < 1``, so ``T`` is a contraction in the max-norm and has exactly
one fixed point ``H* = (I - W)^{-1} b``.

:func:`solve_fixed_point` finds ``H*`` by iteration (or a direct sparse LU
solve) and differentiates it by the implicit function theorem: the backward
pass solves the adjoint fixed point ``g = W^T g + dL/dH`` and returns
``dL/db = g`` and ``dL/dW[i, j] = g_i H*_j``. The forward iterations are never
recorded by autograd. :func:`solve_unrolled` is the baseline that back-propagates
through a fixed number of iterations instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor

SOLVERS = ("iterate", "direct")


@dataclass
class SolveInfo:
    """What a solve did; filled in by the forward and, later, the backward pass."""

    forward_iterations: int = 0
    forward_residual: float = float("nan")
    backward_iterations: int = 0
    backward_residual: float = float("nan")
    converged: bool = True
    history: list = field(default_factory=list)


class BlockSparse:
    """The block-diagonal ``[H*N, H*N]`` CSR layout of per-head edge weights.

    Built once per graph batch; ``matrix(weight)`` and ``matrix_t(weight)``
    then give ``W`` and ``W^T`` for any weights on the same edges.

    Args:
        edge_index: ``[2, E]`` (source, target) pairs.
        num_nodes: N.
        heads: H.
    """

    def __init__(self, edge_index: Tensor, num_nodes: int, heads: int):
        src, dst = edge_index[0].long(), edge_index[1].long()
        self.n, self.heads, self.num_edges = num_nodes, heads, src.numel()
        self.src, self.dst = src, dst
        # Head h occupies rows/cols [h*N, (h+1)*N), so sorting the E edges once
        # by (row, col) sorts every head's block, and blocks follow in order.
        self._layout = self._csr_layout(dst, src)
        self._layout_t = self._csr_layout(src, dst)

    def _csr_layout(self, rows: Tensor, cols: Tensor):
        n, heads, e = self.n, self.heads, self.num_edges
        perm = torch.argsort(rows * n + cols, stable=True)  # [E]
        counts = torch.bincount(rows, minlength=n)  # [N] entries per row
        per_head = torch.cumsum(counts, 0)  # [N]
        head = torch.arange(heads, device=rows.device)[:, None]  # [H, 1]
        crow = torch.cat([rows.new_zeros(1), (per_head[None, :] + head * e).reshape(-1)])
        col = (cols[perm][None, :] + head * n).reshape(-1)  # [H*E]
        order = (perm[None, :] + head * e).reshape(-1)  # into the head-major [H*E] values
        return crow, col.contiguous(), order

    def _build(self, weight: Tensor, layout) -> Tensor:
        crow, col, order = layout
        vals = weight.t().reshape(-1)[order]  # [H*E] head-major, in CSR order
        size = self.heads * self.n
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.sparse_csr_tensor(crow, col, vals, (size, size),
                                           check_invariants=False)

    def matrix(self, weight: Tensor) -> Tensor:
        """``W`` as a CSR tensor, from ``weight: [E, H]``."""
        return self._build(weight, self._layout)

    def matrix_t(self, weight: Tensor) -> Tensor:
        """``W^T`` as a CSR tensor, from ``weight: [E, H]``."""
        return self._build(weight, self._layout_t)

    def flat(self, x: Tensor) -> Tensor:
        """``[N, H]`` -> ``[H*N, 1]`` (head-major)."""
        return x.t().reshape(-1, 1)

    def unflat(self, x: Tensor) -> Tensor:
        """``[H*N, 1]`` -> ``[N, H]``."""
        return x.reshape(self.heads, self.n).t()

    def edge_outer(self, left: Tensor, right: Tensor) -> Tensor:
        """Per-edge product ``left[dst] * right[src]``: ``[E, H]`` (grad of ``W`` entries)."""
        return left[self.dst] * right[self.src]

    def scipy_system(self, weight: Tensor) -> sp.csc_matrix:
        """``I - W`` as a SciPy sparse matrix (float64), for direct solves."""
        w = weight.detach().double().cpu().t().reshape(-1).numpy()
        offs = (np.arange(self.heads) * self.n)[:, None]
        rows = (self.dst.cpu().numpy()[None, :] + offs).reshape(-1)
        cols = (self.src.cpu().numpy()[None, :] + offs).reshape(-1)
        size = self.heads * self.n
        mat = sp.coo_matrix((w, (rows, cols)), shape=(size, size))
        return (sp.identity(size, format="csc") - mat.tocsc()).tocsc()


def row_abs_sums(weight: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """``sum_j |W[i, j]|`` per node and head: ``[N, H]``, the rows of ``||W||_inf``."""
    out = weight.new_zeros(num_nodes, weight.shape[1])
    return out.index_add_(0, edge_index[1].long(), weight.detach().abs())


def check_contraction(weight: Tensor, edge_index: Tensor, num_nodes: int) -> float:
    """Return ``||W||_inf`` (max over heads) and raise if it is not below 1.

    This guards an invariant the encoder guarantees by construction
    (``gamma < 1`` times row-stochastic attention); it is a real check, not an
    ``assert``, so it also runs under ``python -O``.
    """
    if weight.numel() == 0:
        return 0.0
    norm = float(row_abs_sums(weight, edge_index, num_nodes).max())
    if not norm < 1.0:
        raise RuntimeError(f"fixed-point map is not a contraction: ||W||_inf = {norm:.6f} >= 1")
    return norm


@torch.no_grad()
def _iterate(mat: Tensor, rhs: Tensor, x0: Tensor, tol: float, max_iter: int,
             history: list | None = None) -> tuple[Tensor, int, float]:
    """Iterate ``x <- mat @ x + rhs`` until ``max|dx| <= tol * max|rhs|``.

    Returns:
        (x, iterations, relative residual ``max|dx| / max|rhs|``).
    """
    x = x0
    res = float("inf")
    it = 0
    scale = float(rhs.abs().max()) if rhs.numel() else 0.0
    if scale == 0.0:
        scale = 1.0
    for it in range(1, max_iter + 1):
        nxt = torch.addmm(rhs, mat, x) if mat._nnz() else rhs.clone()
        res = float((nxt - x).abs().max()) / scale if x.numel() else 0.0
        x = nxt
        if history is not None:
            history.append(res)
        if res <= tol:
            break
    return x, it, res


def _direct(lu, rhs: Tensor, transpose: bool = False) -> Tensor:
    """Solve with a SciPy sparse LU factorisation of ``I - W`` (``transpose``: the adjoint system)."""
    sol = lu.solve(rhs.detach().double().cpu().numpy(), trans="T" if transpose else "N")
    return torch.from_numpy(np.ascontiguousarray(sol)).to(rhs)


class _ImplicitFixedPoint(torch.autograd.Function):
    """``H* = W H* + b`` with the implicit-function-theorem backward."""

    @staticmethod
    def forward(ctx, weight, b, layout, x0, solver, tol, max_iter, info):
        rhs = layout.flat(b)
        if solver == "direct":
            ctx.lu = spla.splu(layout.scipy_system(weight))  # factorised once, for the adjoint too
            x = _direct(ctx.lu, rhs)
            info.forward_iterations, info.forward_residual = 0, 0.0
        else:
            mat = layout.matrix(weight.detach())
            start = torch.zeros_like(rhs) if x0 is None else layout.flat(x0)
            x, it, res = _iterate(mat, rhs, start, tol, max_iter, info.history)
            info.forward_iterations, info.forward_residual = it, res
            info.converged = res <= tol
        h = layout.unflat(x).contiguous()
        ctx.layout, ctx.solver, ctx.tol, ctx.max_iter, ctx.info = layout, solver, tol, max_iter, info
        ctx.save_for_backward(weight, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        weight, h = ctx.saved_tensors
        layout, info = ctx.layout, ctx.info
        rhs = layout.flat(grad_h.contiguous())
        if ctx.solver == "direct":
            g = _direct(ctx.lu, rhs, transpose=True)
            info.backward_iterations, info.backward_residual = 0, 0.0
        else:
            mat_t = layout.matrix_t(weight.detach())
            g, it, res = _iterate(mat_t, rhs, torch.zeros_like(rhs), ctx.tol, ctx.max_iter)
            info.backward_iterations, info.backward_residual = it, res
        g = layout.unflat(g)
        grad_w = layout.edge_outer(g, h) if ctx.needs_input_grad[0] else None
        grad_b = g if ctx.needs_input_grad[1] else None
        return grad_w, grad_b, None, None, None, None, None, None


def _check_inputs(weight: Tensor, b: Tensor, edge_index: Tensor) -> None:
    for name, t in (("weight", weight), ("b", b), ("edge_index", edge_index)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if b.ndim != 2:
        raise ValueError(f"b must be [N, H], got shape {tuple(b.shape)}")
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E], got shape {tuple(edge_index.shape)}")
    if weight.shape != (edge_index.shape[1], b.shape[1]):
        raise ValueError(f"weight must be [E, H] = [{edge_index.shape[1]}, {b.shape[1]}], "
                         f"got {tuple(weight.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= b.shape[0]):
        raise ValueError(f"edge_index must index nodes in [0, {b.shape[0]}), "
                         f"got range [{int(edge_index.min())}, {int(edge_index.max())}]")
    if not torch.isfinite(b).all() or not torch.isfinite(weight).all():
        raise ValueError("weight and b must be finite, got NaN or Inf")


def solve_fixed_point(
    weight: Tensor,  # [E, H]
    b: Tensor,  # [N, H]
    edge_index: Tensor,  # [2, E]
    solver: str = "iterate",
    tol: float = 1e-5,
    max_iter: int = 500,
    x0: Tensor | None = None,  # [N, H]
    layout: BlockSparse | None = None,
) -> tuple[Tensor, SolveInfo]:
    """Solve ``H = W H + b`` per head, differentiable by the implicit function theorem.

    Args:
        weight: ``[E, H]`` entry ``W[dst, src]`` of each edge and head; rows must
            satisfy ``sum_j |W[i, j]| < 1`` (checked).
        b: ``[N, H]`` offsets.
        edge_index: ``[2, E]`` (source, target) pairs.
        solver: ``"iterate"`` (fixed-point iteration to ``tol``, at most
            ``max_iter`` steps) or ``"direct"`` (sparse LU of ``I - W`` in float64).
        tol: stop when the max-abs change of an iteration is at most ``tol``
            times ``max|b|`` (the adjoint: times ``max|dL/dH|``).
        max_iter: iteration bound (forward and adjoint).
        x0: ``[N, H]`` start of the iteration (default zeros).
        layout: a prebuilt :class:`BlockSparse` for these edges, to reuse.

    Returns:
        ``H: [N, H]`` fixed point, and a :class:`SolveInfo` whose backward
        fields are filled in when autograd runs the backward pass.

    >>> import torch
    >>> ei = torch.tensor([[1, 0], [0, 1]])
    >>> h, info = solve_fixed_point(torch.full((2, 1), 0.5), torch.ones(2, 1), ei, tol=1e-9)
    >>> [round(v, 4) for v in h[:, 0].tolist()]
    [2.0, 2.0]
    """
    _check_inputs(weight, b, edge_index)
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    if x0 is not None and x0.shape != b.shape:
        raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}, got {tuple(x0.shape)}")
    check_contraction(weight, edge_index, b.shape[0])
    if layout is None:
        layout = BlockSparse(edge_index, b.shape[0], b.shape[1])
    info = SolveInfo()
    h = _ImplicitFixedPoint.apply(weight, b, layout, x0, solver, float(tol), int(max_iter), info)
    return h, info


class _SparseMatmul(torch.autograd.Function):
    """``W x`` for ``[E, H]`` edge weights; differentiable in both (used by unrolling)."""

    @staticmethod
    def forward(ctx, weight, x, layout):
        ctx.layout = layout
        ctx.save_for_backward(weight, x)
        return layout.unflat(layout.matrix(weight) @ layout.flat(x))

    @staticmethod
    def backward(ctx, grad):
        weight, x = ctx.saved_tensors
        layout = ctx.layout
        grad_x = layout.unflat(layout.matrix_t(weight) @ layout.flat(grad.contiguous()))
        grad_w = layout.edge_outer(grad, x)
        return grad_w, grad_x, None


def solve_unrolled(
    weight: Tensor,  # [E, H]
    b: Tensor,  # [N, H]
    edge_index: Tensor,  # [2, E]
    num_iter: int,
    layout: BlockSparse | None = None,
) -> Tensor:
    """``num_iter`` steps of ``H <- W H + b`` from zero, recorded by autograd.

    The baseline to :func:`solve_fixed_point`: its gradient is back-propagation
    through every step, so memory grows with ``num_iter``.

    Returns:
        ``H: [N, H]`` after ``num_iter`` steps.
    """
    _check_inputs(weight, b, edge_index)
    if int(num_iter) < 1:
        raise ValueError(f"num_iter must be >= 1, got {num_iter}")
    check_contraction(weight, edge_index, b.shape[0])
    if layout is None:
        layout = BlockSparse(edge_index, b.shape[0], b.shape[1])
    h = b
    for _ in range(int(num_iter) - 1):
        h = _SparseMatmul.apply(weight, h, layout) + b
    return h
