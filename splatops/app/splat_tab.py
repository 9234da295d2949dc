"""Splat tab: fit a scene with a chosen method and show the result."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gradio as gr

from splatops import api
from splatops.app.jobs import stream_job
from splatops.app.sessions import get_session

BUNDLED = "Bundled example scene"
UPLOAD = "Upload a scene (.zip)"
MAX_UPLOAD_MB = 200


def available_methods() -> list[str]:
    from splat.methods.registry import available_methods as registered

    return sorted(registered())


class UploadError(ValueError):
    """A user's scene upload that cannot be used; the message is shown in the page."""


def _only_images(root: Path) -> bool:
    from splat.io.images import is_image_file

    files = [p for p in root.rglob("*") if p.is_file()]
    return bool(files) and all(is_image_file(p) for p in files)


def _load_scene(source: str, upload: str | None, session):
    from splat.io import extract_scene_archive

    if source == BUNDLED:
        return api.open_scene(None)
    if not upload:
        raise UploadError("Choose a .zip file with a COLMAP model or a transforms.json and its images.")
    try:
        root = extract_scene_archive(Path(upload), session.new_job_dir("upload"))
        if _only_images(root):
            raise UploadError(
                "That upload holds images without camera poses. Pose-free fitting is not part of "
                "this release: add a COLMAP sparse model or a transforms.json beside the images.")
        return api.open_scene(root)
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"That upload can't be used: {exc}") from exc


def _status(p) -> str:
    psnr = "n/a" if p.psnr is None else f"{p.psnr:.2f} dB"
    return (f"**Fitting** step {p.step}/{p.steps} · loss {p.loss:.4f} · PSNR {psnr} · "
            f"{p.num_gaussians:,} Gaussians · {p.elapsed_seconds:.0f} s")


def run_fit(source: str, upload: str | None, method: str, steps: float, request: gr.Request):
    """Fits the chosen scene, streaming progress, then shows renders, video, splats and metrics."""
    session = get_session(request.session_hash if request else None)
    session.cancel.clear()
    skip = (gr.skip(),) * 5
    try:
        scene = _load_scene(source, upload, session)
    except UploadError as exc:
        # Shown in the status line and as a toast; earlier results stay on the page.
        gr.Warning(str(exc))
        yield (f"**Error:** {exc}",) + skip
        return
    out_dir = session.new_job_dir("fit")
    yield (f"Loaded **{scene.name}**: {len(scene.train_ids)} training and "
           f"{len(scene.test_ids)} held-out views of {scene.cameras.width}x{scene.cameras.height}.",) + skip

    def work(report):
        return api.fit(scene, out_dir=out_dir, method=method, steps=int(steps), orbit_video=True,
                       progress=report, should_stop=session.cancel.is_set, show_progress=False)

    last = 0.0
    result = None
    for kind, value in stream_job(work):
        if kind == "progress" and time.monotonic() - last > 0.5:
            last = time.monotonic()
            yield (_status(value),) + skip
        elif kind == "error":
            raise gr.Error(f"Fitting failed: {value}")
        elif kind == "result":
            result = value
    metrics = dict(result.metrics)
    video, ply = result.paths["orbit"], Path(result.paths["ply"])
    renders = sorted((out_dir / "renders").glob("*.png"))
    stopped = " (stopped early)" if session.cancel.is_set() else ""
    summary = (f"**Done{stopped}**: {metrics.get('steps')} steps, held-out PSNR "
               f"{metrics.get('psnr', float('nan')):.2f} dB, SSIM {metrics.get('ssim', float('nan')):.3f}, "
               f"{metrics.get('num_gaussians', 0):,} Gaussians in {metrics.get('train_seconds', 0):.0f} s.")
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
    yield (summary, [(str(p), f"held-out view {p.stem}: render | ground truth") for p in renders],
           str(video), str(ply), json.dumps(shown, indent=2), str(ply))


def cancel_fit(request: gr.Request) -> str:
    get_session(request.session_hash if request else None).cancel.set()
    return "Stopping after the current step..."


def build_splat_tab() -> None:
    """Adds the Splat tab's widgets and events to the enclosing Blocks."""
    methods = available_methods()
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            source = gr.Radio([BUNDLED, UPLOAD], value=BUNDLED, label="Scene",
                              info="Images without poses will be accepted once the pose-free "
                                   "pipeline lands; today a scene needs camera poses.")
            upload = gr.File(label=f"Scene archive (.zip, up to {MAX_UPLOAD_MB} MB): COLMAP "
                                   "sparse model or transforms.json, with its images",
                             file_types=[".zip"], type="filepath", elem_id="scene-upload")
            method = gr.Dropdown(methods, value="3dgs" if "3dgs" in methods else methods[0],
                                 label="Method")
            steps = gr.Slider(20, 5000, value=600, step=10, label="Steps",
                              info="On a 2-core CPU, a few hundred steps take about a minute.")
            with gr.Row():
                fit_btn = gr.Button("Fit", variant="primary", elem_id="fit-button")
                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-button")
            status = gr.Markdown("Choose a scene and press **Fit**.", elem_id="fit-status")
        with gr.Column(scale=2):
            viewer = gr.Model3D(label="Fitted splats (drag to orbit)", height=420,
                                clear_color=(1.0, 1.0, 1.0, 1.0), elem_id="splat-viewer")
            with gr.Row():
                gallery = gr.Gallery(label="Held-out views: render | ground truth", columns=2,
                                     height=260, elem_id="heldout-gallery")
                video = gr.Video(label="Orbit", height=260, autoplay=True, loop=True)
            with gr.Row():
                metrics = gr.Code(label="Metrics", language="json", elem_id="fit-metrics")
                download = gr.File(label="Download point_cloud.ply")
    fit_btn.click(run_fit, [source, upload, method, steps],
                  [status, gallery, video, viewer, metrics, download],
                  api_name="fit", concurrency_limit=1, concurrency_id="fit")
    cancel_btn.click(cancel_fit, None, status, api_name="cancel_fit", queue=False)
