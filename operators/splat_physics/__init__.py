"""Physics on Gaussian splats: splats -> particles -> MPM or GIOROM -> deformed splats.

- :mod:`~operators.splat_physics.particles`: select Gaussians, frame them in the
  simulation box, fill the object's volume with particles from their densities.
- :mod:`~operators.splat_physics.deform`: carry a particle motion to the
  Gaussians' covariances (``Σ' = F Σ Fᵀ``; the locally affine interpolation and
  deformation gradients are :mod:`operators.deformation`'s).
- :mod:`~operators.splat_physics.simulate`: MPM and the GIOROM preview on a splat
  object, rendering, the per-frame npz.
- :mod:`~operators.splat_physics.shapes`: shape fills and the 3-D shape-drop
  datasets the bundled checkpoints were trained on.
"""

from operators.deformation import interpolation_plan, local_deformation_gradients
from operators.splat_physics.deform import covariances, transform_covariances
from operators.splat_physics.particles import BoxFrame, fill_particles, frame_object, select_gaussians
from operators.splat_physics.simulate import (SplatMotion, SplatObject, centre_rmse, load_preview_checkpoint,
                                              prepare_object, preview_object, render_motion, simulate_object,
                                              write_motion_npz)

__all__ = [
    "BoxFrame", "SplatMotion", "SplatObject", "centre_rmse", "covariances", "fill_particles", "frame_object",
    "interpolation_plan", "load_preview_checkpoint", "local_deformation_gradients", "prepare_object",
    "preview_object", "render_motion", "select_gaussians", "simulate_object", "transform_covariances",
    "write_motion_npz",
]
