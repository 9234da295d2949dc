"""``splatops app``: serve the browser app."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("app", help="serve the browser app (Gradio)",
                              description="Serve the splatops browser app.")
    p.add_argument("--host", default="127.0.0.1", help="interface (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    return p


def run(args: argparse.Namespace) -> int:
    import importlib.util
    from pathlib import Path

    app_py = Path(__file__).resolve().parents[2] / "app.py"
    if not app_py.is_file():
        raise FileNotFoundError(f"app.py not found beside the package at {app_py}")
    spec = importlib.util.spec_from_file_location("splatops_app", app_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--host", args.host, "--port", str(args.port)])
    return 0
