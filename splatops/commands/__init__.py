"""Subcommands of ``splatops``; each module registers one."""
