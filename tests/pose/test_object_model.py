import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def object_views(tmp_path_factory):
    from splat.pose.dataset import write_object_views

    return write_object_views("photo_box", tmp_path_factory.mktemp("views"), num_views=10, size=48, distance=2.4)


def test_generated_views_are_rgba_with_masks_matching_the_projected_mesh(object_views):
    from splat.core.camera import project_points
    from splat.io import load_scene
    from splat.io.images import read_image
    from splat.pose.dataset import make_object

    scene = load_scene(object_views)
    rgba = read_image(scene.image_paths[0])
    assert rgba.shape == (48, 48, 4)
    verts = torch.from_numpy(make_object("photo_box").vertices()).float()
    uv, z = project_points(verts, scene.cameras.viewmats[:1], scene.cameras.Ks[:1])
    ys, xs = np.nonzero(rgba[..., 3] > 0.5)
    lo, hi = uv[0].min(0).values.numpy(), uv[0].max(0).values.numpy()
    assert abs(xs.min() - lo[0]) < 1.5 and abs(xs.max() + 1 - hi[0]) < 1.5  # the mask spans the mesh
    assert abs(ys.min() - lo[1]) < 1.5 and abs(ys.max() + 1 - hi[1]) < 1.5
    depth = np.load(object_views / "depth" / "view_000.npy")
    inside = rgba[..., 3] > 0.99
    assert float(z.min()) - 0.01 < depth[inside].min() and depth[inside].max() < float(z.max()) + 0.01


def test_object_fit_keeps_the_background_out_of_the_model(object_views):
    from splat.io import load_scene
    from splat.pose.object_model import carve_points, fit_object_model, view_masks

    scene = load_scene(object_views)
    masks = view_masks(scene)
    pts = carve_points(scene, masks, num=800)
    assert pts.abs().max() < 0.6  # the visual hull of an object of bounding radius 0.5
    result = fit_object_model(object_views, None, steps=60, num_points=800, refine_start=1000)
    from splat.core.rasterization import rasterization

    g = result.gaussians
    _, alpha, _ = rasterization(g.means, g.quats, g.scales, g.opacities, g.sh, scene.cameras.viewmats,
                                scene.cameras.Ks, 48, 48, sh_degree=g.sh_degree)
    alpha = alpha[..., 0].detach()
    obj = masks > 0.5
    assert float(alpha[obj].mean()) > 0.8
    assert float(alpha[~obj].mean()) < 0.05


def test_mask_sources_and_errors(object_views, tmp_path):
    from splat.io import load_scene
    from splat.io.images import save_png
    from splat.pose.object_model import view_masks

    scene = load_scene(object_views)
    from_alpha = view_masks(scene)
    mask_dir = tmp_path / "masks"
    for i, path in enumerate(scene.image_paths):
        save_png(mask_dir / (path.stem + ".png"), np.repeat(from_alpha[i].numpy()[..., None], 3, -1))
    torch.testing.assert_close((view_masks(scene, mask_dir) > 0.5), from_alpha > 0.5)
    (mask_dir / (scene.image_paths[3].stem + ".png")).unlink()
    with pytest.raises(ValueError, match=f"mask folder masks has no mask for image {scene.image_paths[3].name}"):
        view_masks(scene, mask_dir)
    rgb = tmp_path / "rgb"
    for path in scene.image_paths:  # drop the alpha channel: RGB on black
        save_png(rgb / path.name, scene.image(scene.image_paths.index(path)).numpy())
    from dataclasses import replace

    rgb_scene = replace(scene, image_paths=[rgb / p.name for p in scene.image_paths], background=None, _cache={})
    with pytest.raises(ValueError, match="the object method needs masks"):
        view_masks(rgb_scene)
    by_colour = view_masks(rgb_scene, background_color=(0.0, 0.0, 0.0), background_tolerance=0.02)
    agree = ((by_colour > 0.5) == (from_alpha > 0.5)).float().mean()
    assert agree > 0.97
