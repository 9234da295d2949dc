"""The Scene type: splits, lazy cached images, subsets, downscaling, extent."""

import numpy as np
import pytest
import torch

from splat.core.camera import Camera
from splat.io import Scene, default_split, make_synthetic_scene
from splat.io.images import save_png


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_scene(num_views=10, size=32, root=tmp_path_factory.mktemp("syn"))


def test_default_split_holds_out_every_eighth():
    train, test = default_split(17)
    assert test == [0, 8, 16]
    assert sorted(train + test) == list(range(17))


@pytest.mark.parametrize("n, every, match", [(-1, 8, "num_views"), (3, 0, "every")])
def test_default_split_rejects_bad_arguments(n, every, match):
    with pytest.raises(ValueError, match=match):
        default_split(n, every)


def test_images_match_files_and_are_cached(synthetic):
    fresh = Scene(synthetic.name, synthetic.root, synthetic.cameras, synthetic.image_paths,
                  background=synthetic.background)
    images = fresh.images([0, 3])
    assert images.shape == (2, 32, 32, 3) and images.dtype == torch.float32
    # The procedural scene caches the exact (8-bit quantised) images it wrote.
    torch.testing.assert_close(images, synthetic.images([0, 3]), atol=0, rtol=0)
    assert fresh.image(3) is fresh.image(3)


def test_subset_keeps_roles_and_order(synthetic):
    sub = synthetic.subset([8, 1, 2])
    assert len(sub) == 3 and sub.test_ids == [0] and sub.train_ids == [1, 2]
    torch.testing.assert_close(sub.cameras.viewmats[0], synthetic.cameras.viewmats[8])
    torch.testing.assert_close(sub.images([0]), synthetic.images([8]))


def test_downscaled_scales_intrinsics_and_box_filters(synthetic):
    half = synthetic.downscaled(2)
    assert (half.width, half.height) == (16, 16)
    torch.testing.assert_close(half.cameras.Ks[:, :2], synthetic.cameras.Ks[:, :2] / 2)
    full = synthetic.images([1])[0]
    expected = full.reshape(16, 2, 16, 2, 3).mean(dim=(1, 3))
    fresh = Scene(synthetic.name, synthetic.root, synthetic.cameras, synthetic.image_paths,
                  background=synthetic.background).downscaled(2)
    torch.testing.assert_close(fresh.images([1])[0], expected, atol=1e-6, rtol=0)
    assert half.downscaled(2).width == 8  # factors compose


def test_downscaled_projection_is_consistent(synthetic):
    # A point projecting to pixel centre (u, v) at full size lands at (u/2, v/2) at half size.
    p = torch.tensor([[0.1, -0.2, 0.3]])
    def proj(cams):
        cam = p @ cams.viewmats[0, :3, :3].T + cams.viewmats[0, :3, 3]
        uv = cam @ cams.Ks[0].T
        return uv[0, :2] / uv[0, 2]
    torch.testing.assert_close(proj(synthetic.downscaled(2).cameras), proj(synthetic.cameras) / 2)


def test_extent_is_scaled_max_distance_to_mean_centre(synthetic):
    centers = synthetic.cameras.centers.double()
    expected = 1.1 * (centers - centers.mean(0)).norm(dim=-1).max().item()
    assert synthetic.extent == pytest.approx(expected)
    # Two cameras at x = +-2 give radius 1.1 * 2; coincident ones fall back to the points' radius.
    w2c = torch.eye(4).repeat(2, 1, 1)
    w2c[0, 0, 3], w2c[1, 0, 3] = -2.0, 2.0
    cams = Camera(w2c, torch.eye(3).repeat(2, 1, 1), 4, 4)
    assert Scene("s", synthetic.root, cams, synthetic.image_paths[:2]).extent == pytest.approx(2.2)
    same = Camera(torch.eye(4).repeat(2, 1, 1), torch.eye(3).repeat(2, 1, 1), 4, 4)
    pts = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    assert Scene("s", synthetic.root, same, synthetic.image_paths[:2], points=pts).extent == pytest.approx(1.5)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(name=3), TypeError, "name must be a str"),
        (dict(cameras="x"), TypeError, "cameras must be"),
        (dict(image_paths=[]), ValueError, "image_paths has 0 entries"),
        (dict(train_ids=[0, 99]), ValueError, "train_ids contains 99"),
        (dict(test_ids=[0.5]), TypeError, "test_ids must contain ints"),
        (dict(points=torch.zeros(4, 2)), ValueError, r"points must be \[P, 3\]"),
        (dict(points=torch.zeros(4, 3), point_colors=torch.zeros(3, 3)), ValueError, "point_colors must be"),
        (dict(point_colors=torch.zeros(3, 3)), ValueError, "point_colors given without points"),
        (dict(background=(2.0, 0.0, 0.0)), ValueError, "background must be"),
    ],
)
def test_scene_validates_fields(synthetic, kwargs, error, match):
    base = dict(name="s", root=synthetic.root, cameras=synthetic.cameras, image_paths=synthetic.image_paths)
    with pytest.raises(error, match=match):
        Scene(**{**base, **kwargs})


def test_image_size_contradicting_camera_names_the_file(tmp_path):
    save_png(tmp_path / "a.png", np.zeros((10, 12, 3), np.float32))
    cams = Camera(torch.eye(4)[None], torch.eye(3)[None], 16, 16)
    scene = Scene("s", tmp_path, cams, [tmp_path / "a.png"])
    with pytest.raises(ValueError, match=r"a\.png is 12x10 but its camera expects 16x16"):
        scene.images()


def test_downscaled_rejects_bad_factor(synthetic):
    with pytest.raises(TypeError, match="factor must be an int"):
        synthetic.downscaled(1.5)
    with pytest.raises(ValueError, match="factor must be >= 1"):
        synthetic.downscaled(0)
    with pytest.raises(ValueError, match="below one pixel"):
        synthetic.downscaled(64)


def test_subset_and_images_reject_bad_ids(synthetic):
    with pytest.raises(ValueError, match="at least one view"):
        synthetic.subset([])
    with pytest.raises(ValueError, match="ids contains 10"):
        synthetic.images([10])
    with pytest.raises(TypeError, match="ids must be a sequence"):
        synthetic.images("0")
