"""The mechanisms of Turbo-GS, one small module each; :mod:`splat.methods.turbo_gs` combines them."""

from splat.methods.turbo.accumulation import release_or_hold_gradients
from splat.methods.turbo.appearance import add_error_channel, relative_error, splatted_error
from splat.methods.turbo.budget import BudgetDecision, budget_decision, fit_power_law
from splat.methods.turbo.dilation import dilation_offset, dilated_intrinsics, subsample
from splat.methods.turbo.kdtree import kd_midpoints

__all__ = [
    "BudgetDecision",
    "add_error_channel",
    "budget_decision",
    "dilated_intrinsics",
    "dilation_offset",
    "fit_power_law",
    "kd_midpoints",
    "relative_error",
    "release_or_hold_gradients",
    "splatted_error",
    "subsample",
]
