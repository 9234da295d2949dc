"""Collecting a user's photos (a folder, a list, a zip or a video) into one normalised image set.

Structure-from-motion and the splat fit want one folder of RGB images of one
size with stable, unique names. :func:`collect_images` builds it:

* non-image files are skipped with a warning (refused when nothing is left);
* EXIF orientation is applied, alpha is composited on white, 16-bit and grey
  images become 8-bit RGB;
* images of different sizes are resized to the most common size (warned);
* ``max_size`` optionally downscales so the longer side is at most that many pixels;
* a video is sampled to ``frames`` evenly spaced frames with imageio-ffmpeg.

Errors and warnings name the user's files by their own names, never by a server path.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from splat.io.images import IMAGE_SUFFIXES

#: Video containers sampled to frames with imageio-ffmpeg.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
#: Frames sampled from a video when ``frames`` is not given.
DEFAULT_VIDEO_FRAMES = 24
#: Fewest images structure-from-motion can work with.
MIN_IMAGES = 2

_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini")

Progress = Callable[[float, str], None]


def is_video_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has a video suffix that :func:`collect_images` samples."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _is_junk(path: Path) -> bool:
    return path.name in _JUNK or path.name.startswith("._") or any(p == "__MACOSX" for p in path.parts)


def _list_source(source, workspace: Path) -> tuple[list[tuple[Path, str]], bool, list[str]]:
    """Files of ``source`` as ``(path, user_name)``, whether it is a video, and warnings."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"input not found: {path.name}")
        if path.is_dir():
            files = sorted((p for p in path.rglob("*") if p.is_file() and not _is_junk(p.relative_to(path))),
                           key=lambda p: str(p.relative_to(path)))
            return [(p, str(p.relative_to(path).as_posix())) for p in files], False, []
        if path.suffix.lower() == ".zip":
            return _unzip(path, workspace), False, []
        if is_video_file(path):
            return [(path, path.name)], True, []
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return [(path, path.name)], False, []
        raise ValueError(
            f"{path.name} is neither a folder of images, a .zip of images nor a video "
            f"({', '.join(VIDEO_SUFFIXES)})"
        )
    if isinstance(source, Sequence) and not isinstance(source, (bytes, str)):
        out = []
        for item in source:
            if not isinstance(item, (str, os.PathLike)):
                raise TypeError(f"source list must hold paths, got {type(item).__name__}")
            p = Path(item)
            if not p.is_file():
                raise FileNotFoundError(f"input image not found: {p.name}")
            out.append((p, p.name))
        videos = [name for p, name in out if is_video_file(p)]
        if videos and len(out) > 1:
            raise ValueError(f"give one video or a set of images, not both: {', '.join(videos)} among {len(out)} files")
        if videos:
            return out, True, []
        return out, False, []
    raise TypeError(
        f"source must be a folder, an image list, a .zip or a video path, got {type(source).__name__}"
    )


def _unzip(path: Path, workspace: Path) -> list[tuple[Path, str]]:
    from splat.io.archive import extract_scene_archive

    dest = workspace / "unzipped"
    try:
        root = extract_scene_archive(path, dest)
    except ValueError as exc:  # the archive helper names the server path; show the user's name
        raise ValueError(str(exc).replace(str(path), path.name)) from None
    files = sorted((p for p in root.rglob("*") if p.is_file() and not _is_junk(p.relative_to(root))),
                   key=lambda p: str(p.relative_to(root)))
    return [(p, f"{path.name}/{p.relative_to(root).as_posix()}") for p in files]


def _open_rgb(path: Path) -> np.ndarray:
    """``[H, W, 3]`` uint8 RGB with EXIF orientation applied and alpha composited on white."""
    with Image.open(path) as img:
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = (np.clip(np.asarray(img, np.float64) / 257.0, 0, 255) + 0.5).astype(np.uint8)
            return np.repeat(arr[..., None], 3, axis=-1)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = np.asarray(img.convert("RGBA"), np.float32) / 255.0
            rgb = rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
            return (rgb * 255.0 + 0.5).astype(np.uint8)
        return np.asarray(img.convert("RGB"))


def _read_video(path: Path, name: str, frames: int, progress: Progress | None) -> list[tuple[np.ndarray, str]]:
    """``frames`` evenly spaced RGB frames of a video (fewer if it is shorter)."""
    import imageio_ffmpeg

    try:
        total, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, ValueError, IndexError) as exc:
        raise ValueError(f"video {name} is corrupt or unreadable: {str(exc).replace(str(path), name)[:300]}") from None
    if total < 1:
        raise ValueError(f"video {name} has no frames")
    keep = sorted(set(np.linspace(0, total - 1, min(frames, total)).round().astype(int).tolist()))
    wanted = set(keep)
    out = []
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        w, h = meta["size"]
        for i, raw in enumerate(reader):
            if i in wanted:
                out.append((np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy(), f"frame_{len(out):05d}.png"))
                if progress is not None:
                    progress(len(out) / len(keep), f"reading frames of {name}")
            if i >= keep[-1]:
                break
        reader.close()
    except (RuntimeError, OSError, ValueError, StopIteration) as exc:
        raise ValueError(f"video {name} is corrupt or unreadable: {str(exc).replace(str(path), name)[:300]}") from None
    if len(out) < MIN_IMAGES:
        raise ValueError(f"video {name} gave {len(out)} frame(s); at least {MIN_IMAGES} are needed")
    return out


