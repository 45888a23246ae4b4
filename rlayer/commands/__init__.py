"""Subcommands of the `rlayer` CLI, one module each (see rlayer/cli.py)."""
