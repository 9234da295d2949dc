import imageio.v3 as iio
import pytest
import torch

from splat.core.camera import look_at
from splat.core.gaussians import Gaussians
from splat.io.ply import save_ply
from splat.core.sh import spherical_harmonics
from splat.render import orbit_viewmats, render_images, render_orbit, render_views, view_file_names


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from splat.io import make_synthetic_scene

    return make_synthetic_scene(num_views=8, size=32, num_points=150, root=tmp_path_factory.mktemp("render_scene"))


def test_orbit_circles_the_common_target():
    target = torch.tensor([0.5, -0.2, 0.3], dtype=torch.float64)
    eyes = [target + torch.tensor([2 * torch.cos(torch.tensor(a)), 2 * torch.sin(torch.tensor(a)), 0.7],
                                  dtype=torch.float64) for a in (0.0, 1.0, 2.5, 4.0)]
    viewmats = torch.stack([look_at(e, target) for e in eyes])
    orbit = orbit_viewmats(viewmats, num_frames=12)
    assert orbit.shape == (12, 4, 4)
    c2w = torch.linalg.inv(orbit)
    centers, forward = c2w[:, :3, 3], c2w[:, :3, 2]
    rel = centers - target
    torch.testing.assert_close(rel[:, 2], torch.full((12,), 0.7, dtype=torch.float64))  # mean height kept
    torch.testing.assert_close(rel[:, :2].norm(dim=-1), torch.full((12,), 2.0, dtype=torch.float64))
    # every frame looks at the target
    torch.testing.assert_close(forward, -rel / rel.norm(dim=-1, keepdim=True))


def test_views_are_named_after_their_images_in_both_layouts(scene, tmp_path):
    g = Gaussians.from_points(scene.points, scene.point_colors, sh_degree=0)
    ply = save_ply(g, tmp_path / "g.ply")
    names = [p.stem + ".png" for p in scene.image_paths]
    paths = render_views(ply, scene, tmp_path / "views", ids=[0, 3], show_progress=False)
    assert [p.name for p in paths] == [names[0], names[3]]
    alone = iio.imread(paths[1])
    assert alone.shape == (32, 32, 3) and alone.std() > 5  # the render alone, not blank
    paths = render_views(ply, scene, tmp_path / "pairs", ids=[3], layout="side-by-side",
                         show_progress=False)
    img = iio.imread(paths[0])
    assert paths[0].name == names[3] and img.shape == (32, 64, 3)
    # the right half is the ground truth, the left half the same render
    gt = (scene.images([3])[0] * 255).round().to(torch.uint8).numpy()
    assert (img[:, 32:] == gt).all()
    assert (img[:, :32] == alone).all()


def test_view_names_stay_unique_when_stems_collide():
    assert view_file_names(["a/x.png", "b/x.jpg", "c/y.png"]) == ["0000_x.png", "0001_x.png", "0002_y.png"]


def test_orbit_writes_the_asked_format(scene, tmp_path):
    g = Gaussians.from_points(scene.points, scene.point_colors, sh_degree=0)
    video = render_orbit(g, scene, tmp_path / "orbit.mp4", num_frames=6, fps=5, show_progress=False)
    assert video == tmp_path / "orbit.mp4"
    assert video.read_bytes()[4:8] == b"ftyp"  # an MPEG-4 container, not a GIF under another name
    gif = render_orbit(g, scene, tmp_path / "orbit.gif", num_frames=6, fps=5, show_progress=False)
    assert gif.read_bytes()[:3] == b"GIF"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_mp4_without_its_encoder_is_an_error_not_a_gif(scene, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # the encoder package is missing
    g = Gaussians.from_points(scene.points, scene.point_colors, sh_degree=0)
    with pytest.raises(RuntimeError, match="orbit.mp4: mp4 needs the imageio-ffmpeg package"):
        render_orbit(g, scene, tmp_path / "orbit.mp4", num_frames=2, show_progress=False)
    assert list(tmp_path.iterdir()) == []


def test_render_errors(scene, tmp_path):
    g = Gaussians.from_points(scene.points, sh_degree=0)
    with pytest.raises(TypeError, match="gaussians must be Gaussians or a PLY path"):
        render_views(3, scene, tmp_path)
    with pytest.raises(FileNotFoundError, match="PLY file not found"):
        render_views(tmp_path / "none.ply", scene, tmp_path)
    with pytest.raises(ValueError, match="ids must index the scene's 8 views"):
        render_views(g, scene, tmp_path, ids=[9])
    with pytest.raises(ValueError, match="path must end in .mp4 or .gif"):
        render_orbit(g, scene, tmp_path / "a.avi")
    with pytest.raises(ValueError, match="layout must be one of"):
        render_views(g, scene, tmp_path, layout="grid")
    with pytest.raises(ValueError, match="num_frames must be a positive int"):
        render_orbit(g, scene, tmp_path / "a.gif", num_frames=0)


def _reference_composite(render, alphas, coeffs, degree, viewmats, Ks):
    """The compositing formula written out: rays through the pixel centres rotated to the world,
    ``render + (1 - alpha) * max(SH(d) . coeffs + 0.5, 0)``."""
    h, w = render.shape[1:3]
    v, u = torch.meshgrid(torch.arange(h, dtype=viewmats.dtype) + 0.5,
                          torch.arange(w, dtype=viewmats.dtype) + 0.5, indexing="ij")
    x = (u - Ks[:, 0, 2, None, None]) / Ks[:, 0, 0, None, None]
    y = (v - Ks[:, 1, 2, None, None]) / Ks[:, 1, 1, None, None]
    cam = torch.stack([x, y, torch.ones_like(x)], dim=-1)
    dirs = torch.nn.functional.normalize(torch.einsum("cji,chwj->chwi", viewmats[:, :3, :3], cam), dim=-1)
    return render + (1.0 - alphas) * (spherical_harmonics(degree, dirs, coeffs) + 0.5).clamp_min(0.0)


def test_render_with_an_environment_is_bit_identical_to_the_formula():
    """``render_images(environment=...)`` is the rasterization over black composited by the formula."""
    from splat.core.rasterization import rasterization

    g = Gaussians.from_points(0.4 * torch.randn(60, 3), torch.rand(60, 3), sh_degree=0)
    viewmats = torch.cat([look_at(torch.tensor([3.0, 0.5, 1.0]), torch.zeros(3))[None],
                          look_at(torch.tensor([-1.0, 2.5, 0.5]), torch.zeros(3))[None]])
    Ks = torch.tensor([[20.0, 0, 8.0], [0, 20.0, 8.0], [0, 0, 1]]).expand(2, 3, 3).contiguous()
    coeffs = 0.3 * torch.randn(9, 3)
    ours = render_images(g, viewmats, Ks, 16, 16, backend="torch", environment=(coeffs, 2))
    for i in range(2):
        vm, K = viewmats[i : i + 1], Ks[i : i + 1]
        with torch.no_grad():
            img, alphas, _ = rasterization(g.means, g.params["quats"], g.scales, g.opacities, g.sh, vm, K, 16, 16,
                                           sh_degree=g.sh_degree, backend="torch")
        assert 0.0 < float(alphas.mean()) < 1.0  # the environment shows and is partly covered
        assert torch.equal(ours[i], _reference_composite(img, alphas, coeffs, 2, vm, K)[0].clamp(0, 1))
