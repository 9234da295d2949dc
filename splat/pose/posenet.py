"""Coarse stage: a small U-Net predicting NOCS maps and masks, then PnP-RANSAC.

NOCS (normalised object coordinates) map each object point ``X`` to
``(X - box_min) / (box_max - box_min)`` in ``[0, 1]^3`` with the box of the
model's opaque Gaussians. The network sees a square crop around the object
(zoom-in: from the mask's box, or, without a mask, from the network's own mask
on a first pass over the whole image) resized to ``input_size`` and
predicts, per pixel, the NOCS of the visible surface and an object-mask
logit. The masked pixels give 2D-3D correspondences and OpenCV's
``solvePnPRansac`` (EPnP inside RANSAC, then Levenberg-Marquardt on the
inliers) gives the coarse pose.

The network is trained per object on renders of the splat model itself at
random poses (RGB from the model's colours, NOCS from the Gaussians' NOCS as
colours, the alpha as mask), rendered straight into jittered square crops
around the object (box scale 1.1 to 2.5: mostly zoomed in, sometimes wide
enough for the first pass), with random photographic backgrounds, colour
jitter and occluding patches, so no data beyond the model is needed. A
checkpoint stores the model's fingerprint and is refused for another model.
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from splat.core.gaussians import Gaussians
from splat.pose.model import model_fingerprint, surface_points

__all__ = ["PoseNet", "PoseNetConfig", "train_posenet_model", "load_posenet", "save_posenet",
           "predict_nocs", "pnp_from_nocs", "render_nocs", "coarse_pose"]

CHECKPOINT_KIND = "splatops-posenet"


# ---------------------------------------------------------------------- network
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
    )


class PoseNet(nn.Module):
    """A three-level U-Net: ``[B, 3, S, S]`` image -> ``[B, 4, S, S]`` (NOCS logits x3, mask logit).

    Args:
        width: channels of the first level (doubled at each level down).
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.mid = _block(4 * w, 4 * w)
        self.dec3, self.dec2, self.dec1 = _block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)
        self.head = nn.Conv2d(w, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        m = self.mid(F.max_pool2d(e3, 2))
        d3 = self.dec3(torch.cat([F.interpolate(m, size=e3.shape[-2:], mode="nearest"), e3], 1))
        d2 = self.dec2(torch.cat([F.interpolate(d3, size=e2.shape[-2:], mode="nearest"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="nearest"), e1], 1))
        return self.head(d1)


@dataclass
class PoseNetConfig:
    """Training settings of the Pose-Net.

    Attributes:
        input_size: square network input (images are resized to it); a multiple of 8.
        width: U-Net channels of the first level.
        num_renders: renders of the model made before training (augmented anew each batch).
        steps: optimisation steps.
        batch_size: images per step.
        lr: Adam learning rate (cosine decay to 5 %).
        distance: range of object distances in units of the object diameter.
        focal_factor: focal length of the virtual camera the crops are cut from, times 256 px.
        occlusion_prob: probability of an occluding patch per training image.
        seed: seed of poses, augmentation and initial weights.
        max_seconds: stop training after this wall time (None: no limit).
    """

    input_size: int = 64
    width: int = 16
    num_renders: int = 400
    steps: int = 1200
    batch_size: int = 12
    lr: float = 2e-3
    distance: tuple[float, float] = (2.0, 3.4)
    focal_factor: float = 1.25
    occlusion_prob: float = 0.3
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.input_size < 16 or self.input_size % 8:
            raise ValueError(f"input_size must be a multiple of 8 and >= 16, got {self.input_size}")
        for name in ("num_renders", "steps", "batch_size", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ---------------------------------------------------------------------- rendering of training data
def nocs_box(gaussians: Gaussians) -> tuple[Tensor, Tensor]:
    """``(box_min [3], box_max [3])`` of the opaque Gaussians (the NOCS normalisation)."""
    pts = surface_points(gaussians, max_points=10**9)
    lo, hi = pts.min(0).values, pts.max(0).values
    return lo, torch.maximum(hi, lo + 1e-6)


@torch.no_grad()
def render_nocs(gaussians: Gaussians, object_to_camera: Tensor, K: Tensor, width: int, height: int,
                box: tuple[Tensor, Tensor], backend: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """Renders the model's colours, NOCS and alpha at a pose.

    Returns:
        ``(rgb [H, W, 3] straight colour, nocs [H, W, 3] in [0, 1], alpha [H, W])``.
    """
    from splat.core.rasterization import rasterization

    lo, hi = box
    nocs = ((gaussians.means - lo) / (hi - lo)).clamp(0, 1)
    sh = gaussians.sh
    degree = gaussians.sh_degree
    out, alpha, _ = rasterization(
        gaussians.means, gaussians.params["quats"], gaussians.scales, gaussians.opacities, sh,
        object_to_camera[None].float(), K[None].float(), width, height, sh_degree=degree, backend=backend)
    nocs_img, _, _ = rasterization(
        gaussians.means, gaussians.params["quats"], gaussians.scales, gaussians.opacities, nocs,
        object_to_camera[None].float(), K[None].float(), width, height, backend=backend)
    a = alpha[0, ..., 0]
    safe = a.clamp_min(1e-6)[..., None]
    return (out[0] / safe).clamp(0, 1), (nocs_img[0] / safe).clamp(0, 1), a


def _random_pose(gen: torch.Generator, distance: tuple[float, float], diameter: float, centre: Tensor) -> Tensor:
    from splat.pose.se3 import random_rotation

    R = random_rotation(gen)
    z = (distance[0] + (distance[1] - distance[0]) * float(torch.rand(1, generator=gen))) * diameter
    xy = (torch.rand(2, generator=gen, dtype=torch.float64) * 2 - 1) * 0.15 * z
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = R
    T[:3, 3] = torch.tensor([float(xy[0]), float(xy[1]), z], dtype=torch.float64) - R @ centre.double()
    return T


def _crop_intrinsics(points: Tensor, T: Tensor, focal: float, size: int, gen: torch.Generator) -> Tensor:
    """Intrinsics rendering a jittered square crop around the projected object straight at ``size`` px."""
    from splat.core.camera import project_points

    K0 = torch.tensor([[focal, 0.0, 0.0], [0.0, focal, 0.0], [0.0, 0.0, 1.0]])
    uv, _ = project_points(points.float(), T[None].float(), K0[None])
    lo, hi = uv[0].min(0).values, uv[0].max(0).values
    r = torch.rand(3, generator=gen)
    side = float((hi - lo).max()) * (1.1 + 1.4 * float(r[0]) ** 2)
    centre = (lo + hi) / 2 + (r[1:] - 0.5) * 0.2 * side
    scale = size / side
    x0, y0 = float(centre[0]) - side / 2, float(centre[1]) - side / 2
    return torch.tensor([[focal * scale, 0.0, -x0 * scale], [0.0, focal * scale, -y0 * scale], [0.0, 0.0, 1.0]])


def _backgrounds() -> list[Tensor]:
    import skimage.data

    out = []
    for name in ("brick", "grass", "gravel", "camera", "coffee", "rocket", "astronaut", "chelsea"):
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        out.append(torch.from_numpy(np.ascontiguousarray(img[..., :3])).float() / 255.0)
    return out


def _augment(rgb: Tensor, alpha: Tensor, gen: torch.Generator, backgrounds: list[Tensor],
             occlusion_prob: float) -> tuple[Tensor, Tensor]:
    """Composites on a random background crop with colour jitter and maybe an occluding patch.

    Returns ``(image [S, S, 3], visible [S, S] float)``.
    """
    s = rgb.shape[0]

    def crop() -> Tensor:
        bg = backgrounds[int(torch.randint(len(backgrounds), (1,), generator=gen))]
        scale = int(torch.randint(s, min(bg.shape[0], bg.shape[1]), (1,), generator=gen))
        y = int(torch.randint(bg.shape[0] - scale + 1, (1,), generator=gen))
        x = int(torch.randint(bg.shape[1] - scale + 1, (1,), generator=gen))
        patch = bg[y:y + scale, x:x + scale].permute(2, 0, 1)[None]
        return F.interpolate(patch, size=(s, s), mode="area")[0].permute(1, 2, 0)

    gain = 0.6 + 0.8 * torch.rand(3, generator=gen)
    bias = (torch.rand(3, generator=gen) - 0.5) * 0.2
    obj = (rgb * gain + bias).clamp(0, 1)
    a = alpha[..., None]
    image = obj * a + crop() * (1 - a)
    visible = alpha.clone()
    if float(torch.rand(1, generator=gen)) < occlusion_prob:
        ys, xs = torch.nonzero(alpha > 0.5, as_tuple=True)
        if len(xs):
            w = int(torch.randint(s // 6, s // 3, (1,), generator=gen))
            h = int(torch.randint(s // 6, s // 3, (1,), generator=gen))
            k = int(torch.randint(len(xs), (1,), generator=gen))
            y0, x0 = max(int(ys[k]) - h // 2, 0), max(int(xs[k]) - w // 2, 0)
            image[y0:y0 + h, x0:x0 + w] = crop()[y0:y0 + h, x0:x0 + w]
            visible[y0:y0 + h, x0:x0 + w] = 0
    noise = torch.randn(image.shape, generator=gen) * 0.02
    return (image + noise).clamp(0, 1), visible


# ---------------------------------------------------------------------- training
def train_posenet_model(gaussians: Gaussians, config: PoseNetConfig | None = None,
                        progress=None, show_progress: bool = False) -> dict:
    """Trains a Pose-Net for one object model.

    Args:
        gaussians: the object model.
        config: training settings.
        progress: optional callable ``(step, steps, loss)``.
        show_progress: show a tqdm bar.

    Returns:
        The checkpoint payload (see :func:`save_posenet`).
    """
    from tqdm.auto import tqdm

    from splat.pose.model import model_diameter

    config = config or PoseNetConfig()
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    box = nocs_box(gaussians)
    points = surface_points(gaussians)
    diameter = model_diameter(points)
    centre = (box[0] + box[1]) / 2
    s = config.input_size
    f = config.focal_factor * 256.0  # a 256 px camera; crops zoom in from it
    t0, cpu0 = time.perf_counter(), time.process_time()
    rgbs, nocss, alphas = [], [], []
    for _ in range(config.num_renders):
        T = _random_pose(gen, config.distance, diameter, centre)
        K = _crop_intrinsics(points, T, f, s, gen)
        rgb, nocs, alpha = render_nocs(gaussians, T, K, s, s, box)
        rgbs.append(rgb)
        nocss.append(nocs)
        alphas.append(alpha)
    rgbs, nocss, alphas = torch.stack(rgbs), torch.stack(nocss), torch.stack(alphas)
    render_seconds = time.perf_counter() - t0
    backgrounds = _backgrounds()

    net = PoseNet(config.width)
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(k / config.steps, 1.0))))
    history, step = [], 0
    bar = tqdm(total=config.steps, disable=not show_progress, desc="train Pose-Net", unit="step")
    net.train()
    for step in range(config.steps):
        idx = torch.randint(config.num_renders, (config.batch_size,), generator=gen)
        images, visibles = zip(*[_augment(rgbs[i], alphas[i], gen, backgrounds, config.occlusion_prob)
                                 for i in idx.tolist()])
        x = torch.stack(images).permute(0, 3, 1, 2)
        vis = torch.stack(visibles)
        target = nocss[idx].permute(0, 3, 1, 2)
        out = net(x)
        mask_loss = F.binary_cross_entropy_with_logits(out[:, 3], (vis > 0.5).float())
        weight = (vis > 0.5).float()[:, None]
        nocs_loss = ((torch.sigmoid(out[:, :3]) - target).abs() * weight).sum() / (3 * weight.sum()).clamp_min(1)
        loss = mask_loss + 3.0 * nocs_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0 or step == config.steps - 1:
            history.append({"step": step, "loss": float(loss.detach()), "mask_bce": float(mask_loss.detach()),
                            "nocs_l1": float(nocs_loss.detach()), "seconds": round(time.perf_counter() - t0, 2)})
            if progress is not None:
                progress(step, config.steps, float(loss.detach()))
        bar.update(1)
        if config.max_seconds is not None and time.perf_counter() - t0 > config.max_seconds:
            break
    bar.close()
    net.eval()
    return {
        "kind": CHECKPOINT_KIND,
        "fingerprint": model_fingerprint(gaussians),
        "config": asdict(config),
        "state_dict": net.state_dict(),
        "box_min": box[0].tolist(),
        "box_max": box[1].tolist(),
        "history": history,
        "steps_done": step + 1,
        "render_seconds": round(render_seconds, 2),
        "train_seconds": round(time.perf_counter() - t0, 2),
        "train_cpu_seconds": round(time.process_time() - cpu0, 2),
    }


def save_posenet(payload: dict, path: str | os.PathLike) -> Path:
    """Writes a Pose-Net checkpoint atomically."""
    from splat.io.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def load_posenet(path: str | os.PathLike, gaussians: Gaussians) -> tuple[PoseNet, dict]:
    """Loads a Pose-Net checkpoint and checks that it was trained for ``gaussians``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a Pose-Net checkpoint, or one trained for another model.
    """
    name = Path(path).name
    if not Path(path).is_file():
        raise FileNotFoundError(f"Pose-Net checkpoint {name} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types on foreign files
        raise ValueError(f"{name} is not a Pose-Net checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("kind") != CHECKPOINT_KIND:
        raise ValueError(f"{name} is not a Pose-Net checkpoint")
    expected = model_fingerprint(gaussians)
    if payload["fingerprint"] != expected:
        raise ValueError(
            f"Pose-Net checkpoint {name} was trained for another model "
            f"(fingerprint {payload['fingerprint']}, this model's is {expected}); retrain it with `splatops pose train`"
        )
    config = PoseNetConfig(**{k: tuple(v) if k == "distance" else v for k, v in payload["config"].items()})
    net = PoseNet(config.width)
    net.load_state_dict(payload["state_dict"])
    net.eval()
    return net, payload


# ---------------------------------------------------------------------- inference
def crop_square(image: Tensor, box: tuple[float, float, float, float], size: int) -> Tensor:
    """Bilinear samples ``[size, size, 3]`` of the square ``(x0, y0, side, side)`` of ``image [H, W, 3]``.

    Sample ``i`` is taken at image coordinate ``x0 + (i + 0.5) * side / size`` (zero outside).
    """
    x0, y0, side, _ = box
    H, W = image.shape[:2]
    t = (torch.arange(size, dtype=torch.float32) + 0.5) * side / size
    gx = (x0 + t) / W * 2 - 1  # align_corners=False: -1 and 1 are the outer pixel edges
    gy = (y0 + t) / H * 2 - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)[None]
    out = F.grid_sample(image.permute(2, 0, 1)[None].float(), grid, mode="bilinear", align_corners=False)
    return out[0].permute(1, 2, 0)


def _square_around(mask: Tensor, scale: float = 1.3) -> tuple[float, float, float, float]:
    ys, xs = torch.nonzero(mask, as_tuple=True)
    lo = torch.stack([xs.min(), ys.min()]).float()
    hi = torch.stack([xs.max(), ys.max()]).float() + 1
    side = float((hi - lo).max()) * scale
    c = (lo + hi) / 2
    return float(c[0]) - side / 2, float(c[1]) - side / 2, side, side


@torch.no_grad()
def predict_nocs(net: PoseNet, image: Tensor, input_size: int,
                 box: tuple[float, float, float, float] | None = None) -> tuple[Tensor, Tensor]:
    """Runs the network on the square ``box = (x0, y0, side, side)`` of ``image [H, W, 3]`` (default: all of it).

    Returns:
        ``(nocs [S, S, 3], mask probability [S, S])`` at the network resolution.
    """
    if box is None:
        x = F.interpolate(image.permute(2, 0, 1)[None].float(), size=(input_size, input_size), mode="area")
    else:
        x = crop_square(image, box, input_size).permute(2, 0, 1)[None]
    out = net(x)[0]
    return torch.sigmoid(out[:3]).permute(1, 2, 0), torch.sigmoid(out[3])


def pnp_from_nocs(
    nocs: Tensor,  # [h, w, 3]
    mask: Tensor,  # [h, w] bool
    box: tuple[Tensor, Tensor],
    K: Tensor,  # [3, 3] of the full image
    image_size: tuple[int, int],  # (W, H) of the full image
    reprojection_px: float = 4.0,
    iterations: int = 300,
    seed: int = 0,
    crop: tuple[float, float, float, float] | None = None,
) -> tuple[Tensor | None, int]:
    """Pose from NOCS correspondences with OpenCV's PnP-RANSAC (EPnP, then LM on the inliers).

    The NOCS map covers the whole image at a lower resolution, or the square
    ``crop = (x0, y0, side, side)`` of it; its pixel centres are mapped back to
    image pixels. Returns ``(object_to_camera [4, 4] float64 or None, inliers)``.
    """
    import cv2

    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) < 6:
        return None, 0
    h, w = mask.shape
    W, H = image_size
    x0, y0, sx, sy = (0.0, 0.0, W, H) if crop is None else crop
    lo, hi = box
    obj = (lo.double() + nocs[ys, xs].double() * (hi - lo).double()).numpy()
    img = torch.stack([x0 + (xs.double() + 0.5) * sx / w, y0 + (ys.double() + 0.5) * sy / h], -1).numpy()
    cv2.setRNGSeed(seed)
    ok, rvec, tvec, inliers = cv2.solvePnPRansac(
        obj, img, K.double().numpy(), None, iterationsCount=iterations, reprojectionError=reprojection_px,
        confidence=0.999, flags=cv2.SOLVEPNP_EPNP)
    if not ok or inliers is None or len(inliers) < 6:
        return None, 0 if inliers is None else len(inliers)
    inl = inliers[:, 0]
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K.double().numpy(), None, rvec, tvec)
    R, _ = cv2.Rodrigues(rvec)
    T = torch.eye(4, dtype=torch.float64)
    T[:3, :3] = torch.from_numpy(R)
    T[:3, 3] = torch.from_numpy(tvec[:, 0])
    return T, len(inl)


def coarse_pose(net: PoseNet, payload: dict, image: Tensor, K: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor | None, dict]:
    """The coarse pose of the object in ``image [H, W, 3]`` (OpenCV intrinsics ``K``).

    The crop is the square around ``mask [H, W]`` (scaled 1.3), or, without a
    mask, around the network's own mask on the whole image. Returns
    ``(object_to_camera or None, info)`` with the inlier count, the mask pixels
    and the crop.
    """
    s = payload["config"]["input_size"]
    H, W = image.shape[:2]
    if mask is None:
        _, prob = predict_nocs(net, image, s)
        rough = prob > 0.5
        if int(rough.sum()) < 4:
            return None, {"inliers": 0, "mask_pixels": int(rough.sum()), "crop": None}
        x0, y0, side, _ = _square_around(rough)
        crop = (x0 * W / s, y0 * H / s, side * max(W, H) / s, side * max(W, H) / s)
    else:
        crop = _square_around(mask)
    nocs, prob = predict_nocs(net, image, s, crop)
    pred = prob > 0.5
    if mask is not None:
        pred &= crop_square(mask[..., None].float(), crop, s)[..., 0] > 0.5
    box = (torch.tensor(payload["box_min"]), torch.tensor(payload["box_max"]))
    T, inliers = pnp_from_nocs(nocs, pred, box, K, (W, H), crop=crop)
    return T, {"inliers": inliers, "mask_pixels": int(pred.sum()), "crop": [round(c, 2) for c in crop]}
