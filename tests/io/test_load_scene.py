"""Format detection and the errors for folders that hold no scene."""

import pytest

from io_fixtures import write_image, write_nerfstudio
from splat.io import detect_format, load_scene


def test_detects_nerfstudio_folder_and_file(tmp_path):
    root = write_nerfstudio(tmp_path / "ns")
    assert detect_format(root) == "nerfstudio"
    assert detect_format(root / "transforms.json") == "nerfstudio"
    scene = load_scene(root)
    assert len(scene) == 3 and scene.name == "ns"


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="scene path not found"):
        load_scene(tmp_path / "nothing")


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        load_scene(tmp_path)


def test_images_without_poses(tmp_path):
    write_image(tmp_path / "photos" / "a.png", 8, 8)
    with pytest.raises(ValueError, match="holds 1 images but no camera poses"):
        load_scene(tmp_path)


def test_unrecognised_folder_and_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="no scene recognised"):
        load_scene(tmp_path)
    with pytest.raises(ValueError, match="is not a scene file"):
        load_scene(tmp_path / "notes.txt")
    (tmp_path / "up.zip").write_bytes(b"PK")
    with pytest.raises(ValueError, match="extract_scene_archive"):
        load_scene(tmp_path / "up.zip")


def test_rejects_non_path():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        load_scene(3)


def test_kwargs_reach_the_loader(tmp_path):
    root = write_nerfstudio(tmp_path)
    (root / "images" / "f00.png").write_bytes((root / "images" / "f00.png").read_bytes()[:60])
    with pytest.raises(ValueError, match="corrupt"):
        load_scene(root)
    # With verification off only the (intact) header is read; the first decode then fails.
    scene = load_scene(root, verify_images=False)
    with pytest.raises(ValueError, match=r"f00\.png is corrupt"):
        scene.images([0])
