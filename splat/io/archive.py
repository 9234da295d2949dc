"""Safe unpacking of user-uploaded scene archives (zip)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from splat.io.images import is_image_file

#: Default limits of :func:`extract_scene_archive`.
MAX_BYTES = 2 * 1024**3  # total uncompressed size
MAX_FILES = 20_000
_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db")


def _check_member(info: zipfile.ZipInfo, zip_path: Path) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise ValueError(f"{zip_path}: unsafe path {name!r} in archive (absolute or with '..')")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ValueError(f"{zip_path}: archive member {name!r} is a symbolic link, which is not allowed")


def _scene_root(folder: Path) -> Path:
    """Descends through single wrapper folders (as when a folder itself was zipped)."""
    while True:
        entries = [p for p in folder.iterdir() if p.name not in _JUNK and not p.name.startswith("._")]
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
        else:
            return folder


def extract_scene_archive(
    zip_path: str | os.PathLike,
    dest: str | os.PathLike,
    max_bytes: int = MAX_BYTES,
    max_files: int = MAX_FILES,
) -> Path:
    """Validates and unpacks an uploaded scene archive.

    The archive must be a zip without absolute paths, ``..`` components or
    symbolic links, within the size and file-count limits, and hold either a scene
    :func:`splat.io.load_scene` recognises or only images (for pose estimation).
    It is unpacked into a temporary folder first; ``dest`` appears only on success.

    Args:
        zip_path: the uploaded file.
        dest: folder to create (must not exist, or be empty).
        max_bytes: limit on the total uncompressed size.
        max_files: limit on the number of members.

    Returns:
        The scene folder inside ``dest`` (wrapper folders are skipped).

    Raises:
        FileNotFoundError: ``zip_path`` does not exist.
        ValueError: not a zip, unsafe member, too large, ``dest`` not empty, or no scene
            and no images inside.
    """
    from splat.io.load import detect_format

    zip_path, dest = Path(zip_path), Path(dest)
    if not zip_path.is_file():
        raise FileNotFoundError(f"archive not found: {zip_path}")
    for arg, value in (("max_bytes", max_bytes), ("max_files", max_files)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ValueError(f"destination {dest} already exists and is not an empty folder")
    if not zipfile.is_zipfile(zip_path):
        raise ValueError(f"{zip_path} is not a zip archive")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = archive.infolist()
            if len(members) > max_files:
                raise ValueError(f"{zip_path} holds {len(members)} files, more than the limit of {max_files}")
            total = sum(m.file_size for m in members)
            if total > max_bytes:
                raise ValueError(
                    f"{zip_path} unpacks to {total / 1e6:.1f} MB, more than the limit of {max_bytes / 1e6:.1f} MB"
                )
            for info in members:
                _check_member(info, zip_path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            try:
                written = 0
                for info in members:
                    if info.is_dir():
                        continue
                    target = tmp / PurePosixPath(info.filename.replace("\\", "/"))
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(info) as src, open(target, "wb") as dst:
                        # Count real bytes: a forged header cannot exceed the limit.
                        while chunk := src.read(1 << 20):
                            written += len(chunk)
                            if written > max_bytes:
                                raise ValueError(f"{zip_path} unpacks to more than {max_bytes / 1e6:.1f} MB")
                            dst.write(chunk)
                root = _scene_root(tmp)
                try:
                    detect_format(root)
                except (ValueError, FileNotFoundError) as exc:
                    only_images = [p for p in root.rglob("*") if p.is_file() and is_image_file(p)]
                    if not only_images:
                        raise ValueError(f"{zip_path} holds no recognisable scene and no images: {exc}") from None
                relative = root.relative_to(tmp)
                if dest.exists():
                    dest.rmdir()
                os.replace(tmp, dest)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{zip_path} is a corrupt zip archive: {exc}") from exc
    return dest / relative
