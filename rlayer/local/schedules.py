"""Running the app's ``@app.schedule`` handlers on this machine, on their rate.

EventBridge does this in AWS. Locally each ``rate(...)`` schedule gets a thread that calls
the Chalice handler with a "Scheduled Event" every period (the first run one period after
the start, as a new EventBridge rule does). ``cron(...)`` schedules are listed as skipped:
without an evaluator for EventBridge's cron dialect they would run at the wrong times.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalice.app import Chalice, ScheduledEventConfig
from chalice.local import LambdaContext

from chalicelib.observability import logger

_RATE_RE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
TIMEOUT_MS = 900_000


@dataclass(frozen=True)
class Schedule:
    name: str
    expression: str
    period_s: float | None  # None: not run locally (cron)


def rate_seconds(expression: str) -> float | None:
    match = _RATE_RE.match(expression.strip())
    if not match:
        return None
    return int(match.group(1)) * _SECONDS[match.group(2).rstrip("s")]


def app_schedules(app: Chalice) -> list[Schedule]:
    found = []
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            expr = source.schedule_expression
            text = expr if isinstance(expr, str) else expr.to_string()
            found.append(Schedule(source.name, text, rate_seconds(text)))
    return found


def scheduled_event(region: str, rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:123456789012:rule/{rule}"],
        "detail": {},
    }


class Scheduler:
    """One thread per rate schedule; :meth:`stop` ends them all (a running call finishes)."""

    def __init__(self, app: Chalice, *, region: str, period_override_s: float | None = None):
        self.app = app
        self.region = region
        self.period_override_s = period_override_s
        self.schedules = app_schedules(app)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for schedule in self.schedules:
            if schedule.period_s is None:
                logger.warning("schedule not run locally (cron)", extra={"schedule": schedule.name})
                continue
            period = self.period_override_s or schedule.period_s
            thread = threading.Thread(
                target=self._loop,
                args=(schedule, period),
                name=f"schedule-{schedule.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def run_once(self, schedule: Schedule) -> Any:
        handler = self.app.handler_map[schedule.name]
        context = LambdaContext(schedule.name, 512, max_runtime_ms=TIMEOUT_MS)
        return handler(scheduled_event(self.region, schedule.name), context)

    def _loop(self, schedule: Schedule, period: float) -> None:
        while not self._stop.wait(period):
            try:
                self.run_once(schedule)
            except Exception:
                # As in AWS: a failed run is logged, and the next one comes on schedule.
                logger.exception("scheduled run failed", extra={"schedule": schedule.name})

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()
