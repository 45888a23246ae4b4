"""`rlayer catalog --html FILE`: the catalog page as one self-contained file, for an API
whose catalog routes are private (a browser cannot sign requests; this command does)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from chalicelib.api.catalog_page import page
from rlayer.client import options


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "catalog",
        help="write the catalog web page to a file",
        description="Write the catalog page (the one GET /catalog serves) with the current "
        "catalog inside it: one HTML file that needs no API to open.",
    )
    parser.add_argument("--html", required=True, type=Path, metavar="FILE", help="where to")
    options.add_api_option(parser)
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    data = options.client_for(args).catalog()
    args.html.write_text(page(data), encoding="utf-8")
    options.console().print(
        f"{len(data['layers'])} proven builds written to {args.html}", markup=False
    )
    return options.EXIT_OK
