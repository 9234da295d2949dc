"""splatops Gaussian splatting: a gsplat-compatible rasterizer, scenes and fitting methods."""

__version__ = "0.1.0"
