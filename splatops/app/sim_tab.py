"""Simulate tab: MPM ground truth beside the GIOROM learned preview."""

from __future__ import annotations

import gradio as gr

from splatops import api
from splatops.app.sessions import get_session

SCENES = ["dam_break", "column_collapse", "falling_blocks", "colliding_blocks"]


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
