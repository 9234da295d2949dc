import numpy as np
import pytest
import torch

from splat.core.gaussians import SH_C0, Gaussians
from splat.io.ply import load_ply, ply_property_names, save_ply, save_splat


def _gaussians(n=37, degree=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return Gaussians(
        {
            "means": torch.randn(n, 3, generator=g),
            "quats": torch.randn(n, 4, generator=g),
            "scales": torch.randn(n, 3, generator=g) - 3,
            "opacities": torch.randn(n, generator=g),
            "sh0": torch.randn(n, 1, 3, generator=g),
            "shN": torch.randn(n, k, 3, generator=g),
        }
    )


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_ply_round_trip_is_exact(tmp_path, degree):
    g = _gaussians(degree=degree)
    path = save_ply(g, tmp_path / "sub" / "point_cloud.ply")
    h = load_ply(path)
    assert h.sh_degree == degree
    for key in g.params:
        torch.testing.assert_close(h.params[key], g.params[key], rtol=0, atol=0)
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["point_cloud.ply"]  # no temp files left


def test_ply_layout_read_by_plyfile(tmp_path):
    plyfile = pytest.importorskip("plyfile")
    g = _gaussians(degree=1)
    path = save_ply(g, tmp_path / "a.ply")
    ply = plyfile.PlyData.read(str(path))
    v = ply["vertex"]
    assert [p.name for p in v.properties] == ply_property_names(9)
    assert all(p.val_dtype in ("f4", "float32", "float") for p in v.properties)
    np.testing.assert_array_equal(v["x"], g.params["means"][:, 0].detach().numpy())
    np.testing.assert_array_equal(v["opacity"], g.params["opacities"].detach().numpy())
    np.testing.assert_array_equal(v["rot_0"], g.params["quats"][:, 0].detach().numpy())
    # f_rest is channel-major: f_rest_{c * K + k} holds coefficient k of channel c
    shn = g.params["shN"].detach().numpy()
    np.testing.assert_array_equal(v["f_rest_4"], shn[:, 1, 1])  # c=1, k=1, K=3
    np.testing.assert_array_equal(v["f_rest_2"], shn[:, 2, 0])


def test_ply_header_is_standard(tmp_path):
    path = save_ply(_gaussians(n=5, degree=0), tmp_path / "a.ply")
    raw = path.read_bytes()
    header, body = raw.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 5"]
    assert len(body) == 5 * 17 * 4  # 17 float32 properties at degree 0


def test_splat_export_layout(tmp_path):
    g = _gaussians(n=20, degree=1)
    path = save_splat(g, tmp_path / "a.splat")
    rec = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    data = np.frombuffer(path.read_bytes(), dtype=rec)
    assert rec.itemsize == 32 and len(data) == 20
    size = g.scales.prod(-1) * g.opacities
    order = torch.argsort(size, descending=True).numpy()
    np.testing.assert_allclose(data["pos"], g.means.detach().numpy()[order])
    np.testing.assert_allclose(data["scale"], g.scales.detach().numpy()[order], rtol=1e-6)
    rgb = (g.params["sh0"][:, 0] * SH_C0 + 0.5).clamp(0, 1).detach().numpy()[order]
    np.testing.assert_allclose(data["rgba"][:, :3] / 255.0, rgb, atol=0.5 / 255 + 1e-6)
    np.testing.assert_allclose(data["rgba"][:, 3] / 255.0, g.opacities.detach().numpy()[order], atol=0.5 / 255 + 1e-6)
    q = (data["rot"].astype(np.float64) - 128) / 128
    np.testing.assert_allclose(q, g.quats.detach().numpy()[order], atol=1 / 128)


def test_ply_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="PLY file not found"):
        load_ply(tmp_path / "missing.ply")
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"hello\n")
    with pytest.raises(ValueError, match="not a PLY file"):
        load_ply(bad)
    ascii_ply = tmp_path / "ascii.ply"
    ascii_ply.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n")
    with pytest.raises(ValueError, match="only binary PLY"):
        load_ply(ascii_ply)
    mesh = tmp_path / "mesh.ply"
    mesh.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n"
                     b"property float y\nproperty float z\nend_header\n" + np.zeros(3, "<f4").tobytes())
    with pytest.raises(ValueError, match="not a 3DGS PLY, missing vertex properties"):
        load_ply(mesh)
    full = save_ply(_gaussians(n=4), tmp_path / "full.ply")
    truncated = tmp_path / "trunc.ply"
    truncated.write_bytes(full.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_ply(truncated)
    with pytest.raises(TypeError, match="gaussians must be"):
        save_ply({"means": torch.zeros(1, 3)}, tmp_path / "x.ply")
    with pytest.raises(TypeError, match="gaussians must be"):
        save_splat(None, tmp_path / "x.splat")
