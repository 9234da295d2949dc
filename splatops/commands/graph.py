"""``splatops graph``: ForwardGNN training and Convergent Graph Solver experiments.

    splatops graph forwardgnn --dataset karate --variant sf --conv gcn [--task node|link]
                              [--seeds K] [--epochs E] [--json PATH]
    splatops graph cgs --task porous|mdp|classify [--seed S] [--quick] [--json PATH]
    splatops graph cgs-demo [--pores N] [--seed S] [--out DIR]
    splatops graph large --nodes N [--variant sf|bp|bp-sampled] [--memory-cap MB] [--epochs E]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("graph", help="graph learning: ForwardGNN, Convergent Graph Solvers",
                              description="Graph learning on bundled real graphs.")
    sub = p.add_subparsers(dest="graph_command", metavar="{forwardgnn,cgs,cgs-demo,large}")

    f = sub.add_parser("forwardgnn", help="train a GNN layer by layer without back-propagation "
                       "across layers (or the bp baseline)")
    f.add_argument("--dataset", required=True, help="a name from graph.datasets.available_datasets()")
    f.add_argument("--variant", default="sf", help="bp, ff-label, ff-vn, sf or sf-topdown")
    f.add_argument("--conv", default="gcn", choices=["gcn", "sage", "gat"])
    f.add_argument("--task", default="node", choices=["node", "link"])
    f.add_argument("--seeds", type=int, default=1, help="number of seeds (0 .. K-1)")
    f.add_argument("--epochs", type=int, default=None, help="epochs per layer (default 100)")
    f.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1 is fastest on these small graphs)")
    f.add_argument("--progress", action="store_true", help="show progress bars")
    f.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the results")

    c = sub.add_parser("cgs", help="Convergent Graph Solver experiments")
    c.add_argument("--task", required=True, choices=["porous", "mdp", "classify"])
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--quick", action="store_true", help="a smaller, faster run")
    c.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the records")

    d = sub.add_parser("cgs-demo", help="solve a pore network with the bundled CGS beside SciPy "
                       "(the app's Graphs tab)")
    d.add_argument("--pores", type=int, default=300, help="pores in the network (>= 10)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", type=Path, default=None, help="write pressure.png into this folder")
    g = sub.add_parser("large", help="ForwardGNN on a generated graph of up to millions of "
                       "nodes, in a subprocess under a memory cap")
    g.add_argument("--nodes", type=int, required=True, help="nodes of the generated graph")
    g.add_argument("--variant", default="sf", choices=["sf", "bp", "bp-sampled"],
                   help="sf: layer-local; bp: end to end; bp-sampled: sampled mini-batches")
    g.add_argument("--homophily", type=float, default=0.6)
    g.add_argument("--degree", type=float, default=10.0, help="mean degree")
    g.add_argument("--hidden", type=int, nargs="+", default=[64, 64, 64], help="layer widths")
    g.add_argument("--epochs", type=int, default=10, help="epochs per layer (sf) or in total")
    g.add_argument("--memory-cap", type=float, default=None, metavar="MB",
                   help="memory budget of the graph and the training")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the result")
    p.set_defaults(_graph_parser=p)
    return p


def write_json(path: Path, payload) -> None:
    """Writes ``payload`` as indented JSON, atomically."""
    from splat.io.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table of ``rows`` restricted to ``columns``."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "-" if v is None else str(v)

    body = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c)
              for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _run_forwardgnn(args) -> int:
    import torch

    from splatops import api

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    summary = api.forwardgnn(args.dataset, args.variant, conv=args.conv, task=args.task,
                             seeds=args.seeds, epochs=args.epochs, show_progress=args.progress)
    row = {k: v for k, v in summary.items() if k != "runs"}
    print(format_table([row], ["dataset", "task", "variant", "conv", "metric", "mean", "std",
                               "seeds", "peak_saved_mb", "peak_rss_mb", "train_seconds"]))
    if args.json is not None:
        write_json(args.json, summary)
        print(f"wrote {args.json}")
    return 0


def _run_cgs(args) -> int:
    from splatops import api

    records = api.cgs(args.task, seed=args.seed, quick=args.quick)
    columns: list[str] = []
    for r in records:
        columns += [k for k in r if k not in columns]
    print(format_table(records, columns))
    if args.json is not None:
        write_json(args.json, {"task": args.task, "seed": args.seed, "quick": args.quick,
                               "records": records})
        print(f"wrote {args.json}")
    return 0


def _run_cgs_demo(args) -> int:
    from splatops import api

    demo = api.cgs_demo(args.pores, seed=args.seed, out_dir=args.out)
    print(demo.summary)
    if demo.figure is not None:
        print(f"wrote {demo.figure}")
    return 0


def _run_large(args) -> int:
    from tqdm import tqdm

    from splatops import api

    with tqdm(total=1000, desc=f"{args.variant} on {args.nodes} nodes", unit="") as bar:
        def progress(frac: float, desc: str) -> None:
            bar.set_postfix_str(desc)
            bar.update(int(1000 * frac) - bar.n)

        try:
            result = api.forwardgnn_large(args.nodes, args.variant, homophily=args.homophily,
                                          avg_degree=args.degree, hidden=tuple(args.hidden),
                                          epochs=args.epochs, memory_cap_mb=args.memory_cap,
                                          seed=args.seed, progress=progress)
        except MemoryError as exc:
            bar.close()
            print(f"error: {exc}")
            return 1
    row = {k: result.get(k) for k in ("num_edges", "test", "peak_rss_mb", "peak_saved_mb",
                                      "train_seconds", "cap_mb")}
    print(format_table([{"nodes": args.nodes, "variant": args.variant, **row}],
                       ["nodes", "num_edges", "variant", "test", "peak_rss_mb", "peak_saved_mb",
                        "train_seconds", "cap_mb"]))
    if args.json is not None:
        write_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def run(args) -> int:
    if args.graph_command == "forwardgnn":
        return _run_forwardgnn(args)
    if args.graph_command == "cgs":
        return _run_cgs(args)
    if args.graph_command == "cgs-demo":
        return _run_cgs_demo(args)
    if args.graph_command == "large":
        return _run_large(args)
    args._graph_parser.print_help()
    return 2
