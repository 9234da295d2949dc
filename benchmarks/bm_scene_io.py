"""Scene I/O timings: COLMAP readers (ours, text and binary, vs pycolmap), loaders, image decoding.

    python benchmarks/bm_scene_io.py [--repeats 5] [--images 300] [--points 100000] [--json PATH]

Prints a table of medians over repeats (after one warm-up run) and optionally
writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from splat.core.camera import Camera, look_at  # noqa: E402
from splat.io import load_bundled_scene, load_scene, save_colmap  # noqa: E402
from splat.io.atomic import write_text_atomic  # noqa: E402
from splat.io.colmap import read_colmap_model  # noqa: E402


class _FakeScene:
    """Cameras, names and points only: enough for :func:`save_colmap`."""

    def __init__(self, num_images: int, num_points: int):
        gen = torch.Generator().manual_seed(0)
        eyes = torch.randn(num_images, 3, generator=gen) * 3 + torch.tensor([0.0, 0.0, 5.0])
        self.cameras = Camera(torch.stack([look_at(e, torch.zeros(3)) for e in eyes]),
                              torch.tensor([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]).expand(num_images, 3, 3),
                              640, 480)
        self.image_paths = [f"img_{i:05d}.jpg" for i in range(num_images)]
        self.points = torch.randn(num_points, 3, generator=gen)
        self.point_colors = torch.rand(num_points, 3, generator=gen)


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fake = _FakeScene(args.images, args.points)
        save_colmap(fake, tmp / "bin", binary=True)
        save_colmap(fake, tmp / "txt", binary=False)
        label = f"{args.images} images, {args.points} points"
        rows.append(("COLMAP model, binary (ours)", label, timeit(lambda: read_colmap_model(tmp / "bin"), args.repeats)))
        rows.append(("COLMAP model, text (ours)", label, timeit(lambda: read_colmap_model(tmp / "txt"), args.repeats)))
        try:
            import pycolmap

            rows.append(("COLMAP model, binary (pycolmap)", label,
                         timeit(lambda: pycolmap.Reconstruction(str(tmp / "bin")), args.repeats)))
            rows.append(("COLMAP model, text (pycolmap)", label,
                         timeit(lambda: pycolmap.Reconstruction(str(tmp / "txt")), args.repeats)))
        except ImportError:
            pass

    scene = load_bundled_scene()
    label = f"bundled: {len(scene)} views {scene.width}x{scene.height}"
    rows.append(("load_scene, verify images", label, timeit(lambda: load_scene(scene.root), args.repeats)))
    rows.append(("load_scene, headers only", label,
                 timeit(lambda: load_scene(scene.root, verify_images=False), args.repeats)))
    rows.append(("Scene.images(), cold cache", label,
                 timeit(lambda: load_scene(scene.root, verify_images=False).images(), args.repeats)))
    rows.append(("Scene.images(), cached", label, timeit(scene.images, args.repeats)))
    rows.append(("downscaled(2).images(), cold", label,
                 timeit(lambda: load_scene(scene.root, verify_images=False).downscaled(2).images(), args.repeats)))

    print(f"{'operation':34s} {'data':36s} {'median (ms)':>12s}")
    for name, data, seconds in rows:
        print(f"{name:34s} {data:36s} {seconds * 1e3:12.1f}")
    if args.json is not None:
        payload = {
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, no GPU",
            "repeats": args.repeats,
            "results": [{"operation": n, "data": d, "median_ms": round(s * 1e3, 2)} for n, d, s in rows],
        }
        write_text_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
