"""COLMAP sparse models: text vs binary, parity with pycolmap, and every error path."""

import shutil
import struct

import numpy as np
import pytest
import torch

from io_fixtures import write_image
from splat.io import load_colmap, load_scene, make_synthetic_scene, save_colmap
from splat.io.colmap import read_colmap_model


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return make_synthetic_scene(num_views=6, size=20, root=tmp_path_factory.mktemp("syn") / "images")


def _colmap_scene(scene, root, binary=True):
    save_colmap(scene, root / "sparse" / "0", binary=binary)
    if not (root / "images").exists():
        shutil.copytree(scene.root, root / "images")
    return root


def test_text_and_binary_give_identical_cameras(synthetic, tmp_path):
    text = load_colmap(_colmap_scene(synthetic, tmp_path / "t", binary=False))
    binary = load_colmap(_colmap_scene(synthetic, tmp_path / "b", binary=True))
    assert torch.equal(text.cameras.viewmats, binary.cameras.viewmats)
    assert torch.equal(text.cameras.Ks, binary.cameras.Ks)
    assert torch.equal(text.points, binary.points) and torch.equal(text.point_colors, binary.point_colors)
    torch.testing.assert_close(binary.cameras.viewmats, synthetic.cameras.viewmats, atol=1e-6, rtol=0)
    torch.testing.assert_close(binary.cameras.Ks, synthetic.cameras.Ks)
    torch.testing.assert_close(binary.images(), synthetic.images(), atol=0, rtol=0)
    assert binary.test_ids == [0] and binary.train_ids == [1, 2, 3, 4, 5]


