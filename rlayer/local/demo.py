"""`make demo`: one R layer built end to end on this machine, then everything stopped.

Starts the local stack on free ports, asks its API for R with jsonlite and digest (digest
has C code), shows the build's progress, waits for the canary, prints the record as
DynamoDB holds it (JSON) with a short summary, and stops the stack. Exit status 0 when the
build succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from chalicelib.aws.items import BUILD
from chalicelib.errors import RLayerError
from chalicelib.models import BuildRequest, BuildStatus
from rlayer.builders.sources import cache_dir, local_sources
from rlayer.client import ApiClient, options
from rlayer.client.progress import follow
from rlayer.client.render import duration, summary
from rlayer.local.stack import LocalStack, StackOptions

DEFAULT_PACKAGES = ("jsonlite", "digest")
# Where CRAN is reachable and no local sources were prepared.
FALLBACK_R_VERSION = "4.4.1"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    sources = local_sources()
    parser = argparse.ArgumentParser(prog="python -m rlayer.local.demo", description=__doc__)
    parser.add_argument("--r-version", default=sources.r_version if sources else FALLBACK_R_VERSION)
    parser.add_argument("--packages", nargs="+", default=list(DEFAULT_PACKAGES))
    # Its own directory, so a demo can run beside `rlayer serve`; each run clears it.
    parser.add_argument("--data", type=Path, default=cache_dir() / "demo", metavar="DIR")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = options.console()
    started = time.monotonic()
    try:
        status = run(args, out)
    except RLayerError as exc:
        options.error_console().print(f"demo failed: {type(exc).__name__}: {exc.message}")
        return 1
    except KeyboardInterrupt:
        out.print("interrupted; the local stack is stopped", style="dim")
        return 130
    out.print(
        f"\nlocal stack stopped; demo took {duration(time.monotonic() - started)}", style="dim"
    )
    return 0 if status is BuildStatus.SUCCEEDED else 1


def run(args: argparse.Namespace, out: Console) -> BuildStatus:
    started = time.monotonic()
    data: Path = args.data
    data.mkdir(parents=True, exist_ok=True)
    log_path = data / "demo-stack.log"
    with (
        log_path.open("w") as log,
        LocalStack(
            StackOptions(api_port=0, data_dir=data, run_schedules=False, log_stream=log)
        ) as stack,
    ):
        ready = time.monotonic() - started
        out.print(
            f"local stack up in {ready:.1f} s: API {stack.api_url}, moto {stack.moto_url} "
            f"(its log: {log_path})",
            style="dim",
        )
        client = ApiClient(stack.api_url)
        request = BuildRequest(r_version=args.r_version, packages=list(args.packages))
        out.print(f"POST {stack.api_url}/builds {request.model_dump_json(exclude_defaults=True)}")
        submitted = client.create_build(request)
        out.print(f"build {submitted.build_id} {submitted.status.value}", style="bold")
        follow(client, submitted.build_id, console=out, interval=1.0)
        # The item as the pipeline left it in DynamoDB (read with the store, not the API).
        store = stack.store()
        item = store.get_item(BUILD.key(submitted.build_id))
        out.print(f"\nthe record in DynamoDB (table {store.table_name}):", style="bold")
        _print_json(out, item)
        out.print()
        record = store.get_build(submitted.build_id)
        options.print_lines(out, summary(record))
        return record.status


def _print_json(out: Console, data: object) -> None:
    out.file.write(json.dumps(data, indent=2) + "\n")
    out.file.flush()


if __name__ == "__main__":
    sys.exit(main())
