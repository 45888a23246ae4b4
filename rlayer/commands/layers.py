"""`rlayer layers`: the catalog of layers that passed their canary, or with --latest the
newest ones of a spec in a region (as GET /layers/latest answers), optionally as a
copy-ready SAM, Terraform or CDK snippet."""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.models import Architecture
from rlayer.client import options
from rlayer.client.render import catalog_lines
from rlayer.client.snippets import FORMATS, snippet


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "layers",
        help="list proven layers, or the latest ones of a spec",
        description="List the layers that passed their canary, with the ARNs to use. With "
        "--latest: the newest proven layers of one R, architecture, region and package set, "
        "in the order to attach them.",
    )
    parser.add_argument("--r-version", metavar="X.Y[.Z]", help="with --latest, X.Y: its newest")
    parser.add_argument("--arch", choices=[a.value for a in Architecture])
    parser.add_argument("--latest", action="store_true", help="the newest layers of one spec")
    parser.add_argument("--region", help="with --latest: where (default: the stack's region)")
    parser.add_argument(
        "--packages", default="", metavar="P1,P2", help="with --latest: the packages asked for"
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="with --latest: a snippet attaching the layers"
    )
    options.add_api_option(parser)
    options.add_json_option(parser)
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    out = options.console()
    if (args.region or args.packages or args.format) and not args.latest:
        options.error_console().print("error: --region, --packages and --format need --latest")
        return options.EXIT_FAILED
    client = options.client_for(args)
    arch = Architecture(args.arch) if args.arch else None
    if args.latest:
        if not args.r_version:
            options.error_console().print("error: --latest needs --r-version (X.Y or X.Y.Z)")
            return options.EXIT_FAILED
        found = client.latest(
            r_version=args.r_version,
            architecture=arch or Architecture.X86_64,
            region=args.region,
            packages=[p.strip() for p in args.packages.split(",") if p.strip()],
        )
        if args.format:
            out.file.write(snippet(args.format, found))
        elif args.json:
            options.print_json(out, found)
        else:
            options.print_lines(out, latest_lines(found))
        return options.EXIT_OK
    entries = client.layers(r_version=args.r_version, architecture=arch)
    if args.json:
        options.print_json(out, {"layers": entries})
    elif entries:
        options.print_lines(out, catalog_lines(entries))
    else:
        out.print("no proven layers yet", style="dim")
    return options.EXIT_OK


def latest_lines(found: dict[str, Any]) -> list[tuple[str, str]]:
    lines = [
        (
            f"R {found['r_version']} {found['architecture']} in {found['region']}  "
            f"build {found['build_id']}",
            "bold",
        )
    ]
    for i, layer in enumerate(found["layers"], start=1):
        lines.append((f"  {i}. {layer['kind']:<8} {layer['arn']}", ""))
    if found.get("shared_with"):
        lines.append((f"  shared with {', '.join(found['shared_with'])}", "dim"))
    return lines
