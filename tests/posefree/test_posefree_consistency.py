"""Photometric view check: per-view PSNR, outliers against the median, uniform backgrounds."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from splat.core.camera import Camera
from splat.core.gaussians import Gaussians
from splat.io.scene import Scene
from splat.posefree.consistency import photometric_outliers, uniform_background, view_psnrs

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 40


def _look_at(eye, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = R, -R @ eye
    return torch.tensor(m, dtype=torch.float32)


def _gaussians(n=300, seed=0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 3, generator=g) * 1.2 - 0.6
    return Gaussians.from_points(points, torch.rand(n, 3, generator=g), sh_degree=0, init_opacity=0.9)


@pytest.fixture
def scene_and_gaussians(tmp_path):
    """Six views of random Gaussians, the images rendered from the true cameras; view 2's camera then turned away."""
    from splat.core.rasterization import rasterization

    g = _gaussians()
    angles = np.radians(np.arange(6) * 30.0)
    viewmats = torch.stack([_look_at((3 * math.cos(a), 3 * math.sin(a), 1.0)) for a in angles])
    K = torch.tensor([[40.0, 0, SIZE / 2], [0, 40.0, SIZE / 2], [0, 0, 1]]).expand(6, 3, 3).clone()
    with torch.no_grad():
        renders = rasterization(g.means, g.quats, g.scales, g.opacities, g.sh, viewmats, K, SIZE, SIZE,
                                sh_degree=0, backgrounds=torch.zeros(6, 3))[0].clamp(0, 1)
    paths = []
    for i, img in enumerate(renders):
        paths.append(tmp_path / f"v{i}.png")
        Image.fromarray((img.numpy() * 255).round().astype(np.uint8)).save(paths[-1])
    wrong = viewmats.clone()
    wrong[2] = _look_at((3 * math.cos(angles[2]), 3 * math.sin(angles[2]), 1.0), target=(3.0, 6.0, 1.0))
    scene = Scene(name="t", root=tmp_path, cameras=Camera(wrong, K, SIZE, SIZE), image_paths=paths,
                  train_ids=[0, 1, 2, 3, 5], test_ids=[4])
    return scene, g, viewmats


def test_a_view_with_a_wrong_pose_is_an_outlier(scene_and_gaussians):
    scene, g, true_viewmats = scene_and_gaussians
    psnrs = view_psnrs(g, scene, ids=range(len(scene)))
    assert set(psnrs) == set(range(6))
    good = [v for k, v in psnrs.items() if k != 2]
    assert min(good) > 35.0, psnrs  # the images are these renders (8-bit)
    assert psnrs[2] < min(good) - 10.0, psnrs
    assert set(photometric_outliers(psnrs)) == {2}
    # default ids are the training views; explicit cameras override the scene's
    assert set(view_psnrs(g, scene)) == {0, 1, 2, 3, 5}
    fixed = view_psnrs(g, scene, cameras=Camera(true_viewmats, scene.cameras.Ks, SIZE, SIZE), ids=[2])
    assert fixed[2] > 35.0


def test_outlier_rule():
    psnrs = {0: 25.0, 1: 24.0, 2: 26.0, 3: 12.0, 4: 25.5}
    out = photometric_outliers(psnrs, margin_db=6.0)
    assert list(out) == [3] and out[3] == pytest.approx(13.0)
    assert photometric_outliers(psnrs, margin_db=14.0) == {}
    # a generally poor fit is not blamed on single views
    assert photometric_outliers({0: 25.0, 1: 10.0, 2: 11.0, 3: 24.0, 4: 26.0}, margin_db=6.0) == {}
    assert photometric_outliers({0: 25.0, 1: 5.0}) == {}  # too few views to judge
    assert photometric_outliers({0: 25.0, 1: 25.0, 2: float("inf"), 3: 10.0, 4: 24.0}) == {3: 14.5}
    with pytest.raises(ValueError, match="margin_db"):
        photometric_outliers(psnrs, margin_db=0.0)


