"""CGS classification options compared on separate draws of the synthetic sets.

The settings of the cross-validation (``bm_cgs_cv.py``) are chosen here, on
draws of ``marked_distance`` and ``sbm_communities`` made with another seed
(default 7) than the evaluated sets (seed 0), so no evaluated graph is seen.
Each draw is split once, stratified, into a fit part (135 graphs) and a
validation part (80); every option trains once (same seed, same batches, the
cross-validation's epochs, batch and schedule) and is scored on the validation
part. Also prints the spread of the logits across 32 validation graphs at
initialisation (how far apart the model starts its graphs). GINs of the same
size, without and with batch norm, are trained beside them for reference.

    python benchmarks/bm_cgs_select.py --json results/bm_cgs_select.json
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch_geometric.data import Batch  # noqa: E402

from graph.cgs.compare import GIN, _matched, cv_setting  # noqa: E402
from graph.cgs.crossval import evaluate, inner_split  # noqa: E402
from graph.cgs.experiments import ClassificationExperiment  # noqa: E402
from graph.cgs.model import CGS, count_parameters  # noqa: E402
from graph.cgs.tasks.classification import load_classification_set  # noqa: E402
from graph.cgs.training import train  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402
from splat.utils.machine import machine_info  # noqa: E402

MEAN_POOL = {"encoder_aggr": "mean", "readout": "pool", "node_norm": None}
SUM_NODE = {"encoder_aggr": "sum", "readout": "node"}
NODE_BN = {**SUM_NODE, "node_norm": "batch"}
# (name, lr, CGSConfig overrides of the classification default, or one of GINS: the baselines)
GINS = {"gin": False, "gin_bn": True}  # GIN of the same size, without / with its batch norms
OPTIONS = (
    ("gin", 3e-3, "gin"),
    ("mean encoder, pooled readout (earlier default)", 3e-3, MEAN_POOL),
    ("mean encoder, node readout", 3e-3, {"encoder_aggr": "mean", "readout": "node"}),
    ("sum encoder, pooled readout", 3e-3, {"encoder_aggr": "sum", "readout": "pool", "node_norm": None}),
    ("sum encoder, node readout", 3e-3, SUM_NODE),
    ("sum encoder, node readout, contraction (0.9, 0.5)", 3e-3,
     {**SUM_NODE, "gamma_max": 0.9, "init_contraction": 0.5}),
    ("sum encoder, node readout, contraction (0.999, 0.97)", 3e-3,
     {**SUM_NODE, "gamma_max": 0.999, "init_contraction": 0.97}),
    ("sum encoder, node readout", 1e-3, SUM_NODE),
    ("sum encoder, node readout", 1e-2, SUM_NODE),
    ("gin", 1e-2, "gin"),
    ("sum encoder, node readout, layer norm per node", 3e-3, {**SUM_NODE, "node_norm": "layer"}),
    ("sum encoder, node readout, batch norm per node", 3e-3, {**SUM_NODE, "node_norm": "batch"}),
    ("sum encoder, node readout, batch norm per node and after every encoder layer", 3e-3,
     {**SUM_NODE, "node_norm": "batch", "encoder_norm": "batch"}),
    ("gin with batch norm", 3e-3, "gin_bn"),
    ("gin with batch norm", 1e-2, "gin_bn"),
    ("sum encoder, node readout, batch norm per node, lazy offset", 3e-3, {**NODE_BN, "offset": "lazy"}),
    ("sum encoder, node readout, batch norm per node, lazy offset", 1e-2, {**NODE_BN, "offset": "lazy"}),
    ("sum encoder, node readout, batch norm per node, lazy offset, contraction (0.999, 0.97)", 3e-3,
     {**NODE_BN, "offset": "lazy", "gamma_max": 0.999, "init_contraction": 0.97}),
    ("sum encoder, node readout, batch norm per node, lazy offset, contraction (0.9, 0.5)", 3e-3,
     {**NODE_BN, "offset": "lazy", "gamma_max": 0.9, "init_contraction": 0.5}),
    ("sum encoder, node readout, batch norm per node, contraction (0.999, 0.97)", 3e-3,
     {**NODE_BN, "gamma_max": 0.999, "init_contraction": 0.97}),
    ("sum encoder, node readout, batch norm per node", 1e-2, NODE_BN),
    ("gin encoder, node readout, batch norm per node", 3e-3, {**NODE_BN, "encoder": "gin"}),
    ("gin encoder, node readout, batch norm per node", 1e-2, {**NODE_BN, "encoder": "gin"}),
    ("gin encoder of 4 layers, node readout, batch norm per node", 3e-3,
     {**NODE_BN, "encoder": "gin", "enc_layers": 4}),
    ("gin encoder of 4 layers, node readout, batch norm per node, contraction (0.999, 0.97)", 3e-3,
     {**NODE_BN, "encoder": "gin", "enc_layers": 4, "gamma_max": 0.999, "init_contraction": 0.97}),
    *((f"gin encoder of 4 layers {width} wide, transition {t_width or width} wide, {heads} heads, "
       "contraction (0.999, 0.97)",
       lr, {**NODE_BN, "encoder": "gin", "enc_layers": 4, "hidden": width, "transition_hidden": t_width,
            "heads": heads, "gamma_max": 0.999, "init_contraction": 0.97})
      for width, t_width, heads in ((36, None, 8), (42, 16, 8), (44, 8, 8), (34, None, 16), (32, None, 32))
      for lr in (3e-3, 1e-2)),
    *((f"gin encoder of 4 layers 36 wide, pooled readout{norm_name}, contraction (0.999, 0.97)", lr,
       {**SUM_NODE, "readout": "pool", "node_norm": None, "readout_skip": True, "readout_norm": norm,
        "encoder": "gin", "enc_layers": 4, "hidden": 36, "gamma_max": 0.999, "init_contraction": 0.97})
      for norm, norm_name in ((None, ""), ("batch", " with batch norm")) for lr in (3e-3, 1e-2)),
)


def run_one(dataset: str, seed: int, name: str, lr: float, options: dict | str) -> dict:
    """Train one option on the fit part of the ``seed`` draw; score it on the validation part."""
    graphs, classes = load_classification_set(dataset, seed=seed)
    fit, val = inner_split([int(g.y) for g in graphs], 0.33, seed=seed)
    fit_set, val_set = [graphs[i] for i in fit][:135], [graphs[i] for i in val]
    base = replace(ClassificationExperiment().model, node_dim=graphs[0].num_node_features,
                   edge_dim=graphs[0].edge_attr.shape[1], out_dim=classes)
    torch.manual_seed(0)
    if isinstance(options, str):
        target = count_parameters(CGS(replace(base, **SUM_NODE)))
        model = _matched(lambda h: GIN(base.node_dim, classes, h, batch_norm=GINS[options]), target)
    else:
        model = CGS(replace(base, **options))
    probe = Batch.from_data_list(val_set[:32])
    model.eval()
    with torch.no_grad():
        logits, _ = model(probe.x, probe.edge_index, probe.edge_attr, probe.batch)
    result = train(model, fit_set, replace(cv_setting(dataset), lr=lr, progress=False), seed=0)
    ev = evaluate(model, val_set)
    return {"dataset": dataset, "seed": seed, "option": name, "lr": lr,
            "overrides": options, "parameters": count_parameters(model),
            "init_logit_std": float(logits.std(0).mean()),
            "val_accuracy": ev["accuracy"], "val_loss": ev["loss"],
            "iterations": ev["iterations"], "train_losses": result.losses,
            "train_seconds": result.seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["marked_distance", "sbm_communities"],
                        choices=["marked_distance", "sbm_communities", "sbm_communities_degree"])
    parser.add_argument("--seed", type=int, default=7, help="draw of the synthetic sets")
    parser.add_argument("--match", nargs="+", default=None, metavar="TEXT",
                        help="run only the options whose name contains one of these texts")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="run only the options with exactly one of these names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    if args.seed == 0:
        parser.error("--seed 0 is the evaluated draw; choose options on another one")
    torch.set_num_threads(args.threads)
    print("| set | option | lr | parameters | logit spread at init | validation accuracy % | "
          "validation loss | train s |")
    print("|---|---|---|---|---|---|---|---|")
    records, start = [], time.perf_counter()
    for dataset in args.datasets:
        for name, lr, options in OPTIONS:
            if args.match is not None and not any(text in name for text in args.match):
                continue
            if args.only is not None and name not in args.only:
                continue
            r = run_one(dataset, args.seed, name, lr, options)
            records.append(r)
            print(f"| {dataset} | {name} | {lr:g} | {r['parameters']} | "
                  f"{r['init_logit_std']:.1e} | {100 * r['val_accuracy']:.1f} | "
                  f"{r['val_loss']:.3f} | {r['train_seconds']:.0f} |", flush=True)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    if args.json is not None:
        write_json_atomic(args.json, {
            "machine": machine_info(args.threads),
            "seed": args.seed, "total_seconds": total, "records": records})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
