"""splatops Gaussian splatting: a gsplat-compatible rasterizer, scenes and fitting methods."""

from splat.core import Camera, rasterization

__version__ = "0.1.0"

__all__ = ["Camera", "rasterization"]
