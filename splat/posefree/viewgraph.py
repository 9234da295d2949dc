"""View-graph hypotheses: map sparser pair graphs and keep the model the matches support best.

Repeated textures and symmetric objects give image pairs whose matches form a
consistent but wrong two-view geometry (a tile matched with its copy, the front
of a box with its identical back). Such pairs pass every verification threshold,
and incremental mapping that uses them can twist a whole trajectory. They tend to
be the weaker links of a view: a view's strongest pairs are its true neighbours.

:func:`top_k_pairs` keeps, for every image, its ``k`` pairs with the most verified
inliers; :func:`restrict_pairs` writes a copy of the database with only those
pairs, which the mapper then uses. :func:`epipolar_support` scores any model
against *all* verified pairs, including those it was not built from: the share of
their inlier matches that lie on the epipolar lines of the model's poses. A model
built on false pairs contradicts the true ones and the reverse; where the true
pairs dominate, the right model scores higher. :func:`filter_inliers` then
keeps, of every pair, the matches the chosen model explains, for a final mapping
with all true constraints.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Pair = tuple[int, int]


@dataclass
class Support:
    """How well a model's poses agree with the verified matches.

    Attributes:
        agreeing: inlier matches within the tolerance of the model's epipolar geometry.
        total: inlier matches of all verified pairs (pairs with an unregistered
            image count as disagreeing).
        pairs: ``(name1, name2) -> (agreeing, inliers)`` per verified pair.
    """

    agreeing: int
    total: int
    pairs: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """``agreeing / total`` (0 for an empty database)."""
        return self.agreeing / self.total if self.total else 0.0


def pair_inliers(database: str | Path) -> dict[Pair, int]:
    """Verified inlier count of every image pair in a COLMAP database, by image ids."""
    import pycolmap

    db = pycolmap.Database.open(str(database))
    try:
        pair_ids, geometries = db.read_two_view_geometries()
        out = {}
        for pair_id, geom in zip(pair_ids, geometries):
            n = len(geom.inlier_matches)
            if n:
                out[tuple(pycolmap.pair_id_to_image_pair(pair_id))] = n
        return out
    finally:
        db.close()


def top_k_pairs(inliers: dict[Pair, int], k: int) -> set[Pair]:
    """Pairs that are among the ``k`` strongest (most inliers) of at least one of their images.

    Args:
        inliers: pair -> verified inlier count.
        k: pairs kept per image (>= 1).

    Returns:
        The kept pairs (a subset of ``inliers``' keys). Ties break by the pair ids.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    by_image: dict[int, list[Pair]] = {}
    for pair in inliers:
        for image in pair:
            by_image.setdefault(image, []).append(pair)
    keep: set[Pair] = set()
    for pairs in by_image.values():
        keep.update(sorted(pairs, key=lambda p: (-inliers[p], p))[:k])
    return keep


def restrict_pairs(database: str | Path, copy: str | Path, keep: set[Pair]) -> Path:
    """Copies ``database`` to ``copy`` and deletes the two-view geometry of every pair not in ``keep``."""
    import pycolmap

    copy = Path(copy)
    shutil.copyfile(database, copy)
    db = pycolmap.Database.open(str(copy))
    try:
        pair_ids, _ = db.read_two_view_geometries()
        for pair_id in pair_ids:
            i, j = pycolmap.pair_id_to_image_pair(pair_id)
            if (i, j) not in keep and (j, i) not in keep:
                db.delete_two_view_geometry(i, j)
    finally:
        db.close()
    return copy


def _skew(t: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])


def _world_to_cam(image) -> np.ndarray:
    pose = image.cam_from_world() if callable(image.cam_from_world) else image.cam_from_world
    m = np.eye(4)
    m[:3, :4] = pose.matrix()
    return m


