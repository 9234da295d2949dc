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
    from splatops.app import main

    main(["--host", args.host, "--port", str(args.port)])
    return 0
