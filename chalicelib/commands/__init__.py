"""Subcommands of the `rlayer` CLI, one module each (see chalicelib/cli.py)."""
