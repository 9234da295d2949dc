"""Simulate tab: MPM ground truth beside the GIOROM learned preview."""

from __future__ import annotations

import time

import gradio as gr
import numpy as np

from app_support.plots import particle_animation
from app_support.sessions import get_session

SCENES = ["dam_break", "column_collapse", "falling_blocks", "colliding_blocks"]


def _materials() -> list[str]:
    from operators.mpm import MATERIALS

    return sorted(MATERIALS)


def run_simulation(material: str, scene: str, n_particles: float, n_frames: float,
                   request: gr.Request):
    """Runs MPM, then the GIOROM preview from the same first frames; returns an animation and timings."""
    from operators.mpm import simulate
    from operators.rollout import preview

    session = get_session(request.session_hash if request else None)
    out = session.new_job_dir("sim")
    n_particles, n_frames = int(n_particles), int(n_frames)
    try:
        truth = simulate(material, scene, dim=2, n_particles=n_particles, n_frames=n_frames, seed=0)
    except ValueError as exc:
        raise gr.Error(f"Simulation failed: {exc}") from exc
    gt = truth.positions.numpy()
    mpm_step = float(np.mean(truth.frame_seconds))
    rows = [["MPM (ground truth)", f"{n_particles}", f"{1000 * mpm_step:.1f}", "-"]]
    panels = [{"title": f"MPM {material}", "positions": gt, "color": "#1f77b4"}]
    note = ""
    try:
        window = gt[:6]
        t0 = time.perf_counter()
        pred = preview(material, 2, window, n_steps=len(gt) - 6)
        learned_step = (time.perf_counter() - t0) / (len(gt) - 6)
    except ValueError as exc:
        note = f"\n\nNo learned preview for **{material}**: {exc}"
    else:
        dense = pred["positions"]
        mse = float(np.mean((dense[6:] - gt[6:len(dense)]) ** 2))
        rows.append([f"GIOROM ({pred['model']})", f"{n_particles}", f"{1000 * learned_step:.1f}",
                     f"{mse:.2e}"])
        panels.append({"title": "GIOROM dense reconstruction", "positions": dense, "color": "#d62728"})
        if pred.get("sparse") is not None:
            panels.append({"title": f"sparse graph ({pred['sparse'].shape[1]} points)",
                           "positions": pred["sparse"], "color": "#2ca02c", "size": 6})
    gif = particle_animation(panels, truth.bounds, out / "simulation.gif")
    summary = (f"**{material}**, {scene.replace('_', ' ')}: {n_particles} particles, "
               f"{truth.n_frames} frames of {truth.dt * 1000:.1f} ms.{note}")
    return str(gif), rows, summary


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
