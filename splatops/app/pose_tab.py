"""Pose tab: the 6D pose of an object in an image, from a splat model of the object (GS2Pose)."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from splatops import api
from splatops.app.sessions import get_session


def run_pose(model, image, intrinsics: str, mask, init, posenet, max_iters: float, request: gr.Request):
    """Coarse pose (the initial pose file or the Pose-Net), then the GS-Refiner; shows before | after."""
    if not model or not image:
        raise gr.Error("Upload an object model (.ply) and an image of the object.")
    if not init and not posenet:
        raise gr.Error("Give an initial pose (JSON with object_to_camera) or a Pose-Net checkpoint "
                       "(train one with `splatops pose train --model MODEL.ply`).")
    session = get_session(request.session_hash if request else None)
    out = session.new_job_dir("pose") / "pose.json"
    try:
        result = api.pose_estimate(model, image, intrinsics, mask=mask or None, init=init or None,
                                   posenet=posenet or None, out=out, max_iters=int(max_iters))
    except (ValueError, FileNotFoundError) as exc:
        raise gr.Error(str(exc)) from None
    T = result.object_to_camera
    summary = (f"Initial pose from **{result.source}**; refined in {result.iterations} iterations "
               f"({result.seconds:.1f} s, {'converged' if result.converged else 'iteration cap'}). "
               f"Translation [{T[0, 3]:.4f}, {T[1, 3]:.4f}, {T[2, 3]:.4f}].")
    pose = json.dumps({"object_to_camera": T.round(6).tolist()}, indent=1)
    return str(result.paths["overlay"]), summary, pose, str(out)


def build_pose_tab() -> None:
    """Adds the Pose tab's widgets and events to the enclosing Blocks."""
    gr.Markdown("### Object pose from a splat model\n"
                "The model is drawn at the initial pose (left) and at the refined pose (right), its "
                "outline in green. Poses are `object_to_camera` 4x4 matrices, OpenCV axes "
                "(x right, y down, z forward).")
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = gr.File(label="Object model (3DGS .ply)", file_types=[".ply"], type="filepath")
            image = gr.File(label="Image", file_types=["image"], type="filepath")
            intrinsics = gr.Textbox(label="Intrinsics fx,fy,cx,cy (pixels)", value="320,320,128,128")
            mask = gr.File(label="Object mask (optional)", file_types=["image"], type="filepath")
            init = gr.File(label="Initial pose JSON (or a Pose-Net below)", file_types=[".json"], type="filepath")
            posenet = gr.File(label="Pose-Net checkpoint (optional)", file_types=[".pt"], type="filepath")
            iters = gr.Slider(10, 100, value=50, step=5, label="Refinement iterations (cap)")
            run = gr.Button("Estimate pose", variant="primary", elem_id="pose-button")
        with gr.Column(scale=2):
            overlay = gr.Image(label="Before | after refinement", type="filepath", elem_id="pose-overlay")
            summary = gr.Markdown(elem_id="pose-summary")
            pose = gr.Code(label="object_to_camera", language="json")
            pose_file = gr.File(label="Pose file (with the refinement history)")
    run.click(run_pose, [model, image, intrinsics, mask, init, posenet, iters], [overlay, summary, pose, pose_file],
              api_name="pose_estimate", concurrency_limit=1, concurrency_id="pose")
