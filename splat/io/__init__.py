"""Scenes and file formats: COLMAP, nerfstudio and Blender loaders, writers, archives."""

from splat.io.archive import extract_scene_archive
from splat.io.blender import load_blender
from splat.io.colmap import load_colmap, save_colmap
from splat.io.load import bundled_scene_path, detect_format, load_bundled_scene, load_scene
from splat.io.nerfstudio import load_nerfstudio, save_nerfstudio
from splat.io.scene import Scene, default_split
from splat.io.synthetic import make_synthetic_scene

__all__ = [
    "Scene",
    "default_split",
    "load_scene",
    "detect_format",
    "load_colmap",
    "load_nerfstudio",
    "load_blender",
    "save_nerfstudio",
    "save_colmap",
    "bundled_scene_path",
    "load_bundled_scene",
    "make_synthetic_scene",
    "extract_scene_archive",
]
