"""Adding and removing Gaussians while keeping their optimizer states aligned.

Every per-Gaussian entry of ``gaussians.params`` (first dimension ``N``) is
edited together; an entry with an optimizer (``optimizers[name]``, one param
group holding that one parameter, as the fit loop builds them) has its state
tensors of the same leading size edited the same way: kept rows keep their
moments, new rows start from zero.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from splat.core.gaussians import Gaussians
from splat.core.quaternion import quat_to_rotmat


def _replace(
    gaussians: Gaussians,
    optimizers: dict[str, torch.optim.Optimizer],
    edit_param: Callable[[str, Tensor], Tensor],
    edit_state: Callable[[Tensor], Tensor],
    names: list[str] | None = None,
) -> None:
    n = gaussians.num_gaussians
    for name in names if names is not None else list(gaussians.params.keys()):
        old = gaussians.params[name]
        new = torch.nn.Parameter(edit_param(name, old.detach()), requires_grad=old.requires_grad)
        opt = optimizers.get(name)
        if opt is not None:
            group = opt.param_groups[0]
            assert len(opt.param_groups) == 1 and group["params"][0] is old, name
            state = opt.state.pop(old, None)
            group["params"] = [new]
            if state:
                opt.state[new] = {
                    k: edit_state(v) if isinstance(v, Tensor) and v.ndim and v.shape[0] == n else v
                    for k, v in state.items()
                }
        gaussians.params[name] = new


def _new_row_count(gaussians: Gaussians, new: dict[str, Tensor]) -> int:
    """Number of Gaussians in ``new``, which must hold every entry of ``gaussians.params``."""
    missing = set(gaussians.params.keys()) - set(new)
    assert not missing, f"new Gaussians lack entries {sorted(missing)}"
    return next(iter(new.values())).shape[0]


@torch.no_grad()
def keep_gaussians(gaussians: Gaussians, optimizers: dict, mask: Tensor) -> None:
    """Keeps the Gaussians where ``mask`` (``[N]`` bool) is True."""
    _replace(gaussians, optimizers, lambda _, p: p[mask], lambda s: s[mask])


@torch.no_grad()
def append_gaussians(gaussians: Gaussians, optimizers: dict, new: dict[str, Tensor]) -> None:
    """Appends Gaussians given by raw (pre-activation) values for every entry."""
    m = _new_row_count(gaussians, new)
    _replace(
        gaussians,
        optimizers,
        lambda name, p: torch.cat([p, new[name].to(p)], dim=0),
        lambda s: torch.cat([s, s.new_zeros((m, *s.shape[1:]))], dim=0),
    )


@torch.no_grad()
def replace_gaussians(gaussians: Gaussians, optimizers: dict, new: dict[str, Tensor]) -> None:
    """Replaces every Gaussian by the raw values in ``new``; optimizer moments restart from zero.

    Unlike ``keep_gaussians`` with an all-False mask followed by ``append_gaussians``,
    it needs no boolean indexing, so it also works on tensors of unknown content
    (the ``meta`` device).
    """
    m = _new_row_count(gaussians, new)
    _replace(
        gaussians,
        optimizers,
        lambda name, p: new[name].to(p).clone(),
        lambda s: s.new_zeros((m, *s.shape[1:])),
    )


@torch.no_grad()
def clone_gaussians(gaussians: Gaussians, optimizers: dict, mask: Tensor) -> int:
    """Duplicates the selected Gaussians in place (same parameters); returns how many."""
    n = int(mask.sum())
    if n:
        append_gaussians(gaussians, optimizers, {k: v.detach()[mask].clone() for k, v in gaussians.params.items()})
    return n


@torch.no_grad()
def split_gaussians(
    gaussians: Gaussians,
    optimizers: dict,
    mask: Tensor,
    children: int = 2,
    shrink: float = 1.6,
    generator: torch.Generator | None = None,
) -> int:
    """Replaces each selected Gaussian by ``children`` samples from it, scales / ``shrink``.

    Children are placed at positions drawn from the parent's own distribution
    (as 3DGS); every other entry is copied from the parent.

    Returns:
        The number of Gaussians split.
    """
    n = int(mask.sum())
    if not n:
        return 0
    p = {k: v.detach()[mask] for k, v in gaussians.params.items()}
    scales = torch.exp(p["scales"])  # [M, 3]
    rot = quat_to_rotmat(p["quats"])  # [M, 3, 3]
    noise = torch.randn(children, n, 3, generator=generator, device=scales.device)
    offsets = torch.einsum("mij,cmj->cmi", rot, noise * scales)  # [children, M, 3]
    new = {k: v.repeat(children, *([1] * (v.ndim - 1))) for k, v in p.items()}
    new["means"] = (p["means"][None] + offsets).reshape(-1, 3)
    new["scales"] = (p["scales"] - math.log(shrink)).repeat(children, 1)
    keep_gaussians(gaussians, optimizers, ~mask)
    append_gaussians(gaussians, optimizers, new)
    return n


@torch.no_grad()
def reset_opacities(gaussians: Gaussians, optimizers: dict, value: float) -> None:
    """Clamps opacities to at most ``value`` and clears their optimizer moments."""
    cap = math.log(value / (1 - value))
    _replace(gaussians, optimizers, lambda _, p: p.clamp_max(cap), torch.zeros_like, names=["opacities"])
