"""Photos to cameras and an initial point cloud (pose-free input for splat fitting).

>>> from splat.posefree import reconstruct  # doctest: +SKIP
>>> rec = reconstruct("photos/", "work/")  # doctest: +SKIP
>>> rec.scene, rec.report.registered  # doctest: +SKIP

* :func:`reconstruct`: a folder, list, zip or video -> :class:`Reconstruction`
  (a :class:`splat.io.Scene` of the registered views, a report, a COLMAP model);
* :func:`collect_images`: the input normalised to one folder of same-size PNGs;
* :func:`align_sim3`, :func:`trajectory_errors`: pose accuracy against ground truth;
* :mod:`splat.posefree.dust3r`: the same result from DUSt3R/MASt3R point maps.
"""

from splat.posefree.evaluation import Sim3, TrajectoryErrors, align_sim3, trajectory_errors
from splat.posefree.images import collect_images, collect_named_images, is_video_file
from splat.posefree.reconstruct import Reconstruction, RegistrationReport, reconstruct
from splat.posefree.sfm import SfMOptions

__all__ = [
    "reconstruct",
    "Reconstruction",
    "RegistrationReport",
    "SfMOptions",
    "collect_images",
    "collect_named_images",
    "is_video_file",
    "align_sim3",
    "trajectory_errors",
    "Sim3",
    "TrajectoryErrors",
]
