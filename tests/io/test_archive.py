"""Validation of uploaded scene archives."""

import os
import stat
import zipfile

import pytest

from io_fixtures import write_image, write_nerfstudio
from splat.io import extract_scene_archive, load_scene


def zip_folder(folder, zip_path, prefix=""):
    with zipfile.ZipFile(zip_path, "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return zip_path


def test_wrapped_scene_is_extracted_and_loads(tmp_path):
    src = write_nerfstudio(tmp_path / "src")
    archive = zip_folder(src, tmp_path / "up.zip", prefix="my_scene/")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("__MACOSX/._junk", b"x")
    root = extract_scene_archive(archive, tmp_path / "dest")
    assert root == tmp_path / "dest" / "my_scene"
    assert len(load_scene(root)) == 3


def test_images_only_archive_is_accepted(tmp_path):
    write_image(tmp_path / "photos" / "a.jpg.png", 8, 8)
    root = extract_scene_archive(zip_folder(tmp_path / "photos", tmp_path / "p.zip"), tmp_path / "d")
    assert (root / "a.jpg.png").is_file()


def _no_leftovers(parent, name):
    return not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


@pytest.mark.parametrize(
    "member, match",
    [("../evil.txt", "unsafe path '../evil.txt'"), ("/etc/evil", "unsafe path '/etc/evil'"),
     ("a/../../evil", "unsafe path"), ("C:/evil", "unsafe path")],
)
def test_path_traversal_is_rejected(tmp_path, member, match):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, b"x")
    with pytest.raises(ValueError, match=match):
        extract_scene_archive(archive, tmp_path / "dest")
    assert not (tmp_path / "dest").exists() and not (tmp_path / "evil.txt").exists()


def test_symlink_member_is_rejected(tmp_path):
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("scene/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ValueError, match="is a symbolic link"):
        extract_scene_archive(archive, tmp_path / "dest")


def test_size_and_count_limits(tmp_path):
    archive = zip_folder(write_nerfstudio(tmp_path / "src"), tmp_path / "up.zip")
    with pytest.raises(ValueError, match="more than the limit of"):
        extract_scene_archive(archive, tmp_path / "d1", max_bytes=100)
    with pytest.raises(ValueError, match="holds 4 files, more than the limit of 2"):
        extract_scene_archive(archive, tmp_path / "d2", max_files=2)
    with pytest.raises(ValueError, match="max_bytes must be a positive int"):
        extract_scene_archive(archive, tmp_path / "d3", max_bytes=0)
    assert not (tmp_path / "d1").exists() and _no_leftovers(tmp_path, "d1")


def test_not_a_zip_missing_and_corrupt(tmp_path):
    with pytest.raises(FileNotFoundError, match="archive not found"):
        extract_scene_archive(tmp_path / "none.zip", tmp_path / "d")
    (tmp_path / "fake.zip").write_bytes(b"hello, not a zip")
    with pytest.raises(ValueError, match="is not a zip archive"):
        extract_scene_archive(tmp_path / "fake.zip", tmp_path / "d")
    archive = zip_folder(write_nerfstudio(tmp_path / "src"), tmp_path / "up.zip")
    data = bytearray(archive.read_bytes())
    start = data.index(b"PK\x03\x04") + 40
    data[start:start + 200] = bytes(200)  # damage the first member's data
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt zip archive"):
        extract_scene_archive(archive, tmp_path / "d")
    assert not (tmp_path / "d").exists() and _no_leftovers(tmp_path, "d")


def test_archive_without_scene_or_images(tmp_path):
    archive = tmp_path / "docs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="holds no recognisable scene and no images"):
        extract_scene_archive(archive, tmp_path / "d")
    assert not (tmp_path / "d").exists() and _no_leftovers(tmp_path, "d")


def test_destination_must_be_new_or_empty(tmp_path):
    archive = zip_folder(write_nerfstudio(tmp_path / "src"), tmp_path / "up.zip")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ValueError, match="already exists and is not an empty folder"):
        extract_scene_archive(archive, tmp_path / "full")
    (tmp_path / "empty").mkdir()
    assert load_scene(extract_scene_archive(archive, tmp_path / "empty")).name == "empty"
    assert os.listdir(tmp_path / "full") == ["x"]
