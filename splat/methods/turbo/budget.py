"""Convergence-aware growth budget: the recent loss curve against a power law.

The loss of a fit that is still converging normally falls like a power of
the step, ``L(t) ~ a t^-b``. At every density control the mean training loss
of each past refinement interval is one point of that curve; the points
before the newest one are fitted in log-log space and extrapolated to the
newest interval. While the newest loss lies on (or below) the extrapolation,
the fit keeps up with the Gaussians it has, so the growth rate (new Gaussians
per refinement, as a fraction of the current count) is raised; when it lies
above by more than a tolerance the curve has bent away (the last growth has
not been absorbed yet, or a reset disturbed it), so the rate is cut. When the
fitted exponent is tiny and the newest point still follows the fit, the loss
has converged and growth stops for the rest of the run (the convergence
detector).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["fit_power_law", "BudgetDecision", "budget_decision"]


def fit_power_law(steps: list[float], losses: list[float]) -> tuple[float, float]:
    """Least-squares fit of ``loss = a * step ** -b`` in log-log space.

    Args:
        steps: positive step numbers (at least two distinct ones).
        losses: positive losses, one per step.

    Returns:
        ``(a, b)``.

    Raises:
        ValueError: fewer than two points, non-positive values or a single distinct step.

    >>> a, b = fit_power_law([10, 100, 1000], [1.0, 0.5, 0.25])
    >>> round(a, 3), round(b, 3)
    (2.0, 0.301)
    """
    if len(steps) != len(losses) or len(steps) < 2:
        raise ValueError(f"need at least two (step, loss) pairs, got {len(steps)} steps and {len(losses)} losses")
    if min(steps) <= 0 or min(losses) <= 0:
        raise ValueError("steps and losses must be positive for a power-law fit")
    xs = [math.log(s) for s in steps]
    ys = [math.log(v) for v in losses]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("steps must not all be equal")
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return math.exp(my - slope * mx), -slope


@dataclass(frozen=True)
class BudgetDecision:
    """What one density control may grow.

    Attributes:
        rate: new Gaussians allowed, as a fraction of the current count.
        deviation: newest loss over the power-law prediction, minus 1 (None without a fit).
        exponent: the fitted ``b`` (None without a fit).
        converged: growth stops from now on.
    """

    rate: float
    deviation: float | None
    exponent: float | None
    converged: bool


def budget_decision(
    bins: list[tuple[float, float]],
    rate: float,
    *,
    window: int = 6,
    min_points: int = 3,
    tolerance: float = 0.05,
    up: float = 1.5,
    down: float = 0.5,
    rate_min: float = 0.02,
    rate_max: float = 1.0,
    converge_exponent: float = 0.0,
) -> BudgetDecision:
    """The growth rate after comparing the newest loss bin with the power law of the earlier ones.

    Args:
        bins: ``(step, mean loss)`` of each refinement interval so far, oldest first.
        rate: the current growth rate.
        window: at most this many bins before the newest are fitted.
        min_points: fewer earlier bins than this keep ``rate`` unchanged (no fit yet).
        tolerance: relative excess of the newest loss over the prediction that counts as bending away.
        up: factor on the rate while the loss follows the fit.
        down: factor on the rate when it bends away.
        rate_min, rate_max: bounds of the rate.
        converge_exponent: a fitted exponent below this, with the newest point
            following the fit, means converged (0 disables the detector).

    Returns:
        A :class:`BudgetDecision`.

    >>> bins = [(s, 2.0 * s ** -0.5) for s in (50, 100, 150, 200, 250)]
    >>> budget_decision(bins, 0.1).rate                       # on the curve: raised
    0.15000000000000002
    >>> budget_decision(bins[:-1] + [(250, 0.2)], 0.1).rate   # far above it: cut
    0.05
    """
    if len(bins) - 1 < min_points:
        return BudgetDecision(rate, None, None, False)
    fit_bins = bins[-1 - window:-1]
    a, b = fit_power_law([s for s, _ in fit_bins], [v for _, v in fit_bins])
    step, loss = bins[-1]
    deviation = loss / (a * step ** -b) - 1.0
    follows = deviation <= tolerance
    new_rate = min(rate * up, rate_max) if follows else max(rate * down, rate_min)
    converged = bool(converge_exponent > 0 and follows and b < converge_exponent)
    return BudgetDecision(new_rate, deviation, b, converged)
