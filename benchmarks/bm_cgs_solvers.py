"""CGS fixed-point solvers on classification batches: iteration against a sparse LU solve.

For each dataset, one training batch (the cross-validation's batch size) goes
through the classification CGS forward and backward with the fixed point
found by iteration (``solver="iterate"``, to ``tol``, adjoint likewise) or by
SciPy's sparse LU (``solver="direct"``), at three contraction settings: the
two the cross-validation searches at initialisation and one near where
training drives the contraction (hundreds of iterations). Prints the median
milliseconds of ``--repeats`` forward+backward passes and the iterations.

    python benchmarks/bm_cgs_solvers.py --json results/bm_cgs_solvers.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch_geometric.loader import DataLoader  # noqa: E402

from graph.cgs.compare import cv_setting  # noqa: E402
from graph.cgs.experiments import ClassificationExperiment  # noqa: E402
from graph.cgs.model import CGS  # noqa: E402
from graph.cgs.tasks.classification import load_classification_set  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402
from splat.utils.machine import machine_info  # noqa: E402

# (gamma_max, init_contraction): the two searched by the cross-validation, then a trained-like one
CONTRACTIONS = ((0.99, 0.9), (0.999, 0.97), (0.999, 0.995))


def time_solver(model: CGS, batch, repeats: int) -> tuple[float, int, int]:
    """Median ms of forward+backward, and the forward / adjoint iterations of the last pass."""
    times = []
    for _ in range(repeats):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        out, info = model(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
        out.sum().backward()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times), info.forward_iterations, info.backward_iterations


def run(datasets, repeats: int) -> list[dict]:
    rows = []
    for name in datasets:
        graphs, classes = load_classification_set(name)
        base = replace(ClassificationExperiment().model, node_dim=graphs[0].num_node_features,
                       edge_dim=graphs[0].edge_attr.shape[1], out_dim=classes)
        batch = next(iter(DataLoader(graphs, batch_size=cv_setting(name).batch_size)))
        for gamma_max, init in CONTRACTIONS:
            for solver in ("iterate", "direct"):
                torch.manual_seed(0)
                model = CGS(replace(base, gamma_max=gamma_max, init_contraction=init, solver=solver))
                ms, fwd, bwd = time_solver(model, batch, repeats)
                rows.append({"dataset": name, "nodes": int(batch.num_nodes), "edges": int(batch.edge_index.shape[1]),
                             "unknowns": int(batch.num_nodes) * base.heads, "gamma_max": gamma_max,
                             "init_contraction": init, "solver": solver, "ms_forward_backward": ms,
                             "forward_iterations": fwd, "backward_iterations": bwd})
                r = rows[-1]
                print(f"| {name} | {r['nodes']} | {gamma_max} / {init} | {solver} | {ms:.0f} | {fwd} / {bwd} |",
                      flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mice", "sbm_communities", "marked_distance"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    torch.set_num_threads(args.threads)
    print("| dataset | nodes per batch | gamma_max / init_contraction | solver | ms forward+backward (median) "
          "| iterations forward / adjoint |")
    print("|---|---|---|---|---|---|")
    rows = run(args.datasets, args.repeats)
    if args.json is not None:
        write_json_atomic(args.json, {"machine": machine_info(args.threads), "repeats": args.repeats,
                                      "rows": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
