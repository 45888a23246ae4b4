"""The release check: new R releases in the feed -> one build per subscription and arch.

Order matters for reliability. Builds are started first (through ``submit_build``, so
they share the de-duplication of ``POST /builds``), and only then is the release marked
seen, with a conditional write. A run that dies in between leaves the release unseen; the
next run starts the same specs again and de-duplication answers with the builds already
running. Two overlapping runs may both start builds for a release, but each spec yields
one build, and exactly one of them records the round.

The first run on a table with no release items records a baseline instead of rebuilding
every R release in history (``RELEASES_BASELINE``).
"""

from __future__ import annotations

from typing import Literal

from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, Field

from chalicelib.aws.store import Store
from chalicelib.errors import ConfigurationError, FeedError, RLayerError
from chalicelib.models import Architecture, BuildRequest, parse_r_version, utcnow
from chalicelib.observability import logger, metrics
from chalicelib.releases.feed import Release, fetch_releases, version_key
from chalicelib.releases.records import (
    ReleaseRecord,
    TriggeredBuild,
    all_releases,
    get_release,
    record_release,
)
from chalicelib.settings import Settings
from chalicelib.submit import submit_build
from chalicelib.subscriptions import Subscription, iter_subscriptions

Outcome = Literal["recorded", "recorded_by_other_run", "retry_next_run"]


class StartFailure(BaseModel):
    subscription_id: str
    architecture: Architecture
    error_type: str
    message: str


class ReleaseOutcome(BaseModel):
    """What one run did about one new release."""

    version: str
    # retry_next_run: some build could not be started, so the release stays unseen.
    outcome: Outcome
    builds: list[TriggeredBuild] = Field(default_factory=list)
    failures: list[StartFailure] = Field(default_factory=list)


class CheckResult(BaseModel):
    checked_at: str = Field(default_factory=utcnow)
    feed_url: str
    ok: bool = True
    error: str | None = None
    latest: str | None = None
    # Releases this run marked seen as the first-run baseline (nothing built for them).
    baseline: list[str] = Field(default_factory=list)
    releases: list[ReleaseOutcome] = Field(default_factory=list)


def run_release_check(store: Store, settings: Settings) -> CheckResult:
    """The scheduled entry point: a bad feed is logged and reported, never raised."""
    try:
        return check_releases(store, settings)
    except FeedError as exc:
        logger.warning(
            "release feed unusable; nothing recorded, the next run tries again",
            extra={"feed_url": settings.r_releases_url, "error": exc.message},
        )
        metrics.add_metric(name="ReleaseFeedErrors", unit=MetricUnit.Count, value=1)
        return CheckResult(feed_url=settings.r_releases_url, ok=False, error=exc.message)


def check_releases(store: Store, settings: Settings) -> CheckResult:
    """One check; raises FeedError (before any write) when the feed is unusable."""
    feed = fetch_releases(settings.r_releases_url, settings.releases_timeout_s)
    result = CheckResult(feed_url=settings.r_releases_url, latest=feed[-1].version)
    records = all_releases(store)
    if records:
        seen = set().union(*(record.seen() for record in records))
    else:
        covered = baseline_covers(feed, settings.releases_baseline)
        result.baseline = [release.version for release in covered]
        seen = set(result.baseline)
        if covered:
            _record_baseline(store, covered)
    new = unseen(feed, seen)
    if not new:
        logger.info("no new R release", extra={"latest": result.latest})
        return result
    subscriptions = list(iter_subscriptions(store))
    for release in new:
        # The list above comes from an index that may lag; the key read is consistent.
        if get_release(store, release.version) is not None:
            continue
        result.releases.append(_trigger(release, subscriptions, store=store, settings=settings))
    return result


def baseline_covers(feed: list[Release], mode: str) -> list[Release]:
    """The releases a first run marks seen without building: see RELEASES_BASELINE."""
    if mode == "none":
        return []
    if mode == "current":
        return list(feed)
    try:
        parse_r_version(mode)
    except ValueError as exc:
        raise ConfigurationError(f"RELEASES_BASELINE {mode!r} {exc}") from exc
    floor = version_key(mode)
    return [release for release in feed if release.key <= floor]


def unseen(feed: list[Release], seen: set[str]) -> list[Release]:
    """Releases not yet seen, oldest first (so a backlog is built in release order)."""
    return [release for release in feed if release.version not in seen]


def _record_baseline(store: Store, covered: list[Release]) -> None:
    newest = covered[-1]
    record = ReleaseRecord(
        version=newest.version,
        date=newest.date,
        nickname=newest.nickname,
        baseline=True,
        covers=[release.version for release in covered],
    )
    # One item, so an overlapping run sees the whole baseline or none of it.
    written = record_release(store, record)
    logger.info(
        "release baseline recorded" if written else "release baseline already recorded",
        extra={"version": newest.version, "covers": len(covered)},
    )


def _trigger(
    release: Release, subscriptions: list[Subscription], *, store: Store, settings: Settings
) -> ReleaseOutcome:
    builds: list[TriggeredBuild] = []
    failures: list[StartFailure] = []
    for subscription in subscriptions:
        for architecture in subscription.architectures:
            request = BuildRequest(
                r_version=release.version,
                packages=subscription.packages,
                architecture=architecture,
                description=subscription.description,
            )
            try:
                build, created = submit_build(
                    request,
                    store=store,
                    settings=settings,
                    source="schedule",
                    notify=subscription.notify_target(),
                    subscription_id=subscription.subscription_id,
                )
            except RLayerError as exc:
                logger.warning(
                    "could not start a subscribed build",
                    extra={
                        "version": release.version,
                        "subscription_id": subscription.subscription_id,
                        "architecture": architecture.value,
                        "error": exc.message,
                    },
                )
                failures.append(
                    StartFailure(
                        subscription_id=subscription.subscription_id,
                        architecture=architecture,
                        error_type=type(exc).__name__,
                        message=exc.message,
                    )
                )
                continue
            builds.append(
                TriggeredBuild(
                    build_id=build.build_id,
                    subscription_id=subscription.subscription_id,
                    architecture=architecture,
                    created=created,
                )
            )
    if failures:
        # Unseen on purpose: the next run retries; the builds that did start de-duplicate.
        return ReleaseOutcome(
            version=release.version, outcome="retry_next_run", builds=builds, failures=failures
        )
    record = ReleaseRecord(
        version=release.version, date=release.date, nickname=release.nickname, builds=builds
    )
    recorded = record_release(store, record)
    if recorded:
        metrics.add_metric(name="ReleasesSeen", unit=MetricUnit.Count, value=1)
    logger.info(
        "new R release" if recorded else "new R release, recorded by an overlapping run",
        extra={"version": release.version, "builds": [b.build_id for b in builds]},
    )
    return ReleaseOutcome(
        version=release.version,
        outcome="recorded" if recorded else "recorded_by_other_run",
        builds=builds,
    )
