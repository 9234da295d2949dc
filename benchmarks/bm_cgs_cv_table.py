"""CGS against GIN and GCN from saved ``bm_cgs_cv.py`` records, fold by fold.

Reads the JSON files that ``bm_cgs_cv.py --json`` writes (records of one or
more models; a model's record may come from another file, as long as it was
scored on the same folds), and prints per dataset the mean +- std test
accuracy of each model and CGS minus each baseline: the mean per-fold
difference, its standard error and the folds won / tied / lost.

    python benchmarks/bm_cgs_cv_table.py results/cgs/*.json results/baselines/*.json --json table.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph.cgs.crossval import paired_comparison  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402

BASELINES = ("gin", "gin_bn", "gcn")


def load_records(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """``(dataset, model) -> record``; a later file's record replaces an earlier one."""
    out = {}
    for path in paths:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{Path(path).name}: not a readable bm_cgs_cv.py result ({exc})") from None
        records = data.get("records") if isinstance(data, dict) else None
        if not isinstance(records, list):
            raise ValueError(f"{Path(path).name}: no 'records' list (expected bm_cgs_cv.py --json output)")
        for r in records:
            out[(r["dataset"], r["model"])] = r
    return out


def compare(records: dict[tuple[str, str], dict]) -> list[dict]:
    """One row per dataset that has a CGS record: accuracies and CGS minus each baseline."""
    rows = []
    for dataset in sorted({d for d, m in records if m == "cgs"}):
        cgs = records[(dataset, "cgs")]
        row = {"dataset": dataset, "folds": len(cgs["fold_accuracies"]),
               "accuracy": {m: {"mean": records[(dataset, m)]["value"], "std": records[(dataset, m)]["std"]}
                            for m in ("cgs",) + BASELINES if (dataset, m) in records}}
        for base in BASELINES:
            if (dataset, base) in records:
                row[f"cgs_minus_{base}"] = paired_comparison(cgs, records[(dataset, base)])
        rows.append(row)
    return rows


def format_row(row: dict) -> str:
    acc = row["accuracy"]
    cells = [row["dataset"], str(row["folds"])]
    for m in ("cgs",) + BASELINES:
        cells.append(f"{100 * acc[m]['mean']:.1f} +- {100 * acc[m]['std']:.1f}" if m in acc else "-")
    for base in BASELINES:
        p = row.get(f"cgs_minus_{base}")
        cells.append("-" if p is None else
                     f"{100 * p['difference']:+.1f} ({100 * p['standard_error']:.1f}; "
                     f"{p['won']}/{p['tied']}/{p['lost']})")
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", nargs="+", type=Path, help="bm_cgs_cv.py --json files")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    try:
        rows = compare(load_records(args.records))
    except ValueError as exc:
        parser.error(str(exc))
    if not rows:
        parser.error("no CGS record in the given files")
    print("| dataset | folds | CGS % | GIN % | GIN with batch norm % | GCN % | CGS - GIN (paired s.e.; "
          "won/tied/lost) | CGS - GIN with batch norm | CGS - GCN |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(format_row(row))
    if args.json is not None:
        write_json_atomic(args.json, {"sources": [p.name for p in args.records], "rows": rows})
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
