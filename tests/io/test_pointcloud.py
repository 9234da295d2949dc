"""Point-cloud PLY reading and writing."""

import numpy as np
import pytest

from splat.io.pointcloud import read_points_ply, write_points_ply


def test_binary_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    xyz, rgb = rng.normal(size=(50, 3)).astype(np.float32), rng.random((50, 3)).astype(np.float32)
    write_points_ply(tmp_path / "p.ply", xyz, rgb)
    xyz2, rgb2 = read_points_ply(tmp_path / "p.ply")
    np.testing.assert_array_equal(xyz2, xyz)
    np.testing.assert_allclose(rgb2, rgb, atol=0.5 / 255 + 1e-7)
    write_points_ply(tmp_path / "q.ply", xyz)
    assert read_points_ply(tmp_path / "q.ply")[1] is None


def test_ascii_with_faces_and_big_endian(tmp_path):
    (tmp_path / "a.ply").write_text(
        "ply\nformat ascii 1.0\ncomment hi\nelement vertex 2\nproperty float x\nproperty float y\n"
        "property float z\nproperty uchar red\nproperty uchar green\nproperty uchar blue\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n1 2 3 255 0 0\n4 5 6 0 255 0\n3 0 1 1\n"
    )
    xyz, rgb = read_points_ply(tmp_path / "a.ply")
    np.testing.assert_array_equal(xyz, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(rgb, [[1, 0, 0], [0, 1, 0]])
    header = b"ply\nformat binary_big_endian 1.0\nelement vertex 1\nproperty double x\nproperty double y\nproperty double z\nend_header\n"
    (tmp_path / "b.ply").write_bytes(header + np.array([1.5, -2.0, 3.0], ">f8").tobytes())
    np.testing.assert_array_equal(read_points_ply(tmp_path / "b.ply")[0], [[1.5, -2.0, 3.0]])


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a ply", "not a PLY file"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\n", "no 'end_header'"),
        (b"ply\nformat foo 1.0\nend_header\n", "unsupported PLY format 'foo'"),
        (b"ply\nformat ascii 1.0\nelement face 0\nend_header\n", "no 'vertex' element"),
        (b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float a\nend_header\n1\n", "lack x, y, z"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
         b"property float z\nend_header\n\x00\x00", "shorter than its header"),
    ],
)
def test_bad_ply_files(tmp_path, content, match):
    (tmp_path / "bad.ply").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        read_points_ply(tmp_path / "bad.ply")


def test_missing_file_and_bad_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match="point cloud file not found"):
        read_points_ply(tmp_path / "none.ply")
    with pytest.raises(ValueError, match=r"points must be \[P, 3\]"):
        write_points_ply(tmp_path / "x.ply", np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"colors must be \[P, 3\] with P=3"):
        write_points_ply(tmp_path / "x.ply", np.zeros((3, 3)), np.zeros((2, 3)))
    assert not (tmp_path / "x.ply").exists()
