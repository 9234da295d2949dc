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
PHOTOS = "Upload photos or a video (no poses)"
MAX_UPLOAD_MB = 200
#: Plain photos the pose-free path accepts in one upload (a zip or a video counts as one file).
MAX_PHOTOS = 100
VIDEO_TYPES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def available_methods() -> list[str]:
    from splat.methods.registry import available_methods as registered

    return sorted(registered())


class UploadError(ValueError):
    """A user's scene upload that cannot be used; the message is shown in the page."""


def _only_images(root: Path) -> bool:
    from splat.io.images import is_image_file

    files = [p for p in root.rglob("*") if p.is_file()]
    return bool(files) and all(is_image_file(p) for p in files)


class PlainImages(Exception):
    """A scene archive that holds only images: it goes to the pose-free path."""

    def __init__(self, root: Path):
        super().__init__(root.name)
        self.root = root


def _load_scene(source: str, upload: str | None, session):
    from splat.io import extract_scene_archive

    if source == BUNDLED:
        return api.open_scene(None)
    if not upload:
        raise UploadError("Choose a .zip file with a COLMAP model or a transforms.json and its images.")
    try:
        root = extract_scene_archive(Path(upload), session.new_job_dir("upload"))
        if _only_images(root):
            raise PlainImages(root)
        return api.open_scene(root)
    except (ValueError, FileNotFoundError) as exc:
        if isinstance(exc, UploadError):
            raise
        raise UploadError(f"That upload can't be used: {exc}") from exc


def _photo_source(photos) -> str | list[str]:
    """What the pose-free verb reads from the photo upload: image files, one zip or one video."""
    files = [str(f) for f in (photos or [])]
    if not files:
        raise UploadError("Choose 3 to 100 photos of one scene, a .zip of them, or a short video.")
    if len(files) == 1 and Path(files[0]).suffix.lower() in (".zip",) + VIDEO_TYPES:
        return files[0]
    if any(Path(f).suffix.lower() in (".zip",) + VIDEO_TYPES for f in files):
        names = ", ".join(Path(f).name for f in files if Path(f).suffix.lower() in (".zip",) + VIDEO_TYPES)
        raise UploadError(f"Upload either photos, or one .zip, or one video, not a mix ({names}).")
    if len(files) > MAX_PHOTOS:
        raise UploadError(f"{len(files)} photos is more than this app fits ({MAX_PHOTOS} at most); "
                          "use `splatops fit --images` for larger sets.")
    return files


def _status(p) -> str:
    psnr = "n/a" if p.psnr is None else f"{p.psnr:.2f} dB"
    return (f"**Fitting** step {p.step}/{p.steps} · loss {p.loss:.4f} · PSNR {psnr} · "
            f"{p.num_gaussians:,} Gaussians · {p.elapsed_seconds:.0f} s")


def run_fit(source: str, upload: str | None, photos: list[str] | None, method: str, steps: float,
            request: gr.Request):
    """Fits the chosen scene, streaming progress, then shows renders, video, splats and metrics.

    Photos without poses (or a scene archive holding only images) go through
    :func:`run_photo_fit`, the pose-free path.
    """
    session = get_session(request.session_hash if request else None)
    session.cancel.clear()
    skip = (gr.skip(),) * 5
    if source == PHOTOS:
        yield from run_photo_fit(photos, method, steps, session)
        return
    try:
        scene = _load_scene(source, upload, session)
    except PlainImages as plain:
        yield from run_photo_fit(str(plain.root), method, steps, session)
        return
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

    result = yield from _follow(work, _status, refused=None)
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


def _follow(work, status, refused: str | None):
    """Runs ``work(report)`` in the background, yielding a status line at most twice a second.

    Args:
        work: the job, given a ``report`` callback.
        status: turns a progress event into a status line.
        refused: when set, a ValueError / FileNotFoundError of the job is the user's input
            being refused: shown after this prefix, and the job yields None.

    Returns:
        The job's result (None when the input was refused).
    """
    skip = (gr.skip(),) * 5
    last = 0.0
    result = None
    for kind, value in stream_job(work):
        if kind == "progress" and time.monotonic() - last > 0.5:
            last = time.monotonic()
            yield (status(value),) + skip
        elif kind == "error":
            if refused and isinstance(value, (ValueError, FileNotFoundError)):
                message = f"{refused}: {value}"
                gr.Warning(message)
                yield (f"**Error:** {message}",) + skip
                return None
            raise gr.Error(f"Fitting failed: {value}")
        elif kind == "result":
            result = value
    return result


