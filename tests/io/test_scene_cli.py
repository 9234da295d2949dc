"""``splatops scene``: info, convert (and load back), extract, bundled."""

import json
import zipfile

import torch

from io_fixtures import write_nerfstudio
from splat.io import load_scene
from splatops.cli import main


def test_info_writes_summary(tmp_path, capsys):
    root = write_nerfstudio(tmp_path / "ns")
    assert main(["scene", "info", str(root), "--json", str(tmp_path / "s.json")]) == 0
    info = json.loads((tmp_path / "s.json").read_text())
    assert (info["views"], info["width"], info["height"]) == (3, 24, 16)
    assert "views" in capsys.readouterr().out


def test_convert_to_colmap_and_back(tmp_path, capsys):
    root = write_nerfstudio(tmp_path / "ns")
    out = tmp_path / "colmap"
    assert main(["scene", "convert", str(root), str(out), "--to", "colmap-text", "--copy-images"]) == 0
    a, b = load_scene(root), load_scene(out)
    torch.testing.assert_close(b.cameras.viewmats, a.cameras.viewmats, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.images(), a.images())


def test_convert_downscaled_needs_copy(tmp_path, capsys):
    root = write_nerfstudio(tmp_path / "ns", width=24, height=16)
    assert main(["scene", "convert", str(root), str(tmp_path / "o"), "--downscale", "2"]) == 2
    assert "--downscale needs --copy-images" in capsys.readouterr().err
    assert main(["scene", "convert", str(root), str(tmp_path / "o"), "--downscale", "2", "--copy-images"]) == 0
    assert load_scene(tmp_path / "o").width == 12


def test_extract_and_errors(tmp_path, capsys):
    root = write_nerfstudio(tmp_path / "ns")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in root.rglob("*"):
            zf.write(p, p.relative_to(root).as_posix())
    assert main(["scene", "extract", str(archive), str(tmp_path / "dest")]) == 0
    assert len(load_scene(tmp_path / "dest")) == 3
    assert main(["scene", "info", str(tmp_path / "missing")]) == 2
    assert "scene path not found" in capsys.readouterr().err


def test_bundled_prints_path(capsys):
    assert main(["scene", "bundled"]) == 0
    assert capsys.readouterr().out.strip().endswith("globe")
