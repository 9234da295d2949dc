"""Photos in, splats out: fit_images end to end on plain renders of the bundled scene."""

import json
import math

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from splat.io import bundled_scene_path, load_colmap, load_scene
from splat.io.ply import load_ply
from splat.posefree import trajectory_errors
from splat.posefree.pipeline import PipelineProgress, fit_images

VIEWS = list(range(8))  # consecutive spiral views of the globe, about 22 degrees apart
STEPS = 40


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every fit here runs on one intra-op thread (``one_thread`` in tests/conftest.py)."""


@pytest.fixture(scope="module")
def globe():
    return load_scene(bundled_scene_path())


@pytest.fixture(scope="module")
def fitted(globe, tmp_path_factory):
    """Eight plain photos (no poses): a run stopped half-way, then resumed to the end through the CLI."""
    from splatops.cli import main

    root = tmp_path_factory.mktemp("photos")
    photos = root / "photos"
    photos.mkdir()
    for i in VIEWS:
        Image.open(globe.image_paths[i]).save(photos / f"IMG_{i:02d}.jpg", quality=95)
    out = root / "out"
    calls, reports = [], []
    kwargs = dict(steps=STEPS, test_every=4, max_size=200, sh_degree=0, pose_warmup=STEPS // 4)
    first = fit_images(photos, out, should_stop=lambda: len(calls.append(0) or calls) > STEPS // 2,
                       progress=reports.append, **kwargs)
    argv = ["fit", "--images", str(photos), "--out", str(out), "--resume", "--steps", str(STEPS),
            "--test-every", "4", "--max-size", "200", "--threads", "1", "--set", "sh_degree=0",
            "--set", f"pose_warmup={STEPS // 4}"]
    assert main(argv) == 0
    return first, out, reports


def _errors(scene, globe, ids):
    return trajectory_errors(scene.cameras.viewmats[ids], globe.cameras.viewmats[VIEWS][ids])


@pytest.mark.slow
def test_poses_recovered_after_alignment(globe, fitted):
    from splat.io.nerfstudio import load_nerfstudio

    _, out, _ = fitted
    scene, initial = load_scene(out), load_nerfstudio(out / "initial" / "transforms.json")
    train = scene.train_ids
    err, err0 = _errors(scene, globe, train), _errors(initial, globe, train)
    assert err.ate_relative < 0.05, err.to_dict()
    assert err.median_rotation_deg < 5.0, err.to_dict()
    # the joint fit does not lose the registration's accuracy
    assert err.median_rotation_deg < err0.median_rotation_deg + 1.0, (err.to_dict(), err0.to_dict())
    focal = float(globe.cameras.Ks[0, 0, 0]) * 200 / 320
    f, f0 = float(scene.cameras.Ks[0, 0, 0]), float(initial.cameras.Ks[0, 0, 0])
    assert abs(f - focal) / focal < 0.15, (f, f0, focal)
    assert abs(f - focal) <= abs(f0 - focal) + 0.02 * focal, (f, f0, focal)


@pytest.mark.slow
def test_output_folder_loads_as_a_scene_and_renders(fitted):
    from splat.core.rasterization import rasterization
    from splat.metrics import psnr

    _, out, _ = fitted
    scene = load_scene(out)
    assert len(scene) == len(VIEWS)
    assert [p.parent for p in scene.image_paths] == [out / "images"] * len(VIEWS)
    assert scene.test_ids == [0, 4] and scene.points is not None and len(scene.points) > 0
    assert scene.background == (1.0, 1.0, 1.0)  # detected from the photos' borders
    g = load_ply(out / "point_cloud.ply")
    for cid in scene.test_ids:
        background = torch.tensor([scene.background or (0.0, 0.0, 0.0)])  # the fit's (white on the globe)
        render = rasterization(g.means, g.quats, g.scales, g.opacities, g.sh, scene.cameras.viewmats[[cid]],
                               scene.cameras.Ks[[cid]], scene.width, scene.height, sh_degree=g.sh_degree,
                               backgrounds=background)[0][0]
        # the PLY seen through transforms.json's (aligned) camera is what the fit evaluated
        evaluated = iio.imread(out / "renders" / f"{cid:04d}.png")[:, : scene.width].astype(np.float32) / 255
        assert float(psnr(render.detach().clamp(0, 1), torch.from_numpy(evaluated))) > 40.0
    colmap = load_colmap(out)  # the COLMAP model carries the same refined cameras
    torch.testing.assert_close(colmap.cameras.viewmats, scene.cameras.viewmats, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(colmap.cameras.Ks, scene.cameras.Ks)


@pytest.mark.slow
def test_metrics_json_and_resume(fitted):
    first, out, reports = fitted
    assert first.metrics["stopped_early"] and first.metrics["steps"] == STEPS // 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == STEPS and not metrics["stopped_early"]
    reg = metrics["registration"]
    assert reg["num_registered"] == len(VIEWS) and reg["unregistered"] == {}
    assert 0 < reg["mean_reprojection_error"] < 2.0
    assert metrics["num_views"] == {"registered": 8, "train": 6, "test": 2}
    assert metrics["seconds"]["reconstruct"] > 0 and metrics["seconds"]["fit"] > 0
    assert math.isfinite(metrics["psnr"]) and metrics["eval_split"] == "test"
    assert metrics["psnr"] > metrics["curve"][0]["psnr"]  # the fit (and the test-view alignment) helped
    assert metrics["method"] == "instantsplat"
    stages = [r.stage for r in reports]
    assert stages[0] == "reconstruct" and stages[-1] == "done" and "fit" in stages and "write" in stages
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(isinstance(r, PipelineProgress) for r in reports)
    # held-out views were aligned with the Gaussians frozen: their corrections are non-zero
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == STEPS
    assert ckpt["method_state"]["params"]["pose_delta"][[0, 4]].abs().sum() > 0


def test_cli_refuses_bad_images_and_flag_mixes(tmp_path, capsys):
    from splatops.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for k, grey in enumerate((40, 120, 200)):
        Image.fromarray(np.full((60, 80, 3), grey, np.uint8)).save(photos / f"blank{k}.png")
    out = tmp_path / "out"
    assert main(["fit", "--images", str(photos), "--out", str(out), "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert "splatops fit: error: mapping failed" in err and "blank0.png" in err and str(tmp_path) not in err
    assert not out.exists()
    assert main(["fit", "--frames", "5", "--out", str(out)]) == 2
    assert "--frames needs --images" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --data and --images exclude each other
        main(["fit", "--images", str(photos), "--data", str(photos), "--out", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]


def test_failed_registration_writes_nothing(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for k, grey in enumerate((40, 120, 200)):
        Image.fromarray(np.full((60, 80, 3), grey, np.uint8)).save(photos / f"blank{k}.png")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"mapping failed.*blank0.png"):
        fit_images(photos, out, steps=5)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no temporary folder left behind


def test_argument_errors(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="output folder out already exists and is not empty"):
        fit_images(tmp_path, tmp_path / "out", steps=5)
    with pytest.raises(ValueError, match="resume needs an earlier run in fresh"):
        fit_images(tmp_path, tmp_path / "fresh", resume=True)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        fit_images(tmp_path, tmp_path / "x", steps=0)
    with pytest.raises(ValueError, match="test_every=1 would hold out every view"):
        fit_images(tmp_path, tmp_path / "x", test_every=1)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        fit_images(tmp_path, tmp_path / "x", method="nope")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