def test_uniform_background(tmp_path):
    rng = np.random.default_rng(0)
    white, noisy = [], []
    for i in range(3):
        a = np.full((30, 40, 3), 255, np.uint8)
        a[8:22, 10:30] = rng.integers(0, 255, (14, 20, 3))  # an object in the middle
        white.append(tmp_path / f"w{i}.png")
        Image.fromarray(a).save(white[-1])
        noisy.append(tmp_path / f"n{i}.png")
        Image.fromarray(rng.integers(0, 255, (30, 40, 3)).astype(np.uint8)).save(noisy[-1])
    assert uniform_background(white) == (1.0, 1.0, 1.0)
    assert uniform_background(noisy) is None
    assert uniform_background(white[:2] + noisy[:1]) is None  # one image breaks the agreement
    assert uniform_background([]) is None


def test_fit_images_leaves_a_misregistered_view_out_and_names_it(scene_and_gaussians, tmp_path, monkeypatch):
    """A registration with one wrong pose (the mapper's mistake, injected here): the view is dropped and named."""
    import json

    import splat.posefree
    from splat.posefree.pipeline import fit_images
    from splat.posefree.reconstruct import Reconstruction, RegistrationReport

    scene, g, _ = scene_and_gaussians
    scene = Scene(name="t", root=scene.root, cameras=scene.cameras, image_paths=scene.image_paths,
                  train_ids=list(range(6)), test_ids=[], points=g.means.detach().clone(),
                  point_colors=torch.full((g.num_gaussians, 3), 0.5))
    names = [p.name for p in scene.image_paths]
    report = RegistrationReport(registered=names, unregistered={"blurry.png": "too few features (3)"},
                                mapper="incremental", mean_reprojection_error=0.5, num_sparse_points=300,
                                num_points=300)
    monkeypatch.setattr(splat.posefree, "reconstruct", lambda *a, **k: Reconstruction(scene, report, tmp_path))
    out = tmp_path / "out"
    result = fit_images(tmp_path / "photos-not-read", out, steps=60, sh_degree=0, pose_warmup=1000,
                        refine_start=10_000, num_threads=1)
    m = result.metrics
    assert list(m["misregistered"]) == ["v2.png"] and "likely wrong" in m["misregistered"]["v2.png"]
    assert any("v2.png" in w and "mis-registered" in w for w in result.warnings)
    assert m["registration"]["unregistered"] == {"blurry.png": "too few features (3)"}
    assert m["registration"]["fitted"] == ["v0.png", "v1.png", "v3.png", "v4.png", "v5.png"]
    assert sorted(m["view_psnr"]) == m["registration"]["fitted"]
    assert m["num_views"]["registered"] == 5 and len(result.scene) == 5
    assert sorted(p.name for p in (out / "images").iterdir()) == m["registration"]["fitted"]
    assert sorted(p.name for p in (out / "renders").iterdir()).count("v2.png") == 0
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["misregistered"] == m["misregistered"]
    assert len(json.loads((out / "initial" / "transforms.json").read_text())["frames"]) == 5


def test_learned_environment_is_composited(scene_and_gaussians):
    from splat.methods import get_method
    from splat.methods.background import init_environment
    from splat.methods.base import MethodState
    from splat.methods.gs3d import BACKGROUND_KEY
    from splat.posefree.consistency import learned_environment

    scene, g, viewmats = scene_and_gaussians
    method = get_method("3dgs")
    assert learned_environment(method, MethodState()) is None and learned_environment(method, None) is None
    state = MethodState()
    state.params[BACKGROUND_KEY] = torch.nn.Parameter(init_environment(method.background_sh_degree, (1.0, 1.0, 1.0)))
    env = learned_environment(method, state)
    assert env[1] == method.background_sh_degree
    # a uniform white environment renders like a white background colour
    white = Scene(name="w", root=scene.root, cameras=scene.cameras, image_paths=scene.image_paths,
                  train_ids=[0, 1, 2], test_ids=[], background=(1.0, 1.0, 1.0))
    over_env = view_psnrs(g, white, environment=env)
    over_white = view_psnrs(g, white)
    over_black = view_psnrs(g, scene, ids=[0, 1, 2])
    for cid in (0, 1, 2):
        assert over_env[cid] == pytest.approx(over_white[cid], abs=0.05)
        assert over_env[cid] < over_black[cid] - 5.0  # the images were rendered over black
