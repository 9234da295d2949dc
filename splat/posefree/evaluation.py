"""Camera trajectory accuracy: Sim(3) alignment (Umeyama) and ATE / rotation errors.

Estimated poses from structure-from-motion live in an arbitrary similarity frame
(scale, rotation, translation). :func:`align_sim3` finds the similarity that best
maps the estimated camera centres onto the ground-truth ones (least squares,
Umeyama 1991); :func:`trajectory_errors` then reports the absolute trajectory
error (ATE) relative to the ground-truth rig radius and per-view rotation errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import Tensor


def _as_array(x, name: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be an array or tensor, got {type(x).__name__}") from exc
    x = x.astype(np.float64, copy=False)
    if x.ndim != 1 + len(shape_tail) or x.shape[1:] != shape_tail:
        want = "[N, " + ", ".join(map(str, shape_tail)) + "]"
        raise ValueError(f"{name} must be {want}, got {list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


@dataclass
class Sim3:
    """A similarity ``x -> scale * R @ x + t``.

    Attributes:
        scale: positive scale factor.
        R: ``[3, 3]`` rotation.
        t: ``[3]`` translation.
    """

    scale: float
    R: np.ndarray  # [3, 3]
    t: np.ndarray  # [3]

    def apply(self, points) -> np.ndarray:
        """Maps ``[N, 3]`` points."""
        p = _as_array(points, "points", (3,))
        return self.scale * p @ self.R.T + self.t

    def apply_c2w(self, c2w) -> np.ndarray:
        """Maps ``[N, 4, 4]`` rigid camera-to-world matrices (rotations composed, centres mapped)."""
        c = _as_array(c2w, "c2w", (4, 4))
        out = c.copy()
        out[:, :3, :3] = self.R @ c[:, :3, :3]
        out[:, :3, 3] = self.apply(c[:, :3, 3])
        return out

    def matrix(self) -> np.ndarray:
        """``[4, 4]`` homogeneous matrix of the similarity."""
        m = np.eye(4)
        m[:3, :3] = self.scale * self.R
        m[:3, 3] = self.t
        return m


def align_sim3(est_centers, gt_centers) -> Sim3:
    """Least-squares similarity mapping estimated camera centres onto ground truth.

    Umeyama's closed form: the SVD of the cross-covariance of the centred point
    sets gives the rotation (with a reflection guard), the variance ratio the scale.

    Args:
        est_centers: ``[N, 3]`` estimated camera centres (array or tensor).
        gt_centers: ``[N, 3]`` ground-truth centres, same order.

    Returns:
        The :class:`Sim3` with ``gt ~= scale * R @ est + t``.

    Raises:
        ValueError: shapes differ, fewer than 3 points, or the estimated centres
            are all (nearly) the same point.

    >>> import numpy as np
    >>> gt = np.array([[0., 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    >>> s = align_sim3(gt * 2 + 1, gt)
    >>> round(s.scale, 6)
    0.5
    """
    est = _as_array(est_centers, "est_centers", (3,))
    gt = _as_array(gt_centers, "gt_centers", (3,))
    if est.shape != gt.shape:
        raise ValueError(f"est_centers {list(est.shape)} and gt_centers {list(gt.shape)} must match")
    if len(est) < 3:
        raise ValueError(f"a Sim(3) alignment needs at least 3 camera centres, got {len(est)}")
    mu_e, mu_g = est.mean(0), gt.mean(0)
    de, dg = est - mu_e, gt - mu_g
    var_e = (de**2).sum() / len(est)
    if var_e < 1e-18:
        raise ValueError("est_centers are all the same point; the scale is undefined")
    cov = dg.T @ de / len(est)
    U, S, Vt = np.linalg.svd(cov)
    D = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        D[2, 2] = -1.0
    R = U @ D @ Vt
    scale = float(np.trace(np.diag(S) @ D) / var_e)
    t = mu_g - scale * R @ mu_e
    return Sim3(scale, R, t)


@dataclass
class TrajectoryErrors:
    """Pose errors of an estimated trajectory after Sim(3) alignment.

    Attributes:
        ate: root-mean-square centre error, in ground-truth units.
        ate_relative: ``ate`` divided by the rig radius (mean distance of the
            ground-truth centres to their centroid); multiply by 100 for percent.
        rotation_errors_deg: ``[N]`` angle of ``R_gt^T R_aligned`` per view, degrees.
        median_rotation_deg: median of ``rotation_errors_deg``.
        center_errors: ``[N]`` per-view centre distances after alignment.
        sim3: the alignment used.
    """

    ate: float
    ate_relative: float
    rotation_errors_deg: np.ndarray
    median_rotation_deg: float
    center_errors: np.ndarray
    sim3: Sim3

    def to_dict(self) -> dict:
        return {
            "ate": self.ate,
            "ate_percent_of_radius": 100.0 * self.ate_relative,
            "median_rotation_deg": self.median_rotation_deg,
            "max_rotation_deg": float(self.rotation_errors_deg.max()),
            "scale": self.sim3.scale,
        }


def _c2w(m, name: str, world_to_camera: bool) -> np.ndarray:
    a = _as_array(m, name, (4, 4))
    if world_to_camera:
        a = np.linalg.inv(a)
    return a


def trajectory_errors(est, gt, *, world_to_camera: bool = True) -> TrajectoryErrors:
    """ATE (relative to the rig radius) and rotation errors after Sim(3) alignment.

    Both trajectories must use the same camera convention (OpenCV, as
    :class:`splat.core.Camera`) and list the same views in the same order.

    Args:
        est: ``[N, 4, 4]`` estimated poses (array, tensor or a ``Camera``).
        gt: ``[N, 4, 4]`` ground-truth poses (array, tensor or a ``Camera``).
        world_to_camera: the matrices are world-to-camera ``viewmats`` (default);
            ``False`` for camera-to-world. A ``Camera`` is always read as viewmats.

    Returns:
        :class:`TrajectoryErrors`.

    Raises:
        ValueError: shapes differ or fewer than 3 views.
    """
    from splat.core.camera import Camera

    w2c_e = world_to_camera or isinstance(est, Camera)
    w2c_g = world_to_camera or isinstance(gt, Camera)
    est = _c2w(est.viewmats if isinstance(est, Camera) else est, "est", w2c_e)
    gt = _c2w(gt.viewmats if isinstance(gt, Camera) else gt, "gt", w2c_g)
    if est.shape != gt.shape:
        raise ValueError(f"est {list(est.shape)} and gt {list(gt.shape)} poses must match")
    sim = align_sim3(est[:, :3, 3], gt[:, :3, 3])
    aligned = sim.apply_c2w(est)
    d = np.linalg.norm(aligned[:, :3, 3] - gt[:, :3, 3], axis=-1)
    ate = float(np.sqrt((d**2).mean()))
    radius = float(np.linalg.norm(gt[:, :3, 3] - gt[:, :3, 3].mean(0), axis=-1).mean())
    rel = np.einsum("nji,njk->nik", gt[:, :3, :3], aligned[:, :3, :3])
    cos = np.clip((np.trace(rel, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0)
    rot = np.degrees(np.arccos(cos))
    return TrajectoryErrors(
        ate=ate,
        ate_relative=ate / radius if radius > 0 else float("inf"),
        rotation_errors_deg=rot,
        median_rotation_deg=float(np.median(rot)),
        center_errors=d,
        sim3=sim,
    )
