"""Simulate tab: MPM ground truth beside the GIOROM learned preview."""

from __future__ import annotations

import gradio as gr

from splatops import api
from splatops.app.sessions import get_session

SCENES = ["dam_break", "column_collapse", "falling_blocks", "colliding_blocks"]
SPLAT_MATERIALS = ["jelly", "sand", "plasticine", "non_newtonian", "water"]


def _splat_objects() -> dict[str, str]:
    """Bundled splat objects (``assets/objects/*.ply``) by name."""
    from splatops_assets import asset_path

    return {p.stem: str(p) for p in sorted(asset_path("objects").glob("*.ply"))}


def _has_preview(material: str) -> bool:
    from splatops_assets import asset_path

    return asset_path("checkpoints", f"giorom_{material}_3d.pt").is_file()


def _materials() -> list[str]:
    from operators.mpm import MATERIALS

    return sorted(MATERIALS)


def run_simulation(material: str, scene: str, n_particles: float, n_frames: float,
                   request: gr.Request):
    """Runs MPM, then the GIOROM preview from the same first frames; returns an animation and timings."""
    session = get_session(request.session_hash if request else None)
    out = session.new_job_dir("sim")
    try:
        res = api.simulate_preview(material, scene, particles=int(n_particles), frames=int(n_frames),
                                   dim=2, seed=0, out_dir=out)
    except ValueError as exc:
        raise gr.Error(f"Simulation failed: {exc}") from exc
    note = f"\n\nNo learned preview for **{material}**: {res.note}" if res.note else ""
    summary = (f"**{material}**, {scene.replace('_', ' ')}: {int(n_particles)} particles, "
               f"{res.truth.n_frames} frames of {res.truth.dt * 1000:.1f} ms.{note}")
    return str(res.animation), res.rows, summary


def run_splat_simulation(name: str, material: str, n_frames: float, request: gr.Request):
    """Drops a bundled splat object with MPM and, where a 3-D checkpoint exists, the GIOROM
    preview; returns both rendered videos and a timing table."""
    session = get_session(request.session_hash if request else None)
    objects = _splat_objects()
    if name not in objects:
        raise gr.Error(f"Unknown splat object {name!r}; choose one of {sorted(objects)}")
    preview = "giorom" if _has_preview(material) else None
    try:
        res = api.simulate_splats(objects[name], material, out_dir=session.new_job_dir("splat_sim"),
                                  frames=int(n_frames), preview=preview, show_progress=False)
    except ValueError as exc:
        raise gr.Error(f"Simulation failed: {exc}") from exc
    rows = [["MPM (ground truth)", f"{res.particles} particles", f"{res.mpm_ms_per_frame:.1f}",
             f"{res.deform_ms_per_frame:.1f}", "-"]]
    note = ""
    if res.preview_ms_per_frame is not None:
        rows.append(["GIOROM preview", f"{res.sparse_points} sparse points", f"{res.preview_ms_per_frame:.1f}",
                     f"{res.summary['preview_deform_ms_per_frame']:.1f}", f"{100 * res.rmse:.2f} %"])
    else:
        note = f" No bundled 3-D GIOROM checkpoint for **{material}**: MPM only."
    summary = (f"**{name}** as **{material}**: {res.gaussians} Gaussians carried by {res.particles} "
               f"particles, {int(n_frames)} frames of 10 ms.{note}")
    return (str(res.files.get("video")), str(res.files["preview_video"]) if "preview_video" in res.files else None,
            rows, summary)


def build_sim_tab() -> None:
    """Adds the Simulate tab's widgets and events to the enclosing Blocks."""
    gr.Markdown("Run the MLS-MPM ground truth and, from the same first six frames, the GIOROM "
                "reduced-order learned simulator (a bundled checkpoint, evaluated on a sparse "
                "graph and reconstructed at every particle).")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            material = gr.Dropdown(_materials(), value="water", label="Material")
            scene = gr.Dropdown(SCENES, value="dam_break", label="Scene")
            n_particles = gr.Slider(200, 4000, value=1000, step=100, label="Particles")
            n_frames = gr.Slider(20, 200, value=60, step=10, label="Frames")
            run = gr.Button("Simulate", variant="primary", elem_id="simulate-button")
            summary = gr.Markdown(elem_id="sim-summary")
        with gr.Column(scale=2):
            animation = gr.Image(label="Ground truth | learned preview | sparse graph",
                                 show_label=False, type="filepath", elem_id="sim-animation")
            timings = gr.Dataframe(headers=["model", "particles", "ms per frame", "position MSE"],
                                   label="Time per frame", elem_id="sim-timings")
    run.click(run_simulation, [material, scene, n_particles, n_frames], [animation, timings, summary],
              api_name="simulate", concurrency_limit=1, concurrency_id="simulate")

    gr.Markdown("### Physics on splats\nDrop a bundled splat object: the Gaussians fill a solid with "
                "MPM particles, every Gaussian follows the motion (centre and covariance), and the "
                "GIOROM preview moves the same Gaussians from a sparse graph. Both are rendered by "
                "the rasterizer.")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            objects = list(_splat_objects())
            splat_object = gr.Dropdown(objects, value=objects[0] if objects else None, label="Splat object")
            splat_material = gr.Dropdown(SPLAT_MATERIALS, value="jelly", label="Material")
            splat_frames = gr.Slider(20, 150, value=60, step=10, label="Frames")
            splat_run = gr.Button("Simulate splats", variant="primary", elem_id="simulate-splats-button")
            splat_summary = gr.Markdown(elem_id="splat-sim-summary")
        with gr.Column(scale=2):
            with gr.Row():
                mpm_video = gr.Video(label="MPM", elem_id="splat-mpm-video")
                preview_video = gr.Video(label="GIOROM preview", elem_id="splat-preview-video")
            splat_timings = gr.Dataframe(headers=["model", "size", "ms per frame", "deform splats ms",
                                                  "centre RMSE / size"],
                                         label="Time per frame and error", elem_id="splat-sim-timings")
    splat_run.click(run_splat_simulation, [splat_object, splat_material, splat_frames],
                    [mpm_video, preview_video, splat_timings, splat_summary], api_name="simulate_splats",
                    concurrency_limit=1, concurrency_id="simulate")
