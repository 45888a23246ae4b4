"""Following a build until its record is final, showing progress as it goes.

On a terminal the progress is one live panel (rich.live) redrawn in place; elsewhere (CI
logs, pipes) it is one line per step change and, while a step runs, a line with the
build log's newest line every ``heartbeat`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from rich.console import Console
from rich.live import Live

from chalicelib.errors import UpstreamError
from chalicelib.models import BuildRecord
from rlayer.client.api import ApiClient
from rlayer.client.render import duration, elapsed, parse_time, progress_view

LOG_LINES = 12
# Polls that may fail in a row (API restarting, a dropped connection) before giving up.
MAX_POLL_FAILURES = 10


def local_log_path(log_url: str | None) -> Path | None:
    """The build log as a file, when the API runs on this machine (local backend)."""
    if not log_url:
        return None
    parts = urlsplit(log_url)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme and log_url.startswith("/"):
        return Path(log_url)
    return None


def tail_file(path: Path, lines: int, *, max_bytes: int = 64 * 1024) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            chunk = fh.read()
    except OSError:
        return []
    text = chunk.decode(errors="replace").replace("\r", "\n")
    return [line for line in text.splitlines() if line.strip()][-lines:]


def log_tail(raw: dict[str, Any], lines: int = LOG_LINES) -> list[str]:
    """The build log's last lines: from the local file, else from the record."""
    path = local_log_path(raw.get("log_url"))
    if path is not None and path.is_file():
        return tail_file(path, lines)
    stored = raw.get("log_tail")
    if isinstance(stored, list):
        return [str(line) for line in stored][-lines:]
    return []


class _Plain:
    def __init__(self, console: Console, heartbeat: float) -> None:
        self.console = console
        self.heartbeat = heartbeat
        self._printed: set[str] = set()
        self._last_beat = time.monotonic()

    def __enter__(self) -> _Plain:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, record: BuildRecord, log: list[str]) -> None:
        # Every step reached, also those passed between two polls, at the time it began.
        start = parse_time(record.created_at)
        for step, stamp in sorted(record.steps.items(), key=lambda kv: kv[1]):
            if step not in self._printed:
                self._printed.add(step)
                self._last_beat = time.monotonic()
                at = duration((parse_time(stamp) - start).total_seconds())
                self.console.print(f"[{at:>8}] {step}", highlight=False)
        if log and time.monotonic() - self._last_beat >= self.heartbeat:
            self._last_beat = time.monotonic()
            stamp = duration(elapsed(record))
            self.console.print(f"[{stamp:>8}]   {log[-1][:160]}", highlight=False, markup=False)


class _Live:
    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, refresh_per_second=4, transient=False)
        self._record: BuildRecord | None = None
        self._log: list[str] = []

    def __enter__(self) -> _Live:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def update(self, record: BuildRecord, log: list[str]) -> None:
        # The last frame stays on screen: the steps only (the summary follows it).
        shown = [] if record.status.is_final else log
        self._live.update(progress_view(record, shown, datetime.now(UTC)), refresh=True)


def follow(
    client: ApiClient,
    build_id: str,
    *,
    console: Console,
    interval: float = 1.0,
    timeout: float | None = None,
    heartbeat: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> BuildRecord:
    """Poll the build until it is final (or ``timeout`` seconds pass); return the record.

    Raises UpstreamError after MAX_POLL_FAILURES failed polls in a row and TimeoutError
    when the build is not final in time (the build itself goes on).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    view = _Live(console) if console.is_terminal else _Plain(console, heartbeat)
    failures = 0
    with view:
        while True:
            try:
                raw = client.get_build_raw(build_id)
                record = BuildRecord.model_validate(raw)
                failures = 0
            except UpstreamError:
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise
                sleep(interval)
                continue
            view.update(record, log_tail(raw))
            if record.status.is_final:
                return record
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"build {build_id} is still {record.status.value}")
            sleep(interval)
