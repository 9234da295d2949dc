"""splatops in the browser: fit Gaussian splats, preview learned simulations, run graph solvers.

Start it with ``splatops app`` or ``python app.py`` (then open
http://127.0.0.1:7860). Each tab lives in its own module; every callback calls
one verb of :mod:`splatops.api`, the same one the ``splatops`` CLI calls.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from splatops.app import sessions  # noqa: E402
from splatops.app.graph_tab import build_graph_tab  # noqa: E402
from splatops.app.pose_tab import build_pose_tab  # noqa: E402
from splatops.app.sim_tab import build_sim_tab  # noqa: E402
from splatops.app.splat_tab import MAX_UPLOAD_MB, build_splat_tab  # noqa: E402

__all__ = ["build_app", "main", "parse_args"]

INTRO = """# splatops
Gaussian splatting and neural operators, fast on the CPU.
**Splat**: fit a Gaussian-splat scene and orbit it in 3D.
**Simulate**: a learned reduced-order simulator (GIOROM) beside its MPM ground truth.
**Graphs**: Convergent Graph Solvers and forward-only GNN training on real graphs.
**Pose**: the 6D pose of an object in an image, from a splat model of the object."""


def _close_session(request: gr.Request) -> None:
    sessions.close_session(request.session_hash if request else None)


def build_app() -> gr.Blocks:
    """Builds the Blocks app without launching it."""
    with gr.Blocks(title="splatops", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Splat", id="splat"):
            build_splat_tab()
        with gr.Tab("Simulate", id="simulate"):
            build_sim_tab()
        with gr.Tab("Graphs", id="graphs"):
            build_graph_tab()
        with gr.Tab("Pose", id="pose"):
            build_pose_tab()
        demo.unload(_close_session)
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="splatops web app")
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to serve on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPLATOPS_PORT", 7860)))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serves the app on ``--host``/``--port`` until interrupted."""
    args = parse_args(argv)
    # Jobs of different kinds (a fit, a simulation, a graph solve) may run at once;
    # one torch thread each keeps them from fighting over the cores.
    import torch

    torch.set_num_threads(1)
    build_app().launch(server_name=args.host, server_port=args.port, share=False,
                       max_file_size=f"{MAX_UPLOAD_MB}mb", show_error=True,
                       allowed_paths=[str(sessions.ROOT)], theme=gr.themes.Soft(),
                       footer_links=["api"])
