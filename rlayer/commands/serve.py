"""`rlayer serve`: the whole pipeline on this machine until Ctrl-C (see rlayer.local.stack)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console

from rlayer.builders.sources import default_data_dir, local_sources
from rlayer.client import options

if TYPE_CHECKING:
    from rlayer.local.stack import LocalStack


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the pipeline on this machine (moto, local builds, the API)",
        description=(
            "Start the local stack: moto (DynamoDB, S3, Lambda, IAM, Step Functions running "
            "state_machine.asl.json), local builds, the canary in a sandbox, and the API on "
            "127.0.0.1. Ctrl-C stops all of it."
        ),
    )
    parser.add_argument("--port", type=int, default=8000, help="the API's port (default 8000)")
    parser.add_argument(
        "--moto-port", type=int, default=0, help="moto's port (default: a free one)"
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=default_data_dir(),
        metavar="DIR",
        help=(
            "where builds, their logs and the canary's sandboxes go; cleared when the stack "
            f"starts (default {default_data_dir()})"
        ),
    )
    parser.add_argument(
        "--no-schedules", action="store_true", help="do not run the app's schedules"
    )
    parser.set_defaults(func=run)


@options.reports_errors
def run(args: argparse.Namespace) -> int:
    # Imported here: the stack pulls in moto and the pipeline (~0.6 s), which every other
    # command, and `rlayer --help`, should not pay for.
    from rlayer.local.stack import LocalStack, StackOptions

    out = options.console()
    stack = LocalStack(
        StackOptions(
            api_port=args.port,
            moto_port=args.moto_port,
            data_dir=args.data,
            run_schedules=not args.no_schedules,
        )
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then never
    # raises KeyboardInterrupt.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start()
        _banner(out, stack)
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        out.print("stopping the local stack…", style="dim")
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    out.print("stopped.", style="dim")
    return options.EXIT_OK


def _banner(out: Console, stack: LocalStack) -> None:
    settings = stack.settings
    out.print(f"rlayer API      {stack.api_url}  (no IAM locally: bound to 127.0.0.1 only)")
    out.print(f"moto endpoint   {stack.moto_url}  (AWS_ENDPOINT_URL for the aws CLI)")
    out.print(f"state machine   {stack.state_machine_arn}")
    out.print(f"table, bucket   {settings.table_name}, {settings.artifact_bucket}")
    out.print(f"builds and logs {settings.local_work_dir}")
    if settings.r_source:
        out.print(f"R source        {settings.r_source}")
        out.print(f"package repo    {settings.cran_repo}")
    else:
        out.print("R source        CRAN (run `make local-sources` where CRAN cannot be reached)")
    offered = settings.buildable_r_versions()
    if offered:
        out.print(f"R versions      {', '.join(offered)}")
    for version, why in settings.r_versions_refused.items():
        out.print(f"not built       R {version}: {why}", markup=False)
    api = "" if stack.api_url == options.DEFAULT_API else f" --api {stack.api_url}"
    sources = local_sources()
    version = (
        sources.r_version if sources and settings.r_source == sources.r_source_template else "4.4.1"
    )
    out.print(f"try: rlayer build {version} jsonlite digest{api}", style="bold")
    out.print("Ctrl-C stops everything.", style="dim")
