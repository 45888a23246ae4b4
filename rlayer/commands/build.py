"""`rlayer build R_VERSION [PACKAGE ...]`: request a layer build and follow it to the end."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from chalicelib.errors import request_invalid
from chalicelib.models import BuildRequest, BuildStatus
from rlayer.client import options
from rlayer.client.progress import follow
from rlayer.client.render import summary


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "build",
        help="build an R layer (and wait for its canary)",
        description=(
            "Request a build of R with the given CRAN packages, then show its progress until "
            "the layers are published and proven by the canary (or the build fails)."
        ),
    )
    options.add_spec_arguments(parser)
    parser.add_argument("--layer-name", help="name for the packages layer")
    parser.add_argument("--description", help="layer description (at most 256 characters)")
    parser.add_argument(
        "--force", action="store_true", help="build again even if an identical build exists"
    )
    parser.add_argument(
        "--backend", help="where to build (codebuild, ec2, ...): one the stage offers"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="print the build id and return at once"
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop waiting after this long"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="polling interval"
    )
    options.add_api_option(parser)
    options.add_json_option(parser)
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    try:
        request = BuildRequest.model_validate(
            {
                "r_version": args.r_version,
                "packages": list(args.packages),
                "architecture": args.arch,
                "layer_name": args.layer_name,
                "description": args.description,
                "force": args.force,
                "backend": args.backend,
            }
        )
    except ValidationError as exc:
        raise request_invalid(exc) from exc
    out = options.console()
    client = options.client_for(args)
    submitted = client.create_build(request)
    if args.json and args.no_wait:
        options.print_json(out, {**asdict(submitted), "status": submitted.status.value})
        return options.EXIT_OK
    if submitted.created:
        out.print(f"build {submitted.build_id} queued: {submitted.status_url}", markup=False)
    else:
        out.print(
            f"an identical build answers this request: {submitted.build_id} "
            f"({submitted.status.value}): {submitted.status_url}",
            markup=False,
        )
    if args.no_wait:
        return options.EXIT_OK
    try:
        record = follow(
            client,
            submitted.build_id,
            console=out,
            interval=args.interval,
            timeout=args.timeout,
        )
    except (TimeoutError, KeyboardInterrupt) as exc:
        why = "timed out waiting" if isinstance(exc, TimeoutError) else "stopped waiting"
        out.print(
            f"{why}; the build goes on. Follow it with: rlayer status {submitted.build_id} --wait",
            markup=False,
        )
        return options.EXIT_STILL_RUNNING
    if args.json:
        options.print_json(out, record.model_dump(mode="json"))
    else:
        options.print_lines(out, summary(record))
    return options.EXIT_OK if record.status is BuildStatus.SUCCEEDED else options.EXIT_FAILED