def _unique_png_name(user_name: str, taken: set[str]) -> str:
    stem = Path(user_name).stem
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "image"
    name, k = f"{safe}.png", 1
    while name.lower() in taken:
        name, k = f"{safe}_{k}.png", k + 1
    taken.add(name.lower())
    return name


def _target_size(sizes: list[tuple[int, int]], max_size: int | None) -> tuple[int, int]:
    """The most common ``(w, h)`` (ties: the largest), shrunk to fit ``max_size``."""
    counts = collections.Counter(sizes)
    w, h = max(counts, key=lambda s: (counts[s], s[0] * s[1]))
    if max_size is not None and max(w, h) > max_size:
        f = max_size / max(w, h)
        w, h = max(1, round(w * f)), max(1, round(h * f))
    return w, h


def collect_images(
    source,
    out_dir: str | os.PathLike,
    *,
    frames: int | None = None,
    max_size: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[Path], list[str]]:
    """Normalises a user's photos or video into one folder of same-size RGB PNGs.

    See :func:`collect_named_images` (this returns its paths and warnings only).

    Returns:
        ``(paths, warnings)``.
    """
    paths, _, warnings = collect_named_images(source, out_dir, frames=frames, max_size=max_size, progress=progress)
    return paths, warnings


def collect_named_images(
    source,
    out_dir: str | os.PathLike,
    *,
    frames: int | None = None,
    max_size: int | None = None,
    progress: Progress | None = None,
) -> tuple[list[Path], list[str], list[str]]:
    """Normalises a user's photos or video into one folder of same-size RGB PNGs.

    Args:
        source: a folder of images (searched recursively), a list of image paths,
            a ``.zip`` of images, or a video file.
        out_dir: folder to create with the normalised images (must not exist or be
            empty). It appears only when everything succeeded.
        frames: frames to sample from a video (default :data:`DEFAULT_VIDEO_FRAMES`);
            ignored for images.
        max_size: downscale so the longer side is at most this many pixels.
        progress: optional ``progress(fraction, message)`` callback.

    Returns:
        ``(paths, names, warnings)``: the PNG files in ``out_dir`` (in the order of
        the sorted input names or of the video frames), the user's name of each
        (``photo.jpg``, ``photos.zip/a/b.jpg``, ``frame_00003.png`` of a video) and
        warnings for the user (skipped files, resized images).

    Raises:
        FileNotFoundError: ``source`` does not exist.
        TypeError: ``source`` is not a path or a list of paths.
        ValueError: fewer than 2 usable images, no image at all, a corrupt video
            or archive, ``out_dir`` not empty, bad ``frames``/``max_size``.

    >>> import tempfile, numpy as np, pathlib
    >>> from PIL import Image
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> for i in range(2):
    ...     Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(src / f"{i}.jpg")
    >>> paths, names, warnings = collect_named_images(src, src / "out")
    >>> [p.name for p in paths], names, warnings
    (['0.png', '1.png'], ['0.jpg', '1.jpg'], [])
    """
    for arg, value in (("frames", frames), ("max_size", max_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{arg} must be a positive int or None, got {value!r}")
    if frames is not None and frames < MIN_IMAGES:
        raise ValueError(f"frames must be at least {MIN_IMAGES}, got {frames}")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ValueError(f"output folder {out_dir.name} already exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    workspace = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        files, is_video, warnings = _list_source(source, workspace)
        images: list[tuple[np.ndarray, str]] = []  # (pixels, user name)
        if is_video:
            (path, name), = files
            images = _read_video(path, name, frames or DEFAULT_VIDEO_FRAMES, progress)
        else:
            skipped = []
            for k, (path, name) in enumerate(files):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append(f"{name} (not an image file)")
                    continue
                try:
                    images.append((_open_rgb(path), name))
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
                    skipped.append(f"{name} (corrupt or unreadable image)")
                if progress is not None:
                    progress((k + 1) / len(files), "reading images")
            if skipped:
                warnings.append(f"skipped {len(skipped)} file(s) that are not usable images: " + ", ".join(skipped))
            if not images:
                raise ValueError(
                    "no usable images in the input"
                    + (f"; skipped: {', '.join(skipped)}" if skipped else " (it is empty)")
                )
        if len(images) < MIN_IMAGES:
            names = ", ".join(name for _, name in images)
            raise ValueError(
                f"at least {MIN_IMAGES} images are needed to estimate cameras, got {len(images)} ({names})"
            )
        sizes = [(a.shape[1], a.shape[0]) for a, _ in images]
        w, h = _target_size(sizes, max_size)
        common = collections.Counter(sizes).most_common(1)[0][0]
        odd = [f"{name} ({a.shape[1]}x{a.shape[0]})" for a, name in images if (a.shape[1], a.shape[0]) != common]
        if odd:
            warnings.append(
                f"{len(odd)} image(s) differ from the most common size {common[0]}x{common[1]} and were "
                f"resized to it: " + ", ".join(odd)
            )
        if (w, h) != common:
            warnings.append(f"images downscaled from {common[0]}x{common[1]} to {w}x{h} (max_size={max_size})")
        staging = workspace / "images"
        staging.mkdir()
        taken: set[str] = set()
        names = []
        for arr, user_name in images:
            img = Image.fromarray(arr)
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.LANCZOS)
            fname = _unique_png_name(user_name, taken)
            img.save(staging / fname, format="PNG")
            os.chmod(staging / fname, 0o644)
            names.append(fname)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return [out_dir / n for n in names], [user for _, user in images], warnings
