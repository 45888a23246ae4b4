"""What the API commands share: the --api option, the console, error reporting."""

from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable
from typing import Any

from rich.console import Console

from chalicelib.errors import RLayerError
from chalicelib.models import Architecture
from rlayer.client.api import ApiClient

DEFAULT_API = "http://127.0.0.1:8000"
API_ENV = "RLAYER_API_URL"
PIPE_WIDTH = 200

# Exit statuses of the API commands (argparse itself uses 2 for usage errors).
EXIT_OK = 0
EXIT_FAILED = 1  # the build failed, or the API refused the request
EXIT_STILL_RUNNING = 3  # --timeout passed before the build was final


def add_api_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get(API_ENV, DEFAULT_API),
        metavar="URL",
        help=(
            f"the rlayer API (default ${API_ENV} or {DEFAULT_API}, i.e. `rlayer serve`); "
            "requests to a deployed API are signed with SigV4 from your AWS credentials"
        ),
    )


def add_spec_arguments(parser: argparse.ArgumentParser, *, arch_help: str | None = None) -> None:
    """R_VERSION, PACKAGE ... and --arch: what a build is of (`build`, `build-layer`)."""
    parser.add_argument("r_version", metavar="R_VERSION", help="e.g. 4.4.1")
    parser.add_argument(
        "packages", nargs="*", metavar="PACKAGE", help="CRAN packages, optionally name==1.2.3"
    )
    parser.add_argument(
        "--arch",
        choices=[a.value for a in Architecture],
        default=Architecture.X86_64.value,
        help=arch_help,
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")


def client_for(args: argparse.Namespace) -> ApiClient:
    return ApiClient.for_url(args.api)


def console() -> Console:
    # Soft wrap: ARNs and log lines stay whole (copyable) instead of being cut at 80 columns.
    out = Console(soft_wrap=True, highlight=False)
    if not out.is_terminal:
        # Piped or in CI: tables keep their natural width rather than folding at 80.
        out.width = PIPE_WIDTH
    return out


def error_console() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


def print_lines(out: Console, lines: list[tuple[str, str]]) -> None:
    for text, style in lines:
        out.print(text, style=style or None, markup=False)


def print_json(out: Console, data: Any) -> None:
    # Plain print, not rich's: the output is for other programs (jq), byte for byte.
    out.file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    out.file.flush()


def reports_errors(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn our errors into one line on stderr and exit status 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except RLayerError as exc:
            # The message names the field already (the API's and the models' messages do).
            error_console().print(
                f"error: {type(exc).__name__}: {exc.message}", style="red", markup=False
            )
            return EXIT_FAILED

    return wrapper
