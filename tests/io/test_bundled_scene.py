"""The bundled example scene: sizes, counts, and cameras that reproduce VTK's projection."""

import json

import pytest
import torch

from splat.core.camera import project_points
from splat.io import bundled_scene_path, load_bundled_scene, load_scene


@pytest.fixture(scope="module")
def scene():
    return load_bundled_scene()


def test_bundled_scene_sizes_and_counts(scene):
    assert scene.name == "globe"
    assert len(scene) == 32 and (scene.width, scene.height) == (320, 240)
    assert scene.test_ids == [0, 8, 16, 24] and len(scene.train_ids) == 28
    assert scene.background == (1.0, 1.0, 1.0)
    assert scene.points.shape == (4000, 3) and scene.point_colors.shape == (4000, 3)
    assert 0.0 <= scene.point_colors.min() and scene.point_colors.max() <= 1.0
    images = scene.images([0, 31])
    assert images.shape == (2, 240, 320, 3)
    # White background around an object: corners are background, the centre is not.
    assert torch.all(images[:, 0, 0] == 1.0)
    assert images[:, 100:140, 140:180].mean() < 0.8


def test_bundled_path_is_detected_as_nerfstudio():
    assert load_scene(bundled_scene_path() / "transforms.json").name == "globe"


def test_cameras_project_reference_points_onto_their_pixels(scene):
    refs = json.loads((bundled_scene_path() / "reference_points.json").read_text())["points"]
    assert len(refs) >= 32
    names = [p.relative_to(scene.root).as_posix() for p in scene.image_paths]
    for ref in refs:
        i = names.index(ref["file_path"])
        uv, depth = project_points(
            torch.tensor([ref["world"]], dtype=torch.float64),
            scene.cameras.viewmats[i : i + 1].double(),
            scene.cameras.Ks[i : i + 1].double(),
        )
        assert depth.item() > 0
        torch.testing.assert_close(uv[0, 0], torch.tensor(ref["pixel"], dtype=torch.float64), atol=0.02, rtol=0)
        # The pixel shows the object (not the white background).
        u, v = (int(c) for c in ref["pixel"])
        assert scene.image(i)[v, u].min() < 0.99


def test_points_lie_inside_the_camera_frusta(scene):
    uv, depth = project_points(scene.points.double(), scene.cameras.viewmats.double(), scene.cameras.Ks.double())
    inside = (depth > 0) & (uv[..., 0] >= 0) & (uv[..., 0] < 320) & (uv[..., 1] >= 0) & (uv[..., 1] < 240)
    assert inside.float().mean() > 0.95
