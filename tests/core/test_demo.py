"""The demo scene, its PNG renderer and the ``splatops render-demo`` command."""

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from splat.core.demo import demo_camera, demo_gaussians, render_demo_png
from splatops.cli import main


def test_demo_gaussians_are_deterministic_and_valid():
    a, b = demo_gaussians(n=200, seed=3), demo_gaussians(n=200, seed=3)
    assert {k: tuple(v.shape) for k, v in a.items()} == {
        "means": (200, 3), "quats": (200, 4), "scales": (200, 3), "opacities": (200,), "colors": (200, 3)}
    for k in a:
        assert torch.equal(a[k], b[k])
    assert float(a["colors"].min()) >= 0 and float(a["colors"].max()) <= 1
    assert not torch.equal(a["means"], demo_gaussians(n=200, seed=4)["means"])


def test_demo_png_shows_red_green_blue_spheres(tmp_path):
    W, H = 120, 90
    out = render_demo_png(tmp_path / "demo.png", W, H, backend="auto")
    img = iio.imread(out).astype(np.int32)
    assert img.shape == (H, W, 3)
    viewmats, Ks = demo_camera(W, H)
    for x, channel in ((-0.9, 0), (0.0, 1), (0.9, 2)):  # sphere centres at z = 0.45
        cam = viewmats[0] @ torch.tensor([x, 0.0, 0.45, 1.0])
        u, v = (Ks[0] @ cam[:3] / cam[2])[:2].round().int().tolist()
        pixel = img[v, u]
        assert pixel[channel] > pixel.sum() - pixel[channel], (x, pixel)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_cli_render_demo_writes_png(tmp_path, capsys):
    target = tmp_path / "cli.png"
    assert main(["render-demo", "--out", str(target), "--width", "64", "--height", "48"]) == 0
    assert iio.imread(target).shape == (48, 64, 3)
    assert "wrote" in capsys.readouterr().out


def test_cli_render_demo_reports_bad_path(tmp_path, capsys):
    assert main(["render-demo", "--out", str(tmp_path / "missing" / "x.png")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err


def test_demo_errors(tmp_path):
    with pytest.raises(ValueError, match="n must be >= 8, got 3"):
        demo_gaussians(n=3)
    with pytest.raises(TypeError, match="n must be an int, got float"):
        demo_gaussians(n=10.0)
    with pytest.raises(TypeError, match="seed must be an int, got str"):
        demo_gaussians(seed="0")
    with pytest.raises(ValueError, match="path must end in .png, got"):
        render_demo_png(tmp_path / "demo.jpg")
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        render_demo_png(tmp_path / "nope" / "demo.png")
    with pytest.raises(ValueError, match="width must be > 0, got 0"):
        render_demo_png(tmp_path / "demo.png", width=0)
    assert list(tmp_path.iterdir()) == []
