"""Make the 3-D checkpoints that preview physics on splat objects (``assets/checkpoints``).

For each material: simulate a dataset of randomised drops of several shapes
(``operators.splat_physics.shapes.generate_shape_dataset``: box, sphere,
ellipsoid and cylinder in training, torus and capsule held out for the test
split), then train GIOROM and GNS with the SAME budget (steps x batch),
roll both out on the held-out test split, and write
``giorom_<material>_3d.pt`` (and ``gns_<material>_3d.pt`` with ``--ship-gns``)
without optimizer state, each with a JSON of settings and test metrics.

    python scripts/make_splat_checkpoints.py --material jelly --steps 600 --work /tmp/splatphys
    python scripts/make_splat_checkpoints.py --material sand  --steps 600 --work /tmp/splatphys
    python scripts/make_splat_checkpoints.py --material jelly --steps 4000 --batch 8 --device cuda

Several machines (DDP, gloo; every rank samples its own batches, gradients
are averaged, rank 0 writes) -- run the same command on each node:

    torchrun --nnodes=2 --nproc_per_node=2 --node_rank=<0|1> \
        --rdzv_backend=c10d --rdzv_endpoint=<host0>:29500 \
        -m splatops train giorom --data /shared/data_jelly_3d --out /shared/run_jelly --steps 4000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from operators.checkpoints import BUNDLED_DIR, load_checkpoint, save_checkpoint  # noqa: E402
from operators.contact import contact_from_dict, contact_models, fit_contact  # noqa: E402
from operators.datasets import read_metadata, read_split  # noqa: E402
from operators.giorom import GIOROMConfig  # noqa: E402
from operators.gns import GNSConfig  # noqa: E402
from operators.rollout import rollout  # noqa: E402
from operators.splat_physics.shapes import (HELD_OUT_SHAPES, TRAIN_SHAPES, VARIED_TRAIN_SHAPES,  # noqa: E402
                                            generate_shape_dataset, gravity_per_frame)
from operators.train import train  # noqa: E402
from splat.io.atomic import write_json_atomic  # noqa: E402

GIOROM_CONFIG = {"latent": 32, "grid_size": 8, "modes": 3, "sparse_fraction": 0.5, "query_hidden": 16,
                 "clamp_to_bounds": True, "wall_horizon": 4.0}
GNS_CONFIG = {"latent": 32, "mp_steps": 4, "clamp_to_bounds": True, "wall_horizon": 4.0}


def ensure_gravity(data: Path, enabled: bool) -> None:
    """Write (or drop) the dataset's ``external_acceleration`` (gravity per frame squared),
    which the models learn a residual on; datasets made before it existed lack it."""
    meta_path = data / "metadata.json"
    meta = json.loads(meta_path.read_text())
    if enabled and "external_acceleration" not in meta:
        meta["external_acceleration"] = gravity_per_frame(dim=int(meta["dim"]))
    elif not enabled:
        meta.pop("external_acceleration", None)
    else:
        return
    write_json_atomic(meta_path, meta, indent=2)


def train_selected(model: str, data: Path, run: Path, steps: int, cfg: dict, a, decay: int):
    """Train to ``steps``; with ``a.select_every`` also roll out the valid split every
    that many steps and keep the checkpoint with the lowest valid rollout MSE as
    ``best.pt``. A resumed run keeps the valid rollouts of the steps it already made
    (``valid_selection.json``). Returns the last :class:`TrainResult` and the selection record."""
    kwargs = dict(model_config=cfg, batch_size=a.batch, checkpoint_every=100, progress=False,
                  device=a.device, lr_decay_steps=decay, lr=a.lr, rollout_steps=a.rollout_steps, seed=a.seed)
    if a.select_every <= 0:
        return train(model, data, run, steps, resume=(run / "checkpoint.pt").is_file(), **kwargs), None
    record = run / "valid_selection.json"
    step = load_checkpoint(run / "checkpoint.pt").step if (run / "checkpoint.pt").is_file() else 0
    history = [h for h in json.loads(record.read_text()) if h[0] <= step] if step and record.is_file() else []
    best, res = min((h[1] for h in history), default=None), None
    while step < steps:
        step = min(steps, (step // a.select_every + 1) * a.select_every)  # the same steps when resumed
        res = train(model, data, run, step, resume=(run / "checkpoint.pt").is_file(), **kwargs)
        ckpt = load_checkpoint(res.checkpoint)
        mse = rollout(ckpt, data, split="valid", progress=False).mean_mse
        history.append([step, mse])
        write_json_atomic(record, history)
        print(json.dumps({"model": model, "step": step, "valid_rollout_mse": mse}), flush=True)
        if best is None or mse < best:
            best = mse
            ckpt.optimizer = None
            save_checkpoint(ckpt, run / "best.pt")
    if res is None:  # already trained to ``steps``
        res = train(model, data, run, steps, resume=True, **kwargs)
    selected = min(history, key=lambda h: h[1]) if history else None
    return res, {"every": a.select_every, "valid_rollout_mse": history,
                 "selected_step": selected[0] if selected else None}


def shrink_residual(ckpt, data: Path, scales=(1.0, 0.5, 0.25, 0.0)) -> dict:
    """Set ``ckpt.model_config["residual_scale"]`` to the factor on the learned residual
    whose valid rollout MSE is lowest (0: the prior alone); returns the record."""
    errors = []
    for scale in scales:
        ckpt.model_config["residual_scale"] = scale
        errors.append([scale, rollout(ckpt, data, split="valid", progress=False).mean_mse])
    best = min(errors, key=lambda e: e[1])[0]
    ckpt.model_config["residual_scale"] = best
    print(json.dumps({"residual_scale": best, "valid_rollout_mse": errors}), flush=True)
    return {"selected": best, "valid_rollout_mse": errors}


# model-config fields that have their own flag, which sets them
FLAGGED_FIELDS = {"sparse_fraction": "--sparse-fraction", "query_affine": "--query-affine",
                  "wall_contact": "--wall-contact", "residual": "--residual", "contact_gate": "--contact-gate"}


def _model_config_overrides(p: argparse.ArgumentParser, text: str | None, models: list[str]) -> dict:
    """``--model-config``: a JSON object of per-model hyper-parameter objects, checked against
    the models' config fields (a mistyped name is an error, not a silent default)."""
    if not text:
        return {}
    try:
        given = json.loads(text)
    except json.JSONDecodeError as e:
        p.error(f"--model-config is not valid JSON: {e}")
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        p.error('--model-config must be a JSON object of objects, e.g. \'{"giorom": {"latent": 64}}\'')
    fields = {"giorom": {f.name for f in dataclasses.fields(GIOROMConfig)},
              "gns": {f.name for f in dataclasses.fields(GNSConfig)}}
    for model, cfg in given.items():
        if model not in models:
            p.error(f"--model-config names {model!r}, which --models does not train ({','.join(models)})")
        unknown = sorted(set(cfg) - fields[model])
        if unknown:
            p.error(f"--model-config: {model} has no hyper-parameter {', '.join(unknown)}")
        flagged = sorted(set(cfg) & set(FLAGGED_FIELDS))
        if flagged:
            p.error(f"--model-config: set {', '.join(flagged)} with "
                    f"{', '.join(FLAGGED_FIELDS[f] for f in flagged)} instead")
    return given


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--material", default="jelly")
    p.add_argument("--models", default="giorom,gns")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--trajectories", type=int, default=12, help="training trajectories")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--train-shapes", default=",".join(TRAIN_SHAPES),
                   help="shapes of the train and valid drops, comma-separated, or 'varied' "
                        f"({','.join(VARIED_TRAIN_SHAPES)}); the test split keeps {','.join(HELD_OUT_SHAPES)}")
    p.add_argument("--train-max-spin", type=float, default=0.0,
                   help="largest initial spin of the train and valid drops (rad/s, random axis)")
    p.add_argument("--train-min-size", type=float, default=0.15,
                   help="smallest size of the train and valid drops (box units; the largest is 0.28)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="training device: cpu or cuda (evaluation runs on the CPU)")
    p.add_argument("--rollout-steps", type=int, default=1,
                   help="steps unrolled per training window (1: one-step loss; K: K-step rollout loss)")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate (Adam)")
    p.add_argument("--seed", type=int, default=0,
                   help="training seed (initial weights and batches); the dataset's is fixed")
    p.add_argument("--lr-decay-steps", type=int, default=None,
                   help="steps over which the learning rate decays tenfold (default: --steps / 2)")
    p.add_argument("--no-gravity-prior", action="store_true",
                   help="learn the whole acceleration (no known gravity under the learned residual)")
    p.add_argument("--wall-contact", action="store_true",
                   help="fit a wall response (restitution, friction, offset) on the training split and "
                        "learn the residual over it (operators.contact)")
    p.add_argument("--contact-model", choices=sorted(contact_models()), default="particle",
                   help="with --wall-contact: per-particle response (operators.contact), one impulse on the "
                        "object's rigid motion (operators.rigid_contact), a rigid body on spring-dampers "
                        "(operators.compliant_contact), position-based grains (operators.granular_contact), "
                        "the material's MPM on the stepped points (mpm, operators.mpm_prior) "
                        "or another registered model (operators.contact.contact_models)")
    p.add_argument("--contact-json", default=None,
                   help="with --wall-contact: the prior's constants as a JSON dict (e.g. fitted before on the "
                        "same training split) instead of fitting them here")
    p.add_argument("--residual", choices=["free", "affine"], default="free",
                   help="learned residual per particle, or projected onto each object's affine field "
                        "(operators.affine)")
    p.add_argument("--contact-gate", type=float, default=None,
                   help="wall distance (box units) beyond which an object's learned residual fades to 0")
    p.add_argument("--shrink-residual", action="store_true",
                   help="after training, pick the factor on the learned residual (1, 0.5, 0.25, 0) "
                        "with the lowest valid rollout error; 0 keeps only the prior")
    p.add_argument("--select-every", type=int, default=0,
                   help="every N steps roll out the valid split and keep the best checkpoint (0: the last)")
    p.add_argument("--valid-drops", type=int, default=2,
                   help="valid drops of the training shapes (checkpoint and residual-scale selection)")
    p.add_argument("--sparse-fraction", type=float, default=GIOROM_CONFIG["sparse_fraction"],
                   help="GIOROM: fraction of the particles its time-stepper moves")
    p.add_argument("--query-affine", action="store_true",
                   help="GIOROM: the dense query carries the sparse points' locally affine motion")
    p.add_argument("--model-config", default=None, metavar="JSON",
                   help='hyper-parameters over the defaults, per model: \'{"giorom": {"latent": 64}}\'')
    p.add_argument("--work", default="/tmp/splatphys")
    p.add_argument("--ship-gns", action="store_true", help="also copy the GNS checkpoint to assets")
    p.add_argument("--no-ship", action="store_true", help="train and evaluate only")
    a = p.parse_args(argv)
    shapes = VARIED_TRAIN_SHAPES if a.train_shapes == "varied" else tuple(a.train_shapes.split(","))
    if set(shapes) & set(HELD_OUT_SHAPES):
        p.error(f"--train-shapes must not hold the held-out test shapes {','.join(HELD_OUT_SHAPES)}")
    unknown = sorted(set(shapes) - set(VARIED_TRAIN_SHAPES))
    if unknown:
        p.error(f"unknown --train-shapes {','.join(unknown)} (known: {','.join(VARIED_TRAIN_SHAPES)})")
    if not 0 < a.train_min_size < 0.28:
        p.error(f"--train-min-size must be in (0, 0.28), got {a.train_min_size}")
    if not a.train_max_spin >= 0:
        p.error(f"--train-max-spin must be >= 0, got {a.train_max_spin}")
    if a.valid_drops < 1:
        p.error(f"--valid-drops must be >= 1, got {a.valid_drops}")
    if not 0 < a.sparse_fraction <= 1:
        p.error(f"--sparse-fraction must be in (0, 1], got {a.sparse_fraction}")
    overrides = _model_config_overrides(p, a.model_config, a.models.split(","))
    torch.set_num_threads(a.threads)
    work = Path(a.work)
    data = work / f"data_{a.material}_3d"
    if (data / "metadata.json").is_file():
        meta = json.loads((data / "metadata.json").read_text())
        made = (meta.get("train_shapes"), meta.get("train_max_spin", 0.0),
                meta.get("train_size_range", [0.15, 0.28]))  # a shape dataset's training drops
        if "train_shapes" in meta and made != (list(shapes), a.train_max_spin, [a.train_min_size, 0.28]):
            p.error(f"{data.name} in --work was made with other training drops (shapes, spin, sizes {made}); "
                    "choose another --work")
    else:
        generate_shape_dataset(a.material, data, n_train=a.trajectories, n_valid=a.valid_drops, n_test=4,
                               n_frames=a.frames, train_shapes=shapes, train_size_range=(a.train_min_size, 0.28),
                               train_max_spin=a.train_max_spin)
    ensure_gravity(data, not a.no_gravity_prior)
    decay = a.lr_decay_steps or max(1, a.steps // 2)
    contact = None
    if a.wall_contact:
        meta = read_metadata(data)
        trajs = [t.positions for t in read_split(data, "train", meta)]
        ext = meta.get("external_acceleration") or [0.0] * int(meta["dim"])
        if a.contact_json:
            given = {"model": a.contact_model, **json.loads(a.contact_json)}
            contact = contact_from_dict(given).as_dict()  # validated
            print(json.dumps({"wall_contact": contact, "given": True}), flush=True)
        else:
            fitted, err = fit_contact(a.contact_model, trajs, ext, meta["bounds"], material=meta.get("material"))
            contact = fitted.as_dict()
            print(json.dumps({"wall_contact": contact, "train_prior_rmse_frac": err}), flush=True)
    for model in a.models.split(","):
        run = work / f"run_{model}_{a.material}_3d"
        cfg = dict(GIOROM_CONFIG if model == "giorom" else GNS_CONFIG)
        if model == "giorom":
            cfg.update(sparse_fraction=a.sparse_fraction, query_affine=a.query_affine)
        if contact is not None:
            cfg["wall_contact"] = contact
        cfg.update(overrides.get(model, {}))
        cfg["residual"] = a.residual
        cfg["contact_gate"] = a.contact_gate
        t0 = time.time()
        res, selection = train_selected(model, data, run, a.steps, cfg, a, decay)
        seconds = time.time() - t0
        ckpt = load_checkpoint(run / "best.pt" if selection else res.checkpoint)
        shrink = None
        if a.shrink_residual:
            shrink = shrink_residual(ckpt, data)
            ckpt.optimizer = None
            save_checkpoint(ckpt, run / "best.pt")  # the selected model, with its residual scale
        test = rollout(ckpt, data, split="test", progress=False)
        info = {"model": model, "material": a.material, "dim": 3, "scene": "shape_drops",
                "dataset": json.loads((data / "metadata.json").read_text()).get("train_shapes"),
                "held_out_shapes": json.loads((data / "metadata.json").read_text()).get("test_shapes"),
                "model_config": ckpt.model_config, "train_config": ckpt.train_config,
                "steps": ckpt.step, "batch_size": a.batch, "budget_windows": ckpt.step * a.batch,
                "train_seconds_this_run": round(seconds, 1), "final_train_loss": res.loss,
                "valid_selection": selection, "residual_scale_selection": shrink, "steps_trained": res.step,
                "test_rollout_mse": test.mean_mse, "test_rollout_steps": len(test.mse_per_step[0]),
                "machine": ("2-core CPU shared with other jobs" if a.device == "cpu" else a.device),
                "device": a.device, "torch_threads": a.threads}
        write_json_atomic(run / "info.json", info, indent=1)
        print(json.dumps({k: info[k] for k in ("model", "steps", "final_train_loss", "test_rollout_mse")}),
              flush=True)
        if a.no_ship or (model == "gns" and not a.ship_gns):
            continue
        ckpt.optimizer = None
        dest = save_checkpoint(ckpt, BUNDLED_DIR / f"{model}_{a.material}_3d.pt")
        write_json_atomic(dest.with_suffix(".json"), info, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
