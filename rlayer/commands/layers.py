"""`rlayer layers`: the catalog of layers that passed their canary."""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.models import Architecture
from rlayer.client import options
from rlayer.client.render import catalog_lines


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "layers",
        help="list proven layers",
        description="List the layers that passed their canary, with the ARNs to use.",
    )
    parser.add_argument("--r-version", metavar="X.Y.Z")
    parser.add_argument("--arch", choices=[a.value for a in Architecture])
    options.add_api_option(parser)
    options.add_json_option(parser)
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    client = options.client_for(args)
    entries = client.layers(
        r_version=args.r_version, architecture=Architecture(args.arch) if args.arch else None
    )
    out = options.console()
    if args.json:
        options.print_json(out, {"layers": entries})
    elif entries:
        options.print_lines(out, catalog_lines(entries))
    else:
        out.print("no proven layers yet", style="dim")
    return options.EXIT_OK
