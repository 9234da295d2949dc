"""Core types and the differentiable rasterizer."""

from splat.core.camera import Camera
from splat.core.rasterization import rasterization

__all__ = ["Camera", "rasterization"]
