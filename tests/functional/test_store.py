"""Forward-only status transitions in the DynamoDB store."""

from __future__ import annotations

import pytest

from chalicelib.aws.store import Store
from chalicelib.errors import NotFoundError, TransitionRejectedError
from chalicelib.models import MAX_WATCHERS, BuildRecord, BuildSpec, BuildStatus, NotifyTarget


def _new(
    store: Store, build_id: str = "20260101T000000-00000001", *, force: bool = False
) -> BuildRecord:
    spec = BuildSpec(r_version="4.4.1", packages=["jsonlite"])  # type: ignore[arg-type]
    record = BuildRecord(build_id=build_id, spec_hash=spec.spec_hash, spec=spec)
    store.create_build(record, replaces=None, force=force)
    return record


def test_status_moves_forward_with_a_timestamp_per_step(store: Store) -> None:
    record = _new(store)
    for status in (BuildStatus.BUILDING, BuildStatus.VALIDATING, BuildStatus.PUBLISHING):
        updated = store.transition(record.build_id, status, {"log_url": f"log-{status}"})
        assert updated.status is status
        assert updated.log_url == f"log-{status}"
    assert set(updated.steps) == {"QUEUED", "BUILDING", "VALIDATING", "PUBLISHING"}


def test_a_skipped_step_is_still_forward(store: Store) -> None:
    record = _new(store)
    assert store.transition(record.build_id, BuildStatus.TESTING).status is BuildStatus.TESTING


@pytest.mark.parametrize(
    ("path", "late"),
    [
        ([BuildStatus.BUILDING], BuildStatus.BUILDING),  # duplicate step update
        ([BuildStatus.BUILDING, BuildStatus.VALIDATING], BuildStatus.BUILDING),  # late
        ([BuildStatus.TESTING, BuildStatus.SUCCEEDED], BuildStatus.BUILDING),  # after the end
        ([BuildStatus.TESTING, BuildStatus.SUCCEEDED], BuildStatus.FAILED),
        ([BuildStatus.FAILED], BuildStatus.SUCCEEDED),
        ([BuildStatus.FAILED], BuildStatus.FAILED),
    ],
)
def test_backward_or_repeated_updates_are_rejected_and_change_nothing(
    store: Store, path: list[BuildStatus], late: BuildStatus
) -> None:
    record = _new(store)
    for status in path:
        store.transition(record.build_id, status)
    before = store.get_build(record.build_id)
    with pytest.raises(TransitionRejectedError, match=path[-1].value):
        store.transition(record.build_id, late, {"log_url": "late"})
    assert store.get_build(record.build_id) == before


def test_failed_is_reachable_from_every_running_status(store: Store) -> None:
    for i, status in enumerate(
        [
            BuildStatus.QUEUED,
            BuildStatus.BUILDING,
            BuildStatus.VALIDATING,
            BuildStatus.PUBLISHING,
            BuildStatus.TESTING,
        ]
    ):
        record = _new(store, f"20260101T000000-0000000{i}", force=True)
        if status is not BuildStatus.QUEUED:
            store.transition(record.build_id, status)
        assert store.transition(record.build_id, BuildStatus.FAILED).status is BuildStatus.FAILED


def test_updates_expect_the_current_status(store: Store) -> None:
    record = _new(store)
    store.update_build(record.build_id, {"build_ref": "ref-1"}, expect=BuildStatus.QUEUED)
    with pytest.raises(TransitionRejectedError):
        store.update_build(record.build_id, {"build_ref": "ref-2"}, expect=BuildStatus.BUILDING)
    assert store.get_build(record.build_id).build_ref == "ref-1"


def test_unknown_build_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.transition("nope", BuildStatus.BUILDING)


def test_watchers_are_added_only_while_the_build_runs_and_are_bounded(store: Store) -> None:
    record = _new(store)
    for i in range(MAX_WATCHERS):
        store.add_watcher(record.build_id, NotifyTarget(channel_id="C1", user_id=f"U{i}"))
    with pytest.raises(TransitionRejectedError, match="no more watchers"):
        store.add_watcher(record.build_id, NotifyTarget(channel_id="C1", user_id="U-late"))
    assert len(store.get_build(record.build_id).watchers) == MAX_WATCHERS

    ended = _new(store, "20260101T000000-00000002", force=True)
    store.transition(ended.build_id, BuildStatus.FAILED)
    with pytest.raises(TransitionRejectedError, match="FAILED"):
        store.add_watcher(ended.build_id, NotifyTarget(channel_id="C1", user_id="U1"))
    assert store.get_build(ended.build_id).watchers == []
    with pytest.raises(NotFoundError):
        store.add_watcher("20260101T000000-0000dead", NotifyTarget(channel_id="C1"))
