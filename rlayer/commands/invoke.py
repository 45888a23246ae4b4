"""`rlayer invoke HANDLER --event FILE|-`: run an R handler on this machine through the real
bootstrap, with the given layers at /opt (bubblewrap), like `sam local invoke` without
Docker. Without --layer it runs this repository's runtime with host R (handler
development). With --serve it stays warm and answers Lambda's Invoke endpoint instead.

Prints the response (or the error JSON) on stdout and the function's log on stderr. With
--stream a response the handler streams is printed chunk by chunk as it arrives, and an
error after its first bytes (the stream's trailers) goes to stderr.
Exit status: 0 success, 1 the function failed (error, timeout, crash), 2 bad usage or the
function could not be set up.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chalicelib.errors import RequestInvalidError, RLayerError
from rlayer.client.options import error_console
from rlayer.local.runtime_api import InvokeResult, InvokeServer, RuntimeSession

EXIT_OK = 0
EXIT_FUNCTION_ERROR = 1
EXIT_USAGE = 2


class InvokeOptions(BaseModel):
    """The function's configuration, within Lambda's limits."""

    model_config = ConfigDict(frozen=True)

    handler: str
    layers: tuple[Path, ...] = ()
    task_root: Path
    timeout_s: float = Field(gt=0, le=900)
    memory_mb: int = Field(ge=128, le=10240)
    # Lambda allows up to 1600 (PerExecutionEnvironmentMaxConcurrency); every one is an R
    # process here, so local runs stop at 64.
    max_concurrency: int = Field(default=1, ge=1, le=64)
    env: dict[str, str] = {}

    @field_validator("handler")
    @classmethod
    def _handler(cls, value: str) -> str:
        stem, dot, name = value.rpartition(".")
        if not dot or not stem or not name or any(c.isspace() for c in value):
            raise ValueError(f"{value!r} is not file.function, e.g. main.handler")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if isinstance(value, list):
            pairs = {}
            for item in value:
                key, sep, val = str(item).partition("=")
                if not sep or not key:
                    raise ValueError(f"--env takes KEY=VALUE, got {item!r}")
                pairs[key] = val
            return pairs
        return value


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "invoke",
        help="run an R handler locally with layers at /opt",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "handler",
        metavar="HANDLER",
        help="file.function, as Lambda's handler setting: main.handler is handler() in main.R",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--event", metavar="FILE|-", help="the event JSON: a file, or - (stdin)")
    source.add_argument(
        "--serve",
        action="store_true",
        help="stay warm and serve POST /2015-03-31/functions/function/invocations",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port for --serve on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--layer",
        action="append",
        default=[],
        type=Path,
        metavar="DIR_OR_ZIP",
        help="a layer for /opt (repeat, in order: later layers overwrite earlier ones)",
    )
    parser.add_argument(
        "--task-root",
        type=Path,
        default=Path("."),
        metavar="DIR",
        help="the function code, mounted at /var/task (default: the current directory)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="seconds (default 3)"
    )
    parser.add_argument(
        "--memory", type=int, default=128, metavar="MB", help="memory size (default 128)"
    )
    parser.add_argument(
        "--stream",
        action="store_true",
        help="print a streamed response chunk by chunk as it arrives",
    )
    parser.add_argument(
        "--max-concurrency",
        type=int,
        default=1,
        metavar="N",
        help="serve N events at once in one environment (AWS_LAMBDA_MAX_CONCURRENCY)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable of the function (repeatable)",
    )
    parser.add_argument(
        "--quiet", "-q", action="store_true", help="do not copy the function's log to stderr"
    )
    parser.set_defaults(func=run)


def _read_event(source: str) -> bytes:
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise RequestInvalidError(f"cannot read the event: {exc}", field="event") from exc
    try:
        json.loads(data or b"{}")
    except ValueError as exc:
        # Lambda's Invoke refuses a payload that is not JSON; say so before starting R.
        raise RequestInvalidError(f"the event is not valid JSON: {exc}", field="event") from exc
    return data or b"{}"


def _log_to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _session(opts: InvokeOptions, quiet: bool) -> RuntimeSession:
    return RuntimeSession(
        list(opts.layers),
        opts.task_root,
        opts.handler,
        opts.env,
        opts.timeout_s,
        opts.memory_mb,
        log_sink=None if quiet else _log_to_stderr,
        max_concurrency=opts.max_concurrency,
    )


def _print_result(result: InvokeResult) -> int:
    sys.stdout.buffer.write(result.payload + b"\n")
    sys.stdout.flush()
    return EXIT_FUNCTION_ERROR if result.function_error else EXIT_OK


def _print_chunk(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()


def _finish_stream(result: InvokeResult) -> int:
    """After --stream: a response that was not streamed is printed whole, as without it."""
    if not result.streamed:
        return _print_result(result)
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    if result.stream_error is not None:
        error_console().print(
            f"stream ended with {result.error_type}: "
            f"{result.stream_error.decode(errors='replace')}",
            style="red",
            markup=False,
        )
    return EXIT_FUNCTION_ERROR if result.function_error else EXIT_OK


def run(args: argparse.Namespace) -> int:
    err = error_console()
    try:
        opts = InvokeOptions(
            handler=args.handler,
            layers=tuple(args.layer),
            task_root=args.task_root,
            timeout_s=args.timeout,
            memory_mb=args.memory,
            max_concurrency=args.max_concurrency,
            env=args.env,
        )
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(p) for p in problem["loc"])
            err.print(f"error: {where}: {problem['msg']}", style="red", markup=False)
        return EXIT_USAGE
    try:
        if args.serve:
            return _serve(opts, args.port, args.quiet)
        payload = _read_event(args.event)
        with _session(opts, args.quiet) as session:
            if args.stream:
                return _finish_stream(session.invoke(payload, on_chunk=_print_chunk))
            return _print_result(session.invoke(payload))
    except RLayerError as exc:
        err.print(f"error: {type(exc).__name__}: {exc.message}", style="red", markup=False)
        return EXIT_USAGE


def _serve(opts: InvokeOptions, port: int, quiet: bool) -> int:
    with _session(opts, quiet) as session, InvokeServer(session, port=port) as server:
        error_console().print(
            f"serving {opts.handler} at {server.url} (Ctrl-C to stop)", markup=False
        )
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
    return EXIT_OK