def _photo_status(p) -> str:
    if p.stage == "fit" and p.fit is not None:
        return _status(p.fit).replace("**Fitting**", "**Fitting cameras and splats**")
    return f"**{p.stage.capitalize()}** ({p.fraction:.0%}): {p.message}"


def run_photo_fit(photos, method: str, steps: float, session):
    """The pose-free path: registers plain photos (or video frames), fits splats and cameras, shows them.

    Args:
        photos: uploaded image files, or one zip / video file, or a folder of extracted images.
        method: fitting method (``instantsplat`` also refines the cameras).
        steps: optimisation steps.
        session: the user's app session (job folders, cancel flag).
    """
    skip = (gr.skip(),) * 5
    try:
        images = photos if isinstance(photos, str) else _photo_source(photos)
    except UploadError as exc:
        gr.Warning(str(exc))
        yield (f"**Error:** {exc}",) + skip
        return
    out_dir = session.new_job_dir("photos")
    count = len(images) if isinstance(images, list) else Path(images).name
    yield (f"Registering **{count}** {'photos' if isinstance(images, list) else ''} without poses...",) + skip

    def work(report):
        return api.fit_images(images, out_dir=out_dir, method=method, steps=int(steps), orbit_video=True,
                              progress=report, should_stop=session.cancel.is_set, show_progress=False)

    result = yield from _follow(work, _photo_status, refused="Those photos can't be used")
    if result is None:
        return
    metrics = dict(result.metrics)
    reg = metrics.get("registration", {})
    ply = Path(result.paths["ply"])
    renders = sorted(Path(result.paths["renders"]).glob("*.png"))
    stopped = " (stopped early)" if session.cancel.is_set() else ""
    warn = "".join(f"\n- {w}" for w in result.warnings)
    left_out = {**reg.get("unregistered", {}), **metrics.get("misregistered", {})}
    fitted = len(reg.get("registered", [])) - len(metrics.get("misregistered", {}))
    summary = (f"**Done{stopped}**: {fitted} of "
               f"{len(reg.get('registered', [])) + len(reg.get('unregistered', {}))} photos posed and fitted"
               f"{' (left out: ' + ', '.join(sorted(left_out)) + ')' if left_out else ''}, "
               f"{metrics.get('steps')} steps of {metrics.get('method')}, PSNR "
               f"{metrics.get('psnr', float('nan')):.2f} dB on {metrics.get('eval_split', 'train')} views, "
               f"{metrics.get('num_gaussians', 0):,} Gaussians in "
               f"{metrics.get('seconds', {}).get('total', 0):.0f} s.{warn}")
    shown = {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}
    shown["registered"] = len(reg.get("registered", []))
    shown["unregistered"] = sorted(reg.get("unregistered", {}))
    shown["misregistered"] = sorted(metrics.get("misregistered", {}))
    yield (summary, [(str(p), f"view {p.stem}: render | photo") for p in renders],
           str(result.paths["orbit"]), str(ply), json.dumps(shown, indent=2), str(ply))


def cancel_fit(request: gr.Request) -> str:
    get_session(request.session_hash if request else None).cancel.set()
    return "Stopping after the current step..."


def build_splat_tab() -> None:
    """Adds the Splat tab's widgets and events to the enclosing Blocks."""
    methods = available_methods()
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            source = gr.Radio([BUNDLED, UPLOAD, PHOTOS], value=BUNDLED, label="Scene",
                              info="Plain photos need no poses: cameras are estimated (InstantSplat).")
            upload = gr.File(label=f"Scene archive (.zip, up to {MAX_UPLOAD_MB} MB): COLMAP "
                                   "sparse model or transforms.json, with its images",
                             file_types=[".zip"], type="filepath", elem_id="scene-upload")
            photos = gr.File(label=f"Photos of one scene (3 to {MAX_PHOTOS}, overlapping), a .zip of them, "
                                   "or a short video", file_count="multiple",
                             file_types=["image", ".zip", *VIDEO_TYPES], type="filepath",
                             elem_id="photo-upload")
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
    source.change(lambda s: gr.update(value="instantsplat") if s == PHOTOS and "instantsplat" in methods
                  else gr.skip(), source, method, queue=False, api_visibility="private")
    fit_btn.click(run_fit, [source, upload, photos, method, steps],
                  [status, gallery, video, viewer, metrics, download],
                  api_name="fit", concurrency_limit=1, concurrency_id="fit")
    cancel_btn.click(cancel_fit, None, status, api_name="cancel_fit", queue=False)