def sampson_distances(F: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """First-order geometric (Sampson) distance in pixels of matches ``x1 [N, 2] <-> x2 [N, 2]`` to ``F``."""
    h1 = np.c_[x1, np.ones(len(x1))]
    h2 = np.c_[x2, np.ones(len(x2))]
    l2 = h1 @ F.T  # epipolar lines in image 2
    l1 = h2 @ F  # epipolar lines in image 1
    num = np.abs(np.sum(l2 * h2, axis=1))
    den = np.sqrt(l2[:, 0] ** 2 + l2[:, 1] ** 2 + l1[:, 0] ** 2 + l1[:, 1] ** 2)
    return num / np.maximum(den, 1e-12)


def epipolar_support(reconstruction, database: str | Path, tolerance: float) -> Support:
    """Share of all verified inlier matches that the model's relative poses explain.

    Args:
        reconstruction: a ``pycolmap.Reconstruction`` of the database's images (same pixel frame).
        database: the COLMAP database with the verified pairs.
        tolerance: Sampson distance (pixels) below which a match agrees.

    Returns:
        :class:`Support`.
    """
    import pycolmap

    db = pycolmap.Database.open(str(database))
    try:
        names = {im.image_id: im.name for im in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
        keypoints = {i: np.asarray(db.read_keypoints(i))[:, :2].astype(np.float64) for i in names}
    finally:
        db.close()
    registered = {reconstruction.image(i).name: reconstruction.image(i) for i in reconstruction.reg_image_ids()}
    agreeing = total = 0
    pairs = {}
    for pair_id, geom in zip(pair_ids, geometries):
        i, j = pycolmap.pair_id_to_image_pair(pair_id)
        matches = np.asarray(geom.inlier_matches)
        if len(matches) == 0:
            continue
        total += len(matches)
        a, b = registered.get(names[i]), registered.get(names[j])
        ok = 0
        if a is not None and b is not None:
            rel = _world_to_cam(b) @ np.linalg.inv(_world_to_cam(a))
            E = _skew(rel[:3, 3]) @ rel[:3, :3]
            F = np.linalg.inv(b.camera.calibration_matrix()).T @ E @ np.linalg.inv(a.camera.calibration_matrix())
            d = sampson_distances(F, keypoints[i][matches[:, 0]], keypoints[j][matches[:, 1]])
            ok = int(np.sum(d < tolerance))
        agreeing += ok
        pairs[(names[i], names[j])] = (ok, len(matches))
    return Support(agreeing, total, pairs)


def filter_inliers(database: str | Path, copy: str | Path, reconstruction, tolerance: float,
                   min_inliers: int) -> tuple[int, int]:
    """Copies ``database`` keeping only the inlier matches that a model's epipolar geometry explains.

    A model mapped from a sparse view graph has the right layout but fewer
    constraints; mapping again from every pair's matches that agree with it
    (false matches of repeated textures removed, true ones of all pairs kept)
    poses the views more accurately.

    Args:
        database: the source database.
        copy: path of the filtered copy (replaced).
        reconstruction: the model whose relative poses judge the matches.
        tolerance: Sampson distance (pixels) of a kept match.
        min_inliers: pairs left with fewer matches are removed.

    Returns:
        ``(kept, total)`` inlier matches.
    """
    import pycolmap

    copy = Path(copy)
    shutil.copyfile(database, copy)
    registered = {reconstruction.image(i).name: reconstruction.image(i) for i in reconstruction.reg_image_ids()}
    db = pycolmap.Database.open(str(copy))
    kept = total = 0
    try:
        names = {im.image_id: im.name for im in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
        for pair_id, geom in zip(pair_ids, geometries):
            i, j = pycolmap.pair_id_to_image_pair(pair_id)
            matches = np.asarray(geom.inlier_matches)
            total += len(matches)
            a, b = registered.get(names[i]), registered.get(names[j])
            if a is None or b is None or len(matches) == 0:
                continue  # nothing to judge these matches by: left as they are
            rel = _world_to_cam(b) @ np.linalg.inv(_world_to_cam(a))
            F = (np.linalg.inv(b.camera.calibration_matrix()).T @ _skew(rel[:3, 3]) @ rel[:3, :3]
                 @ np.linalg.inv(a.camera.calibration_matrix()))
            x1 = np.asarray(db.read_keypoints(i))[:, :2].astype(np.float64)[matches[:, 0]]
            x2 = np.asarray(db.read_keypoints(j))[:, :2].astype(np.float64)[matches[:, 1]]
            good = matches[sampson_distances(F, x1, x2) < tolerance]
            db.delete_two_view_geometry(i, j)
            if len(good) >= min_inliers:
                geom.inlier_matches = np.ascontiguousarray(good, dtype=np.uint32)
                db.write_two_view_geometry(i, j, geom)
                kept += len(good)
    finally:
        db.close()
    return kept, total


def support_tolerance(width: int, height: int) -> float:
    """Sampson tolerance (pixels) for images of this size: 2 px up to 320 px, growing with the size."""
    return max(2.0, max(width, height) / 160.0)
