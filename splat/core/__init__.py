"""Core types and the differentiable rasterizer."""

from splat.core.camera import Camera

__all__ = ["Camera"]