def test_pycolmap_reads_our_models_and_we_read_pycolmaps(synthetic, tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    folder = save_colmap(synthetic, tmp_path / "ours", binary=True)
    rec = pycolmap.Reconstruction(str(folder))
    by_name = {im.name: im for im in rec.images.values()}
    for i, path in enumerate(synthetic.image_paths):
        w2c = by_name[path.name].cam_from_world().matrix()
        np.testing.assert_allclose(w2c, synthetic.cameras.viewmats[i, :3].double().numpy(), atol=1e-6)
    # pycolmap's writer (text and binary) into our reader.
    for fmt in ("text", "binary"):
        out = tmp_path / f"theirs_{fmt}"
        out.mkdir()
        getattr(rec, f"write_{fmt}")(str(out))
        model = read_colmap_model(out)
        for im in model.images.values():
            w2c = by_name[im.name].cam_from_world().matrix()
            R = torch.from_numpy(w2c[:, :3])
            from splat.core.camera import quat_to_rotmat

            torch.testing.assert_close(quat_to_rotmat(torch.from_numpy(im.qvec)), R, atol=1e-9, rtol=0)
            np.testing.assert_allclose(im.tvec, w2c[:, 3], atol=1e-12)
        cam = model.cameras[1]
        assert (cam.model, cam.width, cam.height) == ("PINHOLE", 20, 20)
        np.testing.assert_allclose(cam.params, rec.cameras[1].params)
        np.testing.assert_allclose(model.points, synthetic.points.double().numpy(), atol=1e-6)


def test_load_scene_detects_sparse_and_sparse0_and_model_folder(synthetic, tmp_path):
    root = _colmap_scene(synthetic, tmp_path / "a")
    assert len(load_scene(root)) == 6
    flat = tmp_path / "flat"
    save_colmap(synthetic, flat / "sparse", binary=False)
    shutil.copytree(synthetic.root, flat / "images")
    assert load_scene(flat).name == "flat"
    assert load_colmap(flat / "sparse").root == flat  # a model folder finds its images


def _write_model(folder, model_line, size=(20, 20), params=None, image_name="view_000.png"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cameras.txt").write_text(f"1 {model_line} {size[0]} {size[1]} {params}\n")
    (folder / "images.txt").write_text(f"1 1 0 0 0 0 0 3 1 {image_name}\n\n")
    (folder / "points3D.txt").write_text("")


@pytest.mark.parametrize(
    "model, params, expected",
    [
        ("SIMPLE_PINHOLE", "15 10 9", [15, 15, 10, 9]),
        ("SIMPLE_RADIAL", "15 10 9 0", [15, 15, 10, 9]),
        ("RADIAL", "15 10 9 0 0", [15, 15, 10, 9]),
        ("OPENCV", "15 16 10 9 0 0 0 0", [15, 16, 10, 9]),
    ],
)
def test_pinhole_models_with_zero_distortion_load(tmp_path, model, params, expected):
    write_image(tmp_path / "images" / "view_000.png", 20, 20)
    _write_model(tmp_path / "sparse" / "0", model, params=params)
    K = load_colmap(tmp_path).cameras.Ks[0]
    fx, fy, cx, cy = expected
    torch.testing.assert_close(K, torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32))


@pytest.mark.parametrize(
    "model, params, error, match",
    [
        ("SIMPLE_RADIAL", "15 10 9 0.05", ValueError, r"non-zero distortion \[0.05\]; undistortion is unsupported"),
        ("OPENCV", "15 16 10 9 0 0 0.01 0", ValueError, "non-zero distortion"),
        ("OPENCV_FISHEYE", "15 16 10 9 0 0 0 0", ValueError, "uses model OPENCV_FISHEYE, unsupported"),
        ("WEIRD", "1 2 3", ValueError, "unknown camera model 'WEIRD'"),
        ("PINHOLE", "15 16 10", ValueError, "model PINHOLE needs 4 parameters, got 3"),
        ("PINHOLE", "15 16 10 x", ValueError, r"cameras.txt:1: malformed line"),
    ],
)
def test_bad_cameras_raise(tmp_path, model, params, error, match):
    write_image(tmp_path / "images" / "view_000.png", 20, 20)
    _write_model(tmp_path / "sparse" / "0", model, params=params)
    with pytest.raises(error, match=match):
        load_colmap(tmp_path)


def test_image_size_contradicting_camera(tmp_path):
    write_image(tmp_path / "images" / "view_000.png", 22, 20)
    _write_model(tmp_path / "sparse" / "0", "PINHOLE", params="15 16 10 9")
    with pytest.raises(ValueError, match=r"view_000\.png is 22x20 but its camera expects 20x20"):
        load_colmap(tmp_path)


def test_mixed_camera_sizes_are_rejected(tmp_path):
    folder = tmp_path / "sparse" / "0"
    folder.mkdir(parents=True)
    (folder / "cameras.txt").write_text("1 PINHOLE 20 20 15 15 10 10\n2 PINHOLE 30 20 15 15 15 10\n")
    (folder / "images.txt").write_text("1 1 0 0 0 0 0 3 1 a.png\n\n2 1 0 0 0 0 0 3 2 b.png\n\n")
    write_image(tmp_path / "images" / "a.png", 20, 20)
    write_image(tmp_path / "images" / "b.png", 30, 20)
    with pytest.raises(ValueError, match="cameras of mixed image sizes are unsupported"):
        load_colmap(tmp_path)


def test_missing_files_raise_file_not_found(tmp_path, synthetic):
    with pytest.raises(FileNotFoundError, match="COLMAP scene not found"):
        load_colmap(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no COLMAP model"):
        load_colmap(tmp_path)
    save_colmap(synthetic, tmp_path / "sparse" / "0")
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_colmap(tmp_path)
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="image 'view_000.png' not found"):
        load_colmap(tmp_path)
    (tmp_path / "sparse" / "0" / "images.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"COLMAP model file not found: .*images\.bin"):
        load_colmap(tmp_path)


def test_malformed_binary_and_text_models(tmp_path, synthetic):
    folder = save_colmap(synthetic, tmp_path / "sparse" / "0")
    shutil.copytree(synthetic.root, tmp_path / "images")
    data = (folder / "images.bin").read_bytes()
    (folder / "images.bin").write_bytes(data[:-5])
    with pytest.raises(ValueError, match=r"images\.bin is truncated or malformed"):
        load_colmap(tmp_path)
    (folder / "cameras.bin").write_bytes(struct.pack("<QiiQQ", 1, 1, 42, 20, 20))
    with pytest.raises(ValueError, match="unknown camera model id 42"):
        load_colmap(tmp_path)
    text = save_colmap(synthetic, tmp_path / "t" / "sparse" / "0", binary=False)
    shutil.copytree(synthetic.root, tmp_path / "t" / "images")
    (text / "images.txt").write_text("1 1 0 0 0 0 0\n")
    with pytest.raises(ValueError, match=r"images\.txt:1: expected 'IMAGE_ID QW"):
        load_colmap(tmp_path / "t")
    (text / "images.txt").write_text("")
    with pytest.raises(ValueError, match="has no registered images"):
        load_colmap(tmp_path / "t")


def test_image_referring_to_unknown_camera(tmp_path):
    _write_model(tmp_path / "sparse" / "0", "PINHOLE", params="15 16 10 9")
    (tmp_path / "sparse" / "0" / "images.txt").write_text("1 1 0 0 0 0 0 3 7 view_000.png\n\n")
    write_image(tmp_path / "images" / "view_000.png", 20, 20)
    with pytest.raises(ValueError, match="refers to unknown camera 7"):
        load_colmap(tmp_path)


def test_points_with_tracks_match_pycolmap(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction()
    rec.add_camera_with_trivial_rig(pycolmap.Camera(model="PINHOLE", width=64, height=48,
                                                    params=[50, 52, 32, 24], camera_id=1))
    points2d = [pycolmap.Point2D(np.array([float(i), float(i)])) for i in range(6)]
    rec.add_image_with_trivial_frame(pycolmap.Image(name="a.png", camera_id=1, image_id=1, points2D=points2d),
                                     pycolmap.Rigid3d())
    rng = np.random.default_rng(0)
    for k in range(6):
        track = pycolmap.Track()
        for _ in range(k % 3 + 1):  # tracks of different lengths
            track.add_element(1, k)
        rec.add_point3D(rng.normal(size=3), track, rng.integers(0, 255, 3).astype(np.uint8))
    ids = sorted(rec.points3D)
    for fmt in ("binary", "text"):
        out = tmp_path / fmt
        out.mkdir()
        getattr(rec, f"write_{fmt}")(str(out))
        model = read_colmap_model(out)
        np.testing.assert_array_equal(model.points, np.array([rec.points3D[i].xyz for i in ids]))
        np.testing.assert_array_equal(model.colors, np.array([rec.points3D[i].color for i in ids]))
        assert model.images[1].name == "a.png"
    data = (tmp_path / "binary" / "points3D.bin").read_bytes()
    (tmp_path / "binary" / "points3D.bin").write_bytes(data[:-4])
    with pytest.raises(ValueError, match=r"points3D\.bin is truncated or malformed"):
        read_colmap_model(tmp_path / "binary")
