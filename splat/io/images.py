"""Reading, checking, compositing and resizing scene images (PIL + numpy)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def is_image_file(path: str | os.PathLike) -> bool:
    """True when ``path`` has an image suffix this package reads."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def image_size(path: str | os.PathLike, verify: bool = False) -> tuple[int, int]:
    """Reads the ``(width, height)`` of an image from its header.

    Args:
        path: image file.
        verify: also check the file's integrity (decodes it fully).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            size = img.size
            if verify:
                img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"image {path} is corrupt or not an image: {exc}") from exc
    return int(size[0]), int(size[1])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Reads an image as float32 in ``[0, 1]``.

    Returns:
        ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA (when the file has alpha).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable image.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float32) / 65535.0
                return np.repeat(np.clip(arr, 0, 1)[..., None], 3, axis=-1)
            has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info)
            arr = np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"image {path} is corrupt or not an image: {exc}") from exc
    return arr.astype(np.float32) / 255.0


def composite(image: np.ndarray, background: tuple[float, float, float] | None) -> np.ndarray:
    """Composites RGBA on a constant background; RGB passes through.

    Args:
        image: ``[H, W, 3]`` or ``[H, W, 4]`` float in ``[0, 1]`` (straight alpha).
        background: RGB in ``[0, 1]``; ``None`` means black.

    Returns:
        ``[H, W, 3]`` float32.
    """
    if image.shape[-1] == 3:
        return image.astype(np.float32, copy=False)
    bg = np.asarray(background if background is not None else (0.0, 0.0, 0.0), np.float32)
    rgb, alpha = image[..., :3], image[..., 3:4]
    return (rgb * alpha + bg * (1.0 - alpha)).astype(np.float32)


def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resizes ``[H, W, C]`` float32 with an area-averaging (antialiased) filter."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    h, w = image.shape[:2]
    if w % width == 0 and h % height == 0 and w // width == h // height:
        f = w // width  # exact box filter
        return image.reshape(height, f, width, f, -1).mean(axis=(1, 3)).astype(np.float32)
    channels = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F").resize(
            (width, height), Image.Resampling.BOX))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes ``[H, W, 3|4]`` float in ``[0, 1]`` (or uint8) as a PNG, atomically."""
    from splat.io.atomic import atomic_path

    arr = image
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(arr).save(tmp, format="PNG", optimize=True)
