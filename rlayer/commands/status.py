"""`rlayer status BUILD_ID`: one build's record (optionally following it to the end)."""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.models import BuildRecord, BuildStatus
from rlayer.client import options
from rlayer.client.progress import follow
from rlayer.client.render import summary


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show a build",
        description="Show a build's status, layers, canary result or error. Exit status 1 "
        "when the build failed.",
    )
    parser.add_argument("build_id", metavar="BUILD_ID")
    parser.add_argument("--wait", action="store_true", help="follow the build until it ends")
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="polling interval"
    )
    options.add_api_option(parser)
    options.add_json_option(parser)
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    out = options.console()
    client = options.client_for(args)
    raw = client.get_build_raw(args.build_id)
    record = BuildRecord.model_validate(raw)
    if args.wait and not record.status.is_final:
        try:
            record = follow(client, args.build_id, console=out, interval=args.interval)
        except KeyboardInterrupt:
            return options.EXIT_STILL_RUNNING
        raw = record.model_dump(mode="json")
    if args.json:
        options.print_json(out, raw)
    else:
        options.print_lines(out, summary(record))
    return options.EXIT_FAILED if record.status is BuildStatus.FAILED else options.EXIT_OK
