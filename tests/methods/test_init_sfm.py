"""Initial points triangulated from known poses: geometry, colours, cache, fallbacks, the fit's record."""

import json
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("pycolmap")

from splat.core.camera import Camera, look_at, project_points  # noqa: E402
from splat.io import load_nerfstudio  # noqa: E402
from splat.methods import fit  # noqa: E402
from splat.methods.fit import initial_gaussians  # noqa: E402
from splat.methods.init_sfm import (  # noqa: E402
    CACHE_NAME,
    SfMInitOptions,
    cached_sfm_points,
    known_pose_pairs,
    triangulate_scene,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tabletop(tmp_path_factory):
    """The suite's tabletop (no points) at 160x120, 24 views 15 degrees apart (21 for training)."""
    from splat.scenes import make_scene

    return load_nerfstudio(make_scene("tabletop", tmp_path_factory.mktemp("tabletop") / "scene", num_views=24,
                                      size=(160, 120)))


@pytest.fixture(scope="module")
def cloud(tabletop):
    torch.set_num_threads(1)
    return triangulate_scene(tabletop, SfMInitOptions(num_threads=1))


@pytest.fixture
def small_cloud_suffices(monkeypatch):
    """The 160x120 test scene gives a few hundred points; the fit's threshold is set for 256x192 and up."""
    import importlib

    monkeypatch.setattr(importlib.import_module("splat.methods.fit"), "MIN_SFM_POINTS", 200)  # the module, not fit()


def _orbit(n, size=32):
    target = torch.zeros(3)
    eyes = [4.0 * torch.tensor([float(np.cos(a)), float(np.sin(a)), 0.3]) for a in np.linspace(0, 2 * np.pi, n,
                                                                                               endpoint=False)]
    K = torch.tensor([[30.0, 0, size / 2], [0, 30.0, size / 2], [0, 0, 1]]).expand(n, 3, 3).clone()
    return Camera(torch.stack([look_at(e, target) for e in eyes]), K, size, size)


def test_pairs_join_neighbours_and_never_opposite_views():
    cams = _orbit(12)
    pairs = known_pose_pairs(cams, 2)
    assert all(i < j for i, j in pairs) and len(set(pairs)) == len(pairs)
    for i in range(12):  # each view is paired with both orbit neighbours
        assert (min(i, (i + 1) % 12), max(i, (i + 1) % 12)) in pairs
    axes = torch.nn.functional.normalize(cams.c2w[:, :3, 2], dim=-1)
    assert all(float(axes[i] @ axes[j]) > np.cos(np.radians(60)) for i, j in pairs)
    assert len(known_pose_pairs(cams, 0)) == 66  # 0: every pair
    with pytest.raises(ValueError, match="neighbours must be >= 0"):
        SfMInitOptions(neighbours=-1)


def test_triangulated_points_lie_on_the_known_surfaces(tabletop, cloud):
    """The table is the plane z = 0; the boxes, globe and meshes stand on it within |x|, |y| < 1.4, z < 0.85."""
    pts = cloud.points
    assert cloud.num_views == len(tabletop.train_ids) and len(pts) >= 200
    on_table = np.abs(pts[:, 2]) < 0.03
    on_objects = (pts[:, 2] > -0.03) & (pts[:, 2] < 0.85) & (np.abs(pts[:, :2]) < 1.4).all(axis=1)
    assert (on_table | on_objects).mean() > 0.85
    assert on_table.mean() > 0.3  # the gravel table is the most textured surface


def test_points_are_coloured_as_the_training_views_see_them(tabletop, cloud):
    pts = torch.from_numpy(cloud.points).double()
    ids = tabletop.train_ids
    uv, z = project_points(pts, tabletop.cameras.viewmats[ids].double(), tabletop.cameras.Ks[ids].double())
    w, h = tabletop.width, tabletop.height
    inside = (z > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    errors = []
    for p in range(0, len(pts), max(1, len(pts) // 200)):
        views = torch.nonzero(inside[:, p]).flatten()
        if len(views) == 0:
            continue
        seen = []
        for v in views.tolist():
            x, y = (int(c) for c in uv[v, p].floor().tolist())
            seen.append(tabletop.image(ids[v])[y, x])
        errors.append(float((torch.stack(seen).median(0).values - torch.from_numpy(cloud.colors[p])).abs().max()))
    # occlusion and the gravel's fine texture make some views disagree; the typical point matches
    assert len(errors) > 50 and float(np.median(errors)) < 0.12


def test_cache_is_reused_and_keyed(tabletop, cloud, tmp_path, monkeypatch):
    import splat.methods.init_sfm as init_sfm

    calls = []
    monkeypatch.setattr(init_sfm, "triangulate_scene", lambda scene, opts, progress: calls.append(1) or cloud)
    opts = SfMInitOptions(num_threads=1)
    first = cached_sfm_points(tabletop, tmp_path, opts)
    assert (tmp_path / CACHE_NAME).is_file() and not first.cached and calls == [1]
    again = cached_sfm_points(tabletop, tmp_path, opts)
    assert again.cached and np.array_equal(again.points, cloud.points) and np.array_equal(again.colors, cloud.colors)
    assert calls == [1]
    other = replace(tabletop, train_ids=tabletop.train_ids[:-1])  # other views: triangulated again
    assert not cached_sfm_points(other, tmp_path, opts).cached and calls == [1, 1]
    (tmp_path / CACHE_NAME).write_bytes(b"not an npz")  # a damaged cache is made again
    assert not cached_sfm_points(tabletop, tmp_path, opts).cached


def test_auto_init_triangulates_and_a_scene_with_points_keeps_them(tabletop, cloud, monkeypatch,
                                                                   small_cloud_suffices):
    import splat.methods.init_sfm as init_sfm

    monkeypatch.setattr(init_sfm, "triangulate_scene", lambda scene, opts, progress: cloud)
    g, report = initial_gaussians(tabletop, 1, 1000, random_init="auto")
    assert report.kind == "sfm" and report.sfm["points"] == len(cloud.points) and report.fallback is None
    assert torch.allclose(g.means.detach(), torch.from_numpy(cloud.points))
    g2, report2 = initial_gaussians(tabletop, 1, 1000, random_init="auto", sfm_top_up=0.5)
    assert g2.num_gaussians == len(cloud.points) + 500
    with_points = replace(tabletop, points=torch.zeros(5, 3).uniform_(), point_colors=torch.full((5, 3), 0.5))
    for kind in ("auto", "sfm", "views"):
        g3, report3 = initial_gaussians(with_points, 1, 1000, random_init=kind)
        assert report3.kind == "points" and torch.equal(g3.means.detach(), with_points.points)


def test_auto_falls_back_with_the_reason_and_sfm_raises(tabletop, tmp_path, monkeypatch):
    import splat.methods.init_sfm as init_sfm

    missing = replace(tabletop, image_paths=[tmp_path / "gone" / p.name for p in tabletop.image_paths], _cache={})
    name = missing.image_paths[missing.train_ids[0]].name
    with pytest.warns(RuntimeWarning, match=f"training image {name} cannot be read"):
        g, report = initial_gaussians(missing, 0, 300, random_init="auto")
    assert report.kind == "views" and g.num_gaussians == 300 and name in report.fallback
    assert str(tmp_path) not in report.fallback  # the user's file name, not a server path
    with pytest.raises(FileNotFoundError, match=f"needs the scene's images: training image {name}"):
        initial_gaussians(missing, 0, 300, random_init="sfm")

    few = init_sfm.SfMCloud(np.zeros((10, 3), np.float32), np.zeros((10, 3), np.float32), 21, 40, 12, 1.0)
    monkeypatch.setattr(init_sfm, "triangulate_scene", lambda scene, opts, progress: few)
    with pytest.warns(RuntimeWarning, match=r"triangulation kept 10 points \(< 500\)"):
        assert initial_gaussians(tabletop, 0, 300, random_init="auto")[1].kind == "views"
    with pytest.raises(ValueError, match="random_init='sfm' failed: triangulation kept 10 points"):
        initial_gaussians(tabletop, 0, 300, random_init="sfm")

    monkeypatch.setattr(init_sfm, "sfm_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="pycolmap is not installed"):
        assert initial_gaussians(tabletop, 0, 300, random_init="auto")[1].kind == "views"
    with pytest.raises(ImportError, match="needs pycolmap"):
        initial_gaussians(tabletop, 0, 300, random_init="sfm")
    with pytest.raises(ValueError, match="random_init must be one of"):
        fit(tabletop, steps=1, random_init="sphere")


def test_fit_records_the_init_keeps_the_cloud_and_resumes(tabletop, cloud, tmp_path, monkeypatch,
                                                          small_cloud_suffices):
    import splat.methods.init_sfm as init_sfm

    calls = []
    monkeypatch.setattr(init_sfm, "triangulate_scene", lambda scene, opts, progress: calls.append(1) or cloud)
    small = tabletop.downscaled(2)  # 80x60: a few cheap steps
    out = tmp_path / "fit"
    first = fit(small, steps=6, out_dir=out, eval_every=0, checkpoint_every=3, show_progress=False)
    assert first.metrics["init"]["kind"] == "sfm" and (out / CACHE_NAME).is_file() and calls == [1]
    resumed = fit(small, steps=10, out_dir=out, resume=True, eval_every=0, show_progress=False)
    assert resumed.metrics["steps"] == 10 and calls == [1]  # resuming starts from the checkpoint
    assert json.loads((out / "metrics.json").read_text())["init"]["kind"] == "sfm"
    again = fit(small, steps=2, out_dir=out, eval_every=0, show_progress=False)  # a new fit reads the cloud
    assert again.metrics["init"]["sfm"]["cached"] and calls == [1]
    assert again.metrics["init"]["num_gaussians"] == len(cloud.points)


@pytest.mark.slow
def test_sfm_init_beats_random_init_after_a_short_fit(tabletop, cloud, monkeypatch, small_cloud_suffices):
    import splat.methods.init_sfm as init_sfm

    monkeypatch.setattr(init_sfm, "triangulate_scene", lambda scene, opts, progress: cloud)
    small = tabletop.downscaled(2)
    psnr = {}
    for kind in ("sfm", "views"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # no silent fallback
            psnr[kind] = fit(small, steps=150, eval_every=0, checkpoint_every=0, show_progress=False,
                             random_init=kind).metrics["psnr"]
    assert psnr["sfm"] > psnr["views"] + 0.5, psnr


def test_cli_init_flag(tabletop, tmp_path, capsys):
    from splatops.cli import main

    out = tmp_path / "fit"
    code = main(["fit", "--data", str(tabletop.root), "--init", "views", "--downscale", "2", "--steps", "2",
                 "--eval-every", "0", "--threads", "1", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["init"]["kind"] == "views"
    assert not (out / CACHE_NAME).exists()
    assert main(["fit", "--images", str(tmp_path), "--init", "sfm", "--out", str(tmp_path / "o")]) == 2
    assert "--init applies to --data scenes" in capsys.readouterr().err
