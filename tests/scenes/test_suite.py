"""The generated fitting scenes: files, poses against VTK's own projection, determinism."""

import hashlib
import json

import numpy as np
import pytest

from splat.scenes import SUITE, make_scene, reprojection_error

SMALL = dict(num_views=4, size=(48, 36))


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("suite")
    return {name: make_scene(name, root / name, **SMALL) for name in SUITE if name != "tabletop_hd"}


def _digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_suite_has_the_promised_variety():
    specs = SUITE.values()
    assert len(SUITE) >= 6
    assert {s.layout for s in specs} == {"orbit", "forward"}
    assert any(s.num_points for s in specs) and any(not s.num_points for s in specs)
    assert max(s.size[0] for s in specs) >= 800


@pytest.mark.slow
def test_scene_files_and_loading(scenes):
    from splat.io import load_nerfstudio

    for name, path in scenes.items():
        meta = json.loads((path / "transforms.json").read_text())
        assert meta["w"] == 48 and meta["h"] == 36 and len(meta["frames"]) == 4, name
        assert ("ply_file_path" in meta) == bool(SUITE[name].num_points), name
        scene = load_nerfstudio(path)
        assert scene.test_ids == [0] and scene.train_ids == [1, 2, 3], name
        images = scene.images(list(range(4)))
        assert images.shape == (4, 36, 48, 3)
        # every view shows something besides a flat background
        assert float(images.reshape(4, -1, 3).std(dim=1).mean(dim=-1).min()) > 0.02, name
        if SUITE[name].num_points:
            assert scene.points.shape[0] > 50, name
            # the sparse cloud lies in front of the cameras that made it
            vm = scene.cameras.viewmats
            z = scene.points @ vm[:, 2, :3].T + vm[:, 2, 3]  # [P, C] camera-space depth
            assert float((z > 0).any(dim=1).float().mean()) > 0.99, name


@pytest.mark.slow
def test_poses_reproduce_vtk_projection(scenes):
    for name, path in scenes.items():
        assert reprojection_error(path) < 0.01, name  # pixels


@pytest.mark.slow
def test_deterministic(scenes, tmp_path):
    again = make_scene("photo_wall", tmp_path / "again", **SMALL)
    assert _digest(again) == _digest(scenes["photo_wall"])
    other = make_scene("photo_wall", tmp_path / "other", **SMALL, seed=1)
    assert _digest(other) != _digest(scenes["photo_wall"])


def test_reprojection_error_catches_a_wrong_pose(scenes, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(scenes["tabletop"], bad)
    meta = json.loads((bad / "transforms.json").read_text())
    for frame in meta["frames"]:
        m = np.asarray(frame["transform_matrix"])
        m[:3, 3] += 0.05  # cameras moved 5 cm
        frame["transform_matrix"] = m.tolist()
    (bad / "transforms.json").write_text(json.dumps(meta))
    assert reprojection_error(bad) > 0.1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown scene 'nope'"):
        make_scene("nope", tmp_path / "x")
    with pytest.raises(ValueError, match="num_views must be >= 2"):
        make_scene("thin", tmp_path / "x", num_views=1)
    with pytest.raises(TypeError, match="size must be an int width"):
        make_scene("thin", tmp_path / "x", size="big")
    with pytest.raises(ValueError, match="at least 8x8"):
        make_scene("thin", tmp_path / "x", size=4)
    assert not (tmp_path / "x").exists()


def test_size_keeps_aspect():
    from splat.scenes import _size

    assert _size(400, SUITE["tabletop"]) == (400, 300)
    assert _size((64, 32), SUITE["tabletop"]) == (64, 32)
    assert _size(None, SUITE["tabletop_hd"]) == (800, 600)
