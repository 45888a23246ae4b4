"""`rlayer list`: recent builds, newest first."""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.models import BuildRecord, BuildStatus
from rlayer.client import options
from rlayer.client.render import builds_table


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "list", help="list builds", description="List builds, newest first."
    )
    parser.add_argument("--status", choices=[s.value for s in BuildStatus])
    parser.add_argument("--limit", type=int, default=20, help="how many (1-100 per page)")
    parser.add_argument("--all", action="store_true", help="follow every page")
    options.add_api_option(parser)
    options.add_json_option(parser)
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    client = options.client_for(args)
    status = BuildStatus(args.status) if args.status else None
    records: list[BuildRecord] = []
    token: str | None = None
    while True:
        page = client.list_builds(status=status, limit=args.limit, next_token=token)
        records.extend(page.builds)
        token = page.next
        if not (args.all and token):
            break
    out = options.console()
    if args.json:
        options.print_json(
            out, {"builds": [r.model_dump(mode="json") for r in records], "next": token}
        )
    elif records:
        out.print(builds_table(records))
        if token:
            out.print("(more: --all, or a larger --limit)", style="dim")
    else:
        out.print("no builds yet", style="dim")
    return options.EXIT_OK
