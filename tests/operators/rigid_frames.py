"""Two-frame starts of a small cube moving rigidly, for the object-level contact prior tests."""

from __future__ import annotations

import torch

from operators.rigid_contact import rotation_matrix

BOUNDS = torch.tensor([[0.0, 1.0]] * 3)
G = torch.tensor([0.0, -1e-3, 0.0])


def cube(centre, n=4, size=0.1):
    """``[n**3, 3]`` grid points of a cube of side ``size`` around ``centre``."""
    g = torch.linspace(-size / 2, size / 2, n)
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    return pts + torch.tensor(centre)


def start(centre, velocity=(0.0, 0.0, 0.0), omega=(0.0, 0.0, 0.0)):
    """Two frames of a cube moving rigidly: [2, N, 3]."""
    prev = cube(centre)
    c = prev.mean(0)
    rot = rotation_matrix(torch.tensor(omega, dtype=torch.float64)).float()
    last = (prev - c) @ rot.T + c + torch.tensor(velocity)
    return torch.stack([prev, last])
