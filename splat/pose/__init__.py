"""GS2Pose: 6D object pose from a splat model of the object.

* :mod:`splat.pose.se3`: exact SE(3) exponential / logarithm and pose errors;
* :mod:`splat.pose.object_model`: the ``object`` fitting method (mask supervision);
* :mod:`splat.pose.refiner`: the GS-Refiner (render and compare through ``viewmats``);
* :mod:`splat.pose.posenet`: the coarse stage (U-Net NOCS + PnP-RANSAC);
* :mod:`splat.pose.estimate`: the entry points ``train_posenet`` and ``estimate_pose``;
* :mod:`splat.pose.dataset`: generated object data (VTK renders of textured meshes).

Heavy modules are imported lazily: ``import splat.pose`` costs nothing.
"""

__all__ = ["estimate_pose", "train_posenet", "PoseResult"]


def __getattr__(name):
    if name in __all__:
        from splat.pose import estimate

        return getattr(estimate, name)
    raise AttributeError(f"module 'splat.pose' has no attribute {name!r}")
