"""Noticing new R releases and rebuilding what teams subscribed to."""

from chalicelib.releases.check import CheckResult, check_releases, run_release_check
from chalicelib.releases.feed import FeedEntry, Release, fetch_releases, parse_feed
from chalicelib.releases.records import ReleaseRecord, TriggeredBuild, list_releases
from chalicelib.settings import get_settings


def schedule_rate_hours() -> int:
    """The schedule's rate, read when app.py is imported (EventBridge fixes it at deploy)."""
    return get_settings().releases_schedule_hours


__all__ = [
    "CheckResult",
    "FeedEntry",
    "Release",
    "ReleaseRecord",
    "TriggeredBuild",
    "check_releases",
    "fetch_releases",
    "list_releases",
    "parse_feed",
    "run_release_check",
    "schedule_rate_hours",
]
