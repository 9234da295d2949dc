"""Edge direction on the Drosophila connectomes: ForwardGNN ``sf`` against ``bp`` (GCN).

The loader symmetrises the connectome; here the directed adjacency is used
as is (``pre -> post``: messages along the synapses) or reversed
(``post -> pre``), with the same features, labels and split, and the same
edges for both variants. Prints a table of test accuracy (mean over seeds).

    python benchmarks/bm_connectome_direction.py [--seeds 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from graph.datasets import load_dataset  # noqa: E402
from graph.datasets.connectome import synapse_edges  # noqa: E402
from graph.forwardgnn import ForwardGNNConfig, train_forwardgnn  # noqa: E402

CONFIGS = {  # name: (variant, config)
    "sf": ("sf", ForwardGNNConfig()),
    "sf-200-t0.5": ("sf", ForwardGNNConfig(epochs=200, temperature=0.5)),
    "sf-topdown-200-t0.5": ("sf-topdown", ForwardGNNConfig(epochs=200, temperature=0.5)),
    "bp": ("bp", ForwardGNNConfig()),
}


def directed_edges(side: str, direction: str) -> torch.Tensor:
    """``[2, E]`` synapse edges of one hemisphere, ``pre->post`` or reversed."""
    return synapse_edges(side, direction)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    records = []
    for side in ("left", "right"):
        base = load_dataset(f"drosophila_{side}")
        for direction in ("symmetric", "pre->post", "post->pre"):
            data = base.clone()
            if direction != "symmetric":
                data.edge_index, data.edge_weight = directed_edges(side, direction), None
            for name, (variant, config) in CONFIGS.items():
                accs = [train_forwardgnn(data, variant, "gcn", "node", config, seed=s).test
                        for s in range(args.seeds)]
                rec = {"dataset": f"drosophila_{side}", "edges": direction, "variant": name,
                       "mean": statistics.fmean(accs), "accs": accs}
                records.append(rec)
                print(f"  {rec['dataset']:17s} {direction:10s} {name:20s} "
                      f"{100 * rec['mean']:5.1f} %", flush=True)
    print("\n| dataset | edges | " + " | ".join(CONFIGS) + " |\n|---|---|"
          + "---|" * len(CONFIGS))
    for i in range(0, len(records), len(CONFIGS)):
        row = records[i:i + len(CONFIGS)]
        print(f"| {row[0]['dataset']} | {row[0]['edges']} | "
              + " | ".join(f"{100 * r['mean']:.1f}" for r in row) + " |")
    if args.json is not None:
        from splat.io.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(records, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
