"""The ``splatops`` command line: one subcommand per library entry point."""

__version__ = "0.1.0"
