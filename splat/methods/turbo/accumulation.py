"""Late-stage gradient accumulation: one optimizer step per group of several views.

The fit loop steps every optimizer after every view. To average the
gradients of ``k`` consecutive views, the gradients of the first ``k - 1``
are moved into a buffer and the parameters' ``.grad`` set to None, which the
optimizers skip; at the ``k``-th view (or the last step of the run) the mean
of the buffered and current gradients is handed to the optimizers.
"""

from __future__ import annotations

import torch

__all__ = ["release_or_hold_gradients"]


@torch.no_grad()
def release_or_hold_gradients(optimizers: dict[str, torch.optim.Optimizer], buffer: dict, release: bool) -> bool:
    """Adds this view's gradients to ``buffer``; hands their mean to the optimizers when ``release``.

    Args:
        optimizers: the fit loop's optimizers (one parameter each).
        buffer: ``{"n": views held, name: summed gradient}``, edited in place.
        release: this view ends a group.

    Returns:
        Whether the optimizers will step on this view.
    """
    n = buffer.get("n", 0) + 1
    for name, opt in optimizers.items():
        p = opt.param_groups[0]["params"][0]
        if p.grad is None:
            continue
        held = buffer.get(name)
        if held is not None and held.shape == p.grad.shape:
            held.add_(p.grad)
        else:  # first view of the group, or the parameter changed size
            buffer[name] = p.grad.clone()
    if release:
        for name, opt in optimizers.items():
            p = opt.param_groups[0]["params"][0]
            held = buffer.get(name)
            if held is not None and p.grad is not None and held.shape == p.grad.shape:
                p.grad = held / n
        buffer.clear()
        return True
    buffer["n"] = n
    for opt in optimizers.values():
        opt.param_groups[0]["params"][0].grad = None
    return False
