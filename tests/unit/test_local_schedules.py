"""The local stack runs the app's schedules on their rate (EventBridge's job in AWS)."""

from __future__ import annotations

import threading
from typing import Any

from chalice.app import Chalice, Cron, Rate

from rlayer.local.schedules import Scheduler, app_schedules, rate_seconds


def test_rates_parse_and_crons_are_not_run() -> None:
    assert rate_seconds("rate(1 hour)") == 3600
    assert rate_seconds("rate(6 hours)") == 6 * 3600
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 days)") == 2 * 86400
    assert rate_seconds("cron(0 12 * * ? *)") is None


def test_the_apps_release_check_is_found_with_its_rate() -> None:
    from app import app
    from chalicelib.releases import schedule_rate_hours

    found = {s.name: s for s in app_schedules(app)}
    assert found["check_releases"].period_s == schedule_rate_hours() * 3600


def test_each_rate_schedule_runs_repeatedly_until_stopped_and_survives_errors() -> None:
    app = Chalice(app_name="sched")
    events: list[dict[str, Any]] = []
    ran = threading.Event()

    @app.schedule(Rate(1, unit=Rate.HOURS), name="tick")
    def tick(event: Any) -> None:
        events.append(event.to_dict())
        if len(events) >= 3:
            ran.set()
        raise RuntimeError("a failed run is logged; the next one still comes")

    @app.schedule(Cron(0, 12, "*", "*", "?", "*"), name="noon")
    def noon(event: Any) -> None:
        raise AssertionError("cron schedules are not run locally")

    scheduler = Scheduler(app, region="us-east-1", period_override_s=0.01)
    scheduler.start()
    try:
        assert ran.wait(5)
    finally:
        scheduler.stop()
    count = len(events)
    assert count >= 3
    assert events[0]["detail-type"] == "Scheduled Event"
    assert events[0]["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/tick"]
    ran.clear()
    assert not ran.wait(0.1) and len(events) == count  # stopped means stopped
