"""Collecting photos, zips and videos into one normalised image folder; bad input."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from splat.posefree import collect_images, collect_named_images


def _photo(path: Path, w: int = 40, h: int = 30, seed: int = 0, mode: str = "RGB") -> Path:
    rng = np.random.default_rng(seed)
    channels = 4 if mode == "RGBA" else 3
    Image.fromarray(rng.integers(0, 255, (h, w, channels), dtype=np.uint8), mode).save(path)
    return path


def _video(path: Path, n: int = 30, w: int = 64, h: int = 48) -> Path:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=10, quality=8, macro_block_size=16)
    writer.send(None)
    for k in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : (k * 2) % w] = 200
        frame[..., 2] = k * 8
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return path


def test_folder_of_images_is_normalised_and_junk_skipped(tmp_path):
    src = tmp_path / "photos"
    (src / "sub").mkdir(parents=True)
    _photo(src / "b.jpg", seed=1)
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[:, :20] = (10, 200, 30, 255)  # left half opaque green, right half transparent
    Image.fromarray(rgba, "RGBA").save(src / "a.png")
    _photo(src / "sub" / "c.bmp", seed=3)
    (src / "notes.txt").write_text("not an image")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    paths, names, warnings = collect_named_images(src, tmp_path / "out")
    assert [p.name for p in paths] == ["a.png", "b.png", "c.png"]
    assert names == ["a.png", "b.jpg", "sub/c.bmp"]
    assert all(p.parent == tmp_path / "out" for p in paths)
    for p in paths:
        with Image.open(p) as img:
            assert img.mode == "RGB" and img.size == (40, 30)
    assert len(warnings) == 1
    assert "notes.txt (not an image file)" in warnings[0] and "broken.jpg (corrupt" in warnings[0]
    assert str(tmp_path) not in warnings[0]
    # the RGBA image was composited on white
    out = np.asarray(Image.open(paths[0])).astype(int)
    assert (out[:, :20] == (10, 200, 30)).all() and (out[:, 20:] == 255).all()


def test_mixed_sizes_are_resized_to_the_most_common_with_a_warning(tmp_path):
    files = [_photo(tmp_path / f"{k}.png", 40, 30, seed=k) for k in range(3)]
    files.append(_photo(tmp_path / "big.png", 80, 50, seed=9))
    paths, warnings = collect_images(files, tmp_path / "out")
    assert {Image.open(p).size for p in paths} == {(40, 30)}
    assert any("big.png (80x50)" in w and "40x30" in w for w in warnings)


def test_max_size_downscales(tmp_path):
    files = [_photo(tmp_path / f"{k}.png", 200, 100, seed=k) for k in range(2)]
    paths, warnings = collect_images(files, tmp_path / "out", max_size=50)
    assert Image.open(paths[0]).size == (50, 25)
    assert any("downscaled" in w for w in warnings)


def test_duplicate_stems_get_unique_names(tmp_path):
    _photo(tmp_path / "x.png", seed=1)
    _photo(tmp_path / "x.jpg", seed=2)
    paths, names, _ = collect_named_images([tmp_path / "x.png", tmp_path / "x.jpg"], tmp_path / "out")
    assert [p.name for p in paths] == ["x.png", "x_1.png"]
    assert names == ["x.png", "x.jpg"]


def test_zip_of_images(tmp_path):
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for k in range(3):
            z.write(_photo(tmp_path / f"p{k}.jpg", seed=k), f"shots/p{k}.jpg")
        z.writestr("__MACOSX/._p0.jpg", b"junk")
    paths, names, warnings = collect_named_images(archive, tmp_path / "out")
    assert len(paths) == 3 and warnings == []
    assert names[0] == "upload.zip/p0.jpg"
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # staging removed


def test_video_is_sampled_to_frames(tmp_path):
    video = _video(tmp_path / "clip.mp4", n=30)
    paths, names, warnings = collect_named_images(video, tmp_path / "out", frames=5)
    assert [p.name for p in paths] == [f"frame_{k:05d}.png" for k in range(5)]
    assert Image.open(paths[0]).size == (64, 48)
    # evenly spread: the blue channel encodes the frame index (8 per frame, lossy codec)
    blue = [float(np.asarray(Image.open(p))[..., 2].mean()) for p in paths]
    assert blue == sorted(blue) and blue[-1] - blue[0] > 150


def test_fewer_than_two_images(tmp_path):
    _photo(tmp_path / "only.jpg")
    with pytest.raises(ValueError, match=r"at least 2 images .* got 1 \(only.jpg\)"):
        collect_images(tmp_path, tmp_path.parent / "out_one")
    assert not (tmp_path.parent / "out_one").exists()


def test_nothing_usable_is_refused_naming_the_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "readme.md").write_text("hi")
    (src / "fake.png").write_bytes(b"no png")
    with pytest.raises(ValueError, match=r"no usable images.*readme.md.*fake.png|no usable images.*fake.png.*readme.md"):
        collect_images(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no usable images in the input \(it is empty\)"):
        collect_images(empty, tmp_path / "out")


def test_corrupt_video_names_the_file(tmp_path):
    bad = tmp_path / "holiday.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video" * 10)
    with pytest.raises(ValueError, match=r"video holiday.mp4 is corrupt or unreadable"):
        collect_images(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["holiday.mp4"]


def test_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"input not found: missing_dir"):
        collect_images(tmp_path / "missing_dir", tmp_path / "out")
    with pytest.raises(TypeError, match=r"source must be"):
        collect_images(42, tmp_path / "out")
    with pytest.raises(ValueError, match=r"frames must be a positive int"):
        collect_images(tmp_path, tmp_path / "out", frames=0)
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    with pytest.raises(ValueError, match=r"doc.pdf is neither a folder of images"):
        collect_images(tmp_path / "doc.pdf", tmp_path / "out")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    with pytest.raises(ValueError, match=r"output folder full already exists and is not empty"):
        collect_images(tmp_path, full)
