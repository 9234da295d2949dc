"""The plug-in interface every fitting method implements.

A method is a ``@dataclass`` of hyper-parameters (with defaults) that
subclasses :class:`Method` and overrides some of its fixed hooks. The loop in
:mod:`splat.methods.fit` calls them in this order on every step::

    ctx = StepContext(...)              # cameras, ground truth, background
    inputs = method.render_inputs(ctx)  # what to rasterize (may modulate, may apply pose deltas)
    ctx.render, ctx.alphas, ctx.meta = rasterization(**inputs)
    ctx.render = method.composite(ctx, ctx.render, ctx.alphas)
    method.step_pre_backward(ctx)       # e.g. retain gradients of meta["means2d"]
    loss = method.loss(ctx)             # may leave per-pixel error maps in ctx.info
    loss.backward()
    method.step_post_backward(ctx)      # densify / prune / reset, learning-rate schedules
    optimizers step, zero_grad

``init(scene, gaussians)`` runs once before the first step (it may add
per-Gaussian parameters or method-owned parameters such as camera-pose
deltas) and ``trainable(gaussians, state)`` names what the loop optimises and
with which learning rate; parameters left out are frozen.

What this admits:

* per-pixel error maps and per-Gaussian visibility counts with a growth
  budget: ``loss`` stores the map in ``ctx.info``; ``ctx.meta["radii"]``
  gives visibility; counters live in ``state.data``;
* an extra per-Gaussian parameter and a custom loss: add it to
  ``gaussians.params`` in ``init`` and list it in ``trainable``; densification
  keeps every per-Gaussian entry in step;
* trainable camera poses: put deltas in ``state.params`` (a ParameterDict),
  list them in ``trainable`` and apply them in ``render_inputs``;
* a frozen scene: ``trainable`` returns only the pose entries.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:  # pragma: no cover
    from splat.core.gaussians import Gaussians


@dataclass
class MethodState:
    """What a method carries between steps; saved in checkpoints.

    Attributes:
        params: method-owned trainable tensors (e.g. camera pose deltas),
            optimised when named by :meth:`Method.trainable`.
        data: anything else (tensors, numbers, lists); must be picklable by
            ``torch.save``.
    """

    params: torch.nn.ParameterDict = field(default_factory=torch.nn.ParameterDict)
    data: dict[str, Any] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {"params": {k: v.detach().clone() for k, v in self.params.items()}, "data": self.data}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in sd["params"].items()})
        self.data = sd["data"]


@dataclass
class StepContext:
    """Everything a hook may read or write during one step.

    Attributes:
        step: zero-based index of the current step.
        total_steps: steps the loop will run in total.
        scene: the training :class:`~splat.io.scene.Scene`.
        gaussians: the Gaussians being fitted.
        optimizers: one optimizer per trainable entry (name -> optimizer).
        state: the method's :class:`MethodState`.
        camera_ids: scene indices of the cameras rendered this step.
        viewmats: ``[C, 4, 4]`` world-to-camera matrices of those cameras.
        Ks: ``[C, 3, 3]`` intrinsics.
        width: image width in pixels.
        height: image height in pixels.
        gt_images: ``[C, H, W, 3]`` ground-truth images in ``[0, 1]``.
        background: ``[C, 3]`` background colour to render over.
        sh_degree: SH degree active this step.
        extent: scene radius (for scale-dependent thresholds and learning rates).
        render: ``[C, H, W, 3]`` rendered images (after rasterization).
        alphas: ``[C, H, W, 1]`` accumulated opacity.
        meta: the rasterizer's ``meta`` dict (``means2d``, ``radii``, ...).
        info: free scratch space for this step (losses, error maps, counts).
    """

    step: int
    total_steps: int
    scene: Any
    gaussians: "Gaussians"
    optimizers: dict[str, torch.optim.Optimizer]
    state: MethodState
    camera_ids: list[int]
    viewmats: Tensor  # [C, 4, 4]
    Ks: Tensor  # [C, 3, 3]
    width: int
    height: int
    gt_images: Tensor  # [C, H, W, 3]
    background: Tensor  # [C, 3]
    sh_degree: int
    extent: float
    render: Tensor | None = None  # [C, H, W, 3]
    alphas: Tensor | None = None  # [C, H, W, 1]
    meta: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Method:
    """Base class of fitting methods; subclasses are dataclasses of hyper-parameters.

    Attributes:
        sh_degree: highest SH degree fitted.
        random_background: render over a random colour each step (teaches
            the transparent regions to stay transparent).
        max_gaussians: cap on the number of Gaussians (growth budget).
    """

    sh_degree: int = 3
    random_background: bool = False
    max_gaussians: int = 200_000

    #: Registry name, filled by :func:`splat.methods.registry.register_method`.
    name = "base"

    # ----------------------------------------------------------------- hooks
    def init(self, scene, gaussians: "Gaussians") -> MethodState:
        """Called once before the first step; returns the method's state."""
        return MethodState()

    def trainable(self, gaussians: "Gaussians", state: MethodState) -> dict[str, float]:
        """Names of the entries to optimise (of ``gaussians.params`` or
        ``state.params``) mapped to their learning rates; others stay frozen."""
        raise NotImplementedError

    def active_sh_degree(self, step: int) -> int:
        """SH degree used at ``step`` (default: the full degree)."""
        return self.sh_degree

    def render_inputs(self, ctx: StepContext) -> dict[str, Any]:
        """Keyword arguments of :func:`splat.rasterization` for this step."""
        g = ctx.gaussians
        return dict(
            means=g.means,
            quats=g.params["quats"],
            scales=g.scales,
            opacities=g.opacities,
            colors=g.sh,
            viewmats=ctx.viewmats,
            Ks=ctx.Ks,
            width=ctx.width,
            height=ctx.height,
            sh_degree=ctx.sh_degree,
            backgrounds=ctx.background,
        )

    def composite(self, ctx: StepContext, render: Tensor, alphas: Tensor) -> Tensor:
        """The image the loss and the evaluation see, from the rasterizer's ``render [C, H, W, D]``
        and ``alphas [C, H, W, 1]`` (default: ``render`` as is, already over ``ctx.background``).

        A method with a learned per-pixel background renders over black in
        :meth:`render_inputs` and adds ``(1 - alphas) * background`` here.
        """
        return render

    def loss(self, ctx: StepContext) -> Tensor:
        """The scalar loss of this step (default: mean L1)."""
        return (ctx.render - ctx.gt_images).abs().mean()

    def step_pre_backward(self, ctx: StepContext) -> None:
        """Called after rendering and before ``loss.backward()``."""

    def step_post_backward(self, ctx: StepContext) -> None:
        """Called after ``loss.backward()`` and before the optimizer step."""

    def prepare_evaluation(self, scene, gaussians: "Gaussians", state: MethodState, ids: list[int],
                           images: Tensor, sh_degree: int, backend: str) -> None:
        """Called once before the final evaluation of the views ``ids`` (``images [len(ids), H, W, 3]``).

        Pose-free methods fit the held-out views' poses here with the Gaussians frozen.
        """

    def export_ply(self, gaussians: "Gaussians", path: Path) -> Path:
        """Writes the fitted Gaussians as ``point_cloud.ply`` (default: the standard 3DGS layout).

        Methods with extra per-Gaussian parameters override this so that common
        viewers still draw what the fit rendered.
        """
        from splat.io.ply import save_ply

        return save_ply(gaussians, path)

    # --------------------------------------------------------------- helpers
    def hyperparameters(self) -> dict[str, Any]:
        """The dataclass fields as a plain dict (saved in metrics.json)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
