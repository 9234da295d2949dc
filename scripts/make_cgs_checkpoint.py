"""Trains the bundled CGS pore-network pressure solver (assets/checkpoints/cgs_porous.pt).

    python scripts/make_cgs_checkpoint.py [--quick]
"""

import argparse
import json

from graph.cgs.demo import BUNDLED_PATH, save_porous_model, train_porous_model
from graph.cgs.experiments import porous_setting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the quick training setting")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setting = porous_setting(quick=args.quick)
    model, info = train_porous_model(setting, seed=args.seed)
    save_porous_model(model, info, BUNDLED_PATH)
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
