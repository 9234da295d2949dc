"""View-graph hypotheses: top-k pair graphs, restricted databases and epipolar support of a model."""

import numpy as np
import pytest

from splat.posefree import SfMOptions
from splat.posefree.viewgraph import (
    epipolar_support,
    pair_inliers,
    restrict_pairs,
    sampson_distances,
    support_tolerance,
    top_k_pairs,
)

W, H, F = 200, 150, 180.0
K = np.array([[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]])


def _look_at(eye):
    eye = np.asarray(eye, float)
    z = -eye / np.linalg.norm(eye)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _pose(angle_deg):
    a = np.radians(angle_deg)
    eye = np.array([4 * np.cos(a), 4 * np.sin(a), 1.0])
    R = _look_at(eye)
    return R, -R @ eye


def _project(points, R, t):
    cam = points @ R.T + t
    pix = cam @ K.T
    return pix[:, :2] / pix[:, 2:]


@pytest.fixture
def synthetic(tmp_path):
    """Four views of random points, every pair verified; pair (v0, v3) matches each point with another one."""
    import pycolmap

    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (200, 3))
    poses = [_pose(a) for a in (0, 20, 40, 60)]
    path = tmp_path / "database.db"
    db = pycolmap.Database.open(str(path))
    camera = pycolmap.Camera(model="SIMPLE_PINHOLE", width=W, height=H, params=[F, W / 2, H / 2])
    camera.camera_id = db.write_camera(camera)
    model = pycolmap.Reconstruction()
    model.add_camera_with_trivial_rig(camera)
    ids = []
    for k, (R, t) in enumerate(poses):
        keypoints = _project(points, R, t)
        image_id = db.write_image(pycolmap.Image(name=f"v{k}.png", keypoints=keypoints, camera_id=camera.camera_id))
        db.write_keypoints(image_id, keypoints.astype(np.float32))
        ids.append(image_id)
        image = pycolmap.Image(name=f"v{k}.png", keypoints=keypoints, camera_id=camera.camera_id, image_id=image_id)
        model.add_image_with_trivial_frame(image, pycolmap.Rigid3d(pycolmap.Rotation3d(R), t))
    counts = {(0, 1): 200, (1, 2): 150, (2, 3): 120, (0, 2): 100, (1, 3): 90, (0, 3): 200}
    for (a, b), n in counts.items():
        matches = np.stack([np.arange(n), np.arange(n)], 1)
        if (a, b) == (0, 3):
            matches[:, 1] = np.roll(matches[:, 1], 7)  # consistent-looking but false correspondences
        geometry = pycolmap.TwoViewGeometry()
        geometry.inlier_matches = matches.astype(np.uint32)
        geometry.config = 2
        db.write_two_view_geometry(ids[a], ids[b], geometry)
    db.close()
    return path, model, ids


def test_sampson_distance_is_zero_on_true_matches_and_large_on_shifted_ones():
    rng = np.random.default_rng(1)
    points = rng.uniform(-1, 1, (50, 3))
    (R1, t1), (R2, t2) = _pose(0), _pose(25)
    x1, x2 = _project(points, R1, t1), _project(points, R2, t2)
    R, t = R2 @ R1.T, t2 - R2 @ R1.T @ t1
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    Fm = np.linalg.inv(K).T @ tx @ R @ np.linalg.inv(K)
    assert sampson_distances(Fm, x1, x2).max() < 1e-6
    assert np.median(sampson_distances(Fm, x1, np.roll(x2, 3, axis=0))) > 5.0


def test_top_k_pairs_keeps_each_images_strongest():
    inliers = {(1, 2): 100, (2, 3): 90, (1, 3): 10, (3, 4): 50, (1, 4): 60}
    assert top_k_pairs(inliers, 1) == {(1, 2), (2, 3), (1, 4)}
    assert top_k_pairs(inliers, 2) == {(1, 2), (2, 3), (1, 4), (3, 4)}
    assert top_k_pairs(inliers, 5) == set(inliers)
    with pytest.raises(ValueError, match="k must be >= 1"):
        top_k_pairs(inliers, 0)


def test_support_counts_the_false_pair_as_disagreeing(synthetic):
    path, model, _ = synthetic
    support = epipolar_support(model, path, tolerance=2.0)
    assert support.total == 200 + 150 + 120 + 100 + 90 + 200
    false_ok, n = support.pairs[("v0.png", "v3.png")]
    assert n == 200 and false_ok < 0.2 * n
    for pair, (ok, n) in support.pairs.items():
        if pair != ("v0.png", "v3.png"):
            assert ok == n, pair
    assert support.agreeing == support.total - 200 + false_ok
    assert support.fraction == pytest.approx(support.agreeing / support.total)


def test_restricted_database_holds_only_the_kept_pairs(synthetic, tmp_path):
    path, model, ids = synthetic
    full = pair_inliers(path)
    assert len(full) == 6
    keep = top_k_pairs(full, 1)
    copy = restrict_pairs(path, tmp_path / "top1.db", keep)
    assert set(pair_inliers(copy)) == keep
    assert pair_inliers(path) == full  # the original database is unchanged
    # Support is always measured against the full database: a model does not gain by dropping pairs.
    assert epipolar_support(model, path, 2.0).total == sum(full.values())


def test_unregistered_views_count_as_unexplained(synthetic):
    path, model, ids = synthetic
    model.deregister_frame(model.image(ids[3]).frame_id)
    support = epipolar_support(model, path, tolerance=2.0)
    assert support.pairs[("v2.png", "v3.png")] == (0, 120)
    assert support.pairs[("v0.png", "v1.png")] == (200, 200)


def test_options_and_tolerance():
    assert SfMOptions().graph_hypotheses == (2, 3, 4)
    assert SfMOptions.colmap_defaults().graph_hypotheses == ()
    with pytest.raises(ValueError, match="graph_hypotheses"):
        SfMOptions(graph_hypotheses=(0,))
    assert support_tolerance(256, 192) == 2.0 and support_tolerance(640, 480) == 4.0


def test_filter_inliers_keeps_the_matches_the_model_explains(synthetic, tmp_path):
    from splat.posefree.viewgraph import filter_inliers

    path, model, ids = synthetic
    kept, total = filter_inliers(path, tmp_path / "consistent.db", model, tolerance=2.0, min_inliers=30)
    filtered = pair_inliers(tmp_path / "consistent.db")
    # the false pair keeps at most the few matches that fall on its epipolar lines by chance (< 30: removed)
    assert (ids[0], ids[3]) not in filtered
    assert filtered == {p: n for p, n in pair_inliers(path).items() if p != (ids[0], ids[3])}
    assert kept == sum(filtered.values()) and total == 860
    assert epipolar_support(model, tmp_path / "consistent.db", 2.0).fraction == 1.0
