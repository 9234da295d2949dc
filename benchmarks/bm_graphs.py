"""Graph learning benchmark: ForwardGNN variants against back-propagation, and CGS.

For every dataset x conv x variant, trains over several seeds and reports the
test metric (accuracy for node classification, ROC-AUC for link prediction) as
mean and standard deviation, the peak training memory (see
``graph.forwardgnn.memory``: tensors saved for backward, and resident-set
growth) and the median training time. Target: the best forward variant within
2 points of ``bp`` while holding less memory for backward.

    python benchmarks/bm_graphs.py                 # 5 seeds, 100 epochs, all sets
    python benchmarks/bm_graphs.py --quick --json results/bm_graphs.json  # 2 seeds, 50 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graph.datasets import dataset_info, load_dataset, load_task_dataset  # noqa: E402
from graph.forwardgnn import (  # noqa: E402
    ForwardGNNConfig,
    available_variants,
    summarize,
    train_forwardgnn,
)
from splat.utils.machine import machine_info  # noqa: E402

SETS = {"karate": "node", "drosophila_left": "node", "drosophila_right": "node",
        "les_miserables": "link", "minnesota": "link"}
CONVS = ("gcn", "sage", "gat")


def write_json(path: Path, payload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def bench_forwardgnn(datasets: list[str], convs: list[str], seeds: int,
                     config: ForwardGNNConfig) -> list[dict]:
    records = []
    train_forwardgnn(load_dataset("karate"), "sf", "gcn", config=ForwardGNNConfig(epochs=2))  # warm-up
    for name in datasets:
        task = SETS[name]
        data = load_task_dataset(name, task)  # connectomes: post->pre edges for node tasks
        for conv in convs:
            for variant in available_variants(task):
                t0 = time.perf_counter()
                runs = [train_forwardgnn(data, variant, conv, task, config, seed=s)
                        for s in range(seeds)]
                rec = {"dataset": name, **summarize(runs)}
                records.append(rec)
                rss = rec["peak_rss_mb"]
                print(f"  {name:16s} {conv:4s} {variant:10s} {rec['metric']:8s} "
                      f"{100 * rec['mean']:6.2f} +- {100 * rec['std']:5.2f}  "
                      f"saved {rec['peak_saved_mb']:7.3f} MB  rss "
                      f"{'-' if rss is None else f'{rss:6.2f}'} MB  "
                      f"{rec['train_seconds']:6.2f} s  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
    return records


def compare_to_backprop(records: list[dict]) -> list[dict]:
    """Per dataset and conv: best forward variant vs bp (points and memory ratio)."""
    out = []
    keys = sorted({(r["dataset"], r["conv"]) for r in records}, key=lambda k: (k[0], k[1]))
    for ds, conv in keys:
        group = [r for r in records if r["dataset"] == ds and r["conv"] == conv]
        bp = next(r for r in group if r["variant"] == "bp")
        forward = [r for r in group if r["variant"] != "bp"]
        good = [r for r in forward if 100 * (bp["mean"] - r["mean"]) <= 2.0
                and r["peak_saved_mb"] < bp["peak_saved_mb"]]
        # The most accurate forward variant, preferring one that meets the target.
        best = max(good or forward, key=lambda r: (r["mean"], -r["peak_saved_mb"]))
        gap = 100 * (bp["mean"] - best["mean"])
        ratio = best["peak_saved_mb"] / bp["peak_saved_mb"]
        out.append({"dataset": ds, "conv": conv, "bp": bp["mean"], "best_forward": best["variant"],
                    "best_forward_mean": best["mean"], "gap_points": gap,
                    "saved_memory_ratio": ratio, "met": gap <= 2.0 and ratio < 1.0})
    return out


def print_tables(records: list[dict], targets: list[dict]) -> None:
    print("\n| dataset | task | conv | variant | metric (mean +- std, %) | peak saved MB | "
          "peak RSS growth MB | train s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in records:
        rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.2f}"
        print(f"| {r['dataset']} | {r['task']} | {r['conv']} | {r['variant']} | "
              f"{100 * r['mean']:.1f} +- {100 * r['std']:.1f} | {r['peak_saved_mb']:.3f} | "
              f"{rss} | {r['train_seconds']:.2f} |")
    print("\n| dataset | conv | bp | best forward | gap (points) | saved-memory ratio | target met |")
    print("|---|---|---|---|---|---|---|")
    for t in targets:
        print(f"| {t['dataset']} | {t['conv']} | {100 * t['bp']:.1f} | {t['best_forward']} "
              f"{100 * t['best_forward_mean']:.1f} | {t['gap_points']:+.1f} | "
              f"{t['saved_memory_ratio']:.2f} | {'yes' if t['met'] else 'no'} |")


def bench_cgs(quick: bool) -> list[dict] | None:
    try:
        from graph.cgs.experiments import benchmark
    except ImportError as exc:
        print(f"\nCGS benchmark skipped: graph.cgs.experiments.benchmark unavailable ({exc})")
        return None
    records = benchmark(quick=quick)
    print("\nConvergent Graph Solvers:")
    for r in records:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in r.items()))
    return records


def bench_large(sizes: list[int], epochs: int) -> list[dict]:
    """sf / bp / bp-sampled on generated SBM graphs (homophily 0.6, degree 10), one subprocess each."""
    from graph.forwardgnn.memcap import run_capped

    records = []
    for n in sizes:
        for variant in ("sf", "bp", "bp-sampled"):
            r = run_capped(dict(num_nodes=n, variant=variant, epochs=epochs, hidden=[64, 64, 64]))
            records.append(r)
            print(f"  large {n:8d} {variant:10s} test {100 * r['test']:5.1f} %  peak RSS "
                  f"{r['peak_rss_mb']:7.0f} MB  saved {r['peak_saved_mb']:7.1f} MB  "
                  f"train {r['train_seconds']:6.1f} s", flush=True)
    return records


def bench_memcap(sizes: list[int], cap_mb: float, hidden: list[int]) -> dict:
    """Largest generated graph that sf (layer-local) and bp train under ``cap_mb`` (1 epoch)."""
    from graph.forwardgnn.memcap import largest_trainable

    out = {"cap_mb": cap_mb, "hidden": hidden, "sizes": sizes, "variants": []}
    for variant in ("sf", "bp"):
        res = largest_trainable(variant, sizes, cap_mb, base=dict(epochs=1, hidden=hidden))
        out["variants"].append(res)
        for r in res["runs"]:
            print(f"  cap {cap_mb:.0f} MB  {variant:3s} {r['spec']['num_nodes']:8d} nodes  "
                  f"{'fits' if r['fits'] else 'FAILS'}  peak RSS "
                  f"{r['peak_rss_mb'] if r['peak_rss_mb'] is None else round(r['peak_rss_mb'])} MB"
                  f"  {r['reason']}", flush=True)
    sf, bp = ({r["spec"]["num_nodes"]: r for r in v["runs"] if r["fits"]} for v in out["variants"])
    both = sorted(set(sf) & set(bp))
    out["ratios"] = {n: sf[n]["peak_rss_mb"] / bp[n]["peak_rss_mb"] for n in both}
    out["largest"] = {v["variant"]: v["largest"] for v in out["variants"]}
    big = [n for n in sf if n >= 10**6 and n not in bp]
    out["target_met"] = bool(big) and bool(both) and max(out["ratios"].values()) <= 0.5
    print(f"\n| variant | nodes | fits under {cap_mb:.0f} MB | peak RSS MB | saved MB | train s |")
    print("|---|---|---|---|---|---|")
    for v in out["variants"]:
        for r in v["runs"]:
            rss = "-" if r["peak_rss_mb"] is None else f"{r['peak_rss_mb']:.0f}"
            print(f"| {v['variant']} | {r['spec']['num_nodes']} | {'yes' if r['fits'] else 'no'} | "
                  f"{rss} | {r.get('peak_saved_mb', float('nan')):.0f} | "
                  f"{r.get('train_seconds', float('nan')):.0f} |")
    print(f"peak RSS sf / bp where both run: "
          f"{', '.join(f'{n}: {x:.2f}' for n, x in out['ratios'].items())}; "
          f"largest: {out['largest']}; target met: {out['target_met']}")
    return out


def bench_cgs_compare(quick: bool) -> list[dict]:
    """CGS beside same-size GIN/GCN (same folds) and beside SciPy at 10x the training size."""
    from graph.cgs.compare import (
        classification_cv,
        gvi_size_generalisation,
        porous_size_generalisation,
    )

    records = porous_size_generalisation(factor=10, graphs=3 if quick else 6)
    records += gvi_size_generalisation(factor=10, quick=True, epochs=15 if quick else None,
                                       test_graphs=4 if quick else 8)
    # repeated CV, every model's lr (CGS: also its contraction and encoder) chosen inside the training
    # folds; quick: the connectomes, one split, 8 epochs; full: three sets, three splits
    # (benchmarks/bm_cgs_cv.py runs the same and prints the table)
    for name in ("mice",) if quick else ("marked_distance", "sbm_communities", "mice"):
        records += classification_cv(folds=4, dataset=name, splits=1 if quick else 3,
                                     epochs=8 if quick else None)
    print("\nCGS beside baselines:")
    for r in records:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in r.items() if k not in ("folds", "validation")))
    return records


def _gate(text: str) -> float | None:
    """One ``--gat-residual-gate`` value: a float in (0, 1) or ``none``."""
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in (0, 1) or 'none', got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds, 50 epochs, without drosophila_right (the left twin stays)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--datasets", nargs="+", default=None, choices=list(SETS))
    parser.add_argument("--convs", nargs="+", default=list(CONVS), choices=list(CONVS))
    parser.add_argument("--epochs", type=int, default=None, help="default 100 (quick: 50)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--label-holdout", type=float, default=None, metavar="H",
                        help="ForwardGNNConfig.label_holdout of sf / sf-topdown (default: "
                             "per conv, 0.5 for sage and gat, 0 for gcn)")
    parser.add_argument("--sage-aggr", default=ForwardGNNConfig.sage_aggr,
                        choices=["mean", "max", "sum"],
                        help="SAGEConv aggregation (all variants; default %(default)s)")
    parser.add_argument("--gat-residual", action=argparse.BooleanOptionalAction,
                        default=ForwardGNNConfig.gat_residual,
                        help="linear skip in every GAT layer (all variants; default on)")
    parser.add_argument("--gat-residual-gate", type=_gate, nargs="+",
                        default=ForwardGNNConfig.gat_residual_gate, metavar="G",
                        help="learnable sigmoid gate on the GAT skip starting at G in (0, 1), "
                             "'none' for an unscaled skip; several: chosen per run on "
                             "validation, the first on a tie (all variants; default "
                             "%(default)s)")
    parser.add_argument("--class-links", default=None, choices=["both", "to_class"],
                        help="training node - class node links of sf / sf-topdown "
                             "(default: per conv, see CLASS_LINKS_BY_CONV)")
    parser.add_argument("--link-threshold", type=float, default=ForwardGNNConfig.link_threshold,
                        help="subtracted from the endpoint dot product of a link logit "
                             "(all variants; default %(default)s)")
    parser.add_argument("--no-cgs", action="store_true", help="skip the CGS benchmark")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    parser.add_argument("--no-small", action="store_true",
                        help="skip the bundled small graphs (run only the parts asked below)")
    parser.add_argument("--large", action="store_true",
                        help="sf / bp / bp-sampled on generated graphs of 10^5 (quick) or "
                             "10^5 and 3*10^5 nodes")
    parser.add_argument("--memcap", action="store_true",
                        help="largest generated graph sf and bp train under --cap MB")
    parser.add_argument("--cap", type=float, default=4500.0, metavar="MB")
    parser.add_argument("--cap-sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--cgs-compare", action="store_true",
                        help="CGS vs same-size GIN/GCN (same folds), and at 10x size vs SciPy")
    args = parser.parse_args(argv)
    if isinstance(args.gat_residual_gate, list):
        gates = tuple(args.gat_residual_gate)
        args.gat_residual_gate = gates[0] if len(gates) == 1 else gates
    seeds = args.seeds or (2 if args.quick else 5)
    if args.epochs is None:
        args.epochs = 50 if args.quick else ForwardGNNConfig.epochs
    if args.datasets is None:
        args.datasets = [d for d in SETS if not (args.quick and d == "drosophila_right")]
    torch.set_num_threads(args.threads)
    for name in args.datasets:
        assert SETS[name] in dataset_info(name).tasks
    start = time.perf_counter()
    print(f"ForwardGNN: {seeds} seeds, {args.epochs} epochs, label holdout "
          f"{'per conv' if args.label_holdout is None else args.label_holdout}, "
          f"{args.threads} thread(s)")
    records, targets = [], []
    if not args.no_small:
        records = bench_forwardgnn(args.datasets, args.convs, seeds,
                                   ForwardGNNConfig(epochs=args.epochs,
                                                    label_holdout=args.label_holdout,
                                                    sage_aggr=args.sage_aggr,
                                                    gat_residual=args.gat_residual,
                                                    gat_residual_gate=args.gat_residual_gate,
                                                    class_links=args.class_links,
                                                    link_threshold=args.link_threshold))
        targets = compare_to_backprop(records)
        print_tables(records, targets)
    large = bench_large([100_000] if args.quick else [100_000, 300_000],
                        10 if args.quick else 20) if args.large else None
    memcap = bench_memcap(args.cap_sizes, args.cap, [128] * 4) if args.memcap else None
    cgs_compare = bench_cgs_compare(args.quick) if args.cgs_compare else None
    cgs = None if args.no_cgs else bench_cgs(args.quick)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    if args.json is not None:
        write_json(args.json, {
            "machine": machine_info(args.threads),
            "seeds": seeds, "epochs": args.epochs, "label_holdout": args.label_holdout,
            "sage_aggr": args.sage_aggr, "gat_residual": args.gat_residual,
            "gat_residual_gate": args.gat_residual_gate,
            "class_links": args.class_links, "link_threshold": args.link_threshold,
            "total_seconds": total,
            "records": [{k: v for k, v in r.items() if k != "runs"} | {"runs": r["runs"]}
                        for r in records],
            "targets": targets, "cgs": cgs, "large": large, "memcap": memcap,
            "cgs_compare": cgs_compare,
        })
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
