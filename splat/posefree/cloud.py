"""An initial point cloud denser than the SfM points, cleaned with open3d.

SfM keeps only points seen in three or more views with a wide triangulation
angle. Splat fitting benefits from more coverage, so :func:`densify` re-runs
COLMAP's triangulator on the registered poses with relaxed settings (two-view
tracks allowed, smaller angles), and :func:`clean_points` removes the floaters
this admits (open3d statistical outlier removal, then a voxel grid when the
cloud is larger than needed).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np


def densify(reconstruction, database: str | Path, image_dir: str | Path, *, seed: int = 0, min_angle: float = 1.0):
    """Re-triangulates all verified matches with the registered poses held fixed.

    Args:
        reconstruction: a ``pycolmap.Reconstruction`` whose images are in ``database``.
        database: the COLMAP database with the features and verified matches.
        image_dir: the images the features were extracted from.
        seed: random seed.
        min_angle: smallest triangulation angle (degrees) of a new point.

    Returns:
        A new ``pycolmap.Reconstruction`` with the same poses and more points (the
        input is not modified). Two-view points are kept; filter them by error.
    """
    import pycolmap

    opts = pycolmap.IncrementalPipelineOptions()
    opts.random_seed = seed
    opts.ba_refine_focal_length = False
    opts.ba_refine_principal_point = False
    opts.ba_refine_extra_params = False
    tri = opts.triangulation
    tri.ignore_two_view_tracks = False
    tri.min_angle = min_angle
    tri.create_max_angle_error = 3.0
    tri.continue_max_angle_error = 3.0
    tri.random_seed = seed
    opts.mapper.filter_min_tri_angle = min_angle
    copy = pycolmap.Reconstruction(reconstruction)
    out = Path(tempfile.mkdtemp(prefix="densify."))
    try:
        dense = pycolmap.triangulate_points(copy, str(database), str(image_dir), str(out), clear_points=False,
                                            options=opts, refine_intrinsics=False)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return dense


def clean_points(
    points: np.ndarray,
    colors: np.ndarray,
    *,
    nb_neighbors: int = 16,
    std_ratio: float = 2.0,
    max_points: int = 100_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Statistical outlier removal, then voxel downsampling to at most ``max_points``.

    Args:
        points: ``[P, 3]`` float positions.
        colors: ``[P, 3]`` float colours in ``[0, 1]``.
        nb_neighbors: neighbours whose mean distance rates a point.
        std_ratio: points whose mean neighbour distance exceeds the global mean by
            this many standard deviations are removed.
        max_points: voxel size is grown until the cloud has at most this many points.

    Returns:
        ``(points [Q, 3], colors [Q, 3])`` as float64, ``Q <= P``.
    """
    import open3d as o3d

    points = np.asarray(points, np.float64).reshape(-1, 3)
    colors = np.asarray(colors, np.float64).reshape(-1, 3)
    if len(points) != len(colors):
        raise ValueError(f"points [{len(points)}, 3] and colors [{len(colors)}, 3] must have the same length")
    if len(points) <= nb_neighbors:
        return points, colors
    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    pcd.colors = o3d.utility.Vector3dVector(np.clip(colors, 0.0, 1.0))
    pcd, _ = pcd.remove_statistical_outlier(nb_neighbors=nb_neighbors, std_ratio=std_ratio)
    if len(pcd.points) > max_points:
        lo, hi = pcd.get_min_bound(), pcd.get_max_bound()
        voxel = float(np.max(hi - lo)) / 512.0
        while len(pcd.points) > max_points:
            down = pcd.voxel_down_sample(voxel)
            if len(down.points) <= max_points:
                pcd = down
                break
            voxel *= 1.5
    return np.asarray(pcd.points), np.asarray(pcd.colors)
