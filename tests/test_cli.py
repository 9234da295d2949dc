"""The console script shell."""

import subprocess
import sys

from splatops.cli import build_parser, main


def test_every_subcommand_registers_and_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.format_help().strip(), name


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: splatops" in capsys.readouterr().out


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "splatops", "--version"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "splatops 0.1.0"
