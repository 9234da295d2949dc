"""``splatops scene``: inspect, convert and unpack scenes.

    splatops scene info PATH [--json PATH]
    splatops scene convert PATH OUT --to nerfstudio|colmap|colmap-text [--copy-images] [--downscale N]
    splatops scene extract ARCHIVE.zip DEST
    splatops scene bundled
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("scene", help="inspect, convert and unpack scenes (COLMAP, nerfstudio, Blender)",
                              description="Scenes and formats: COLMAP, nerfstudio transforms.json, Blender.")
    sub = p.add_subparsers(dest="scene_command", metavar="{info,convert,extract,bundled}")
    i = sub.add_parser("info", help="load a scene and print its summary")
    i.add_argument("path", type=Path, help="scene folder or transforms.json")
    i.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the summary as JSON")
    c = sub.add_parser("convert", help="write a scene as nerfstudio or COLMAP")
    c.add_argument("path", type=Path, help="scene folder or transforms.json")
    c.add_argument("out", type=Path, help="output folder")
    c.add_argument("--to", default="nerfstudio", choices=["nerfstudio", "colmap", "colmap-text"])
    c.add_argument("--copy-images", action="store_true", help="copy (or resize) images into OUT/images")
    c.add_argument("--downscale", type=int, default=1, help="downscale factor (needs --copy-images)")
    e = sub.add_parser("extract", help="validate and unpack an uploaded scene archive")
    e.add_argument("archive", type=Path)
    e.add_argument("dest", type=Path, help="folder to create")
    sub.add_parser("bundled", help="print the path of the bundled example scene")
    p.set_defaults(_scene_parser=p)
    return p


def summary(scene) -> dict:
    """A JSON-able summary of a scene."""
    return {
        "name": scene.name,
        "root": str(scene.root),
        "views": len(scene),
        "width": scene.width,
        "height": scene.height,
        "train_views": len(scene.train_ids),
        "test_views": len(scene.test_ids),
        "points": 0 if scene.points is None else int(scene.points.shape[0]),
        "background": scene.background,
        "extent": round(scene.extent, 6),
        "focal_mean": round(float(scene.cameras.Ks[:, 0, 0].mean()), 4),
    }


def run(args) -> int:
    from splat.io import bundled_scene_path, extract_scene_archive, load_scene, save_colmap, save_nerfstudio
    from splat.io.atomic import write_text_atomic

    command = getattr(args, "scene_command", None)
    if command is None:
        args._scene_parser.print_help()
        return 2
    if command == "bundled":
        print(bundled_scene_path())
        return 0
    if command == "extract":
        print(extract_scene_archive(args.archive, args.dest))
        return 0
    scene = load_scene(args.path)
    if command == "info":
        info = summary(scene)
        for key, value in info.items():
            print(f"{key:12s} {value}")
        if args.json is not None:
            write_text_atomic(args.json, json.dumps(info, indent=2) + "\n")
        return 0
    if args.downscale != 1:
        if not args.copy_images:
            raise ValueError("--downscale needs --copy-images (the resized images must be written)")
        scene = scene.downscaled(args.downscale)
    if args.to == "nerfstudio":
        print(save_nerfstudio(scene, args.out, copy_images=args.copy_images))
        return 0
    if args.copy_images:
        from splat.io.images import save_png

        for i, path in enumerate(scene.image_paths):
            save_png(args.out / "images" / Path(path).name, scene.image(i).numpy())
    print(save_colmap(scene, args.out / "sparse" / "0", binary=args.to == "colmap"))
    return 0
