import imageio.v3 as iio
import pytest
import torch

from splat.core.camera import look_at
from splat.core.gaussians import Gaussians
from splat.io.ply import save_ply
from splat.render import orbit_viewmats, render_orbit, render_views


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


def test_render_views_and_orbit_from_ply(scene, tmp_path):
    g = Gaussians.from_points(scene.points, scene.point_colors, sh_degree=0)
    ply = save_ply(g, tmp_path / "g.ply")
    paths = render_views(ply, scene, tmp_path / "views", ids=[0, 3], show_progress=False)
    assert [p.name for p in paths] == ["0000.png", "0003.png"]
    img = iio.imread(paths[1])
    assert img.shape == (32, 64, 3)
    # the right half is the ground truth, the left half a render that is not blank
    gt = (scene.images([3])[0] * 255).round().to(torch.uint8).numpy()
    assert (img[:, 32:] == gt).all()
    assert img[:, :32].std() > 5
    video = render_orbit(g, scene, tmp_path / "orbit.mp4", num_frames=6, fps=5, show_progress=False)
    assert video.exists() and video.suffix in (".mp4", ".gif") and video.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


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
    with pytest.raises(ValueError, match="num_frames must be a positive int"):
        render_orbit(g, scene, tmp_path / "a.gif", num_frames=0)
