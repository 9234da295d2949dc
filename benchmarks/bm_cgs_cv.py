"""CGS beside same-size GIN (with and without batch norm) and GCN, by repeated cross-validation.

Every dataset runs ``splits`` stratified k-fold splits; in every outer fold
each model's candidates (learning rates; CGS also its settings: contraction and
encoder; GIN, GIN with batch norm and GCN as many restarts) train on the same inner
part of the training folds, and the best on the inner validation part is
scored on the test fold (``graph.cgs.compare.classification_cv``) after its
last epoch (``--epoch-selection``: every candidate of every model keeps the
weights of its best epoch on the inner validation part instead). Prints one
table row per dataset and model: mean +- std of the test accuracy over all
folds, parameters, training time of all candidates, and the candidates chosen.

    python benchmarks/bm_cgs_cv.py --json results/bm_cgs_cv.json      # 3 splits x 4 folds
    python benchmarks/bm_cgs_cv.py --quick                            # 1 split, fewer epochs
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graph.cgs.compare import CV_MODELS, classification_cv  # noqa: E402
from graph.cgs.crossval import CGS_SETTINGS  # noqa: E402
from graph.cgs.model import CGSConfig  # noqa: E402
from graph.cgs.tasks.classification import classification_sets  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402
from splat.utils.machine import machine_info  # noqa: E402

DATASETS = ("marked_distance", "sbm_communities", "mice")


def run(datasets, splits: int, folds: int, epochs: int | None, seed: int,
        models=CV_MODELS, cgs_settings=CGS_SETTINGS,
        cgs_options: dict | None = None, epoch_selection: bool = False) -> list[dict]:
    """``classification_cv`` per dataset; prints each model's row as it finishes."""
    records = []
    for name in datasets:
        for r in classification_cv(seed=seed, folds=folds, epochs=epochs, dataset=name,
                                   splits=splits, models=tuple(models),
                                   cgs_settings=cgs_settings, cgs_options=cgs_options,
                                   epoch_selection=epoch_selection):
            records.append(r)
            print(row(r), flush=True)
    return records


def row(r: dict) -> str:
    chosen = ", ".join(f"{k} x{n}" for k, n in Counter(r["chosen"]).most_common())
    its = "-" if r["iterations"] is None else f"{r['iterations']:.0f}"
    return (f"| {r['dataset']} | {r['model']} | {100 * r['value']:.1f} +- {100 * r['std']:.1f} | "
            f"{len(r['fold_accuracies'])} | {r['parameters']} | {r['train_seconds']:.0f} | "
            f"{its} | {chosen} |")


def parse_options(items: list[str], parser: argparse.ArgumentParser, flag: str = "--cgs-option") -> dict:
    """``FIELD=VALUE`` strings -> CGSConfig overrides (numbers, ``None`` and
    ``true``/``false`` converted; ``pool`` as comma-separated names)."""
    fields = {f.name for f in dataclasses.fields(CGSConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in fields:
            parser.error(f"{flag} {item!r}: expected FIELD=VALUE with FIELD one of "
                         f"the CGSConfig fields")
        if key == "pool":
            out[key] = tuple(value.split(","))
        elif value.lower() in ("none", "true", "false"):
            out[key] = {"none": None, "true": True, "false": False}[value.lower()]
        else:
            try:
                out[key] = int(value)
            except ValueError:
                try:
                    out[key] = float(value)
                except ValueError:
                    out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        choices=classification_sets())
    parser.add_argument("--splits", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None,
                        help="default per dataset (quick: 10)")
    parser.add_argument("--models", nargs="+", default=list(CV_MODELS),
                        choices=list(CV_MODELS),
                        help="gin_bn: GIN with the batch norms of its paper")
    parser.add_argument("--cgs-settings", nargs="+", default=None, metavar="FIELD=VALUE,...",
                        help="CGS settings searched, each comma-separated CGSConfig overrides (default: "
                             + " ".join(",".join(f"{k}={v}" for k, v in s) for s in CGS_SETTINGS) + ")")
    parser.add_argument("--cgs-option", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="CGSConfig fields replacing the classification defaults, "
                             "e.g. encoder_aggr=mean readout=pool (GIN/GCN are re-sized)")
    parser.add_argument("--epoch-selection", action="store_true",
                        help="every candidate keeps its best epoch on the inner validation part")
    parser.add_argument("--last-epoch", action="store_true",
                        help="score every candidate after its last epoch (the default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    splits = args.splits or (1 if args.quick else 3)
    epochs = args.epochs or (10 if args.quick else None)
    torch.set_num_threads(args.threads)
    if args.epoch_selection and args.last_epoch:
        parser.error("--epoch-selection and --last-epoch exclude each other")
    cgs_settings = (CGS_SETTINGS if args.cgs_settings is None else
                    tuple(tuple(parse_options(s.split(","), parser, "--cgs-settings").items())
                          for s in args.cgs_settings))
    cgs_options = parse_options(args.cgs_option, parser)
    selection = "best epoch on the inner validation" if args.epoch_selection else "last epoch"
    print(f"{splits} split(s) x {args.folds} folds, {args.threads} thread(s), {selection}")
    print("| dataset | model | accuracy % (mean +- std over folds) | folds | parameters | "
          "train s (all candidates) | CGS iterations (test) | chosen |")
    print("|---|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    records = run(args.datasets, splits, args.folds, epochs, args.seed, args.models,
                  cgs_settings, cgs_options, args.epoch_selection)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s")
    if args.json is not None:
        write_json_atomic(args.json, {
            "machine": machine_info(args.threads),
            "splits": splits, "folds": args.folds, "cgs_settings": cgs_settings,
            "cgs_options": cgs_options, "epoch_selection": args.epoch_selection,
            "total_seconds": total, "records": records})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
