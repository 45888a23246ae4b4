"""The `rlayer` command: parses arguments and hands over to one module per subcommand.

Each module in ``rlayer.commands`` exposes ``register(subparsers)``, which adds its
parser and sets ``func`` (taking the parsed namespace, returning the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Order is the order shown in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "serve",
    "build",
    "status",
    "list_builds",
    "layers",
    "catalog",
    "build_layer",
    "invoke",
    "shell",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlayer", description="Build, test and publish R runtime layers for AWS Lambda."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"rlayer.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
