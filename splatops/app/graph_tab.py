"""Graphs tab: a Convergent Graph Solver on a porous network, and ForwardGNN against backprop."""

from __future__ import annotations

import gradio as gr

from splatops import api
from splatops.app.sessions import get_session

FORWARD_VARIANTS = ["bp", "ff-label", "ff-vn", "sf", "sf-topdown"]


def _node_datasets() -> list[str]:
    from graph.datasets import available_datasets, dataset_info

    return [d for d in available_datasets() if "node" in dataset_info(d).tasks]


def run_porous(num_pores: float, seed: float, request: gr.Request):
    """Solves a pore network with the bundled (pretrained) CGS beside SciPy's exact solve."""
    session = get_session(request.session_hash if request else None)
    demo = api.cgs_demo(int(num_pores), seed=int(seed), out_dir=session.new_job_dir("cgs"))
    return str(demo.figure), demo.summary


def run_forward(dataset: str, conv: str, variants: list[str], seeds: float):
    """Trains each chosen variant over a few seeds and tabulates the test metric."""
    if not variants:
        raise gr.Error("Pick at least one variant.")
    rows = []
    for variant in variants:
        r = api.forwardgnn(dataset, variant, conv=conv, task="node", seeds=int(seeds))
        rows.append([variant, f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f}",
                     f"{r['train_seconds']:.2f}", f"{r['peak_saved_mb']:.2f}"])
    return rows


def run_large(num_nodes: float, variant: str, memory_cap_mb: float, epochs: float,
              progress=gr.Progress()):
    """Trains on a generated graph in a subprocess under a memory cap (0: no cap)."""
    try:
        r = api.forwardgnn_large(int(num_nodes), variant, epochs=int(epochs),
                                 memory_cap_mb=float(memory_cap_mb) or None,
                                 progress=lambda frac, desc: progress(frac, desc=desc))
    except MemoryError as exc:  # the run does not fit the cap: say so in the page
        raise gr.Error(str(exc)) from None
    return (f"{int(num_nodes)} nodes, {r['num_edges']} edges: test accuracy "
            f"{100 * r['test']:.1f} %, peak memory {r['peak_rss_mb']:.0f} MB "
            f"(saved for backward {r['peak_saved_mb']:.0f} MB), trained in "
            f"{r['train_seconds']:.0f} s.")


def build_graph_tab() -> None:
    """Adds the Graphs tab's widgets and events to the enclosing Blocks."""
    gr.Markdown("### Convergent Graph Solver: pressure in a pore network\n"
                "A CGS learns a contracting linear map on the graph whose unique fixed point is "
                "decoded into pore pressures. The bundled model was trained on small networks; "
                "here it solves a larger, unseen one beside SciPy's exact sparse solve.")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            pores = gr.Slider(100, 800, value=300, step=50, label="Pores in the test network")
            seed = gr.Number(0, precision=0, label="Seed")
            solve = gr.Button("Solve", variant="primary", elem_id="cgs-button")
            cgs_summary = gr.Markdown(elem_id="cgs-summary")
        with gr.Column(scale=2):
            pressure = gr.Image(label="Pressure: CGS | exact", type="filepath", elem_id="cgs-image")
    solve.click(run_porous, [pores, seed], [pressure, cgs_summary], api_name="cgs_porous",
                concurrency_limit=1, concurrency_id="graphs")

    gr.Markdown("### ForwardGNN: training without back-propagation across layers\n"
                "Each layer learns from its own local loss; `bp` is the same network trained end "
                "to end. Test accuracy (mean ± std over seeds) on a real graph.")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            datasets = _node_datasets()
            dataset = gr.Dropdown(datasets, value="karate" if "karate" in datasets else datasets[0],
                                  label="Graph")
            conv = gr.Dropdown(["gcn", "sage", "gat"], value="gcn", label="Convolution")
            variants = gr.CheckboxGroup(FORWARD_VARIANTS, value=["bp", "sf", "ff-label"],
                                        label="Variants")
            seeds = gr.Slider(1, 5, value=3, step=1, label="Seeds")
            train = gr.Button("Train", variant="primary", elem_id="forwardgnn-button")
        with gr.Column(scale=2):
            table = gr.Dataframe(headers=["variant", "test accuracy %", "train s", "peak MB"],
                                 label="Results", elem_id="forwardgnn-table")
    train.click(run_forward, [dataset, conv, variants, seeds], table, api_name="forwardgnn",
                concurrency_limit=1, concurrency_id="graphs")

    gr.Markdown("### ForwardGNN at scale: a generated graph under a memory cap\n"
                "A stochastic block model of up to millions of nodes is generated and trained in "
                "a separate process; `sf` keeps one layer's activations at a time, `bp` all of "
                "them. Runs may take minutes; a graph that does not fit the cap says so.")
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            large_nodes = gr.Slider(10_000, 2_000_000, value=100_000, step=10_000, label="Nodes")
            large_variant = gr.Dropdown(["sf", "bp", "bp-sampled"], value="sf", label="Variant")
            large_cap = gr.Number(0, label="Memory cap MB (0: none)")
            large_epochs = gr.Slider(1, 50, value=5, step=1, label="Epochs per layer")
            large_train = gr.Button("Train large", variant="primary", elem_id="large-button")
        with gr.Column(scale=2):
            large_summary = gr.Markdown(elem_id="large-summary")
    large_train.click(run_large, [large_nodes, large_variant, large_cap, large_epochs],
                      large_summary, api_name="forwardgnn_large", concurrency_limit=1,
                      concurrency_id="graphs")
